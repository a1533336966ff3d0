// The offsite copy's decisions, without I/O: what a snapshot holds, how it is tagged, which
// snapshots retention keeps, when a restic lock is stale, and what monitor makes of the last runs.
// The runners (lib/jobs/backup.ts, lib/jobs/restore.ts) measure and act; lib/tools/restic.ts runs restic.
import path from 'node:path';
import type { ResticLock } from '../tools/restic.ts';

/** Every snapshot this toolkit writes carries this tag; retention and the drill look only at those. */
export const toolkitTag = 'makapix-ops';

/**
 * A snapshot's tags: the toolkit's own, then host, environment and dump (restic tags are plain
 * strings; `key=value` keeps them readable in `restic snapshots` and selectable with `--tag`).
 */
export function snapshotTags(t: { host: string; env: string; stem: string }): string[] {
  for (const [k, v] of Object.entries(t)) if (!/^[A-Za-z0-9_.-]+$/.test(v)) throw new Error(`A snapshot tag's ${k} must be plain (letters, digits, . _ -), got ${JSON.stringify(v)}.`);
  return [toolkitTag, `host=${t.host}`, `env=${t.env}`, `dump=${t.stem}`];
}

/** The value of a `key=value` tag, if the snapshot has one. */
export const tagValue = (tags: readonly string[] | undefined, key: string): string | undefined => tags?.find((t) => t.startsWith(`${key}=`))?.slice(key.length + 1);

/** What an included path is, so a restore knows where each part of the snapshot belongs. */
export type IncludeRole = 'dump' | 'vault' | 'mqtt-certs' | 'toolkit-env' | 'app-env' | 'edge-credentials' | 'contents';

export interface Include {
  role: IncludeRole;
  /** Absolute path (a file or a folder). */
  path: string;
  /** Which environment it belongs to, where that means something. */
  env?: 'prod' | 'dev';
  /** A required path that is missing fails the snapshot; an optional one is reported and skipped. */
  required: boolean;
}

export interface IncludeInput {
  /** The verified backup's files (dump, checksum, manifest, roles): absolute paths. */
  backupFiles: readonly string[];
  /** The file listing this snapshot's roles, written beside the backups. */
  contentsFile: string;
  prodVault: string;
  prodMqttCerts: string;
  /** The toolkit's own env files (.env.prod, and .env.dev when EB is set up). */
  toolkitEnvFiles: readonly { env: 'prod' | 'dev'; file: string }[];
  /** The app's checkouts (APP_DIR of each environment); the app keeps its env files in deploy/stack/. */
  appDirs: readonly { env: 'prod' | 'dev'; dir: string }[];
  /** Where the edge proxy's credentials live (caddy/credentials of the toolkit). */
  edgeCredentialsDir: string;
}

/**
 * The app's env files in a checkout: `.env` and `.env.prod` in production's, `.env.dev` in
 * development's (follows deploy/backup/backup-makapix.sh and deploy/stack/ of the app). `.env` is
 * taken from both: it is what `docker compose` reads by default in either checkout.
 */
export const appEnvFileNames = { prod: ['.env', '.env.prod'], dev: ['.env', '.env.dev'] } as const;

/**
 * The paths of one snapshot: everything that cannot be recreated. EA's database (the verified
 * dump, its checksum, manifest and roles), EA's vault, EA's MQTT CA and certificates, both
 * environments' env files and the app checkouts' ones, the edge credentials. EB's vault and
 * database are left out: they are samples of EA, made again by sample-data and sync-vault.
 */
export function planIncludes(i: IncludeInput): Include[] {
  const out: Include[] = [
    ...i.backupFiles.map((p): Include => ({ role: 'dump', path: p, env: 'prod', required: true })),
    { role: 'contents', path: i.contentsFile, required: true },
    { role: 'vault', path: i.prodVault, env: 'prod', required: true },
    { role: 'mqtt-certs', path: i.prodMqttCerts, env: 'prod', required: true },
    ...i.toolkitEnvFiles.map((f): Include => ({ role: 'toolkit-env', path: f.file, env: f.env, required: f.env === 'prod' })),
    ...i.appDirs.flatMap((a) => appEnvFileNames[a.env].map((name): Include => ({ role: 'app-env', path: path.join(a.dir, 'deploy', 'stack', name), env: a.env, required: false }))),
    { role: 'edge-credentials', path: i.edgeCredentialsDir, required: false },
  ];
  for (const inc of out) if (!path.isAbsolute(inc.path)) throw new Error(`Offsite include ${inc.path} is not absolute.`);
  // One path once (the two checkouts may be one folder in a small setup).
  const seen = new Set<string>();
  return out.filter((inc) => !seen.has(inc.path) && seen.add(inc.path));
}

