// The runner of sample-data-to-dev: reads EA in one read-only snapshot, streams each table's
// planned COPY straight into EB inside one transaction, and commits only a whole, checked sample.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { hashPassword } from '../core/password.ts';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { EnvConfig } from '../core/config.ts';
import { connect, connectionFor, databaseIdentity, describeConnection, sameDatabase, type DatabaseIdentity } from '../tools/database.ts';
import { ConfigError, JobError, OpsError, SafetyError, UsageError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import type { Settings } from '../core/settings.ts';
import { withLock } from '../core/lock.ts';
import { projectRoot } from '../core/paths.ts';
import { foreignKeyChecks, type ForeignKeyViolation } from '../tools/schema.ts';
import { formatBytes, type Ui, type Confirm } from '../core/ui.ts';
import { PlanError, UnruledColumnsError, combinedCopy, planSampling, type SamplingConfig, type SamplingPlan, type TablePlan } from '../domain/sampling.ts';
import { LeakFound, LeakGuard } from '../domain/leak-guard.ts';
import type { PgPlace } from '../tools/pgtools.ts';
import { readCatalog, type Catalog } from '../tools/catalog.ts';
import { TableDemux, decodeCopyField } from '../domain/demux.ts';

export interface SampleDataOptions {
  /** EA: where rows are read (read-only snapshot). */
  source: pg.ClientConfig;
  /** EB: the database replaced; must be the one .env.dev names. */
  target: pg.ClientConfig;
  /** EB's configuration: the database the target must be, and DEV_LOGIN_PASSWORD. */
  dev: EnvConfig;
  pct: number;
  seed: number;
  users: readonly string[];
  excludeBanned: boolean;
  schemaFromProd: boolean;
  /** Where --schema-from-prod runs pg_dump: EA's db container by default (see schemaFromSource), the host with --source-url. */
  schemaPlace?: PgPlace;
  dryRun: boolean;
  /** The sampling configuration file (--config): named in every message that asks for an edit. */
  configFile: string;
  /** Its content, when already loaded (tests); read from configFile otherwise. */
  config?: SamplingConfig;
  ui: Ui;
  confirm: Confirm;
  /** Overrides the lock file (default: .state/ beside the checkout, one per EB database). */
  lockPath?: string;
}

export interface TableReport {
  table: string;
  mode: TablePlan['mode'];
  /** Rows written to EB (or that would be, with --dry-run). */
  rows: number;
  /** Rows in the sample by the rules. */
  sampled: number;
  /** Rows copied only because a kept row points at them (policy pull). */
  referenced: number;
  /** Per foreign key (`table.column`): references set to NULL. */
  nulled: Record<string, number>;
  /** Per foreign key: references moved to a stand-in row. */
  repointed: Record<string, number>;
  /** Rows pointing into the sample but left out by a drop policy or a unique-index clash (--dry-run only). */
  dropped?: number;
  /** Rows left out because they broke an app invariant after re-pointing (requireOneOf). */
  invariantDropped: number;
  bytes: number;
  ms: number;
}

export interface SampleDataReport {
  dryRun: boolean;
  pct: number;
  seed: number;
  source: string;
  target: string;
  /** Users in EA, users in EB after the run, and EB's share of EA. */
  users: { source: number; target: number; share: number };
  tables: TableReport[];
  totals: { rows: number; bytes: number; ms: number };
}

const q = pg.escapeIdentifier;

/** Differences between EA's and EB's schemas that make a copy wrong: revision and columns. */
export function schemaDifferences(source: Catalog, target: Catalog, revisions: { source: string[]; target: string[] }): string[] {
  const diff: string[] = [];
  if (revisions.source.join(',') !== revisions.target.join(',')) diff.push(`alembic_version: EA ${revisions.source.join(',') || '(none)'}, EB ${revisions.target.join(',') || '(none)'}`);
  for (const t of source.values()) {
    const other = target.get(t.name);
    if (!other) {
      diff.push(`table ${t.name}: missing in EB`);
      continue;
    }
    for (const c of t.columns) {
      const o = other.columns.find((x) => x.name === c.name);
      if (!o) diff.push(`column ${t.name}.${c.name}: missing in EB`);
      else if (o.type !== c.type || o.nullable !== c.nullable || o.generated !== c.generated)
        diff.push(`column ${t.name}.${c.name}: EA ${c.type}${c.nullable ? '' : ' NOT NULL'}, EB ${o.type}${o.nullable ? '' : ' NOT NULL'}`);
    }
    for (const o of other.columns) if (!t.columns.some((c) => c.name === o.name)) diff.push(`column ${t.name}.${o.name}: only in EB`);
  }
  for (const t of target.keys()) if (!source.has(t)) diff.push(`table ${t}: only in EB`);
  return diff;
}

async function revisions(client: pg.Client, catalog: Catalog): Promise<string[]> {
  if (!catalog.has('alembic_version')) return [];
  const { rows } = await client.query<{ v: string }>('SELECT version_num AS v FROM alembic_version ORDER BY 1');
  return rows.map((r) => r.v);
}

/**
 * Refuses (exit 3) unless the target is exactly the EB database .env.dev names and not the source.
 * Identity is the cluster's system identifier plus the database name, never host strings.
 */
async function checkTarget(source: DatabaseIdentity, target: DatabaseIdentity, opts: SampleDataOptions): Promise<void> {
  if (sameDatabase(source, target)) {
    throw new SafetyError(`The target ${describeConnection(opts.target)} is the source database itself (cluster ${target.systemIdentifier}, database ${target.database}).`, 'Point --target-url (or .env.dev) at EB, never at EA.');
  }
  // EB has its own PostgreSQL server by design: any database of EA's cluster (same system
  // identifier), whatever its name, shares EA's disk, memory and WAL, and is refused.
  if (source.systemIdentifier === target.systemIdentifier) {
    throw new SafetyError(`The target ${describeConnection(opts.target)} is a database of EA's PostgreSQL cluster (system identifier ${target.systemIdentifier}, the source's own); EB must have its own server.`, "Point --target-url (or .env.dev's DB_PUBLISHED_HOST/PORT) at EB's PostgreSQL, never at EA's.");
  }
  const devConn = connectionFor(opts.dev);
  let expected: DatabaseIdentity;
  if (devConn.host === opts.target.host && devConn.port === opts.target.port && devConn.database === opts.target.database) expected = target;
  else {
    const dev = await connect(devConn).catch((err: unknown) => {
      throw new SafetyError(`Cannot prove ${describeConnection(opts.target)} is EB: the EB database of ${opts.dev.file} (${describeConnection(devConn)}) is unreachable (${(err as Error).message}).`, 'Start EB, or run without --target-url.');
    });
    try {
      expected = await databaseIdentity(dev);
    } finally {
      await dev.end();
    }
  }
  if (!sameDatabase(expected, target)) {
    throw new SafetyError(`The target ${describeConnection(opts.target)} is not the EB database named in ${opts.dev.file} (${describeConnection(devConn)}).`, 'Only EB can be replaced by a sample; fix --target-url.');
  }
}

/** The pg_dump arguments of --schema-from-prod: public and the extensions its objects use (pg_trgm's operator classes). */
export const schemaDumpArgs = (): string[] => ['--schema-only', '--no-owner', '--no-privileges', '--schema=public', '--extension=*'];

/**
 * EB's schema recreated from EA's (pg_dump --schema-only), inside the load transaction. pg_dump runs
 * where opts.schemaPlace says: by default in EA's db container (as backup's compose mode), because
 * production's server (PostgreSQL 17) is newer than the host's pg_dump, which refuses it.
 */
async function schemaFromSource(opts: SampleDataOptions, eb: pg.Client): Promise<void> {
  const source = opts.source;
  const dir = await mkdtemp(path.join(tmpdir(), 'makapix-schema-'));
  const file = path.join(dir, 'schema.sql');
  const fd = openSync(file, 'w', 0o600);
  try {
    // Loaded here only: pgtools brings zx, a good share of the start-up time no other step needs.
    const { runPg, stderrTail } = await import('../tools/pgtools.ts');
    const place = opts.schemaPlace ?? { kind: 'local', connection: source };
    const r = await runPg('pg_dump', place, { database: String(source.database), args: schemaDumpArgs() }, { stdout: fd });
    if (r.exitCode !== 0) {
      const where = place.kind === 'container' ? 'in EA\'s db container' : 'on this host';
      throw new JobError(`pg_dump --schema-only of ${describeConnection(source)} (${where}) failed: ${stderrTail(r.stderr)}.`, place.kind === 'container' ? 'Check that EA\'s stack is up (make status ENV=prod).' : 'Check that pg_dump is as new as EA\'s server.');
    }
    closeSync(fd);
    // The schema alone is small (kilobytes): it runs as one script on EB's transaction.
    // Recent pg_dump brackets its script with psql meta-commands (\restrict); the server takes SQL only.
    const ddl = (await readFile(file, 'utf8')).replace(/^CREATE SCHEMA public;$/m, '').replace(/^\\.*$/gm, '');
    // Extensions whose objects live in public go with it (DROP SCHEMA ... CASCADE); the dump
    // creates them again (CREATE EXTENSION IF NOT EXISTS) before the indexes that use them.
    await eb.query('DROP SCHEMA public CASCADE');
    await eb.query('CREATE SCHEMA public');
    await eb.query(ddl);
    await eb.query('RESET search_path');
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** The settings of every EA read transaction: bounded, cheap on memory, no JIT. */
async function readOnlySnapshot(client: pg.Client, config: SamplingConfig): Promise<void> {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  await client.query(`SET LOCAL statement_timeout = ${Number(config.statementTimeoutMs)}`);
  await client.query(`SET LOCAL lock_timeout = '30s'`);
  await client.query(`SET LOCAL idle_in_transaction_session_timeout = '10min'`);
  // Membership sets are hashed in memory; a bigger work_mem keeps them out of temp files.
  await client.query(`SET LOCAL work_mem = '64MB'`);
  // The plan's queries look expensive to the planner, whose JIT then spends seconds compiling
  // each one; they are scans and hash joins that run faster than that compilation.
  await client.query('SET LOCAL jit = off');
  // Membership sets are small and the tables big: hashing the set and scanning the table once beats
  // the merge joins the planner picks from its guesses (it sorts, or walks an index in random order).
  await client.query('SET LOCAL enable_mergejoin = off');
  // The sets are small next to the tables: walking a foreign key's index for each member beats
  // hashing the whole table, once random reads are priced as what they are on EA's SSD.
  await client.query('SET LOCAL random_page_cost = 1.1');
  // One core of EA's, not more: production keeps the rest, and the union's tables come out in
  // order (a parallel append would interleave them; TableDemux would refuse the stream).
  await client.query('SET LOCAL max_parallel_workers_per_gather = 0');
}

/**
 * Streams every planned table from EA in one COPY (combinedCopy: each membership set is computed
 * once) into the sink each table gets, EB's COPY FROM or nothing for --dry-run. EA computes the
 * next rows while EB loads the last ones; rows wait in TableDemux's bounded queue, then in socket
 * buffers (backpressure): never a whole table in this process's memory.
 */
async function copyAll(ea: pg.Client, plans: TablePlan[], ui: Ui, guard: LeakGuard, sinkFor: (p: TablePlan) => Writable, idle?: (complete: ReadonlySet<string>) => Promise<boolean>): Promise<TableReport[]> {
  const complete = new Set<string>();
  const out: TableReport[] = [];
  let progress: { table: number; line: ReturnType<Ui['progress']> } | undefined;
  const progressOf = (i: number) => (progress?.table === i ? progress.line : (progress = { table: i, line: ui.progress(`copying ${plans[i]!.table}`, 'rows') }).line);
  let since = Date.now();
  const demux = new TableDemux(
    plans.map((p) => p.columns.length),
    {
      open: (i) => (progressOf(i), sinkFor(plans[i]!)),
      rows: (i, n) => progressOf(i).tick(n),
      inspect: (i, rows) => guard.check(i, rows),
      done: (i, c) => {
        const p = plans[i]!;
        progressOf(i).done(`${c.rows.toLocaleString('en-US')} rows, ${formatBytes(c.bytes)}`);
        const nulled: Record<string, number> = {};
        const repointed: Record<string, number> = {};
        p.touching.forEach((key, b) => {
          const n = c.bits[1 + 2 * b] ?? 0;
          const r = c.bits[2 + 2 * b] ?? 0;
          if (n) nulled[key] = n;
          if (r) repointed[key] = r;
        });
        out.push({ table: p.table, mode: p.mode, rows: c.rows, sampled: c.sampled, referenced: c.rows - c.sampled, nulled, repointed, invariantDropped: c.invariantDropped, bytes: c.bytes, ms: Date.now() - since });
        complete.add(p.table);
        since = Date.now();
      },
      ...(idle && { idle: () => idle(complete) }),
    },
  );
  try {
    await pipeline(ea.query(copyTo(combinedCopy(plans))), demux);
  } catch (err) {
    if (err instanceof LeakFound) {
      const p = plans[err.leak.table]!;
      const column = `${p.table}.${p.columns[err.leak.column] ?? '?'}`;
      throw new LeakError(column, err.leak.source);
    }
    throw err;
  }
  return out;
}

/** The leak guard's finding, named for the operator (the value itself is never shown). */
class LeakError extends Error {
  readonly column: string;
  readonly source: string;
  constructor(column: string, source: string) {
    super(`${column} holds a value of EA's ${source}`);
    this.column = column;
    this.source = source;
  }
}

/**
 * The leak guard, filled with EA's values of the configured secret columns (read in EA's snapshot):
 * what the run sends to EB is checked against them.
 */
async function leakGuard(ea: pg.Client, catalog: Catalog, secrets: readonly string[]): Promise<LeakGuard> {
  const guard = new LeakGuard();
  for (const key of secrets) {
    const [table, column] = key.split('.') as [string, string];
    if (!catalog.get(table)) continue;
    const c = catalog.get(table)!.columns.find((x) => x.name === column)!;
    // host() for addresses: inet's text form would add a mask.
    const expr = c.type === 'inet' || c.type === 'cidr' ? `host(${q(column)})` : `${q(column)}::text`;
    // Streamed: a million addresses must not become a million row objects at once.
    let rest: Buffer = Buffer.alloc(0);
    for await (const chunk of ea.query(copyTo(`COPY (SELECT DISTINCT ${expr} FROM ${q(table)} WHERE ${q(column)} IS NOT NULL) TO STDOUT`)) as AsyncIterable<Buffer>) {
      const data = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      const end = data.lastIndexOf(10) + 1;
      for (const line of data.toString('utf8', 0, end).split('\n')) if (line) guard.add(decodeCopyField(line), key);
      rest = data.subarray(end);
    }
  }
  return guard;
}

/** The default --config: the shipped configuration of the real Makapix schema at its Alembic head. */
export const defaultSamplingConfigFile = path.join(projectRoot, 'config', 'sampling.ts');

/**
 * Loads a sampling configuration module (its default export). Its shape is checked by the type
 * checker (`tsc` covers config/); its names are checked against the schema when the plan is made.
 */
export async function loadSamplingConfig(file: string): Promise<SamplingConfig> {
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path.resolve(file)).href)) as { default?: unknown };
  } catch (err) {
    throw new ConfigError(`Cannot load the sampling configuration ${file}: ${(err as Error).message.split('\n')[0]}.`, [file], 'Give --config a .ts file whose default export is a SamplingConfig (docs/sample-data.md).');
  }
  const c = mod.default as Partial<SamplingConfig> | undefined;
  const missing = (['root', 'banned', 'tables', 'policies', 'implicitReferences', 'requireOneOf', 'secrets', 'rules', 'statementTimeoutMs'] as const).filter((k) => c?.[k] === undefined);
  if (missing.length) throw new ConfigError(`The sampling configuration ${file} lacks ${missing.join(', ')}.`, missing, 'Compare it with config/sampling.ts; `tsc -p tsconfig.json` checks a file under config/.');
  return c as SamplingConfig;
}

