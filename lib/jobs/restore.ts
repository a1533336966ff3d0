// Restoring a backup into an environment's database, and the drill that proves backups restore.
//
// How a restore replaces the live database: it restores into a NEW database next to it, and only
// when that restore succeeded swaps the two by renaming (one transaction), then drops the old one.
// The live database is untouched during the long part, a failed restore leaves it as it was, and
// the result is exactly the backup's state (a "drop and recreate the objects" restore would leave
// behind tables created after the backup, e.g. by the migration being rolled back).
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import type { EnvConfig } from '../core/config.ts';
import { connect, connectionFor, databaseIdentity, describeConnection, sameDatabase } from '../tools/database.ts';
import { JobError, SafetyError, UsageError } from '../core/errors.ts';
import { withLock } from '../core/lock.ts';
import { backupStem, parseBackupFileName, type BackupMode, type DumpFormat } from '../domain/backup-files.ts';
import { backupDatabase, listBackups, placeFor, sha256File, verifyChecksum, type BackupResult } from '../tools/backup-store.ts';
import { restoreArchiveArgs, restoreScriptArgs, runPg, stderrTail, type PgPlace } from '../tools/pgtools.ts';
import { formatBytes, formatDuration, type Ui } from '../core/ui.ts';
import { run } from '../core/exec.ts';
import { describeRepo, parseSnapshots, resticArgs, resticCommand, runRestic, type ResticRepo, type SnapshotInfo } from '../tools/restic.ts';
import { samplePaths, toolkitTag, vaultProblems, type Include, type VaultComparison } from '../domain/offsite.ts';

export const restoreLockFileName = '.makapix-restore.lock';

// ---- decisions ---------------------------------------------------------------------------

/**
 * Whether a restore may go on. Production needs the environment's name typed at a terminal, or both
 * `--yes` and `--i-know-this-is-production`: `--yes` alone (a habit in scripts) is refused.
 */
export type ProductionConsent = 'not-needed' | 'given' | 'ask' | 'refuse';
export function productionConsent(env: EnvConfig['env'], flags: { yes: boolean; iKnowThisIsProduction: boolean }): ProductionConsent {
  if (env !== 'prod') return 'not-needed';
  if (flags.yes && flags.iKnowThisIsProduction) return 'given';
  return flags.yes ? 'refuse' : 'ask';
}

/** `<db>_<suffix>`, cut so it fits PostgreSQL's 63-byte names and stays distinct from the live name. */
function besideName(live: string, suffix: string): string {
  const name = `${live.slice(0, 63 - suffix.length - 1)}_${suffix}`;
  if (name === live) throw new SafetyError(`The scratch database name ${name} equals the live one.`, 'Report this; nothing was changed.');
  return name;
}
const stampOf = (at: Date) => backupStem(at).slice('makapix-'.length).replace('-', '_');

/** The databases a restore uses next to the live one: the incoming copy, and the old one during the swap. */
export function restoreDatabaseNames(live: string, at: Date): { incoming: string; outgoing: string } {
  const stamp = stampOf(at);
  return { incoming: besideName(live, `restore_${stamp}`), outgoing: besideName(live, `replaced_${stamp}`) };
}
export const scratchDatabaseName = (live: string, at: Date) => besideName(live, `drill_${stampOf(at)}`);

export const formatOfFile = (file: string): DumpFormat => (parseBackupFileName(path.basename(file))?.format ?? (file.endsWith('.sql') ? 'plain' : 'custom'));

export interface DatabaseShape {
  owner: string;
  encoding: string;
  collate: string;
  ctype: string;
  /** The database's own privileges (aclexplode of pg_database.datacl); null: PostgreSQL's defaults. */
  acl: { grantee: string | null; privilege: string; grantable: boolean }[] | null;
}

const ident = (s: string) => pg.escapeIdentifier(s);
const literal = (s: string) => pg.escapeLiteral(s);

