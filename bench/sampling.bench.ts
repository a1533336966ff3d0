// `make bench BENCH=sampling`: sample-data-to-dev on EA seeded with BENCH_USERS users (default
// 100,000) of BENCH_SCHEMA: `head` (default), the real app's schema at its Alembic head
// (dev/makapix-head) with the shipped config/sampling.ts, leak guard and scrub rules
// included; or `sandbox`, the sandbox's schema and generator with dev/sandbox-sampling.ts. Against,
// measured in the same run between the same two clusters:
//   lower bound: a bare COPY of exactly the rows the tool loaded (no planning, no transforms),
//   naive: pg_dump -Fc | pg_restore of the whole database;
// and the tool's peak RSS at 10,000 users and at BENCH_USERS, and a run under a 48 MiB heap cap
// (what it keeps must not grow with EA: peak RSS also follows V8's appetite). The tool and the
// lower bound run BENCH_RUNS times each (default 5), interleaved; the ratio is of their medians.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { startTestCluster } from '../dev/scratch-cluster.ts';
import { createMakapixSchema } from '../lib/tools/schema.ts';
import { seedDatabase } from '../dev/seed.ts';
import { pgBin, type Cluster, withClient } from '../dev/cluster.ts';
import { projectRoot } from '../lib/core/paths.ts';
import { formatBytes, formatDuration } from '../lib/core/ui.ts';
import type { SampleDataReport } from '../lib/jobs/sample-data.ts';
import { sandboxSamplingConfigFile } from '../dev/sandbox-sampling.ts';
import { loadHeadSchema } from '../dev/makapix-head.ts';

const users = Number(process.env.BENCH_USERS ?? 100_000);
const small = Math.min(10_000, users);
const PCT = 10;
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 5));
const schema = process.env.BENCH_SCHEMA ?? 'head';
if (schema !== 'head' && schema !== 'sandbox') throw new Error(`BENCH_SCHEMA must be head or sandbox, got ${schema}`);
/** The schema, and with users its data, of one database. */
const prepare = async (cl: pg.Client, seedUsers?: number): Promise<{ totalRows: number; databaseBytes: number } | undefined> => {
  if (schema === 'head') {
    await loadHeadSchema(cl, seedUsers ? { users: seedUsers } : {});
    if (!seedUsers) return undefined;
    const { rows } = await cl.query<{ n: string; b: string }>("SELECT sum(n_live_tup) AS n, pg_database_size(current_database()) AS b FROM pg_stat_user_tables");
    return { totalRows: Number(rows[0]!.n), databaseBytes: Number(rows[0]!.b) };
  }
  await createMakapixSchema(cl);
  return seedUsers ? seedDatabase(cl, { users: seedUsers, seed: 1 }) : undefined;
};
const configArgs = schema === 'head' ? [] : ['--config', sandboxSamplingConfigFile];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const log = (s: string) => process.stdout.write(`${s}\n`);

function writeEnv(dir: string, env: 'prod' | 'dev', c: Cluster, db: string): void {
  const vars: Record<string, string> = { DB_DATABASE: db, DB_ADMIN_USER: c.superuser, DB_ADMIN_PASSWORD: c.password.reveal(), DB_PUBLISHED_PORT: String(c.port) };
  const text = readFileSync(path.join(projectRoot, `compose/.env.${env}.example`), 'utf8')
    .split('\n')
    .map((line) => {
      const key = /^([A-Z_]+)=/.exec(line)?.[1];
      return key && key in vars ? `${key}=${vars[key]}` : line;
    })
    .join('\n');
  writeFileSync(path.join(dir, `.env.${env}`), text, { mode: 0o600 });
}

/** Runs the tool as cron would; peak RSS from the kernel's high-water mark of the process. */
function runTool(envDir: string, args: string[], env: Record<string, string> = {}): Promise<{ ms: number; peakRss: number; report: SampleDataReport; steps: string[] }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(path.join(projectRoot, 'scripts/sample-data-to-dev.ts'), ['--pct', String(PCT), '--seed', '1', '--yes', '--json', ...configArgs, ...args], {
      env: { ...process.env, MAKAPIX_ENV_DIR: envDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let peakRss = 0;
    const poll = setInterval(() => {
      try {
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1];
        if (hwm) peakRss = Math.max(peakRss, Number(hwm) * 1024);
      } catch {
        // the process just ended
      }
    }, 50);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      clearInterval(poll);
      const ms = performance.now() - started;
      if (code !== 0) reject(new Error(`sample-data-to-dev exited ${code}: ${err}`));
      else resolve({ ms, peakRss, report: JSON.parse(out) as SampleDataReport, steps: err.split('\n').filter((l) => /: done/.test(l)) });
    });
  });
}

