// The verified dump: pg_dump into a temporary name, checked while written, then its checksum and
// manifest beside it and a rename. Backups, deploys, the cutover and restore's drill share it.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises';
import { PassThrough } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { EnvConfig } from '../core/config.ts';
import { connect, connectionFor } from './database.ts';
import { JobError, systemError } from '../core/errors.ts';
import { acquireLock, isAlive, type Lock } from '../core/lock.ts';
import { renderCommand, runPlan, type Step } from '../core/exec.ts';
import type { ComposeFlavor } from './compose.ts';
import type { OffsiteResult } from './restic.ts';
import { fsyncDir, temporaryName, writeFileAtomic } from '../core/atomic-file.ts';
import { dumpArgs, globalsArgs, pgCommand, runPg, startPg, stderrTail, verifyArgs, type DumpFormat, type PgPlace, type PgRunResult } from './pgtools.ts';
import { formatBytes, type Ui } from '../core/ui.ts';
import {
  backupFileList, backupStem, parseBackupName, checksumFileName, checksumLine, dumpFileName, estimateDumpBytes, globalsFileName, groupBackupFiles, backupProblem,
  lockFileName, manifestFileName, parseBackupFileName, parseChecksumLine, pinnedDirName, planRotation, spaceCheck, spaceReserveBytes, staleTemporaries,
  type BackupFiles, type BackupManifest, type BackupMode, type TableEstimate,
} from '../domain/backup-files.ts';
import { isDatedInFuture, type BackupCandidate, type BackupMeasure } from '../domain/monitoring.ts';

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

/** A JSON file's value; undefined when it is missing or damaged (a manifest cut short by a kill is not a backup, never a crash). */
async function readJson(file: string): Promise<unknown> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  try {
    return text === undefined ? undefined : (JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
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
  /** The offsite snapshot, when backup-prod made one (lib/jobs/backup.ts). */
  offsite?: OffsiteResult;
}

/** A backup run as typed steps: `--dry-run` prints them, `runBackupPlan` executes the same ones. */
export interface BackupPlan {
  steps: Step[];
  /** The backup's stem and its four files (dump first), known before anything runs. */
  stem: string;
  files: string[];
  /** The folder's locks taken by the steps, released by cleanup (later steps may add theirs). */
  locks: Lock[];
  /** Releases the locks and removes the temporary files, whatever happened (the runner calls it). */
  cleanup(): Promise<void>;
  /** The outcome, once every step ran. */
  result(): BackupResult;
}

/**
 * A verified backup of an environment's database, as steps: lock, space check, dump and read back
 * (roles beside it), checksum and manifest, final name, rotation. Later steps (backup-prod's
 * offsite copy) may be appended; they run after the rotation, under the same cleanup.
 */
export async function planLocalBackup(cfg: EnvConfig, opts: Omit<BackupOptions, 'ui'> & { ui?: Ui }, flavor: ComposeFlavor = 'v2', now = new Date()): Promise<BackupPlan> {
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
  let estimateBytes = 0;
  let check: { sha256: string; bytes: number; verifiedWith: string } | undefined;
  let manifest: BackupManifest | undefined;
  let rotated: string[] = [];
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
        const estimate = (estimateBytes = estimateDumpBytes(facts.sizeBytes, format, previous && { bytes: previous.manifest.bytes, dbSizeBytes: previous.manifest.database.sizeBytes, format }));
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
        const [dumpOutcome, globalsOutcome] = await Promise.allSettled([dumpVerified(place, database, format, tmpDump, need(), { needBytes: estimateBytes, dbSizeBytes: facts!.sizeBytes }), dumpGlobals(place, tmpGlobals)]);
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
  ];

  return {
    steps,
    stem,
    files: [finalDump, checksumFile, manifestFile, finalGlobals],
    locks,
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
    }),
  };
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
 * Takes a verified backup of an environment's database (planLocalBackup's steps, run): roles and
 * database dumped under temporary names, pg_dump's own exit status checked, every byte read back
 * and hashed, fsync, checksum and manifest written, then the dump renamed to its final name;
 * rotation afterwards. Holds the backup lock of the folder throughout, so a second run refuses
 * (exit 1) instead of interleaving.
 */
export async function backupDatabase(cfg: EnvConfig, opts: BackupOptions): Promise<BackupResult> {
  return runBackupPlan(await planLocalBackup(cfg, opts), opts.ui);
}

/** Dumps whose bytes are hashed per run: the newest that look right, until one is intact. */
const hashedPerRun = 3;

/**
 * What a backup folder holds, for evaluateBackup (verify --pre reads it too): every backup with
 * its manifest's verdict, and the newest that pass it hashed again against their manifest (a dump
 * damaged in place keeps its size).
 */
export async function probeBackup(dir: string, now = new Date()): Promise<BackupMeasure> {
  try {
    await readdir(dir);
    const backups: BackupCandidate[] = [];
    let hashed = 0;
    // A backup dated in the future is judged by evaluateBackup; it must not stand in for the newest real one here.
    const current = (b: BackupCandidate) => !isDatedInFuture(b, now);
    for (const s of await scanBackups(dir)) {
      const takenAt = s.group.dump ? parseBackupName(s.group.dump)?.takenAt : undefined;
      if (!takenAt) continue;
      const c: BackupCandidate = { name: s.group.dump!, takenAt, ...(s.problem !== undefined && { problem: s.problem }) };
      if (s.manifest) {
        const finished = new Date(s.manifest.finishedAt);
        if (!Number.isNaN(finished.getTime())) c.finishedAt = finished;
        if (!c.problem && current(c) && hashed < hashedPerRun && !backups.some((b) => !b.problem && current(b))) {
          hashed++;
          const actual = await sha256File(path.join(dir, c.name)).catch(() => undefined);
          if (actual?.sha256 !== s.manifest.sha256) c.problem = actual ? 'its bytes are damaged (sha256 differs from its manifest)' : 'its dump cannot be read';
        }
      }
      backups.push(c);
    }
    return { dir, backups };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { dir, error: 'does not exist: no backup was ever taken here', missing: true } : { dir, error: `cannot read: ${code ?? message(err)}` };
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
