// Backups of EA's database: the file-name contract shared by the writer (backup-prod) and its
// readers (monitor's age check, verify --pre, restore), and the writer itself. One place, so they
// cannot drift apart.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { EnvConfig, Environment } from '../core/config.ts';
import { connect, connectionFor } from '../tools/database.ts';
import { JobError, OpsError, UsageError } from '../core/errors.ts';
import { acquireLock, isAlive, type Lock } from '../core/lock.ts';
import { fsyncDir, isTemporaryName, temporaryName, writeFileAtomic } from '../core/atomic-file.ts';
import { dumpArgs, globalsArgs, pgCommand, runPg, startPg, stderrTail, verifyArgs, type DumpFormat, type PgPlace, type PgRunResult } from '../tools/pgtools.ts';
import { renderCommand, run, runPlan, tail, type Step } from '../core/exec.ts';
import { redact } from '../core/secret.ts';
import {
  clearStaleLocks, describeLock, describeRepo, failureError, parseBackupOutput, parseCheckOutput, parseSnapshots, resticArgs, resticCommand, runRestic, type ResticRepo,
} from '../tools/restic.ts';
import {
  forgetArgs, lockHolderGone, offsiteExcludes, offsitePaths, parseOffsiteStatus, planIncludes, snapshotTags, tagValue, toolkitTag, type Include, type OffsiteStatus, type RetentionPolicy,
} from '../domain/offsite.ts';
import type { ComposeFlavor } from '../tools/compose.ts';
import { formatBytes, formatDuration, type Ui } from '../core/ui.ts';

export type { DumpFormat } from '../tools/pgtools.ts';
/** For backup-prod's entry (scripts reach tools through their job). */
export { repoFromConfig, resticHostname } from '../tools/restic.ts';

/** compose: the server's own pg_dump inside the db container; direct: the host's pg_dump over TCP. */
export type BackupMode = 'compose' | 'direct';

// ---- names -------------------------------------------------------------------------------
/** A finished backup's dump file is `makapix-YYYYMMDD-HHMMSS.<ext>`, the time in UTC. */
export const backupExtensions = ['dump', 'sql'] as const;
export type BackupExtension = (typeof backupExtensions)[number];

export interface BackupName {
  /** When the backup started (UTC, second precision). */
  takenAt: Date;
  ext: BackupExtension;
}

const pattern = /^makapix-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})\.([a-z]+)$/;

/**
 * The backup a file name stands for, or undefined for anything else in the folder: checksums,
 * manifests, temporary files and foreign files never count as a backup.
 */
export function parseBackupName(name: string): BackupName | undefined {
  const m = pattern.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, ext] = m as unknown as string[];
  if (!(backupExtensions as readonly string[]).includes(ext!)) return undefined;
  const takenAt = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!));
  // Rejects impossible dates (20261332-256199) that Date.UTC would silently roll over.
  if (takenAt.toISOString().slice(0, 19) !== `${y}-${mo}-${d}T${h}:${mi}:${s}`) return undefined;
  return { takenAt, ext: ext as BackupExtension };
}

/** The file name of a backup taken at `at`. */
export function backupName(at: Date, ext: BackupExtension): string {
  const iso = at.toISOString();
  return `makapix-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}.${ext}`;
}

const filePattern = /^(makapix-\d{8}-\d{6})(\.dump|\.sql|\.dump\.sha256|\.sql\.sha256|\.manifest\.json|\.globals\.sql)$/;

/** Backups a deploy takes live here, out of the rotation's reach. */
export const pinnedDirName = 'pinned';
export const lockFileName = '.makapix-backup.lock';

/** `makapix-YYYYMMDD-HHMMSS` in UTC: what a backup's files share; sorts by name in time order. */
export const backupStem = (at: Date): string => backupName(at, 'dump').slice(0, -'.dump'.length);
export const stemTime = (stem: string): Date | undefined => parseBackupName(`${stem}.dump`)?.takenAt;

export const dumpExtension = { custom: '.dump', plain: '.sql' } as const satisfies Record<DumpFormat, string>;
export const dumpFileName = (stem: string, format: DumpFormat) => `${stem}${dumpExtension[format]}`;
export const checksumFileName = (dumpFile: string) => `${dumpFile}.sha256`;
export const manifestFileName = (stem: string) => `${stem}.manifest.json`;
export const globalsFileName = (stem: string) => `${stem}.globals.sql`;

export type BackupFileRole = 'dump' | 'checksum' | 'manifest' | 'globals';

