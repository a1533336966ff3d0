// backup-prod: a verified dump of EA's database (lib/tools/backup-store.ts), its rotation, then
// one offsite restic snapshot of it and of everything else that cannot be recreated; and the
// offsite upkeep (retention, the integrity check) on its own schedule. Every run is a list of typed
// steps (lib/core/exec.ts): `--dry-run` prints them, the runner executes the very same ones.
import { mkdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { EnvConfig, Environment } from '../core/config.ts';
import type { DumpFormat } from '../domain/backup-files.ts';
import { JobError, OpsError } from '../core/errors.ts';
import { acquireLock, isAlive, type Lock } from '../core/lock.ts';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { renderCommand, run, tail, type Step } from '../core/exec.ts';
import { redact } from '../core/secret.ts';
import { formatBytes, formatDuration, type Ui } from '../core/ui.ts';
import type { ComposeFlavor } from '../tools/compose.ts';
import { changedSince } from '../tools/find.ts';
import { planLocalBackup, type BackupOptions, type BackupPlan, type BackupResult } from '../tools/backup-store.ts';
import {
  classifyFailure, clearStaleLocks, describeLock, describeRepo, failureError, parseBackupOutput, parseCheckOutput, parseSnapshots, resticArgs, resticCommand, runRestic, ResticError,
  type OffsiteResult, type ResticRepo,
} from '../tools/restic.ts';
import {
  forgetArgs, lockHolderGone, prepareOffsite, offsiteExcludes, offsitePaths, parseOffsiteStatus, planIncludes, snapshotTags, tagValue, toolkitTag,
  type Include, type OffsiteStatus, type RetentionPolicy,
} from '../domain/offsite.ts';

/** For backup-prod's entry (scripts reach tools through their job). */
export { repoFromConfig, resticHostname } from '../tools/restic.ts';
export { runBackupPlan } from '../tools/backup-store.ts';

/** What the offsite step copies besides the backup, and where to. */
export interface OffsiteOptions {
  repo: ResticRepo;
  /** This machine's name (tags, restic's --host). */
  host: string;
  /** EB's config when EB is set up: its env file and app checkout go offsite too. */
  devCfg?: EnvConfig;
  /** The edge proxy's credentials folder (caddy/credentials). */
  edgeCredentialsDir: string;
}

/** What the offsite snapshot's contents.json says; restore --from-offsite reads it back. */
export interface OffsiteContents {
  version: 1;
  host: string;
  env: Environment;
  stem: string;
  dump: string;
  takenAt: string;
  includes: Include[];
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(() => true, () => false);
}

/** Reads and updates the status file monitor reads (atomic write; a broken file starts over). */
export async function updateOffsiteStatus(file: string, repository: string, change: (s: OffsiteStatus) => OffsiteStatus): Promise<void> {
  const current = parseOffsiteStatus(await readFile(file, 'utf8').catch(() => '')) ?? { version: 1 as const, repository };
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify(change({ ...current, repository }), null, 2)}\n`);
}

/** The include list of an offsite snapshot for this backup, with absent optional paths set aside. */
async function offsiteIncludes(cfg: EnvConfig, o: OffsiteOptions, backupFiles: string[], contentsFile: string): Promise<{ includes: Include[]; skipped: string[]; missing: Include[] }> {
  const all = planIncludes({
    backupFiles,
    contentsFile,
    prodVault: cfg.vars.VAULT_HOST_PATH,
    prodMqttCerts: cfg.vars.MQTT_CERTS_DIR,
    toolkitEnvFiles: [{ env: 'prod', file: cfg.file }, ...(o.devCfg ? [{ env: 'dev' as const, file: o.devCfg.file }] : [])],
    appDirs: [{ env: 'prod', dir: cfg.vars.APP_DIR }, ...(o.devCfg ? [{ env: 'dev' as const, dir: o.devCfg.vars.APP_DIR }] : [])],
    edgeCredentialsDir: o.edgeCredentialsDir,
  });
  const includes: Include[] = [];
  const skipped: string[] = [];
  const missing: Include[] = [];
  for (const inc of all) {
    // The backup's own files and the contents file are written by the run itself.
    if (inc.role === 'dump' || inc.role === 'contents' || (await exists(inc.path))) includes.push(inc);
    else if (inc.required) missing.push(inc);
    else skipped.push(inc.path);
  }
  return { includes, skipped, missing };
}

/**
 * backup-prod's run as steps: the local backup (lock, space check, dump and read back with the roles
 * beside it, checksum and manifest, final name, rotation), then, with `offsite`, the offsite
 * snapshot. A failure of the offsite part leaves the local backup and its rotation done: the run
 * still fails (exit 1), saying the offsite copy is missing, and the next run catches up.
 */
export async function planBackup(cfg: EnvConfig, opts: Omit<BackupOptions, 'ui'> & { ui?: Ui; offsite?: OffsiteOptions }, flavor: ComposeFlavor = 'v2', now = new Date()): Promise<BackupPlan> {
  const local = await planLocalBackup(cfg, opts, flavor, now);
  if (!opts.offsite) return local;
  const need = () => {
    if (!opts.ui) throw new Error('A backup plan runs with a Ui.');
    return opts.ui;
  };
  let offsite: OffsiteResult | undefined;
  const root = opts.dir ?? cfg.vars.BACKUP_DIR;
  const steps = await offsiteSteps(cfg, opts.offsite, { root, stem: local.stem, files: local.files, locks: local.locks, need, onDone: (r) => (offsite = r) });
  return { ...local, steps: [...local.steps, ...steps], result: () => ({ ...local.result(), ...(offsite && { offsite }) }) };
}

/**
 * The offsite steps alone, for a verified backup already in `root` (the bench times them against
 * a bare `restic backup` of the same paths).
 */
export async function planOffsite(cfg: EnvConfig, o: OffsiteOptions, backup: { root: string; stem: string; files: string[]; ui: Ui }): Promise<{ steps: Step[]; result: () => OffsiteResult | undefined; cleanup: () => Promise<void> }> {
  const locks: Lock[] = [];
  let out: OffsiteResult | undefined;
  const steps = await offsiteSteps(cfg, o, { ...backup, locks, need: () => backup.ui, onDone: (r) => (out = r) });
  return { steps, result: () => out, cleanup: async () => Promise.all(locks.map((l) => l.release())).then(() => undefined) };
}

/**
 * The offsite part of a backup: stale restic locks cleared, one snapshot of the verified backup and
 * of everything else that cannot be recreated, the status monitor reads. Any failure here is
 * recorded in the status file and reported as the missing offsite copy.
 */
async function offsiteSteps(
  cfg: EnvConfig,
  o: OffsiteOptions,
  b: { root: string; stem: string; files: string[]; locks: Lock[]; need: () => Ui; onDone: (r: OffsiteResult) => void },
): Promise<Step[]> {
  const paths = offsitePaths(b.root);
  const { includes, skipped, missing } = await offsiteIncludes(cfg, o, b.files, paths.contents);
  const tags = snapshotTags({ host: o.host, env: cfg.env, stem: b.stem });
  const backupArgs = (parent?: string) => resticArgs.backup({ paths: includes.map((i) => i.path), tags, host: o.host, excludes: offsiteExcludes, ...(parent && { parent }) });
  // The parent is known only when the step runs: the newest of this host's toolkit snapshots.
  const backup = resticCommand(o.repo, backupArgs('<that parent>'));
  const where = describeRepo(o.repo);
  const guard = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      await updateOffsiteStatus(paths.status, where, ({ running: _, ...s }) => ({ ...s, lastBackup: { at: new Date().toISOString(), ok: false, error: redact(why) } })).catch(() => undefined);
      const hint = err instanceof OpsError ? err.hint : undefined;
      throw new JobError(`The local backup ${b.stem} is made and rotated, but its offsite copy to ${where} is missing: ${redact(why).replace(/\.$/, '')}.`, hint ?? 'The next run catches up; run backup-prod again once the cause is fixed.', { cause: err });
    }
  };
  const clearLocks = async () => {
    const report = await clearStaleLocks(o.repo, (l) => lockHolderGone(l, { hostname: o.host, now: new Date(), isAlive }));
    for (const l of report.cleared.map(describeLock)) {
      locksCleared.push(l);
      b.need().warn(`Cleared the stale restic ${l}.`);
    }
  };
  const lookUpParent = async () => parseSnapshots((await runRestic(o.repo, [...resticArgs.snapshots(toolkitTag), '--host', o.host], 'snapshots')).stdout).at(-1)?.id;
  const listLocks = renderCommand(resticCommand(o.repo, resticArgs.listLocks()));
  const lookUp = renderCommand(resticCommand(o.repo, [...resticArgs.snapshots(toolkitTag), '--host', o.host]));
  const locksCleared: string[] = [];
  let parent: string | undefined;
  return [
    {
      kind: 'task',
      title: 'Find the parent snapshot; clear restic locks whose holder is gone',
      detail:
        `${paths.lock} taken; the parent is the last run's snapshot when ${paths.status} says it ended cleanly, otherwise from ${lookUp}; ` +
        `when that run failed or was killed: ${listLocks}, each read with \`restic cat lock\`, \`restic unlock\` only when a lock's process ` +
        'is gone (or it was not refreshed for 30 minutes)',
      run: guard(async () => {
        b.locks.push(await acquireLock(paths.lock, 'offsite'));
        const prep = prepareOffsite(parseOffsiteStatus(await readFile(paths.status, 'utf8').catch(() => '')), where);
        // Two restic processes at once: each spends most of its time deriving the key.
        [parent] = await Promise.all([prep.lookUpParent ? lookUpParent() : prep.parent, prep.clearLocks && clearLocks()]);
      }),
    },
    {
      kind: 'task',
      title: `Copy offsite: one snapshot to ${where}`,
      detail: `${renderCommand(backup)}${skipped.length ? ` (absent, skipped: ${skipped.join(', ')})` : ''}; once more after clearing stale locks if restic finds the repository locked, or with the looked-up parent if the last run's snapshot is gone`,
      run: guard(async () => {
        if (missing.length) throw new JobError(`${missing.map((m) => `${m.path} (${m.role})`).join(', ')} ${missing.length === 1 ? 'does' : 'do'} not exist.`, 'Check VAULT_HOST_PATH and MQTT_CERTS_DIR in .env.prod.');
        const contents: OffsiteContents = { version: 1, host: o.host, env: cfg.env, stem: b.stem, dump: b.files[0]!, takenAt: new Date().toISOString(), includes };
        await mkdir(paths.dir, { recursive: true, mode: 0o700 });
        await writeFileAtomic(paths.contents, `${JSON.stringify(contents, null, 2)}\n`);
        await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, running: { since: contents.takenAt, pid: process.pid } }));
        const startedAt = Date.now();
        // Exit 3: the snapshot was made, but some source could not be read (a vault file removed
        // while restic ran): reported, not fatal.
        const snapshot = () => runRestic(o.repo, backupArgs(parent), 'backup', { okCodes: [3] });
        const r = await snapshot().catch(async (err: unknown) => {
          if (!(err instanceof ResticError)) throw err;
          if (err.failure === 'locked') await clearLocks();
          else if (err.failure === 'unknown-snapshot' && parent) parent = await lookUpParent();
          else throw err;
          return snapshot();
        });
        const { summary, errors } = parseBackupOutput(r.stdout);
        if (!summary?.snapshotId) throw new JobError(`restic backup printed no snapshot id (${tail(r.stderr || r.stdout, 2)}).`, 'Run restic snapshots to see whether the snapshot exists.');
        const warnings = errors.map((e) => `unreadable while copying: ${e}`);
        if (r.exitCode === 3 && !errors.length) warnings.push(`restic could not read some files: ${tail(r.stderr, 2)}`);
        // Vault files modified while restic ran may be in the snapshot in either state; the next one has them whole.
        const changed = await changedSince(cfg.vars.VAULT_HOST_PATH, startedAt - 1000).catch((err: Error) => {
          warnings.push(`the vault could not be checked for files changed during the snapshot (${err.message})`);
          return { count: 0, examples: [] };
        });
        if (changed.count) warnings.push(`${changed.count} vault file(s) changed while the snapshot ran (${changed.examples.join(', ')}${changed.count > changed.examples.length ? ', …' : ''}); the next snapshot has them whole`);
        for (const w of warnings) b.need().warn(w);
        const result: OffsiteResult = {
          repository: where, snapshotId: summary.snapshotId, tags, paths: includes.map((i) => i.path), skipped,
          filesNew: summary.filesNew, filesChanged: summary.filesChanged, filesUnmodified: summary.filesUnmodified, dataAddedBytes: summary.dataAdded,
          totalFiles: summary.totalFiles, totalBytes: summary.totalBytes, durationMs: Date.now() - startedAt, warnings, locksCleared,
        };
        b.need().info(`Offsite snapshot ${summary.snapshotId}: ${summary.totalFiles} files, ${formatBytes(summary.totalBytes)}; ${summary.filesNew} new, ${summary.filesChanged} changed, ${formatBytes(summary.dataAdded)} added`);
        b.onDone(result);
        await updateOffsiteStatus(paths.status, where, ({ running: _, ...s }) => ({ ...s, lastSnapshot: { id: summary.snapshotId, time: contents.takenAt, dump: b.stem }, lastBackup: { at: new Date().toISOString(), ok: true, warnings: warnings.length } }));
      }),
    },
  ];
}