/** A new, empty database shaped like the live one (owner, encoding, collation) and its privileges. */
export function createDatabaseStatements(name: string, like: DatabaseShape): string[] {
  const create = `CREATE DATABASE ${ident(name)} WITH TEMPLATE template0 OWNER ${ident(like.owner)} ENCODING ${literal(like.encoding)} LC_COLLATE ${literal(like.collate)} LC_CTYPE ${literal(like.ctype)}`;
  if (like.acl === null) return [create];
  return [
    create,
    `REVOKE ALL ON DATABASE ${ident(name)} FROM PUBLIC`,
    ...like.acl.map((a) => `GRANT ${a.privilege} ON DATABASE ${ident(name)} TO ${a.grantee === null ? 'PUBLIC' : ident(a.grantee)}${a.grantable ? ' WITH GRANT OPTION' : ''}`),
  ];
}

/** The swap, as one transaction: the old database steps aside, the restored one takes its name. */
export function swapStatements(live: string, incoming: string, outgoing: string): string[] {
  return ['BEGIN', `ALTER DATABASE ${ident(live)} RENAME TO ${ident(outgoing)}`, `ALTER DATABASE ${ident(incoming)} RENAME TO ${ident(live)}`, 'COMMIT'];
}

export interface DrillTable {
  table: string;
  restored: number;
  /** null: the table is not in the live database (any more). */
  live: number | null;
  /** The manifest's row estimate at backup time (null: unknown). */
  atBackup: number | null;
}

/**
 * What makes a drill fail besides a restore error: a table that had rows when the backup was
 * taken but came back empty. Differences from the live counts are expected (the live database
 * moved on since the backup) and are reported, not judged.
 */
export function drillProblems(tables: readonly DrillTable[]): string[] {
  return tables.filter((t) => t.restored === 0 && (t.atBackup ?? 0) > 0).map((t) => `${t.table} came back empty, but had about ${t.atBackup} rows at backup time`);
}

// ---- runners -----------------------------------------------------------------------------

/** Streams a backup into an empty database with the tool its format needs; shows bytes and ETA. */
export async function restoreInto(place: PgPlace, file: string, format: DumpFormat, database: string, ui: Ui): Promise<void> {
  const { size } = await stat(file);
  const progress = ui.progress(`Restore ${path.basename(file)} into ${database}`, 'bytes', size);
  const source = createReadStream(file, { highWaterMark: 1 << 20 });
  source.on('data', (chunk) => progress.tick((chunk as Buffer).length));
  const r =
    format === 'custom'
      ? await runPg('pg_restore', place, { database, args: restoreArchiveArgs() }, { stdin: source })
      : await runPg('psql', place, { database, args: restoreScriptArgs() }, { stdin: source });
  source.destroy();
  if (r.exitCode !== 0) throw new JobError(`Restoring ${file} into ${database} failed: ${stderrTail(r.stderr)}.`, 'The target database was left as it was; read the message above.');
  progress.done(formatBytes(size));
}

async function databaseShape(admin: pg.Client, database: string): Promise<DatabaseShape> {
  const { rows } = await admin.query<{ owner: string; encoding: string; collate: string; ctype: string; has_acl: boolean }>(
    `SELECT pg_get_userbyid(datdba) AS owner, pg_encoding_to_char(encoding) AS encoding, datcollate AS collate, datctype AS ctype, datacl IS NOT NULL AS has_acl
       FROM pg_database WHERE datname = $1`,
    [database],
  );
  if (!rows[0]) throw new JobError(`The database ${database} does not exist.`, 'Check DB_DATABASE in the environment file.');
  const { rows: acl } = await admin.query<{ grantee: string | null; privilege: string; grantable: boolean }>(
    `SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END AS grantee, a.privilege_type AS privilege, a.is_grantable AS grantable
       FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1 ORDER BY 1 NULLS FIRST, 2`,
    [database],
  );
  return { owner: rows[0].owner, encoding: rows[0].encoding, collate: rows[0].collate, ctype: rows[0].ctype, acl: rows[0].has_acl ? acl : null };
}

const adminConnection = (cfg: EnvConfig) => ({ ...connectionFor(cfg), database: 'postgres' });

async function dropDatabase(admin: pg.Client, name: string): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
}