/** What a file name is, if it is one this toolkit writes; foreign and temporary names are undefined. */
export function parseBackupFileName(name: string): { stem: string; role: BackupFileRole; format?: DumpFormat } | undefined {
  const m = filePattern.exec(name);
  if (!m || !stemTime(m[1]!)) return undefined;
  const stem = m[1]!;
  switch (m[2]) {
    case '.dump':
      return { stem, role: 'dump', format: 'custom' };
    case '.sql':
      return { stem, role: 'dump', format: 'plain' };
    case '.manifest.json':
      return { stem, role: 'manifest' };
    case '.globals.sql':
      return { stem, role: 'globals' };
    default:
      return { stem, role: 'checksum' };
  }
}

/** The files of one backup as found in a folder; any of them may be missing. */
export interface BackupFiles {
  stem: string;
  dump?: string;
  format?: DumpFormat;
  checksum?: string;
  manifest?: string;
  globals?: string;
}

/** Groups a folder's names into backups; temporary files and foreign files are left out. */
export function groupBackupFiles(names: readonly string[]): BackupFiles[] {
  const groups = new Map<string, BackupFiles>();
  for (const name of names) {
    if (isTemporaryName(name)) continue;
    const parsed = parseBackupFileName(name);
    if (!parsed) continue;
    const g = groups.get(parsed.stem) ?? { stem: parsed.stem };
    if (parsed.role === 'dump') {
      // Two dumps under one stem is not something this toolkit writes: trust neither.
      if (g.dump) g.format = undefined;
      else g.format = parsed.format;
      g.dump = name;
    } else g[parsed.role] = name;
    groups.set(parsed.stem, g);
  }
  return [...groups.values()].sort((a, b) => b.stem.localeCompare(a.stem));
}

export const backupFileList = (g: BackupFiles): string[] => [g.dump, g.checksum, g.manifest, g.globals].filter((f): f is string => f !== undefined);

/**
 * Temporary files left by backup runs whose process died (SIGKILL, a power cut): every one this
 * toolkit could have written (a backup file name inside) whose writer pid is gone. Only the lock
 * holder may remove them, since a live run's temporary file looks the same.
 */
export function staleTemporaries(names: readonly string[], isAlive: (pid: number) => boolean): string[] {
  return names.filter((name) => {
    const m = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/.exec(name);
    return m !== null && isTemporaryName(name) && parseBackupFileName(m[1]!) !== undefined && !isAlive(Number(m[2]));
  });
}

// ---- manifest and verification -------------------------------------------------------------

export interface TableEstimate {
  schema: string;
  name: string;
  /** pg_class.reltuples: the planner's estimate; null for a table never analysed. */
  rowEstimate: number | null;
}

export interface BackupManifest {
  version: 1;
  file: string;
  format: DumpFormat;
  bytes: number;
  sha256: string;
  globals: { file: string; bytes: number; sha256: string };
  /** Set only after every data block was read back (pg_restore to /dev/null, or a full read of the .sql). */
  verified: true;
  verifiedWith: string;
  env: Environment;
  mode: BackupMode;
  pinned: boolean;
  reason: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  database: { name: string; sizeBytes: number; serverVersion: string };
  tables: TableEstimate[];
}

/** What the checksum file says: `sha256sum` format, so `sha256sum -c` works in the folder too. */
export const checksumLine = (sha256: string, file: string) => `${sha256}  ${file}\n`;
export function parseChecksumLine(text: string): string | undefined {
  const m = /^([0-9a-f]{64})\s/.exec(text);
  return m?.[1];
}

/**
 * A backup counts (for rotation, restore and the drill) only when it is complete and was checked:
 * its dump, checksum and manifest agree on the file, its size and its hash. Anything else (a dump
 * without its manifest, an empty file, a leftover) is not a backup and never pushes one out.
 */
export function isVerifiedBackup(g: BackupFiles, facts: { dumpBytes?: number; checksumText?: string; manifest?: unknown }): boolean {
  if (!g.dump || !g.format || !g.checksum || !g.manifest || facts.dumpBytes === undefined || facts.dumpBytes <= 0) return false;
  const m = facts.manifest as Partial<BackupManifest> | undefined;
  if (!m || m.verified !== true || m.file !== g.dump || m.format !== g.format || m.bytes !== facts.dumpBytes) return false;
  return parseChecksumLine(facts.checksumText ?? '') === m.sha256;
}

// ---- rotation ----------------------------------------------------------------------------

export interface BackupSet {
  stem: string;
  files: string[];
  verified: boolean;
}

export interface RotationPlan {
  kept: string[];
  /** File names to delete: only files of verified backups this toolkit wrote, beyond the newest `keep`. */
  remove: string[];
  /** The stems removed (one per backup). */
  removedStems: string[];
}

/**
 * Which backups go: the newest `keep` verified ones stay, older verified ones go. Runs only after
 * `justMade` was verified, never removes it nor the last good backup, and never touches a file
 * that is not part of a verified backup (foreign files, temp files, failed or partial dumps).
 */