// ---- offsite upkeep: retention and the integrity check -------------------------------------

export interface UpkeepOptions {
  repo: ResticRepo;
  host: string;
  /** restic forget --keep-* then prune. */
  retention?: RetentionPolicy;
  /** restic check --read-data-subset=<subset>. */
  checkSubset?: string;
  /** The backup folder holding the offsite status and lock; BACKUP_DIR by default. */
  dir?: string;
  ui?: Ui;
}

export interface UpkeepResult {
  repository: string;
  locksCleared: string[];
  forget?: { ok: true; kept: number; removed: number; detail: string; durationMs: number };
  check?: { ok: boolean; subset: string; figures: string; durationMs: number };
  newest?: { id: string; time: string; dump: string };
}

/** How many snapshots forget kept and removed, from its --json output (one group per line or one array). */
export function parseForgetOutput(stdout: string): { kept: number; removed: number } {
  let kept = 0;
  let removed = 0;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('[')) continue;
    try {
      for (const g of JSON.parse(line) as { keep?: unknown[] | null; remove?: unknown[] | null }[]) {
        kept += g.keep?.length ?? 0;
        removed += g.remove?.length ?? 0;
      }
    } catch {
      // prune's own lines follow; only forget's JSON counts
    }
  }
  return { kept, removed };
}