/**
 * EB's COPY FROM of one table. pg-copy-streams 7 lets go of its connection when the server fails
 * the COPY, but callbacks it queued before (a socket 'drain', the CopyDone of _final) still reach
 * for it, and threw a TypeError outside any stream: the process died with a stack trace instead of
 * the error. Once the connection is gone, they find one that takes nothing; the COPY's own error
 * has already failed the load.
 */
export function copyInto(eb: Pick<pg.Client, 'query'>, sql: string): Writable {
  const stream = copyFrom(sql);
  let connection: unknown;
  const gone = { stream: { write: () => true, once: (_event: string, cb: () => void) => void setImmediate(cb) }, sendCopyFail: () => undefined };
  Object.defineProperty(stream, 'connection', { get: () => connection ?? gone, set: (c: unknown) => void (connection = c), configurable: true });
  return eb.query(stream);
}

const discard = () => new Writable({ write: (_chunk, _enc, done) => done() });

/** The default lock: one per EB database, so two runs cannot interleave their loads. */
const lockFor = (target: DatabaseIdentity) => path.join(projectRoot, '.state', `sample-data-${target.systemIdentifier}-${target.database}.lock`);

/**
 * Replaces EB's data with an anonymized PCT % sample of EA, or with dryRun reports what it would copy.
 * Nothing is written before every check passed; EB changes in one transaction or not at all.
 */