export function planRotation(sets: readonly BackupSet[], keep: number, justMade: string): RotationPlan {
  if (!Number.isInteger(keep) || keep < 1) throw new UsageError(`BACKUP_KEEP must be a whole number of at least 1, got ${keep}.`);
  const verified = sets.filter((s) => s.verified).sort((a, b) => b.stem.localeCompare(a.stem));
  if (!verified.some((s) => s.stem === justMade)) {
    throw new JobError(`Rotation was asked to run, but the new backup ${justMade} is not among the verified ones.`, 'Nothing was deleted; check the backup folder.');
  }
  // The new backup always stays (even if a clock jump made older ones look newer); then the newest others.
  const kept = [justMade, ...verified.filter((s) => s.stem !== justMade).slice(0, keep - 1).map((s) => s.stem)];
  const going = verified.filter((s) => !kept.includes(s.stem));
  return { kept, remove: going.flatMap((s) => s.files), removedStems: going.map((s) => s.stem) };
}

// ---- space -------------------------------------------------------------------------------

/** Room left free after the dump, so a backup never fills the disk the database lives on. */
export const spaceReserveBytes = 256 * 1024 * 1024;

/**
 * How large the dump will be: the previous backup's bytes-per-database-byte when one of the same
 * format exists (plus a quarter for growth), else the whole database size for a plain dump and half
 * of it for a compressed one.
 */
export function estimateDumpBytes(dbSizeBytes: number, format: DumpFormat, previous?: { bytes: number; dbSizeBytes: number; format: DumpFormat }): number {
  if (previous && previous.format === format && previous.dbSizeBytes > 0) return Math.ceil(dbSizeBytes * (previous.bytes / previous.dbSizeBytes) * 1.25);
  return format === 'plain' ? dbSizeBytes : Math.ceil(dbSizeBytes / 2);
}

export function spaceCheck(needBytes: number, freeBytes: number): { fits: boolean; needBytes: number; freeBytes: number } {
  return { fits: needBytes + spaceReserveBytes <= freeBytes, needBytes, freeBytes };
}

// ---- runners -----------------------------------------------------------------------------