/** Files never worth a byte offsite: locks, temporary files of a run in progress, lost+found. */
export const offsiteExcludes = ['lost+found', '.makapix-*.lock', '.mqtt-certs.lock', '.*.tmp-*'] as const;

// ---- retention ---------------------------------------------------------------------------

export interface RetentionPolicy {
  daily: number;
  weekly: number;
  monthly: number;
}

/** restic forget's flags for the policy, limited to the toolkit's own snapshots, then prune. */
export function forgetArgs(p: RetentionPolicy): string[] {
  for (const [k, v] of Object.entries(p)) if (!Number.isInteger(v) || v < 1) throw new Error(`Retention ${k} must be a whole number of at least 1, got ${v}.`);
  // group by host only: the paths change when an include comes or goes, and that must not make
  // every older snapshot a group of its own that retention never thins out.
  return ['--tag', toolkitTag, '--group-by', 'host', '--keep-daily', String(p.daily), '--keep-weekly', String(p.weekly), '--keep-monthly', String(p.monthly), '--prune'];
}

// ---- locks -------------------------------------------------------------------------------

/** restic refreshes a live lock every 5 minutes and itself calls one older than 30 minutes stale. */
export const staleLockAgeMs = 30 * 60_000;

/**
 * Whether a lock's holder is gone: on this host, its process no longer runs; on another host (or
 * in a container, where the pid means nothing here), it was not refreshed for 30 minutes. This is
 * restic's own rule (`restic unlock` removes exactly these), decided here so the run can say which
 * locks it clears and refuse when a live holder remains.
 */
export function lockHolderGone(lock: ResticLock, here: { hostname: string; now: Date; isAlive: (pid: number) => boolean }): boolean {
  const age = here.now.getTime() - new Date(lock.time).getTime();
  if (Number.isFinite(age) && age > staleLockAgeMs) return true;
  return lock.hostname === here.hostname && !here.isAlive(lock.pid);
}

// ---- status (monitor) --------------------------------------------------------------------

/** Where the offsite runs keep their state: beside the backups, under a name the rotation never touches. */
export const offsitePaths = (backupRoot: string) => ({
  dir: path.join(backupRoot, 'offsite'),
  /** What monitor reads (evaluateOffsite). */
  status: path.join(backupRoot, 'offsite', 'status.json'),
  /** Which path of the snapshot is what; travels in the snapshot itself. */
  contents: path.join(backupRoot, 'offsite', 'contents.json'),
  /** Held by the offsite step of a backup and by retention/check: they never run at once. */
  lock: path.join(backupRoot, '.makapix-offsite.lock'),
});

/** What the offsite runs leave behind for monitor (written atomically beside the backups). */
export interface OffsiteStatus {
  version: 1;
  repository: string;
  /** The newest snapshot this toolkit knows of (from its own backup, or read by the check). */
  lastSnapshot?: { id: string; time: string; dump: string };
  /** The last backup attempt, successful or not. */
  lastBackup?: { at: string; ok: boolean; error?: string; warnings?: number };
  /** Set while a backup's offsite step runs: still there, the run was killed. */
  running?: { since: string; pid: number };
  lastCheck?: { at: string; ok: boolean; subset: string; detail: string };
  lastForget?: { at: string; ok: boolean; removed: number; kept: number; detail: string };
}

export interface OffsiteThresholds {
  'offsite-warn-hours': number;
  'offsite-crit-hours': number;
  /** The check runs weekly: one week plus a day of slack. */
  'offsite-check-days': number;
}
export const defaultOffsiteThresholds: OffsiteThresholds = { 'offsite-warn-hours': 26, 'offsite-crit-hours': 50, 'offsite-check-days': 8 };

export type OffsiteLevel = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
export interface OffsiteItem {
  status: OffsiteLevel;
  label: string;
  detail: string;
}

/** What the offsite step does before its snapshot, from what the last run recorded. */
export interface OffsitePreparation {
  /** The last clean run's snapshot: tonight's parent without asking the repository. */
  parent?: string;
  /** Look the parent up (`restic snapshots`): no clean run of ours is recorded for this repository. */
  lookUpParent: boolean;
  /** Clear stale locks first: our last run failed or was killed, and its restic may have left one. */
  clearLocks: boolean;
}