/** The lower bound: COPY the same rows, table by table, from EA's cluster into EB in one transaction. */
async function bareCopy(from: Cluster, fromDb: string, to: Cluster, toDb: string, tables: string[]): Promise<number> {
  const src = new pg.Client(from.connection(fromDb));
  const dst = new pg.Client(to.connection(toDb));
  await Promise.all([src.connect(), dst.connect()]);
  try {
    const started = performance.now();
    await dst.query('BEGIN');
    await dst.query('SET LOCAL session_replication_role = replica');
    await dst.query(`TRUNCATE ${tables.map((t) => pg.escapeIdentifier(t)).join(', ')}`);
    for (const t of tables) await pipeline(src.query(copyTo(`COPY ${pg.escapeIdentifier(t)} TO STDOUT`)), dst.query(copyFrom(`COPY ${pg.escapeIdentifier(t)} FROM STDIN`)));
    await dst.query('COMMIT');
    return performance.now() - started;
  } finally {
    await Promise.all([src.end(), dst.end()]);
  }
}

/** Runs `a | b` as two processes (no shell) and waits for both. */
function pipe2(a: [string, string[]], b: [string, string[]], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const pa = spawn(a[0], a[1], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const pb = spawn(b[0], b[1], { env, stdio: ['pipe', 'ignore', 'pipe'] });
    pa.stdout.pipe(pb.stdin);
    // Their messages only matter when they fail (pg_dump warns about the users <-> posts cycle).
    let messages = '';
    for (const p of [pa, pb]) p.stderr.on('data', (d) => (messages += d));
    let left = 2;
    const done = (name: string) => (code: number | null) => {
      if (code !== 0) reject(new Error(`${name} exited ${code}: ${messages.slice(-2000)}`));
      else if (--left === 0) resolve(performance.now() - started);
    };
    pa.on('close', done(a[0]));
    pb.on('close', done(b[0]));
  });
}