/** sha256 of a file, streamed (backups are gigabytes). */
export async function sha256File(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Checks a backup file against the `.sha256` beside it; a missing or different checksum is a failure. */
export async function verifyChecksum(file: string): Promise<{ sha256: string; bytes: number }> {
  const sumFile = `${file}.sha256`;
  const text = await readFile(sumFile, 'utf8').catch(() => undefined);
  const expected = text === undefined ? undefined : parseChecksumLine(text);
  if (!expected) throw new JobError(`${file} has no readable checksum file (${sumFile}).`, 'Only backups written by backup-prod (with their .sha256) can be restored.');
  const actual = await sha256File(file);
  if (actual.sha256 !== expected) {
    throw new JobError(`${file} is damaged: its sha256 is ${actual.sha256}, but ${path.basename(sumFile)} says ${expected}.`, 'Use another backup (ls the backup folder); this one cannot be trusted.');
  }
  return actual;
}

/** Where pg_dump runs for a mode (see PgPlace). */
export function placeFor(cfg: EnvConfig, mode: BackupMode): PgPlace {
  return mode === 'compose' ? { kind: 'container', cfg, user: cfg.vars.DB_ADMIN_USER } : { kind: 'local', connection: connectionFor(cfg) };
}

interface DatabaseFacts {
  name: string;
  sizeBytes: number;
  serverVersion: string;
  tables: TableEstimate[];
}

/** Size, version and per-table row estimates, read in a read-only transaction. */
async function readDatabaseFacts(cfg: EnvConfig): Promise<DatabaseFacts> {
  const client = await connect(connectionFor(cfg));
  try {
    await client.query('BEGIN READ ONLY');
    const { rows: db } = await client.query<{ name: string; size: string; version: string }>(
      "SELECT current_database() AS name, pg_database_size(current_database())::text AS size, current_setting('server_version') AS version",
    );
    const { rows: tables } = await client.query<{ schema: string; name: string; estimate: number }>(
      `SELECT n.nspname AS schema, c.relname AS name, c.reltuples::float8 AS estimate
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
        ORDER BY 1, 2`,
    );
    await client.query('COMMIT');
    return {
      name: db[0]!.name,
      sizeBytes: Number(db[0]!.size),
      serverVersion: db[0]!.version,
      tables: tables.map((t) => ({ schema: t.schema, name: t.name, rowEstimate: t.estimate < 0 ? null : Math.round(t.estimate) })),
    };
  } finally {
    await client.end();
  }
}

async function readJson(file: string): Promise<unknown> {
  return readFile(file, 'utf8').then((t) => JSON.parse(t) as unknown, () => undefined);
}

/** A verified backup found in a folder. */
export interface FoundBackup {
  stem: string;
  dir: string;
  /** Absolute path of the dump. */
  file: string;
  format: DumpFormat;
  files: string[];
  manifest: BackupManifest;
}

/** Every backup in a folder with the facts that decide whether it is verified, newest first. */
export async function scanBackups(dir: string): Promise<{ group: BackupFiles; verified: boolean; manifest?: BackupManifest }[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
  const groups = groupBackupFiles(entries.filter((e) => e.isFile()).map((e) => e.name));
  return Promise.all(
    groups.map(async (group) => {
      const dumpBytes = group.dump ? await stat(path.join(dir, group.dump)).then((s) => s.size, () => undefined) : undefined;
      const checksumText = group.checksum ? await readFile(path.join(dir, group.checksum), 'utf8').catch(() => undefined) : undefined;
      const manifest = group.manifest ? await readJson(path.join(dir, group.manifest)) : undefined;
      const verified = isVerifiedBackup(group, { dumpBytes, checksumText, manifest });
      return { group, verified, ...(verified && { manifest: manifest as BackupManifest }) };
    }),
  );
}

/** Verified backups of a folder, newest first. */
export async function listBackups(dir: string): Promise<FoundBackup[]> {
  return (await scanBackups(dir))
    .filter((s) => s.verified)
    .map((s) => ({ stem: s.group.stem, dir, file: path.join(dir, s.group.dump!), format: s.group.format!, files: backupFileList(s.group), manifest: s.manifest! }));
}

/** Applies the rotation plan in a folder; returns the dump files it removed. */
export async function rotateBackups(dir: string, keep: number, justMade: string, ui: Ui): Promise<string[]> {
  const sets = (await scanBackups(dir)).map((s) => ({ stem: s.group.stem, files: backupFileList(s.group), verified: s.verified }));
  const plan = planRotation(sets, keep, justMade);
  for (const f of plan.remove) {
    ui.debug(`rotation: removing ${path.join(dir, f)}`);
    await rm(path.join(dir, f), { force: true });
  }
  if (plan.remove.length) await fsyncDir(dir);
  return plan.remove.filter((f) => parseBackupFileName(f)?.role === 'dump');
}

/** A stem not yet used in the folder: two backups within one second get the next free second. */
function freeStem(at: Date, names: readonly string[]): string {
  const taken = new Set(names.map((n) => parseBackupFileName(n)?.stem));
  for (let i = 0; i < 3600; i++) {
    const stem = backupStem(new Date(at.getTime() + i * 1000));
    if (!taken.has(stem)) return stem;
  }
  throw new JobError(`No free backup name near ${at.toISOString()}.`, 'Clean up the backup folder.');
}

const failed = (tool: string, what: string, r: PgRunResult) =>
  new JobError(`${tool} (${what}) failed with ${r.signal ? `signal ${r.signal}` : `exit status ${r.exitCode}`}: ${stderrTail(r.stderr)}.`, 'Nothing was kept; the previous backups are untouched. Check that the database is up.');

/** Runs pg_dumpall with its stdout going straight into a new file; its own exit status decides. */
async function dumpGlobals(place: PgPlace, file: string): Promise<{ sha256: string; bytes: number }> {
  const handle = await open(file, 'wx', 0o600);
  try {
    const r = await runPg('pg_dumpall', place, { args: globalsArgs() }, { stdout: handle.fd });
    if (r.exitCode !== 0) throw failed('pg_dumpall', 'roles', r);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return sha256File(file);
}

const plainHead = '-- PostgreSQL database dump';
const plainTail = '-- PostgreSQL database dump complete';

/**
 * Dumps the database into a new file and reads every byte of it through, in one pass: pg_dump's
 * stream is written to the file, hashed, and (custom format) fed to pg_restore writing to /dev/null,
 * which decompresses every data block (`--list` would read only the table of contents). A plain
 * dump must start with pg_dump's header and carry its "dump complete" trailer near the end (newer
 * servers add a few lines after it, e.g. \unrestrict). Reading while writing keeps the check off
 * the critical path: pg_dump compresses on one core, pg_restore reads on the other. pg_dump's and
 * pg_restore's own exit statuses are both checked; the file is fsynced.
 */
async function dumpVerified(place: PgPlace, database: string, format: DumpFormat, file: string, ui: Ui): Promise<{ sha256: string; bytes: number; verifiedWith: string }> {
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const written = finished(out).then(() => undefined, (err: Error) => err);
  // pg_restore starts first, reading from a tee, so every consumer is attached before a byte flows.
  const tee = format === 'custom' ? new PassThrough({ highWaterMark: 1 << 20 }) : undefined;
  const verify = tee ? await startPg('pg_restore', place, { args: verifyArgs() }, { stdin: tee }) : undefined;
  const dump = await startPg('pg_dump', place, { database, args: dumpArgs(format) }, { stdout: 'pipe' });
  out.on('error', () => dump.kill());
  const source = dump.stdout!;
  const hash = createHash('sha256');
  let bytes = 0;
  let head = '';
  let tail = '';
  const progress = ui.progress(`pg_dump ${database}`, 'bytes');
  source.on('data', (b: Buffer) => {
    hash.update(b);
    bytes += b.length;
    progress.tick(b.length);
    if (format === 'plain') {
      if (head.length < 256) head += b.subarray(0, 256).toString('latin1');
      tail = (tail + b.subarray(-512).toString('latin1')).slice(-512);
    }
  });
  source.pipe(out);
  if (tee && verify) {
    source.pipe(tee);
    // A pg_restore that stopped early (it found damage) must not stall the dump through the tee.
    void verify.done.then(() => {
      source.unpipe(tee);
      tee.resume();
    });
  }
  const dumped = await dump.done;
  const checked = await verify?.done;
  const writeError = await written;
  if (dumped.exitCode !== 0) throw failed('pg_dump', 'database', dumped);
  if (writeError) throw new JobError(`Writing ${file} failed: ${writeError.message}.`, 'Nothing was kept; check the disk (space, permissions).');
  if (bytes === 0) throw new JobError(`pg_dump exited 0 but wrote nothing for ${database}.`, 'Nothing was kept; check the database.');
  if (checked && checked.exitCode !== 0) throw new JobError(`Reading the dump back with pg_restore failed: ${stderrTail(checked.stderr)}.`, 'The dump is incomplete or damaged; it was not kept.');
  if (format === 'plain' && (!head.includes(plainHead) || !tail.includes(plainTail))) {
    throw new JobError(`The dump of ${database} is not a complete pg_dump script (header or "${plainTail}" trailer missing).`, 'The dump was cut off; it was not kept.');
  }
  const handle = await open(file, 'r');
  try {
    await handle.sync();
    const onDisk = (await handle.stat()).size;
    if (onDisk !== bytes) throw new JobError(`${file} holds ${onDisk} bytes, but pg_dump produced ${bytes}.`, 'Nothing was kept; check the disk.');
  } finally {
    await handle.close();
  }
  progress.done(formatBytes(bytes));
  return { sha256: hash.digest('hex'), bytes, verifiedWith: format === 'custom' ? 'pg_restore --file=/dev/null (every data block), while writing' : 'full read while writing, header and trailer' };
}

export interface BackupOptions {
  mode: BackupMode;
  format?: DumpFormat;
  /** A deploy's backup: written to <dir>/pinned/, never rotated away. */
  pinned?: boolean;
  reason?: string;
  /** The backup folder; BACKUP_DIR of the environment by default. */
  dir?: string;
  ui: Ui;
  /** How many verified backups the rotation keeps; BACKUP_KEEP by default. */
  keep?: number;
  /** After the local backup: the offsite copy (backup-prod's nightly run). */
  offsite?: OffsiteOptions;
}

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

export interface BackupResult {
  /** Absolute path of the dump. */
  file: string;
  bytes: number;
  sha256: string;
  durationMs: number;
  /** Dump files the rotation removed (empty for pinned backups). */
  rotated: string[];
  pinned: boolean;
  format: DumpFormat;
  checksumFile: string;
  manifestFile: string;
  globalsFile: string;
  database: { name: string; sizeBytes: number; serverVersion: string };
  offsite?: OffsiteResult;
}

export { offsitePaths } from '../domain/offsite.ts';

/** A backup run as typed steps: `--dry-run` prints them, `runBackupPlan` executes the same ones. */
export interface BackupPlan {
  steps: Step[];
  /** Releases the locks and removes the temporary files, whatever happened (the runner calls it). */
  cleanup(): Promise<void>;
  /** The outcome, once every step ran. */
  result(): BackupResult;
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

/**
 * Vault files modified while the snapshot ran (mtime or ctime after its start): restic reads each
 * file once, so such a file may be in the snapshot in either state; it is whole in the next one.
 */
async function changedSince(root: string, since: number, limit = 5): Promise<{ count: number; examples: string[] }> {
  let count = 0;
  const examples: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const s = await stat(p).catch(() => undefined);
        if (s && Math.max(s.mtimeMs, s.ctimeMs) >= since) {
          count++;
          if (examples.length < limit) examples.push(path.relative(root, p));
        }
      }
    }
  };
  await walk(root);
  return { count, examples };
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
 * A verified backup of an environment's database, as steps: lock, space check, dump and read back
 * (roles beside it), checksum and manifest, final name, rotation; then, when asked, the offsite
 * snapshot. A failure of the offsite part leaves the local backup and its rotation done: the run
 * still fails (exit 1), saying the offsite copy is missing, and the next run catches up.
 */
export async function planBackup(cfg: EnvConfig, opts: Omit<BackupOptions, 'ui'> & { ui?: Ui }, flavor: ComposeFlavor = 'v2', now = new Date()): Promise<BackupPlan> {
  const format = opts.format ?? 'custom';
  const pinned = opts.pinned ?? false;
  const root = opts.dir ?? cfg.vars.BACKUP_DIR;
  const dir = pinned ? path.join(root, pinnedDirName) : root;
  const keep = opts.keep ?? cfg.vars.BACKUP_KEEP;
  const ui = opts.ui;
  const place = placeFor(cfg, opts.mode);
  const database = cfg.vars.DB_DATABASE;
  const lockPath = path.join(root, lockFileName);
  const stem = freeStem(now, await readdir(dir).catch(() => []));
  const dumpName = dumpFileName(stem, format);
  const finalDump = path.join(dir, dumpName);
  const finalGlobals = path.join(dir, globalsFileName(stem));
  const checksumFile = path.join(dir, checksumFileName(dumpName));
  const manifestFile = path.join(dir, manifestFileName(stem));
  const tmpDump = temporaryName(finalDump);
  const tmpGlobals = temporaryName(finalGlobals);

  const locks: Lock[] = [];
  let done = false;
  let started = 0;
  let facts: DatabaseFacts | undefined;
  let check: { sha256: string; bytes: number; verifiedWith: string } | undefined;
  let manifest: BackupManifest | undefined;
  let rotated: string[] = [];
  let offsite: OffsiteResult | undefined;
  const need = () => {
    if (!ui) throw new Error('A backup plan runs with a Ui.');
    return ui;
  };

  const steps: Step[] = [
    {
      kind: 'task',
      title: 'Take the backup lock',
      detail: `${lockPath} (a second run refuses; a lock or temporary files left by a dead run are cleared)`,
      run: async () => {
        await mkdir(dir, { recursive: true, mode: 0o700 });
        locks.push(await acquireLock(lockPath, 'backup'));
        started = Date.now();
        for (const stale of staleTemporaries(await readdir(dir), isAlive)) {
          need().warn(`Removing ${path.join(dir, stale)}, left by a backup run that died.`);
          await rm(path.join(dir, stale), { force: true });
        }
      },
    },
    {
      kind: 'task',
      title: 'Check the free space',
      detail: `pg_database_size(${database}) (scaled by the previous backup's ratio) plus ${formatBytes(spaceReserveBytes)} must be free in ${dir}`,
      run: async () => {
        facts = await readDatabaseFacts(cfg);
        const previous = (await listBackups(dir)).find((b) => b.format === format);
        const estimate = estimateDumpBytes(facts.sizeBytes, format, previous && { bytes: previous.manifest.bytes, dbSizeBytes: previous.manifest.database.sizeBytes, format });
        const fs = await statfs(dir);
        const space = spaceCheck(estimate, fs.bavail * fs.bsize);
        if (!space.fits) {
          throw new JobError(`Not enough space in ${dir}: the dump needs about ${formatBytes(estimate)} plus ${formatBytes(spaceReserveBytes)} to spare, ${formatBytes(space.freeBytes)} is free.`, 'Free some space (older backups, or BACKUP_KEEP lower) and run again.');
        }
        need().info(`${facts.name}: ${formatBytes(facts.sizeBytes)}, PostgreSQL ${facts.serverVersion}; about ${formatBytes(estimate)} to write, ${formatBytes(space.freeBytes)} free`);
      },
    },
    {
      kind: 'task',
      title: `Dump ${database} (${format}) and the roles, reading the dump back`,
      detail: [
        `${renderCommand(pgCommand('pg_dump', place, { database, args: dumpArgs(format) }, flavor))} > ${tmpDump}`,
        `${renderCommand(pgCommand('pg_dumpall', place, { args: globalsArgs() }, flavor))} > ${tmpGlobals}`,
        format === 'custom' ? `${renderCommand(pgCommand('pg_restore', place, { args: verifyArgs() }, flavor))} < the dump as it is written, hashed (sha256)` : 'the dump read through as it is written, hashed (sha256), header and trailer checked',
      ].join('; '),
      run: async () => {
        // The roles dump runs beside the database dump: it is small, but its process start is not free.
        const [dumpOutcome, globalsOutcome] = await Promise.allSettled([dumpVerified(place, database, format, tmpDump, need()), dumpGlobals(place, tmpGlobals)]);
        if (dumpOutcome.status === 'rejected') throw dumpOutcome.reason;
        if (globalsOutcome.status === 'rejected') throw globalsOutcome.reason;
        check = dumpOutcome.value;
        const globals = globalsOutcome.value;
        const finishedAt = Date.now();
        manifest = {
          version: 1,
          file: dumpName,
          format,
          bytes: check.bytes,
          sha256: check.sha256,
          globals: { file: path.basename(finalGlobals), bytes: globals.bytes, sha256: globals.sha256 },
          verified: true,
          verifiedWith: check.verifiedWith,
          env: cfg.env,
          mode: opts.mode,
          pinned,
          reason: opts.reason ?? null,
          startedAt: new Date(started).toISOString(),
          finishedAt: new Date(finishedAt).toISOString(),
          durationMs: finishedAt - started,
          database: { name: facts!.name, sizeBytes: facts!.sizeBytes, serverVersion: facts!.serverVersion },
          tables: facts!.tables,
        };
      },
    },
    {
      kind: 'task',
      title: 'Write the checksum and manifest, then give the dump its final name',
      detail: `${checksumFile}, ${manifestFile}, ${finalGlobals}, ${finalDump} (the dump last, then fsync of ${dir})`,
      run: async () => {
        // The dump gets its final name last: a dump under its final name always has its checksum and manifest.
        await writeFileAtomic(checksumFile, checksumLine(check!.sha256, dumpName));
        await writeFileAtomic(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
        await rename(tmpGlobals, finalGlobals);
        await rename(tmpDump, finalDump);
        done = true;
        await fsyncDir(dir);
        need().info(`Backup ${finalDump}: ${formatBytes(check!.bytes)}, sha256 ${check!.sha256}`);
      },
    },
    ...(pinned
      ? []
      : [
          {
            kind: 'task',
            title: `Rotate: keep the newest ${keep} verified backups`,
            detail: `in ${dir}; only complete, verified backups count and go; the new one stays`,
            run: async () => {
              rotated = await rotateBackups(dir, keep, stem, need());
              need().info(rotated.length ? `Rotation removed ${rotated.join(', ')}` : 'Rotation: nothing to remove');
            },
          } satisfies Step,
        ]),
    ...(opts.offsite ? await offsiteSteps(cfg, opts.offsite, { root, stem, files: [finalDump, checksumFile, manifestFile, finalGlobals], locks, need, onDone: (r) => (offsite = r) }) : []),
  ];

  return {
    steps,
    cleanup: async () => {
      await Promise.all([tmpDump, tmpGlobals].map((t) => rm(t, { force: true })));
      if (!done) await Promise.all([checksumFile, manifestFile, finalGlobals].map((f) => rm(f, { force: true })));
      for (const l of locks.reverse()) await l.release();
    },
    result: () => ({
      file: finalDump,
      bytes: check!.bytes,
      sha256: check!.sha256,
      durationMs: Date.now() - started,
      rotated,
      pinned,
      format,
      checksumFile,
      manifestFile,
      globalsFile: finalGlobals,
      database: manifest!.database,
      ...(offsite && { offsite }),
    }),
  };
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
  const backup = resticCommand(o.repo, resticArgs.backup({ paths: includes.map((i) => i.path), tags, host: o.host, excludes: offsiteExcludes }));
  const where = describeRepo(o.repo);
  let locksCleared: string[] = [];
  const guard = (fn: () => Promise<void>) => async () => {
    try {
      await fn();
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, lastBackup: { at: new Date().toISOString(), ok: false, error: redact(why) } })).catch(() => undefined);
      const hint = err instanceof OpsError ? err.hint : undefined;
      throw new JobError(`The local backup ${b.stem} is made and rotated, but its offsite copy to ${where} is missing: ${redact(why).replace(/\.$/, '')}.`, hint ?? 'The next run catches up; run backup-prod again once the cause is fixed.', { cause: err });
    }
  };
  return [
    {
      kind: 'task',
      title: 'Clear restic locks whose holder is gone',
      detail: `${paths.lock} taken; ${renderCommand(resticCommand(o.repo, resticArgs.listLocks()))}, each read with \`restic cat lock\`; \`restic unlock\` only when a lock's process is gone (or it was not refreshed for 30 minutes)`,
      run: guard(async () => {
        b.locks.push(await acquireLock(paths.lock, 'offsite'));
        const report = await clearStaleLocks(o.repo, (l) => lockHolderGone(l, { hostname: o.host, now: new Date(), isAlive }));
        locksCleared = report.cleared.map(describeLock);
        for (const l of locksCleared) b.need().warn(`Cleared the stale restic ${l}.`);
      }),
    },
    {
      kind: 'task',
      title: `Copy offsite: one snapshot to ${where}`,
      detail: `${renderCommand(backup)}${skipped.length ? ` (absent, skipped: ${skipped.join(', ')})` : ''}`,
      run: guard(async () => {
        if (missing.length) throw new JobError(`${missing.map((m) => `${m.path} (${m.role})`).join(', ')} ${missing.length === 1 ? 'does' : 'do'} not exist.`, 'Check VAULT_HOST_PATH and MQTT_CERTS_DIR in .env.prod.');
        const contents: OffsiteContents = { version: 1, host: o.host, env: cfg.env, stem: b.stem, dump: b.files[0]!, takenAt: new Date().toISOString(), includes };
        await mkdir(paths.dir, { recursive: true, mode: 0o700 });
        await writeFileAtomic(paths.contents, `${JSON.stringify(contents, null, 2)}\n`);
        const startedAt = Date.now();
        // Exit 3: the snapshot was made, but some source could not be read (a vault file removed
        // while restic ran): reported, not fatal.
        const r = await runRestic(o.repo, backup.argv, 'backup', { okCodes: [3] });
        const { summary, errors } = parseBackupOutput(r.stdout);
        if (!summary?.snapshotId) throw new JobError(`restic backup printed no snapshot id (${tail(r.stderr || r.stdout, 2)}).`, 'Run restic snapshots to see whether the snapshot exists.');
        const warnings = errors.map((e) => `unreadable while copying: ${e}`);
        if (r.exitCode === 3 && !errors.length) warnings.push(`restic could not read some files: ${tail(r.stderr, 2)}`);
        const changed = await changedSince(cfg.vars.VAULT_HOST_PATH, startedAt - 1000);
        if (changed.count) warnings.push(`${changed.count} vault file(s) changed while the snapshot ran (${changed.examples.join(', ')}${changed.count > changed.examples.length ? ', …' : ''}); the next snapshot has them whole`);
        for (const w of warnings) b.need().warn(w);
        const result: OffsiteResult = {
          repository: where, snapshotId: summary.snapshotId, tags, paths: includes.map((i) => i.path), skipped,
          filesNew: summary.filesNew, filesChanged: summary.filesChanged, filesUnmodified: summary.filesUnmodified, dataAddedBytes: summary.dataAdded,
          totalFiles: summary.totalFiles, totalBytes: summary.totalBytes, durationMs: Date.now() - startedAt, warnings, locksCleared,
        };
        b.need().info(`Offsite snapshot ${summary.snapshotId}: ${summary.totalFiles} files, ${formatBytes(summary.totalBytes)}; ${summary.filesNew} new, ${summary.filesChanged} changed, ${formatBytes(summary.dataAdded)} added`);
        b.onDone(result);
        await updateOffsiteStatus(paths.status, where, (s) => ({ ...s, lastSnapshot: { id: summary.snapshotId, time: contents.takenAt, dump: b.stem }, lastBackup: { at: new Date().toISOString(), ok: true, warnings: warnings.length } }));
      }),
    },
  ];
}