/**
 * Retention and the integrity check of the offsite repository, as steps. Both take restic's
 * exclusive lock, so they run on their own schedule, never during the nightly backup: the local
 * offsite lock makes a second toolkit run refuse, and a live restic lock (a backup from another
 * machine, the app's own job during a migration) makes this run refuse rather than wait.
 */
export function planUpkeep(cfg: EnvConfig, o: UpkeepOptions): { steps: Step[]; result: () => UpkeepResult; cleanup: () => Promise<void> } {
  const paths = offsitePaths(o.dir ?? cfg.vars.BACKUP_DIR);
  const where = describeRepo(o.repo);
  const locks: Lock[] = [];
  const out: UpkeepResult = { repository: where, locksCleared: [] };
  const ui = () => {
    if (!o.ui) throw new Error('An upkeep plan runs with a Ui.');
    return o.ui;
  };
  const steps: Step[] = [
    {
      kind: 'task',
      title: 'Make sure nothing else holds the repository',
      detail: `${paths.lock} taken; ${renderCommand(resticCommand(o.repo, resticArgs.listLocks()))}; \`restic unlock\` only for locks whose holder is gone; a live lock refuses (exit 1)`,
      run: async () => {
        await mkdir(path.dirname(paths.lock), { recursive: true });
        locks.push(await acquireLock(paths.lock, 'offsite'));
        const report = await clearStaleLocks(o.repo, (l) => lockHolderGone(l, { hostname: o.host, now: new Date(), isAlive }));
        out.locksCleared = report.cleared.map(describeLock);
        for (const l of out.locksCleared) ui().warn(`Cleared the stale restic ${l}.`);
        if (report.live.length) throw new JobError(`The repository ${where} is in use: ${report.live.map(describeLock).join('; ')}.`, 'Retention and the check need it alone; run them again when that run has ended.');
      },
    },
  ];
  if (o.retention) {
    const forget = resticCommand(o.repo, resticArgs.forget(forgetArgs(o.retention)));
    steps.push({
      kind: 'task',
      title: `Retention: keep ${o.retention.daily} daily, ${o.retention.weekly} weekly, ${o.retention.monthly} monthly snapshots, then prune`,
      detail: renderCommand(forget),
      run: async () => {
        const started = Date.now();
        try {
          const r = await runRestic(o.repo, forget.argv, 'forget --prune');
          const counts = parseForgetOutput(r.stdout);
          const unused = /unused size after prune: ([^\n]+)/.exec(r.stdout)?.[1];
          out.forget = { ok: true, ...counts, detail: `${counts.kept} kept, ${counts.removed} removed${unused ? `, unused after prune ${unused}` : ''}`, durationMs: Date.now() - started };
          ui().info(`Retention: ${out.forget.detail}`);
          await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, lastForget: { at: new Date().toISOString(), ok: true, removed: counts.removed, kept: counts.kept, detail: out.forget!.detail } }));
        } catch (err) {
          await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, lastForget: { at: new Date().toISOString(), ok: false, removed: 0, kept: 0, detail: redact((err as Error).message) } })).catch(() => undefined);
          throw err;
        }
      },
    });
  }
  if (o.checkSubset) {
    const subset = o.checkSubset;
    const check = resticCommand(o.repo, resticArgs.check(subset));
    steps.push({
      kind: 'task',
      title: `Integrity check, reading ${subset} of the data`,
      detail: renderCommand(check),
      run: async () => {
        const started = Date.now();
        const r = await run(check, { nothrow: true });
        const parsed = parseCheckOutput(`${r.stdout}\n${r.stderr}`);
        // A check that cannot start (wrong password, unreachable, locked) is a failed run, not a damaged repository.
        if (r.exitCode !== 0 && classifyFailure(r.stderr) !== 'other') throw failureError(o.repo, 'check', r);
        const ok = r.exitCode === 0 && parsed.ok;
        const detail = ok ? `no errors (${parsed.figures})` : `errors found: ${redact(tail(r.stdout + r.stderr, 3))}`;
        out.check = { ok, subset, figures: parsed.figures, durationMs: Date.now() - started };
        await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, lastCheck: { at: new Date().toISOString(), ok, subset, detail } }));
        if (!ok) throw new JobError(`restic check of ${where} found errors: ${detail}.`, 'Do not prune; keep the local backups; see docs/backup.md "When the check fails".');
        ui().info(`Check: ${detail}`);
      },
    });
  }
  steps.push({
    kind: 'task',
    title: "Record the newest of the toolkit's snapshots",
    detail: `${renderCommand(resticCommand(o.repo, resticArgs.snapshots(toolkitTag)))} → ${paths.status}`,
    run: async () => {
      const newest = parseSnapshots((await runRestic(o.repo, resticArgs.snapshots(toolkitTag), 'snapshots')).stdout).at(-1);
      if (!newest) return;
      out.newest = { id: newest.shortId, time: newest.time, dump: tagValue(newest.tags, 'dump') ?? '?' };
      await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, lastSnapshot: out.newest! }));
    },
  });
  return {
    steps,
    result: () => out,
    cleanup: async () => {
      for (const l of locks.reverse()) await l.release();
    },
  };
}

