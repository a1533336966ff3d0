// restic, the offsite copy's client (Debian's 0.14: no --retry-lock, no repair, no
// --stdin-from-command). The only place that builds restic's argv and runs it. Secrets never reach
// argv: the repository password is a file restic reads (RESTIC_PASSWORD_FILE), the backend's keys
// are variables of the child's environment only, and anything restic prints is redacted.
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { EnvConfig } from '../core/config.ts';
import { parseEnvFile } from '../core/config.ts';
import { ConfigError, JobError } from '../core/errors.ts';
import { run, tail, type Command, type RunResult } from '../core/exec.ts';
import { redact, Secret } from '../core/secret.ts';

export interface ResticRepo {
  /** RESTIC_REPOSITORY: a path, sftp:, s3:, b2:, rest:, ... */
  repository: string;
  passwordFile: string;
  /** The backend's keys (B2_ACCOUNT_KEY, AWS_SECRET_ACCESS_KEY, ...): the child's environment only. */
  backendEnv: Readonly<Record<string, Secret>>;
  /** restic's -o sftp.command, for an sftp: repository reached through a particular ssh. */
  sftpCommand?: string;
  /** restic's cache (default: ~/.cache/restic); tests and the bench keep theirs apart. */
  cacheDir?: string;
}

/**
 * Variables a backend env file may hand to restic: the backends' own (restic's documentation,
 * "Preparing a new repository"). Anything else in the file (the app's RESTIC_PASSWORD, HC_PING_URL)
 * is ignored: the password comes from RESTIC_PASSWORD_FILE only.
 */
const backendKey = /^(B2_ACCOUNT_ID|B2_ACCOUNT_KEY|AWS_[A-Z_]+|AZURE_[A-Z_]+|GOOGLE_[A-Z_]+|OS_[A-Z_]+|ST_[A-Z]+|RESTIC_REST_[A-Z_]+)$/;

/** A file holding a secret must be readable by its owner only. */
async function assertPrivate(file: string, what: string): Promise<void> {
  const s = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError(`The ${what} ${file} cannot be read (${err.code ?? err.message}).`, [], 'Create it (mode 0600, owned by the user cron runs as) or fix the path in .env.prod.');
  });
  if (!s.isFile()) throw new ConfigError(`The ${what} ${file} is not a file.`);
  if ((s.mode & 0o077) !== 0) throw new ConfigError(`The ${what} ${file} has mode ${(s.mode & 0o777).toString(8)}; it must be 0600 (owner only).`, [], `chmod 600 ${file}`);
}

/** The offsite repository of an environment's config; undefined when RESTIC_REPOSITORY is empty. */
export async function repoFromConfig(cfg: EnvConfig): Promise<ResticRepo | undefined> {
  const v = cfg.vars;
  if (!v.RESTIC_REPOSITORY) return undefined;
  await assertPrivate(v.RESTIC_PASSWORD_FILE, 'restic password file (RESTIC_PASSWORD_FILE)');
  const backendEnv: Record<string, Secret> = {};
  if (v.RESTIC_BACKEND_ENV_FILE) {
    await assertPrivate(v.RESTIC_BACKEND_ENV_FILE, 'backend key file (RESTIC_BACKEND_ENV_FILE)');
    const { entries, problems } = parseEnvFile(await readFile(v.RESTIC_BACKEND_ENV_FILE, 'utf8'), v.RESTIC_BACKEND_ENV_FILE);
    if (problems.length) throw new ConfigError(`${v.RESTIC_BACKEND_ENV_FILE} has ${problems.length} problem(s): ${problems.join('; ')}.`, problems);
    for (const [key, { value }] of entries) if (backendKey.test(key)) backendEnv[key] = new Secret(value);
  }
  return { repository: v.RESTIC_REPOSITORY, passwordFile: v.RESTIC_PASSWORD_FILE, backendEnv, ...(v.RESTIC_SFTP_COMMAND && { sftpCommand: v.RESTIC_SFTP_COMMAND }) };
}