/**
 * Each restic call pays a key derivation of about half a second, so the run asks the repository
 * only what the status file cannot tell: after a clean run, nothing. A lock that blocks the
 * snapshot anyway (another tool's killed prune) is cleared when restic reports it, then retried.
 */
export function prepareOffsite(status: OffsiteStatus | undefined, repository: string): OffsitePreparation {
  if (!status || status.repository !== repository) return { lookUpParent: true, clearLocks: false };
  const failed = !!status.running || status.lastBackup?.ok === false;
  const parent = !failed && status.lastBackup?.ok ? status.lastSnapshot?.id : undefined;
  return { ...(parent && { parent }), lookUpParent: !parent, clearLocks: failed };
}

/** Parses the status file; anything unreadable is undefined (monitor says so). */
export function parseOffsiteStatus(text: string): OffsiteStatus | undefined {
  try {
    const v = JSON.parse(text) as Partial<OffsiteStatus>;
    return v && v.version === 1 && typeof v.repository === 'string' ? (v as OffsiteStatus) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Monitor's view of the offsite copy: the newest snapshot's age against the thresholds (none at
 * all is CRITICAL), and the last integrity check (failed: CRITICAL; never run or overdue: WARNING).
 */
export function evaluateOffsite(status: OffsiteStatus | undefined, now: Date, t: OffsiteThresholds): OffsiteItem[] {
  if (!status) return [{ status: 'CRITICAL', label: 'offsite', detail: 'no offsite snapshot was ever recorded (backup-prod has not copied offsite yet)' }];
  const items: OffsiteItem[] = [];
  const snap = status.lastSnapshot;
  if (!snap) items.push({ status: 'CRITICAL', label: 'offsite snapshot', detail: `none recorded for ${status.repository}` });
  else {
    const hours = (now.getTime() - new Date(snap.time).getTime()) / 3_600_000;
    const level: OffsiteLevel = hours > t['offsite-crit-hours'] ? 'CRITICAL' : hours > t['offsite-warn-hours'] ? 'WARNING' : 'OK';
    const failed = status.lastBackup && !status.lastBackup.ok ? `; the last attempt (${status.lastBackup.at}) failed: ${status.lastBackup.error ?? 'no detail'}` : '';
    items.push({ status: level, label: 'offsite snapshot', detail: `newest ${snap.id} (${snap.dump}) is ${hours.toFixed(1)} h old (${level === 'OK' ? '≤' : '>'} ${level === 'CRITICAL' ? t['offsite-crit-hours'] : t['offsite-warn-hours']} h)${failed}` });
  }
  const check = status.lastCheck;
  if (!check) items.push({ status: 'WARNING', label: 'offsite check', detail: 'never run (backup-prod --check)' });
  else if (!check.ok) items.push({ status: 'CRITICAL', label: 'offsite check', detail: `failed at ${check.at}: ${check.detail}` });
  else {
    const days = (now.getTime() - new Date(check.at).getTime()) / 86_400_000;
    items.push({ status: days > t['offsite-check-days'] ? 'WARNING' : 'OK', label: 'offsite check', detail: `${check.detail} (${check.subset}), ${days.toFixed(1)} days ago` });
  }
  return items;
}

// ---- the drill ---------------------------------------------------------------------------

/** n items picked at random without repetition (a partial Fisher–Yates shuffle); `random` is injectable for tests. */
export function samplePaths<T>(items: readonly T[], n: number, random: () => number = Math.random): T[] {
  const copy = [...items];
  const k = Math.min(n, copy.length);
  for (let i = 0; i < k; i++) {
    const j = i + Math.floor(random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, k);
}

/** A vault file as compared by the drill. */
export interface VaultComparison {
  path: string;
  restored: string | null;
  live: string | null;
}

/** Mismatches fail the drill; a file gone from the live vault since the snapshot is only reported. */
export function vaultProblems(files: readonly VaultComparison[]): string[] {
  return files.flatMap((f) => {
    if (f.restored === null) return [`${f.path} is missing from the snapshot`];
    if (f.live !== null && f.live !== f.restored) return [`${f.path} differs: sha256 ${f.restored.slice(0, 12)}… in the snapshot, ${f.live.slice(0, 12)}… in the live vault`];
    return [];
  });
}