const envDir = mkdtempSync(path.join(tmpdir(), 'makapix-bench-env-'));
const [ea, eb] = await Promise.all([startTestCluster({ settings: { shared_buffers: '256MB' } }), startTestCluster({ settings: { shared_buffers: '256MB' } })]);
try {
  for (const db of ['makapix', 'makapix_small', 'bench_rows']) await withClient(ea, 'postgres', (cl) => cl.query(`CREATE DATABASE ${db}`));
  for (const db of ['makapix_dev', 'naive']) await withClient(eb, 'postgres', (cl) => cl.query(`CREATE DATABASE ${db}`));
  await withClient(ea, 'bench_rows', (cl) => prepare(cl));
  await withClient(eb, 'makapix_dev', (cl) => prepare(cl));
  let t = performance.now();
  const seeded = (await withClient(ea, 'makapix', (cl) => prepare(cl, users)))!;
  await withClient(ea, 'makapix_small', (cl) => prepare(cl, small));
  log(`${schema} schema: seeded ${users.toLocaleString('en-US')} users: ${seeded.totalRows.toLocaleString('en-US')} rows, ${formatBytes(seeded.databaseBytes)} (${formatDuration(performance.now() - t)}); and ${small.toLocaleString('en-US')} users`);
  // EA at rest, as production is: a freshly loaded database would otherwise be vacuumed by
  // autovacuum (and its hint bits set by the first reader) during the timed runs.
  for (const db of ['makapix', 'makapix_small']) await withClient(ea, db, (cl) => cl.query('VACUUM (ANALYZE)'));
  await withClient(ea, 'postgres', (cl) => cl.query('CHECKPOINT'));

  writeEnv(envDir, 'prod', ea, 'makapix');
  writeEnv(envDir, 'dev', eb, 'makapix_dev');
  const smallUrl = `postgresql://${ea.superuser}:${ea.password.reveal()}@127.0.0.1:${ea.port}/makapix_small`;

  // Every timed run starts on quiet clusters: the previous load's autovacuum and dirty pages are
  // dealt with first, not charged to whichever run comes next.
  const quiesce = async () => {
    await withClient(eb, 'makapix_dev', (cl) => cl.query('VACUUM (ANALYZE)'));
    for (const c of [ea, eb]) await withClient(c, 'postgres', (cl) => cl.query('CHECKPOINT'));
  };
  const smallRun = await runTool(envDir, ['--source-url', smallUrl]);
  await quiesce();
  const tool = await runTool(envDir, []);
  const tables = tool.report.tables.filter((x) => x.mode !== 'keep').map((x) => x.table);
  // Where the tool's time goes: its own step lines (each with its duration).
  for (const l of tool.steps) log(`  tool step: ${l.replace(/^\S+ info /, '')}`);

  // The exact rows the tool loaded, placed in a database of EA's cluster (not timed).
  t = performance.now();
  const dumpEnv = { ...process.env, PGPASSWORD: eb.password.reveal() };
  await pipe2(
    [path.join(pgBin, 'pg_dump'), ['--host=127.0.0.1', `--port=${eb.port}`, `--username=${eb.superuser}`, '--no-password', '--data-only', '--disable-triggers', '--exclude-table=alembic_version', 'makapix_dev']],
    [path.join(pgBin, 'psql'), ['--host=127.0.0.1', `--port=${ea.port}`, `--username=${ea.superuser}`, '--no-password', '--quiet', '--set=ON_ERROR_STOP=1', '--dbname=bench_rows']],
    { ...dumpEnv, PGPASSWORD: eb.password.reveal() === ea.password.reveal() ? eb.password.reveal() : dumpEnv.PGPASSWORD },
  );
  await withClient(ea, 'bench_rows', (cl) => cl.query('VACUUM (ANALYZE)'));
  log(`staged the tool's rows for the lower bound (${formatDuration(performance.now() - t)})`);
  await quiesce();
  const toolMs = [tool.ms];
  const lowerMs = [await bareCopy(ea, 'bench_rows', eb, 'makapix_dev', tables)];
  let peakRss = tool.peakRss;
  while (toolMs.length < runs) {
    await quiesce();
    const again = await runTool(envDir, []);
    toolMs.push(again.ms);
    peakRss = Math.max(peakRss, again.peakRss);
    await quiesce();
    lowerMs.push(await bareCopy(ea, 'bench_rows', eb, 'makapix_dev', tables));
  }
  const [toolMedian, lower] = [median(toolMs), median(lowerMs)];
  const each = (xs: number[]) => (xs.length > 1 ? `  (runs: ${xs.map((x) => formatDuration(x)).join(', ')})` : '');

  // Peak RSS follows V8's appetite (a heap grows with the allocation rate, not with what it keeps):
  // what is live stays bounded if the whole run fits under a small old-space cap.
  await quiesce();
  const heapCapMb = 48;
  const capped = await runTool(envDir, [], { NODE_OPTIONS: `--max-old-space-size=${heapCapMb}` }).then(
    (r) => `completes under a ${heapCapMb} MiB old-space cap at ${users.toLocaleString('en-US')} users (peak RSS then ${formatBytes(r.peakRss)})`,
    (err: Error) => `FAILED under a ${heapCapMb} MiB old-space cap: ${err.message.slice(0, 300)}`,
  );

  const env = { ...process.env, PGPASSWORD: ea.password.reveal() };
  const naive = await pipe2(
    [path.join(pgBin, 'pg_dump'), ['--host=127.0.0.1', `--port=${ea.port}`, `--username=${ea.superuser}`, '--no-password', '-Fc', 'makapix']],
    [path.join(pgBin, 'pg_restore'), ['--host=127.0.0.1', `--port=${eb.port}`, `--username=${eb.superuser}`, '--no-password', '--no-owner', '--exit-on-error', '--dbname=naive']],
    env,
  );

  const r = tool.report;
  log('');
  log(`sample-data-to-dev, ${PCT}% of ${users.toLocaleString('en-US')} users: ${r.totals.rows.toLocaleString('en-US')} rows, ${formatBytes(r.totals.bytes)}, EB users ${r.users.target} (${(r.users.share * 100).toFixed(1)}%)`);
  log(`  this tool (whole run, planning to commit) ${formatDuration(toolMedian).padStart(8)}${each(toolMs)}`);
  log(`  lower bound (bare COPY of the same rows)  ${formatDuration(lower).padStart(8)}${each(lowerMs)}`);
  log(`  tool / lower bound = ${(toolMedian / lower).toFixed(2)} (medians of ${runs}; target <= 1.5)`);
  log(`  naive (pg_dump -Fc | pg_restore, whole)  ${formatDuration(naive).padStart(8)}   naive / tool = ${(naive / toolMedian).toFixed(2)}`);
  log(`  peak RSS: ${formatBytes(smallRun.peakRss)} at ${small.toLocaleString('en-US')} users, ${formatBytes(peakRss)} at ${users.toLocaleString('en-US')} users (ratio ${(peakRss / smallRun.peakRss).toFixed(2)}; target < 300 MiB)`);
  log(`  live memory: ${capped}`);
} finally {
  await Promise.all([ea.stop(), eb.stop()]);
  rmSync(envDir, { recursive: true, force: true });
}
