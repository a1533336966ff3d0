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
import { JobError, UsageError, systemError } from '../core/errors.ts';
import { acquireLock, isAlive } from '../core/lock.ts';
import { fsyncDir, isTemporaryName, temporaryName, writeFileAtomic } from '../core/atomic-file.ts';
import { dumpArgs, globalsArgs, pgCommand, runPg, startPg, stderrTail, verifyArgs, type DumpFormat, type PgPlace, type PgRunResult } from '../tools/pgtools.ts';
import { renderCommand, type Command } from '../core/exec.ts';
import type { ComposeFlavor } from '../tools/compose.ts';
import { formatBytes, formatDuration, type Ui } from '../core/ui.ts';

export type { DumpFormat } from '../tools/pgtools.ts';

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
  return backupProblem(g, facts) === undefined;
}

/** Why a backup does not count (monitor says it), or undefined when it does; see isVerifiedBackup. */
export function backupProblem(g: BackupFiles, facts: { dumpBytes?: number; checksumText?: string; manifest?: unknown }): string | undefined {
  if (!g.dump || !g.format) return 'no single dump file';
  if (facts.dumpBytes === undefined) return 'its dump cannot be read';
  if (facts.dumpBytes <= 0) return 'its dump is empty';
  if (!g.manifest) return 'it has no manifest (the backup never finished)';
  if (!g.checksum) return 'it has no checksum file';
  const m = facts.manifest as Partial<BackupManifest> | undefined;
  if (!m || typeof m !== 'object') return 'its manifest is unreadable';
  if (m.verified !== true || m.file !== g.dump || m.format !== g.format) return 'its manifest does not describe a verified dump of that name';
  if (m.bytes !== facts.dumpBytes) return `its dump is ${facts.dumpBytes} bytes, its manifest says ${m.bytes} (truncated or replaced)`;
  if (parseChecksumLine(facts.checksumText ?? '') !== m.sha256) return 'its checksum file and manifest disagree';
  return undefined;
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
export async function scanBackups(dir: string): Promise<{ group: BackupFiles; verified: boolean; problem?: string; manifest?: BackupManifest }[]> {
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
      const problem = backupProblem(group, { dumpBytes, checksumText, manifest });
      const verified = problem === undefined;
      return { group, verified, ...(problem !== undefined && { problem }), ...(verified && { manifest: manifest as BackupManifest }) };
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
async function dumpVerified(place: PgPlace, database: string, format: DumpFormat, file: string, ui: Ui, estimate: { needBytes: number; dbSizeBytes: number }): Promise<{ sha256: string; bytes: number; verifiedWith: string }> {
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
  // A write that failed stops pg_dump (killed above): the write's cause comes first, not pg_dump's exit.
  if (writeError) {
    const code = (writeError as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      throw new JobError(
        `The disk holding ${path.dirname(file)} filled up during the dump of ${database}, after ${formatBytes(bytes)}; the dump needs about ${formatBytes(estimate.needBytes)} (estimated from the database's ${formatBytes(estimate.dbSizeBytes)}).`,
        `Nothing was kept; free at least ${formatBytes(estimate.needBytes + spaceReserveBytes)} there (the dump plus ${formatBytes(spaceReserveBytes)} to spare), then run again.`,
      );
    }
    throw systemError(writeError, path.dirname(file), `writing the dump ${file}`) ?? new JobError(`Writing ${file} failed: ${writeError.message}.`, 'Nothing was kept; check the disk (space, permissions).');
  }
  if (dumped.exitCode !== 0) throw failed('pg_dump', 'database', dumped);
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
}

/**
 * Takes a verified backup of an environment's database: roles and database dumped under temporary
 * names, pg_dump's own exit status checked, every byte read back and hashed, fsync, checksum and
 * manifest written, then the dump renamed to its final name; rotation afterwards. Holds the backup
 * lock of the folder throughout, so a second run refuses (exit 1) instead of interleaving.
 */
export async function backupDatabase(cfg: EnvConfig, opts: BackupOptions): Promise<BackupResult> {
  const format = opts.format ?? 'custom';
  const pinned = opts.pinned ?? false;
  const root = opts.dir ?? cfg.vars.BACKUP_DIR;
  const dir = pinned ? path.join(root, pinnedDirName) : root;
  const keep = opts.keep ?? cfg.vars.BACKUP_KEEP;
  const { ui } = opts;
  const place = placeFor(cfg, opts.mode);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const lock = await acquireLock(path.join(root, lockFileName), 'backup');
  const temps: string[] = [];
  const finals: string[] = [];
  let done = false;
  try {
    const started = Date.now();
    for (const stale of staleTemporaries(await readdir(dir), isAlive)) {
      ui.warn(`Removing ${path.join(dir, stale)}, left by a backup run that died.`);
      await rm(path.join(dir, stale), { force: true });
    }
    const facts = await ui.run(`Read the size of ${cfg.env}'s database`, () => readDatabaseFacts(cfg), (f) => `${f.name}, ${formatBytes(f.sizeBytes)}, PostgreSQL ${f.serverVersion}`);
    const previous = (await listBackups(dir)).find((b) => b.format === format);
    const need = estimateDumpBytes(facts.sizeBytes, format, previous && { bytes: previous.manifest.bytes, dbSizeBytes: previous.manifest.database.sizeBytes, format });
    const fs = await statfs(dir);
    const space = spaceCheck(need, fs.bavail * fs.bsize);
    if (!space.fits) {
      throw new JobError(`Not enough space in ${dir}: the dump needs about ${formatBytes(need)} plus ${formatBytes(spaceReserveBytes)} to spare, ${formatBytes(space.freeBytes)} is free.`, 'Free some space (older backups, or BACKUP_KEEP lower) and run again.');
    }
    const stem = freeStem(new Date(), await readdir(dir));
    const dumpName = dumpFileName(stem, format);
    const finalDump = path.join(dir, dumpName);
    const finalGlobals = path.join(dir, globalsFileName(stem));
    const tmpDump = temporaryName(finalDump);
    const tmpGlobals = temporaryName(finalGlobals);
    temps.push(tmpDump, tmpGlobals);

    // The roles dump runs beside the database dump: it is small, but its process start is not free.
    const [dumpOutcome, globalsOutcome] = await Promise.allSettled([
      ui.run(`Dump ${facts.name} (${format}) to ${finalDump}, reading it back`, () => dumpVerified(place, facts.name, format, tmpDump, ui, { needBytes: need, dbSizeBytes: facts.sizeBytes }), (r) => `${formatBytes(r.bytes)}, sha256 ${r.sha256.slice(0, 12)}…`),
      ui.run('Dump the roles (pg_dumpall --globals-only)', () => dumpGlobals(place, tmpGlobals), (r) => formatBytes(r.bytes)),
    ]);
    if (dumpOutcome.status === 'rejected') throw dumpOutcome.reason;
    if (globalsOutcome.status === 'rejected') throw globalsOutcome.reason;
    const check = dumpOutcome.value;
    const globals = globalsOutcome.value;
    const bytes = check.bytes;

    const finished = Date.now();
    const manifest: BackupManifest = {
      version: 1,
      file: dumpName,
      format,
      bytes,
      sha256: check.sha256,
      globals: { file: path.basename(finalGlobals), bytes: globals.bytes, sha256: globals.sha256 },
      verified: true,
      verifiedWith: check.verifiedWith,
      env: cfg.env,
      mode: opts.mode,
      pinned,
      reason: opts.reason ?? null,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date(finished).toISOString(),
      durationMs: finished - started,
      database: { name: facts.name, sizeBytes: facts.sizeBytes, serverVersion: facts.serverVersion },
      tables: facts.tables,
    };
    const checksumFile = path.join(dir, checksumFileName(dumpName));
    const manifestFile = path.join(dir, manifestFileName(stem));
    // The dump gets its final name last: a dump under its final name always has its checksum and manifest.
    finals.push(checksumFile, manifestFile, finalGlobals);
    await writeFileAtomic(checksumFile, checksumLine(check.sha256, dumpName));
    await writeFileAtomic(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
    await rename(tmpGlobals, finalGlobals);
    await rename(tmpDump, finalDump);
    done = true;
    await fsyncDir(dir);
    ui.info(`Backup ${finalDump}: ${formatBytes(bytes)}, sha256 ${check.sha256}`);

    const rotated = pinned ? [] : await ui.run(`Rotate: keep the newest ${keep} verified backups in ${dir}`, () => rotateBackups(dir, keep, stem, ui), (r) => (r.length ? `removed ${r.join(', ')}` : 'nothing to remove'));
    return {
      file: finalDump,
      bytes,
      sha256: check.sha256,
      durationMs: Date.now() - started,
      rotated,
      pinned,
      format,
      checksumFile,
      manifestFile,
      globalsFile: finalGlobals,
      database: manifest.database,
    };
  } finally {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    if (!done) await Promise.all(finals.map((f) => rm(f, { force: true })));
    await lock.release();
  }
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

/** What a backup would do, with real values (--dry-run). */
export function describeBackupPlan(cfg: EnvConfig, opts: Omit<BackupOptions, 'ui'>, flavor: ComposeFlavor): string[] {
  const format = opts.format ?? 'custom';
  const root = opts.dir ?? cfg.vars.BACKUP_DIR;
  const dir = opts.pinned ? path.join(root, pinnedDirName) : root;
  const place = placeFor(cfg, opts.mode);
  const line = (c: Command) => renderCommand(c);
  return [
    `lock ${path.join(root, lockFileName)}`,
    `check free space in ${dir} against pg_database_size(${cfg.vars.DB_DATABASE})`,
    `${line(pgCommand('pg_dump', place, { database: cfg.vars.DB_DATABASE, args: dumpArgs(format) }, flavor))} > ${path.join(dir, dumpFileName(backupStem(new Date()), format))} (temporary name first)`,
    `${line(pgCommand('pg_dumpall', place, { args: globalsArgs() }, flavor))} > ${path.join(dir, globalsFileName(backupStem(new Date())))}`,
    format === 'custom' ? `${line(pgCommand('pg_restore', place, { args: verifyArgs() }, flavor))} < the dump, hashing it (sha256)` : 'read the dump through, hashing it (sha256), header and trailer checked',
    'fsync, write .sha256 and .manifest.json, rename to the final name',
    opts.pinned ? 'no rotation (pinned)' : `rotate: keep the newest ${opts.keep ?? cfg.vars.BACKUP_KEEP} verified backups in ${dir}`,
  ];
}

export function renderBackup(r: BackupResult): void {
  const lines = [
    `backup   ${r.file}${r.pinned ? ' (pinned)' : ''}`,
    `size     ${formatBytes(r.bytes)} (${r.format}), database ${r.database.name} ${formatBytes(r.database.sizeBytes)}`,
    `sha256   ${r.sha256}`,
    `took     ${formatDuration(r.durationMs)}`,
    `rotated  ${r.rotated.length ? r.rotated.join(', ') : 'nothing'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