/** Makes a new, empty repository (once, by hand: backup-prod --init-offsite). */
export async function initOffsite(repo: ResticRepo, ui: Ui): Promise<{ repository: string }> {
  await ui.run(`Create the restic repository ${describeRepo(repo)}`, () => runRestic(repo, resticArgs.init(), 'init'));
  return { repository: describeRepo(repo) };
}

export function renderUpkeep(r: UpkeepResult): void {
  const lines = [
    `repository ${r.repository}`,
    ...(r.locksCleared.length ? [`cleared    ${r.locksCleared.join('; ')}`] : []),
    ...(r.forget ? [`retention  ${r.forget.detail}`] : []),
    ...(r.check ? [`check      ${r.check.ok ? 'OK' : 'FAILED'}: ${r.check.figures} (${r.check.subset})`] : []),
    ...(r.newest ? [`newest     ${r.newest.id} ${r.newest.time} (${r.newest.dump})`] : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ---- the entry's side ----------------------------------------------------------------------

/** backup-prod's flags as backup options (validated: a bad value is a usage error, exit 2). */
export function parseBackupOptions(flags: { format: DumpFormat; direct: boolean; pin: boolean; reason?: string | undefined; dir?: string | undefined; keep?: number | undefined }): Omit<BackupOptions, 'ui'> {
  return {
    mode: flags.direct ? 'direct' : 'compose',
    format: flags.format,
    pinned: flags.pin,
    ...(flags.reason !== undefined && { reason: flags.reason }),
    ...(flags.dir !== undefined && { dir: flags.dir }),
    ...(flags.keep !== undefined && { keep: flags.keep }),
  };
}

export function renderBackup(r: BackupResult): void {
  const o = r.offsite;
  const lines = [
    `backup   ${r.file}${r.pinned ? ' (pinned)' : ''}`,
    `size     ${formatBytes(r.bytes)} (${r.format}), database ${r.database.name} ${formatBytes(r.database.sizeBytes)}`,
    `sha256   ${r.sha256}`,
    `took     ${formatDuration(r.durationMs)}`,
    `rotated  ${r.rotated.length ? r.rotated.join(', ') : 'nothing'}`,
    ...(o
      ? [
          `offsite  snapshot ${o.snapshotId} in ${o.repository}: ${o.totalFiles} files, ${formatBytes(o.totalBytes)}, ${formatBytes(o.dataAddedBytes)} added, ${formatDuration(o.durationMs)}`,
          ...o.warnings.map((w) => `warning  ${w}`),
        ]
      : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