/** Runs a backup plan's steps in order, then always its cleanup. */
export async function runBackupPlan(plan: BackupPlan, ui: Ui): Promise<BackupResult> {
  try {
    await runPlan(plan.steps, ui);
    return plan.result();
  } finally {
    await plan.cleanup();
  }
}

/**
 * Takes a verified backup of an environment's database (planBackup's steps, run): roles and
 * database dumped under temporary names, pg_dump's own exit status checked, every byte read back
 * and hashed, fsync, checksum and manifest written, then the dump renamed to its final name;
 * rotation afterwards, then the offsite copy when asked. Holds the backup lock of the folder
 * throughout, so a second run refuses (exit 1) instead of interleaving.
 */
export async function backupDatabase(cfg: EnvConfig, opts: BackupOptions): Promise<BackupResult> {
  return runBackupPlan(await planBackup(cfg, opts), opts.ui);
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
        // A check that cannot start (wrong password, unreachable) is a failed run, not a damaged repository.
        if (r.exitCode !== 0 && !/error|Fatal: repository contains errors/i.test(r.stdout + r.stderr)) throw failureError(o.repo, 'check', r);
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
export function parseBackupOptions(flags: { format: string; direct: boolean; pin: boolean; reason?: string | undefined; dir?: string | undefined; keep?: string | undefined }): Omit<BackupOptions, 'ui'> {
  if (flags.format !== 'custom' && flags.format !== 'plain') throw new UsageError(`--format must be custom or plain, got ${JSON.stringify(flags.format)}.`);
  if (flags.dir !== undefined && !path.isAbsolute(flags.dir)) throw new UsageError(`--dir must be an absolute path, got ${flags.dir}.`, 'Cron runs from any directory.');
  if (flags.keep !== undefined && !/^[1-9]\d*$/.test(flags.keep)) throw new UsageError(`--keep must be a whole number of at least 1, got ${flags.keep}.`);
  return {
    mode: flags.direct ? 'direct' : 'compose',
    format: flags.format,
    pinned: flags.pin,
    ...(flags.reason !== undefined && { reason: flags.reason }),
    ...(flags.dir !== undefined && { dir: flags.dir }),
    ...(flags.keep !== undefined && { keep: Number(flags.keep) }),
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