export async function sampleDataToDev(opts: SampleDataOptions): Promise<SampleDataReport> {
  const config = opts.config ?? (await loadSamplingConfig(opts.configFile));
  const { ui } = opts;
  const started = Date.now();
  // Hashed on a worker thread while the connections and catalogs below are set up.
  const dev = opts.dev.vars.DEV_LOGIN_PASSWORD;
  const passwordHash = hashPassword(dev.isEmpty ? new Secret(randomBytes(24).toString('base64')) : dev, 10);
  passwordHash.catch(() => undefined);
  // Both connections at once; EA's failure is the one reported, and whichever did open is closed.
  const [eaOpen, ebOpen] = await Promise.allSettled([
    connect({ ...opts.source, application_name: 'makapix-ops sample-data (read)' }),
    connect({ ...opts.target, application_name: 'makapix-ops sample-data (load)' }),
  ]);
  if (eaOpen.status === 'rejected' || ebOpen.status === 'rejected') {
    for (const c of [eaOpen, ebOpen]) if (c.status === 'fulfilled') await c.value.end().catch(() => undefined);
    throw eaOpen.status === 'rejected' ? eaOpen.reason : (ebOpen as PromiseRejectedResult).reason;
  }
  const ea = eaOpen.value;
  const eb = ebOpen.value;
  try {
    // A connection that dies (killed backend, network) fails the statement in flight, which rolls
    // everything back; the client's own 'error' event must not also crash the process.
    for (const c of [ea, eb]) c.on('error', () => undefined);
    const [sourceId, targetId] = await Promise.all([databaseIdentity(ea), databaseIdentity(eb)]);
    await checkTarget(sourceId, targetId, opts);
    // Asked before EA's snapshot opens: production's vacuum never waits on someone's answer.
    if (!opts.dryRun) await opts.confirm(`Replace every row of EB (${describeConnection(opts.target)}) with a ${opts.pct}% sample of EA (${describeConnection(opts.source)})?`);

    // One consistent snapshot of EA for the catalog and every COPY; only ACCESS SHARE locks.
    await readOnlySnapshot(ea, config);
    const [catalog, targetCatalog] = await Promise.all([readCatalog(ea), readCatalog(eb)]);
    const [eaRevision, ebRevision] = await Promise.all([revisions(ea, catalog), revisions(eb, targetCatalog)]);
    const diff = schemaDifferences(catalog, targetCatalog, { source: eaRevision, target: ebRevision });
    if (diff.length && !opts.schemaFromProd) {
      throw new JobError(`EB's schema differs from EA's (${diff.length} difference${diff.length === 1 ? '' : 's'}): ${diff.slice(0, 12).join('; ')}${diff.length > 12 ? '; …' : ''}.`, 'Migrate EB to EA\'s revision, or pass --schema-from-prod to recreate EB\'s schema from EA\'s.');
    }
    const root = catalog.get(config.root);
    if (opts.users.length && root) {
      const { rows } = await ea.query<{ id: string }>(`SELECT ${q(root.primaryKey[0]!)}::text AS id FROM ${q(root.name)} WHERE ${q(root.primaryKey[0]!)}::text = ANY($1)`, [opts.users]);
      const missing = opts.users.filter((u) => !rows.some((r) => r.id === u));
      if (missing.length) throw new ConfigError(`--users names ${missing.join(', ')}, not in EA's ${root.name}.`, missing, 'Give ids of existing users.');
    }
    const runConfig = opts.schemaFromProd ? { ...config, tables: Object.fromEntries(Object.entries(config.tables).map(([t, m]) => [t, m === 'keep' ? ('whole' as const) : m])) } : config;
    let plan: SamplingPlan;
    try {
      plan = planSampling({ catalog, config: runConfig, options: opts, anonymization: { salt: randomBytes(16).toString('hex'), passwordHash: await passwordHash } });
    } catch (err) {
      if (err instanceof UnruledColumnsError) {
        throw new ConfigError(`Stopped before writing: ${err.problems.length} column(s) look sensitive and have no anonymization rule: ${err.problems.join(', ')}.`, err.problems, `Add a rule for each to rules.columns in ${opts.configFile} (docs/sample-data.md), e.g. keep, hashed, nulled or scrub().`);
      }
      if (err instanceof PlanError) throw new ConfigError(err.message, err.problems, `Fix the sampling configuration ${opts.configFile} (docs/sample-data.md).`);
      throw err;
    }
    const { rows: eaUsers } = await ea.query<{ n: string }>(`SELECT count(*) AS n FROM ${q(config.root)}`);
    const sourceUsers = Number(eaUsers[0]!.n);
    const report = (tables: TableReport[]): SampleDataReport => {
      const targetUsers = tables.find((t) => t.table === config.root)?.rows ?? 0;
      return {
        dryRun: opts.dryRun,
        pct: opts.pct,
        seed: opts.seed,
        source: describeConnection(opts.source),
        target: describeConnection(opts.target),
        users: { source: sourceUsers, target: targetUsers, share: sourceUsers ? targetUsers / sourceUsers : 0 },
        tables,
        totals: { rows: tables.reduce((s, t) => s + t.rows, 0), bytes: tables.reduce((s, t) => s + t.bytes, 0), ms: Date.now() - started },
      };
    };
    const skipped = (p: TablePlan): TableReport => ({ table: p.table, mode: p.mode, rows: 0, sampled: 0, referenced: 0, nulled: {}, repointed: {}, invariantDropped: 0, bytes: 0, ms: 0 });

    const copied = plan.tables.filter((p) => p.query);
    const guard = await ui.run('reading EA\'s secret values for the leak guard', () => leakGuard(ea, catalog, config.secrets), (g) => `${g.size.toLocaleString('en-US')} tokens`);
    const merge = (done: TableReport[]) => plan.tables.map((p) => done.find((t) => t.table === p.table) ?? skipped(p));

    if (opts.dryRun) {
      const tables = merge(await copyAll(ea, copied, ui, guard, discard));
      for (const t of tables) {
        const p = copied.find((x) => x.table === t.table);
        if (p?.droppedCount) t.dropped = Number((await ea.query<{ n: string }>(p.droppedCount)).rows[0]!.n);
      }
      await ea.query('COMMIT');
      return report(tables);
    }

    const tables = await withLock(opts.lockPath ?? lockFor(targetId), 'sample-data-to-dev', async () => {
      await eb.query('BEGIN');
      try {
        // Foreign-key triggers off for this transaction only: the users <-> posts cycle loads in any
        // order, and the integrity checks below prove every key instead.
        await eb.query('SET LOCAL session_replication_role = replica');
        if (opts.schemaFromProd) await ui.run('recreating EB\'s schema from EA\'s', () => schemaFromSource(opts, eb));
        if (plan.truncate.length) await eb.query(`TRUNCATE ${plan.truncate.map(q).join(', ')}`);
        // Each table's foreign keys are checked once it and the tables it points at are loaded, in
        // EB's idle moments between tables (EA still computing); what is left, after the last.
        const pending = foreignKeyChecks(opts.schemaFromProd ? await readCatalog(eb) : targetCatalog);
        const untouched = plan.tables.filter((p) => !p.query).map((p) => p.table);
        const bad: ForeignKeyViolation[] = [];
        const checkReady = async (complete: ReadonlySet<string>) => {
          const ready = (t: string) => complete.has(t) || untouched.includes(t);
          const i = pending.findIndex((c) => ready(c.table) && c.refTables.every(ready));
          if (i < 0) return false;
          bad.push(...(await pending.splice(i, 1)[0]!.run(eb)));
          return true;
        };
        const out = merge(await copyAll(ea, copied, ui, guard, (p) => copyInto(eb, `COPY ${q(p.table)} (${p.columns.map(q).join(', ')}) FROM STDIN`), checkReady));
        // EA's snapshot ends as soon as its rows are read (production's vacuum waits on it), and
        // before EB commits: a failure there still leaves EB as it was.
        await ea.query('COMMIT');
        for (const s of plan.sequences) {
          await eb.query(`SELECT setval(${eb.escapeLiteral(s.sequence)}::regclass, COALESCE(m, 1), m IS NOT NULL) FROM (SELECT max(${q(s.column)})::bigint AS m FROM ${q(s.table)}) x`);
        }
        if (pending.length) await ui.run(`checking the foreign keys of ${pending.length} more table(s) on EB`, async () => { for (const c of pending) bad.push(...(await c.run(eb))); });
        if (bad.length) throw new JobError(`The sample breaks ${bad.length} foreign key(s) on EB: ${bad.map((b) => `${b.constraint} (${b.rows} rows)`).join(', ')}; nothing was committed.`, 'This is a bug in the sampling plan; run with --dry-run --verbose and report it.');
        await eb.query('COMMIT');
        return out;
      } catch (err) {
        await eb.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
    return report(tables);
  } catch (err) {
    if (err instanceof OpsError) throw err;
    if (err instanceof LeakError) {
      throw new JobError(`Stopped before EB committed: ${err.column} would have carried a value of EA's ${err.source} to EB; EB was left as it was.`, `Add a rule for ${err.column} to rules.columns in ${opts.configFile} (scrub() for free text or JSON, nulled, hashed), then run again.`);
    }
    throw new JobError(`Sampling EA into EB failed: ${(err as Error).message}; EB was left as it was.`, 'Run again with --verbose for details.', { cause: err });
  } finally {
    await ea.end().catch(() => undefined);
    await eb.end().catch(() => undefined);
  }
}

/** The human report: one line per copied table, then the totals and the user share. */
export function describeReport(r: SampleDataReport): string[] {
  const lines = [`${r.dryRun ? 'Would copy' : 'Copied'} a ${r.pct}% sample (seed ${r.seed}) of ${r.source} into ${r.target}:`];
  for (const t of r.tables) {
    if (t.mode === 'keep') continue;
    if (t.mode === 'skip') {
      lines.push(`  ${t.table.padEnd(28)} emptied`);
      continue;
    }
    const touched = [
      ...(t.referenced ? [`${t.referenced} referenced`] : []),
      ...Object.entries(t.nulled).map(([k, n]) => `${n} ${k.split('.')[1]} nulled`),
      ...Object.entries(t.repointed).map(([k, n]) => `${n} ${k.split('.')[1]} re-pointed`),
      ...(t.dropped ? [`${t.dropped} dropped`] : []),
      ...(t.invariantDropped ? [`${t.invariantDropped} dropped by an app invariant (requireOneOf)`] : []),
    ];
    lines.push(`  ${t.table.padEnd(28)} ${String(t.rows).padStart(9)} rows ${formatBytes(t.bytes).padStart(10)} ${String(t.ms).padStart(6)}ms  ${t.mode === 'whole' ? 'whole' : `${t.sampled} sampled`}${touched.length ? `, ${touched.join(', ')}` : ''}`);
  }
  lines.push(`Users: ${r.users.target} of ${r.users.source} (${(r.users.share * 100).toFixed(1)}%). Total ${r.totals.rows} rows, ${formatBytes(r.totals.bytes)} in ${(r.totals.ms / 1000).toFixed(1)}s.`);
  return lines;
}

// ---- the command line -------------------------------------------------------------------------

export interface SampleDataFlags {
  pct: number;
  seed?: number | undefined;
  users: string[];
  'exclude-banned'?: boolean;
  'schema-from-prod'?: boolean;
  'source-url'?: string | undefined;
  'target-url'?: string | undefined;
  config?: string | undefined;
  direct?: boolean;
}

/** --pct: a percentage in (0, 100]. */

/** A postgresql:// URL as node-postgres settings; the password may come from PGPASSWORD instead. */
export function connectionFromUrl(value: string, flag: string, defaults: Pick<Settings, 'pgUser' | 'pgPassword'> = { pgUser: undefined, pgPassword: undefined }): pg.ClientConfig {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`${flag} is not a URL.`, 'Use postgresql://user@host:port/database (password in PGPASSWORD).');
  }
  if (u.protocol !== 'postgresql:' && u.protocol !== 'postgres:') throw new UsageError(`${flag} must start with postgresql://.`, 'Use postgresql://user@host:port/database.');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!u.hostname || !database) throw new UsageError(`${flag} must name a host and a database.`, 'Use postgresql://user@host:port/database.');
  const password = u.password ? decodeURIComponent(u.password) : defaults.pgPassword?.reveal();
  return {
    host: u.hostname,
    port: u.port ? Number(u.port) : 5432,
    database,
    user: decodeURIComponent(u.username) || defaults.pgUser || 'postgres',
    // Known to the redactor from here on, so no error text can show it.
    ...(password !== undefined && { password: new Secret(password).reveal() }),
  };
}