/** A restic command against a repository; rendered, it names the variables but never shows their values. */
export function resticCommand(repo: ResticRepo, args: readonly string[]): Command {
  const env: Record<string, string> = {
    RESTIC_REPOSITORY: repo.repository,
    RESTIC_PASSWORD_FILE: repo.passwordFile,
    // restic would ask on a terminal for a missing password; a cron job must fail instead.
    RESTIC_PASSWORD_COMMAND: '',
    ...(repo.cacheDir && { RESTIC_CACHE_DIR: repo.cacheDir }),
    ...Object.fromEntries(Object.entries(repo.backendEnv).map(([k, s]) => [k, s.reveal()])),
  };
  const options = repo.sftpCommand ? ['-o', `sftp.command=${repo.sftpCommand}`] : [];
  return { cmd: 'restic', argv: [...options, ...args], env };
}

// ---- argv --------------------------------------------------------------------------------

export const resticArgs = {
  init: () => ['init'],
  /** --json: one summary line to read the snapshot's id and figures from; --quiet: no progress lines. */
  /**
   * --parent: restic 0.14 picks a parent only among snapshots with the very same paths, and the
   * dump's name changes every night; without it every vault file would be read and hashed again.
   */
  backup: (o: { paths: readonly string[]; tags: readonly string[]; host: string; excludes: readonly string[]; parent?: string }) => [
    'backup', '--json', '--quiet', '--host', o.host, ...(o.parent ? ['--parent', o.parent] : []), ...o.tags.flatMap((t) => ['--tag', t]), ...o.excludes.flatMap((e) => ['--exclude', e]), '--', ...o.paths,
  ],
  snapshots: (tag?: string) => ['snapshots', '--json', '--no-lock', ...(tag ? ['--tag', tag] : [])],
  listLocks: () => ['list', 'locks', '--no-lock'],
  catLock: (id: string) => ['cat', 'lock', id, '--no-lock'],
  unlock: () => ['unlock'],
  forget: (flags: readonly string[]) => ['forget', '--json', ...flags],
  check: (subset: string) => ['check', `--read-data-subset=${subset}`],
  restore: (snapshot: string, target: string, includes: readonly string[] = []) => ['restore', snapshot, '--target', target, ...includes.flatMap((i) => ['--include', i])],
  /** Every entry under the given folders of a snapshot, one JSON object a line. */
  ls: (snapshot: string, dirs: readonly string[]) => ['ls', '--json', '--no-lock', '--recursive', snapshot, ...dirs],
  dump: (snapshot: string, file: string) => ['dump', '--no-lock', snapshot, file],
} as const;

// ---- running -----------------------------------------------------------------------------

export type ResticFailure = 'wrong-password' | 'no-repository' | 'unreachable' | 'locked' | 'unknown-snapshot' | 'other';

/** What a failed restic run means, from its message (restic 0.14's wording). */
export function classifyFailure(stderr: string): ResticFailure {
  if (/wrong password or no key found|an empty password is not a password|password is empty/i.test(stderr)) return 'wrong-password';
  // "unable to create lock in backend" alone is a backend that failed mid-way (a dropped ssh), not another holder.
  if (/repository is already locked/i.test(stderr)) return 'locked';
  if (/invalid id ".*": no matching ID found/i.test(stderr)) return 'unknown-snapshot';
  if (/Is there a repository at the following location|unable to open config file/i.test(stderr)) {
    // A remote that cannot be reached says the same as a missing repository; the cause tells them apart.
    return /connection|dial|timeout|timed out|no route|network|refused|resolve|lookup|ssh|EOF/i.test(stderr) ? 'unreachable' : 'no-repository';
  }
  if (/connection|dial tcp|timeout|no route to host|network is unreachable|refused|lookup|ssh: |subprocess ssh|EOF/i.test(stderr)) return 'unreachable';
  return 'other';
}