/** Disallows new connections to the live database, ends the existing ones, waits until they are gone. */
async function emptyDatabase(admin: pg.Client, database: string): Promise<void> {
  await admin.query(`ALTER DATABASE ${ident(database)} WITH ALLOW_CONNECTIONS false`);
  for (let i = 0; i < 100; i++) {
    const { rows } = await admin.query<{ n: number }>(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
      [database],
    );
    if (rows[0]!.n === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new JobError(`Sessions on ${database} did not end within 10 seconds.`, 'Stop the app (make down-*) and run the restore again.');
}

export interface RestoreOptions {
  file: string;
  mode: BackupMode;
  ui: Ui;
  /** Asks for a typed word at a terminal; refuses (SafetyError) without one. */
  typedConfirm: (question: string, expected: string) => Promise<void>;
  /** A yes/no confirmation (answered by --yes); refuses without a terminal. */
  confirm: (question: string) => Promise<void>;
  yes: boolean;
  iKnowThisIsProduction: boolean;
  dryRun?: boolean;
  /** The backup folder for the pre-restore backup; BACKUP_DIR by default. */
  backupDir?: string;
  /** For a dev restore: production's config, to prove the dev connection does not reach production's database. */
  productionCfg?: EnvConfig;
}

export interface RestoreResult {
  env: EnvConfig['env'];
  database: string;
  file: string;
  format: DumpFormat;
  sha256: string;
  /** The fresh backup taken before restoring into production. */
  preRestoreBackup: BackupResult | null;
  dryRun: boolean;
  plan: string[];
  durationMs: number;
}

/** Refuses a dev restore whose connection reaches production's database (a mixed-up env file). */
async function assertNotProduction(cfg: EnvConfig, productionCfg: EnvConfig): Promise<void> {
  const identity = async (c: EnvConfig) => {
    const client = await connect(connectionFor(c));
    try {
      return await databaseIdentity(client);
    } finally {
      await client.end();
    }
  };
  const prodId = await identity(productionCfg).catch(() => undefined);
  if (prodId && sameDatabase(await identity(cfg), prodId)) {
    throw new SafetyError(`${cfg.file} reaches production's database (${describeConnection(connectionFor(cfg))}); a dev restore must never write there.`, 'Fix DB_PUBLISHED_PORT / DB_DATABASE in the dev env file.');
  }
}

/**
 * Restores a verified backup into an environment's database: checksum first, consent for
 * production (plus a fresh pinned backup of its current state), restore into a new database, swap.
 */
export async function restoreDatabase(cfg: EnvConfig, opts: RestoreOptions): Promise<RestoreResult> {
  const started = Date.now();
  const file = path.resolve(opts.file);
  if (!(await stat(file).then((s) => s.isFile(), () => false))) throw new UsageError(`The backup file ${file} does not exist.`, `List the backups: ls ${cfg.vars.BACKUP_DIR}`);
  const format = formatOfFile(file);
  const live = cfg.vars.DB_DATABASE;
  const { ui } = opts;

  const consent = productionConsent(cfg.env, opts);
  if (consent === 'refuse') throw new SafetyError('Refusing to restore into production with --yes alone.', 'Add --i-know-this-is-production, or run it at a terminal and type the environment name.');
  if (cfg.env === 'dev' && opts.productionCfg) await assertNotProduction(cfg, opts.productionCfg);
  const { sha256 } = await ui.run(`Verify the checksum of ${file}`, () => verifyChecksum(file), (r) => `sha256 ${r.sha256.slice(0, 12)}…, ${formatBytes(r.bytes)}`);

  const names = restoreDatabaseNames(live, new Date());
  const plan = [
    ...(cfg.env === 'prod' ? [`back up the current production database (pinned) to ${path.join(opts.backupDir ?? cfg.vars.BACKUP_DIR, 'pinned')}`] : []),
    `create ${names.incoming} beside ${live} on ${describeConnection(adminConnection(cfg))}`,
    `restore ${file} (${format}) into ${names.incoming} with ${format === 'custom' ? 'pg_restore' : 'psql'} (${opts.mode === 'compose' ? 'inside the db container' : 'local client'})`,
    `end the sessions on ${live}, rename ${live} to ${names.outgoing} and ${names.incoming} to ${live} in one transaction`,
    `drop ${names.outgoing}`,
  ];
  const result = (preRestoreBackup: BackupResult | null, dryRun: boolean): RestoreResult => ({ env: cfg.env, database: live, file, format, sha256, preRestoreBackup, dryRun, plan, durationMs: Date.now() - started });
  if (opts.dryRun) return result(null, true);
  // A production backup holds real e-mails and secrets; EB normally gets only the anonymised sample.
  const takenFrom = (await listBackups(path.dirname(file))).find((b) => b.file === file)?.manifest.env;
  if (takenFrom && takenFrom !== cfg.env) await opts.confirm(`${path.basename(file)} is a backup of ${takenFrom}; restore its unanonymised data into ${cfg.env}?`);
  if (consent === 'ask') await opts.typedConfirm(`Restore ${path.basename(file)} INTO PRODUCTION, replacing the current content of ${live}?`, 'prod');

  return withLock(path.join(opts.backupDir ?? cfg.vars.BACKUP_DIR, restoreLockFileName), 'restore', async () => {
    const pre = cfg.env === 'prod' ? await backupDatabase(cfg, { mode: opts.mode, pinned: true, reason: `before restoring ${path.basename(file)}`, ui, ...(opts.backupDir && { dir: opts.backupDir }) }) : null;
    const admin = await connect(adminConnection(cfg));
    try {
      const shape = await databaseShape(admin, live);
      for (const sql of createDatabaseStatements(names.incoming, shape)) await admin.query(sql);
      try {
        await restoreInto(placeFor(cfg, opts.mode), file, format, names.incoming, ui);
        await ui.run(`Swap ${names.incoming} in as ${live}`, async () => {
          try {
            await emptyDatabase(admin, live);
            for (const sql of swapStatements(live, names.incoming, names.outgoing)) await admin.query(sql);
          } catch (err) {
            await admin.query('ROLLBACK').catch(() => undefined);
            await admin.query(`ALTER DATABASE ${ident(live)} WITH ALLOW_CONNECTIONS true`).catch(() => undefined);
            throw err;
          }
        });
      } catch (err) {
        await dropDatabase(admin, names.incoming).catch(() => undefined);
        throw err;
      }
      await ui.run(`Drop the replaced database ${names.outgoing}`, () => dropDatabase(admin, names.outgoing));
    } finally {
      await admin.end();
    }
    return result(pre, false);
  });
}

export interface DrillResult {
  ok: boolean;
  file: string;
  takenAt: string | null;
  scratchDatabase: string;
  tables: DrillTable[];
  problems: string[];
  durationMs: number;
}

/** Exact row counts of the given tables; run in a read-only transaction (it may be production's). */
async function countRows(client: pg.Client, tables: readonly { schema: string; name: string }[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  await client.query('BEGIN READ ONLY');
  try {
    for (const t of tables) {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${ident(t.schema)}.${ident(t.name)}`);
      counts.set(`${t.schema}.${t.name}`, Number(rows[0]!.n));
    }
  } finally {
    await client.query('COMMIT');
  }
  return counts;
}

async function userTables(client: pg.Client): Promise<{ schema: string; name: string }[]> {
  const { rows } = await client.query<{ schema: string; name: string }>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2`,
  );
  return rows;
}

/**
 * The weekly proof that backups restore: the newest verified backup (or `file`) is checked against
 * its checksum, restored into a scratch database beside the live one (never the live one), its row
 * counts compared with the live database's, and the scratch database dropped, whatever happened.
 */
export async function restoreDrill(cfg: EnvConfig, opts: { mode: BackupMode; ui: Ui; file?: string; dir?: string }): Promise<DrillResult> {
  const started = Date.now();
  const { ui } = opts;
  const dir = opts.dir ?? cfg.vars.BACKUP_DIR;
  const given = opts.file && path.resolve(opts.file);
  const chosen = given ? (await listBackups(path.dirname(given))).find((b) => b.file === given) : (await listBackups(dir))[0];
  const file = given || chosen?.file;
  if (!file) throw new JobError(`No verified backup in ${dir} to drill with.`, 'Run backup-prod first (or pass --file).');
  const live = cfg.vars.DB_DATABASE;
  const scratch = scratchDatabaseName(live, new Date());
  await ui.run(`Verify the checksum of ${file}`, () => verifyChecksum(file), (r) => `sha256 ${r.sha256.slice(0, 12)}…`);
  const estimates = new Map((chosen?.manifest.tables ?? []).map((t) => [`${t.schema}.${t.name}`, t.rowEstimate]));

  return withLock(path.join(dir, restoreLockFileName), 'restore drill', async () => {
    const admin = await connect(adminConnection(cfg));
    try {
      const shape = await databaseShape(admin, live);
      await admin.query(createDatabaseStatements(scratch, { ...shape, acl: null })[0]!);
      try {
        await restoreInto(placeFor(cfg, opts.mode), file, formatOfFile(file), scratch, ui);
        const restoredClient = await connect({ ...connectionFor(cfg), database: scratch });
        const liveClient = await connect(connectionFor(cfg));
        try {
          const tables = await userTables(restoredClient);
          const restored = await ui.run(`Count the rows of ${tables.length} restored tables`, () => countRows(restoredClient, tables));
          const liveTables = new Set((await userTables(liveClient)).map((t) => `${t.schema}.${t.name}`));
          const liveCounts = await ui.run(`Count the same tables in the live ${live}`, () => countRows(liveClient, tables.filter((t) => liveTables.has(`${t.schema}.${t.name}`))));
          const rows: DrillTable[] = [...restored].map(([table, n]) => ({ table, restored: n, live: liveCounts.get(table) ?? null, atBackup: estimates.get(table) ?? null }));
          const problems = drillProblems(rows);
          return { ok: problems.length === 0, file, takenAt: chosen?.manifest.startedAt ?? null, scratchDatabase: scratch, tables: rows, problems, durationMs: Date.now() - started };
        } finally {
          await restoredClient.end();
          await liveClient.end();
        }
      } finally {
        await ui.run(`Drop the scratch database ${scratch}`, () => dropDatabase(admin, scratch));
      }
    } finally {
      await admin.end();
    }
  });
}

export function renderRestore(r: RestoreResult): void {
  const head = r.dryRun ? [`Would restore ${r.file} into ${r.env}'s ${r.database}:`, ...r.plan.map((p, i) => `  ${i + 1}. ${p}`)] : [`Restored ${r.file} into ${r.env}'s ${r.database} (${formatDuration(r.durationMs)}).`];
  const pre = r.preRestoreBackup ? [`The state before the restore is in ${r.preRestoreBackup.file}.`] : [];
  process.stdout.write(`${[...head, ...pre].join('\n')}\n`);
}

// ---- from the offsite copy -----------------------------------------------------------------

/** The toolkit's snapshot a drill or restore works from: `latest`, or an id (or its prefix). */
async function chooseSnapshot(repo: ResticRepo, wanted: string | undefined): Promise<SnapshotInfo> {
  const all = parseSnapshots((await runRestic(repo, resticArgs.snapshots(toolkitTag), 'snapshots')).stdout);
  const found = !wanted || wanted === 'latest' ? all.at(-1) : all.find((s) => s.id.startsWith(wanted) || s.shortId === wanted);
  if (!found) throw new JobError(wanted && wanted !== 'latest' ? `The repository ${describeRepo(repo)} has no snapshot ${wanted} of this toolkit.` : `The repository ${describeRepo(repo)} holds no snapshot of this toolkit yet.`, 'List them: restic snapshots --tag makapix-ops (or run backup-prod first).');
  return found;
}

/** The backup files (dump, checksum, manifest, roles) among a snapshot's paths. */
function backupPathsOf(snap: SnapshotInfo): { dump: string; files: string[] } {
  const files = snap.paths.filter((p) => parseBackupFileName(path.basename(p)) !== undefined);
  const dump = files.find((p) => parseBackupFileName(path.basename(p))?.role === 'dump');
  if (!dump) throw new JobError(`Snapshot ${snap.shortId} holds no database dump.`, 'Use another snapshot (restic snapshots --tag makapix-ops).');
  return { dump, files };
}

const ageHours = (time: string, now = new Date()) => (now.getTime() - new Date(time).getTime()) / 3_600_000;

export interface OffsiteDrillResult extends DrillResult {
  offsite: {
    repository: string;
    snapshot: string;
    snapshotTime: string;
    ageHours: number;
    vault: { root: string; filesInSnapshot: number; sampled: VaultComparison[]; problems: string[] };
  };
}

/**
 * The drill from the offsite copy: the snapshot's dump restored from the repository (not the local
 * file) into a scratch folder, its checksum verified, restored into a scratch database and compared
 * table by table (restoreDrill); then `sample` vault files picked at random from the snapshot,
 * restored, and compared by sha256 with EA's live vault. Reports the snapshot's age.
 */
export async function offsiteDrill(cfg: EnvConfig, opts: { mode: BackupMode; ui: Ui; repo: ResticRepo; snapshot?: string; sample: number; random?: () => number }): Promise<OffsiteDrillResult> {
  const { ui, repo } = opts;
  const snap = await ui.run('Choose the snapshot', () => chooseSnapshot(repo, opts.snapshot), (s) => `${s.shortId} of ${s.time} (${ageHours(s.time).toFixed(1)} h old)`);
  const { dump, files } = backupPathsOf(snap);
  const work = path.join(cfg.vars.BACKUP_DIR, 'offsite', `drill-${process.pid}-${Date.now()}`);
  await mkdir(work, { recursive: true, mode: 0o700 });
  try {
    await ui.run(`Restore ${path.basename(dump)} from snapshot ${snap.shortId}`, () => runRestic(repo, resticArgs.restore(snap.id, work, files), 'restore'));
    const db = await restoreDrill(cfg, { mode: opts.mode, ui, file: path.join(work, dump) });

    const vaultRoot = cfg.vars.VAULT_HOST_PATH;
    if (!snap.paths.includes(vaultRoot)) throw new JobError(`Snapshot ${snap.shortId} does not hold EA's vault ${vaultRoot}.`, 'Check VAULT_HOST_PATH; the snapshot holds: ' + snap.paths.join(', '));
    const listed = (await runRestic(repo, resticArgs.ls(snap.id, [vaultRoot]), 'ls')).stdout
      .split('\n')
      .flatMap((l) => {
        if (!l.startsWith('{')) return [];
        const e = JSON.parse(l) as { type?: string; path?: string; struct_type?: string };
        return e.struct_type === 'node' && e.type === 'file' && e.path ? [e.path] : [];
      });
    const picked = samplePaths(listed, opts.sample, opts.random);
    const vaultTarget = path.join(work, 'vault-sample');
    if (picked.length) {
      // A file restic cannot restore (a damaged pack) is reported through the comparison below.
      await ui.run(`Restore ${picked.length} of ${listed.length} vault files`, () => run(resticCommand(repo, resticArgs.restore(snap.id, vaultTarget, picked)), { nothrow: true }));
    }
    const hash = (f: string) => sha256File(f).then((h) => h.sha256, () => null);
    const sampled: VaultComparison[] = await ui.run(`Compare them by sha256 with ${vaultRoot}`, () => Promise.all(picked.map(async (p) => ({ path: p, restored: await hash(path.join(vaultTarget, p)), live: await hash(p) }))));
    const vaultIssues = vaultProblems(sampled);
    const problems = [...db.problems, ...vaultIssues, ...(listed.length === 0 ? [`the snapshot's vault ${vaultRoot} holds no file`] : [])];
    return {
      ...db,
      ok: db.ok && problems.length === db.problems.length,
      problems,
      offsite: {
        repository: describeRepo(repo), snapshot: snap.shortId, snapshotTime: snap.time, ageHours: Math.round(ageHours(snap.time) * 10) / 10,
        vault: { root: vaultRoot, filesInSnapshot: listed.length, sampled, problems: vaultIssues },
      },
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface OffsiteRestoreResult {
  repository: string;
  snapshot: string;
  snapshotTime: string;
  target: string;
  /** Where each part landed under the target (the snapshot's own contents.json says what is what). */
  parts: { role: string; from: string; restored: string }[];
  dump: { file: string; sha256: string };
  durationMs: number;
}

/**
 * Everything of a snapshot back into a target folder, at the same paths below it (a fresh VPS's
 * layout: dump, vault, certificates, env files, edge credentials), the dump's checksum verified.
 * Nothing live is touched; the runbook says where each part goes next. Production's data: the same
 * typed confirmation as a production restore.
 */
export async function restoreFromOffsite(cfg: EnvConfig, opts: { ui: Ui; repo: ResticRepo; snapshot?: string; target: string; typedConfirm: (q: string, expected: string) => Promise<void>; yes: boolean; iKnowThisIsProduction: boolean }): Promise<OffsiteRestoreResult> {
  const started = Date.now();
  const { ui, repo } = opts;
  const target = path.resolve(opts.target);
  const existing = await readdir(target).catch(() => []);
  if (existing.length) throw new SafetyError(`The target ${target} is not empty.`, 'Give an empty (or new) folder: restore --from-offsite never overwrites.');
  const snap = await chooseSnapshot(repo, opts.snapshot);
  const consent = productionConsent(cfg.env, opts);
  if (consent === 'refuse') throw new SafetyError('Refusing to restore production\'s offsite copy with --yes alone.', 'Add --i-know-this-is-production, or run it at a terminal and type the environment name.');
  if (consent === 'ask') await opts.typedConfirm(`Restore production's snapshot ${snap.shortId} of ${snap.time} (database, vault, CA, env files) into ${target}?`, 'prod');
  await mkdir(target, { recursive: true, mode: 0o700 });
  await ui.run(`Restore snapshot ${snap.shortId} into ${target}`, () => runRestic(repo, resticArgs.restore(snap.id, target), 'restore'));
  const { dump } = backupPathsOf(snap);
  const restoredDump = path.join(target, dump);
  const { sha256 } = await ui.run(`Verify the checksum of ${restoredDump}`, () => verifyChecksum(restoredDump), (r) => `sha256 ${r.sha256.slice(0, 12)}…`);
  const contentsPath = snap.paths.find((p) => p.endsWith(path.join('offsite', 'contents.json')));
  const contents = contentsPath ? (JSON.parse(await readFile(path.join(target, contentsPath), 'utf8')) as { includes: Include[] }) : undefined;
  // Without contents.json (an older snapshot), the snapshot's top-level paths, unnamed.
  const parts = (contents?.includes ?? snap.paths.map((p) => ({ role: 'path', path: p }))).map((i) => ({ role: i.role, from: i.path, restored: path.join(target, i.path) }));
  return { repository: describeRepo(repo), snapshot: snap.shortId, snapshotTime: snap.time, target, parts, dump: { file: restoredDump, sha256 }, durationMs: Date.now() - started };
}

export function renderOffsiteRestore(r: OffsiteRestoreResult): void {
  const width = Math.max(...r.parts.map((p) => p.role.length));
  const lines = [
    `Restored snapshot ${r.snapshot} (${r.snapshotTime}) of ${r.repository} into ${r.target} in ${formatDuration(r.durationMs)}; dump verified (sha256 ${r.dump.sha256.slice(0, 12)}…).`,
    ...r.parts.map((p) => `  ${p.role.padEnd(width)}  ${p.restored}`),
    'Next: docs/RUNBOOK.md "Disaster recovery" (env files and certificates into place, then restore --file with the dump).',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function renderDrill(r: DrillResult): void {
  const width = Math.max(5, ...r.tables.map((t) => t.table.length));
  const lines = [
    `${r.ok ? 'DRILL OK' : 'DRILL FAILED'}: ${r.file}${r.takenAt ? ` (taken ${r.takenAt})` : ''} restored into ${r.scratchDatabase} (dropped), ${formatDuration(r.durationMs)}`,
    `${'table'.padEnd(width)}  ${'restored'.padStart(10)}  ${'live now'.padStart(10)}  ${'diff'.padStart(8)}`,
    ...r.tables.map((t) => `${t.table.padEnd(width)}  ${String(t.restored).padStart(10)}  ${String(t.live ?? '-').padStart(10)}  ${(t.live === null ? 'gone' : String(t.live - t.restored)).padStart(8)}`),
    ...('offsite' in r ? offsiteDrillLines(r as OffsiteDrillResult) : []),
    ...r.problems.map((p) => `problem: ${p}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

function offsiteDrillLines(r: OffsiteDrillResult): string[] {
  const o = r.offsite;
  const bad = new Set(o.vault.problems.map((p) => p.split(' ')[0]));
  return [
    `offsite: snapshot ${o.snapshot} of ${o.snapshotTime} (${o.ageHours} h old) in ${o.repository}`,
    `vault: ${o.vault.sampled.length} of ${o.vault.filesInSnapshot} files of ${o.vault.root} compared by sha256, ${o.vault.problems.length} mismatched`,
    ...o.vault.sampled.map((f) => `  ${bad.has(f.path) ? 'MISMATCH' : f.live === null ? 'gone    ' : 'OK      '}  ${f.path}`),
  ];
}

/** `make demo`: EA's nightly backup on the sandbox, then the weekly drill restoring it into a scratch database. */