/** Everything the entry needs to call sampleDataToDev, from its flags and the env files. */
export function optionsFromFlags(flags: SampleDataFlags, loadEnv: (env: 'prod' | 'dev') => EnvConfig, pg: Pick<Settings, 'pgUser' | 'pgPassword'>): Omit<SampleDataOptions, 'dryRun' | 'ui' | 'confirm'> {
  const { pct, users } = flags;
  // No seed: a fresh pick each run, printed so it can be repeated.
  const seed = flags.seed ?? randomInt(1, 2 ** 31);
  const dev = loadEnv('dev');
  const prod = flags['source-url'] ? undefined : loadEnv('prod');
  const source = prod ? connectionFor(prod) : connectionFromUrl(flags['source-url']!, '--source-url', pg);
  // EA's own pg_dump, in its db container, unless EA was given as a URL or --direct (then the host's).
  const schemaPlace: PgPlace = prod && !flags.direct ? { kind: 'container', cfg: prod, user: prod.vars.DB_ADMIN_USER } : { kind: 'local', connection: source };
  const target = flags['target-url'] ? connectionFromUrl(flags['target-url'], '--target-url', pg) : connectionFor(dev);
  const configFile = flags.config ?? defaultSamplingConfigFile;
  return { source, target, dev, pct, seed, users, excludeBanned: Boolean(flags['exclude-banned']), schemaFromProd: Boolean(flags['schema-from-prod']), schemaPlace, configFile };
}