/** The repository as shown in messages: credentials in a URL are masked. */
export const describeRepo = (repo: ResticRepo) => redact(repo.repository);

/** A failed restic run, with what its message means (a caller may retry a lock or a gone parent). */
export class ResticError extends JobError {
  constructor(readonly failure: ResticFailure, message: string, hint: string) {
    super(message, hint);
  }
}

export function failureError(repo: ResticRepo, what: string, r: RunResult): ResticError {
  const why = redact(tail(r.stderr || r.stdout, 3), Object.values(repo.backendEnv)) || `exit status ${r.exitCode}`;
  const where = describeRepo(repo);
  const failure = classifyFailure(r.stderr);
  const error = (message: string, hint: string) => new ResticError(failure, message, hint);
  switch (failure) {
    case 'wrong-password':
      return error(`restic ${what}: the password in ${repo.passwordFile} does not open the repository ${where}; nothing was changed there.`, 'Put the repository\'s password (from the password manager) into that file and run again.');
    case 'no-repository':
      return error(`restic ${what}: there is no restic repository at ${where} (${why}).`, 'Check RESTIC_REPOSITORY; a new one is made once with: backup-prod --init-offsite.');
    case 'unreachable':
      return error(`restic ${what}: the repository ${where} cannot be reached (${why}).`, 'Check the network, the backend\'s keys and the ssh access; the next run catches up.');
    case 'locked':
      return error(`restic ${what}: the repository ${where} is locked by another run (${why}).`, 'Wait for it to end; a lock whose holder is gone is cleared by the next run.');
    default:
      return error(`restic ${what} failed on ${where} with exit status ${r.exitCode}: ${why}.`, 'Run it by hand with the same variables to see the whole output.');
  }
}

/** Runs restic; a failure becomes one sentence saying what happened to which repository. */
export async function runRestic(repo: ResticRepo, args: readonly string[], what: string, opts: { okCodes?: readonly number[]; timeoutMs?: number } = {}): Promise<RunResult> {
  const r = await run(resticCommand(repo, args), { nothrow: true, ...(opts.timeoutMs && { timeoutMs: opts.timeoutMs }) });
  if (r.exitCode === 0 || opts.okCodes?.includes(r.exitCode)) return r;
  if (r.exitCode === 127) throw new JobError(`restic is not installed (${r.stderr}).`, 'Install it: make setup (Debian package restic).');
  throw failureError(repo, what, r);
}

// ---- parsing -----------------------------------------------------------------------------

/** What backup-prod's offsite step did (lib/jobs/backup.ts). */
export interface OffsiteResult {
  repository: string;
  snapshotId: string;
  tags: string[];
  paths: string[];
  /** Optional paths that were absent (e.g. an app checkout without .env.dev). */
  skipped: string[];
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dataAddedBytes: number;
  totalFiles: number;
  totalBytes: number;
  durationMs: number;
  /** Reported, not fatal: sources restic could not read, vault files that changed while it ran. */
  warnings: string[];
  /** restic locks left by runs whose holder was gone, cleared before the snapshot. */
  locksCleared: string[];
}


export interface BackupSummary {
  snapshotId: string;
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dataAdded: number;
  totalFiles: number;
  totalBytes: number;
  durationS: number;
}

/** The summary line of `restic backup --json`, and the error lines (sources that could not be read). */
export function parseBackupOutput(stdout: string): { summary?: BackupSummary; errors: string[] } {
  let summary: BackupSummary | undefined;
  const errors: string[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (m.message_type === 'summary') {
      const n = (k: string) => Number(m[k] ?? 0);
      summary = {
        snapshotId: String(m.snapshot_id ?? ''),
        filesNew: n('files_new'),
        filesChanged: n('files_changed'),
        filesUnmodified: n('files_unmodified'),
        dataAdded: n('data_added'),
        totalFiles: n('total_files_processed'),
        totalBytes: n('total_bytes_processed'),
        durationS: n('total_duration'),
      };
    } else if (m.message_type === 'error') {
      const e = m.error as { message?: string } | string | undefined;
      errors.push(`${String(m.item ?? '')}: ${typeof e === 'string' ? e : (e?.message ?? 'unreadable')}`);
    }
  }
  return { ...(summary && { summary }), errors };
}

export interface SnapshotInfo {
  id: string;
  shortId: string;
  time: string;
  hostname: string;
  tags: string[];
  paths: string[];
}

export function parseSnapshots(stdout: string): SnapshotInfo[] {
  const list = JSON.parse(stdout || '[]') as { id: string; short_id?: string; time: string; hostname: string; tags?: string[]; paths?: string[] }[];
  return (list ?? []).map((s) => ({ id: s.id, shortId: s.short_id ?? s.id.slice(0, 8), time: s.time, hostname: s.hostname, tags: s.tags ?? [], paths: s.paths ?? [] })).sort((a, b) => a.time.localeCompare(b.time));
}

/** `restic check`'s verdict and the figures it printed (snapshots checked, packs read). */
export function parseCheckOutput(out: string): { ok: boolean; figures: string } {
  const snapshots = /(\d+) \/ (\d+) snapshots/.exec(out);
  const read = /read ([\d.]+% of data packs|\d+\/\d+ of data packs|[\d.]+ ?[KMGT]?i?B of data packs)/.exec(out);
  const packs = [...out.matchAll(/(\d+) \/ (\d+) packs/g)].at(-1);
  const figures = [snapshots && `${snapshots[2]} snapshots`, read && `read ${read[1]}`, packs && `${packs[2]} packs read`].filter(Boolean).join(', ');
  return { ok: /no errors were found/.test(out), figures: figures || 'no figures printed' };
}

// ---- locks -------------------------------------------------------------------------------

/** A lock file of the repository, as `restic cat lock` prints it. */
export interface ResticLock {
  id: string;
  time: string;
  exclusive: boolean;
  hostname: string;
  username?: string;
  pid: number;
}

/** The repository's lock files, read without taking a lock. */
export async function listLocks(repo: ResticRepo): Promise<ResticLock[]> {
  const ids = (await runRestic(repo, resticArgs.listLocks(), 'list locks')).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
  const locks: ResticLock[] = [];
  for (const id of ids) {
    // A lock removed between the listing and its reading belonged to a run that just ended.
    const r = await run(resticCommand(repo, resticArgs.catLock(id)), { nothrow: true });
    if (r.exitCode !== 0) continue;
    const l = JSON.parse(r.stdout) as Omit<ResticLock, 'id'>;
    locks.push({ id, time: l.time, exclusive: Boolean(l.exclusive), hostname: l.hostname, pid: l.pid, ...(l.username && { username: l.username }) });
  }
  return locks;
}

export interface LockReport {
  /** Locks whose holder is gone, removed by `restic unlock`. */
  cleared: ResticLock[];
  /** Locks of live holders (another backup, a check on another machine). */
  live: ResticLock[];
}

/** This machine's name as restic records it in locks and snapshots. */
export const resticHostname = () => hostname();

/**
 * Clears the locks a killed run left behind, and only those: `restic unlock` (without
 * --remove-all) removes exactly the locks restic itself calls stale, which is the rule `holderGone`
 * decides by (lib/domain/offsite.ts lockHolderGone); it is run only when such a lock exists.
 */
export async function clearStaleLocks(repo: ResticRepo, holderGone: (l: ResticLock) => boolean): Promise<LockReport> {
  const locks = await listLocks(repo);
  const cleared = locks.filter(holderGone);
  const live = locks.filter((l) => !cleared.includes(l));
  if (cleared.length) await runRestic(repo, resticArgs.unlock(), 'unlock');
  return { cleared, live };
}

export const describeLock = (l: ResticLock) => `${l.exclusive ? 'exclusive' : 'shared'} lock ${l.id.slice(0, 8)} of pid ${l.pid} on ${l.hostname} since ${l.time}`;
