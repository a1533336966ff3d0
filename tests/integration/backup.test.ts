// backup-prod, restore and the drill against real PostgreSQL clusters seeded with the project's
// Makapix-like data: EA (prod) and EB (dev) sandbox clusters on loopback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../../lib/core/paths.ts';
import { Ui } from '../../lib/core/ui.ts';
import type { EnvConfig } from '../../lib/core/config.ts';
import { backupDatabase, listBackups, sha256File, verifyChecksum } from '../../lib/tools/backup-store.ts';
import { checksumLine, manifestFileName, stemTime, type BackupManifest } from '../../lib/domain/backup-files.ts';
import { restoreInto } from '../../lib/jobs/restore.ts';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';

const ui = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });
let sb: TestSandbox;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an entry script the way cron does: by absolute path, no TTY, env files from the sandbox. */
function script(name: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<Run> & { pid: () => number | undefined } {
  const child = spawn(path.join(projectRoot, 'scripts', `${name}.ts`), args, { cwd: '/', env: { ...process.env, MAKAPIX_ENV_DIR: sb.envDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
  const done = new Promise<Run>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return Object.assign(done, { pid: () => child.pid });
}

const backupDir = (cfg: EnvConfig) => cfg.vars.BACKUP_DIR;

async function withClient<T>(config: pg.ClientConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Per-table row count and a checksum of the content (rows as text, sorted), the whole public schema. */
async function fingerprint(config: pg.ClientConfig): Promise<Record<string, string>> {
  return withClient(config, async (c) => {
    const { rows: tables } = await c.query<{ name: string }>("SELECT relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND relkind = 'r' ORDER BY 1");
    const out: Record<string, string> = {};
    for (const { name } of tables) {
      const t = pg.escapeIdentifier(name);
      const { rows } = await c.query<{ n: string; h: string | null }>(`SELECT count(*)::text AS n, md5(string_agg(x::text, '|' ORDER BY x::text)) AS h FROM ${t} x`);
      out[name] = `${rows[0]!.n}:${rows[0]!.h}`;
    }
    return out;
  });
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Holds an ACCESS EXCLUSIVE lock on users, so a pg_dump started now blocks at its table locks. */
async function blockDumps(config: pg.ClientConfig): Promise<{ dumpPid: () => Promise<number>; release: () => Promise<void> }> {
  const c = new pg.Client(config);
  await c.connect();
  await c.query('BEGIN');
  await c.query('LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
  return {
    dumpPid: () =>
      // Another session: inside the locking transaction pg_stat_activity would be a frozen snapshot.
      withClient(config, (watcher) =>
        waitFor('pg_dump to wait for its lock', async () => {
          const { rows } = await watcher.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'");
          return rows[0]?.pid;
        }),
      ),
    release: async () => {
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end();
    },
  };
}

const listing = async (dir: string) => (await readdir(dir)).sort();

test.before(async () => {
  sb = await startSandbox({ users: 300, seed: 7 });
});

test('a backup restores into an empty database with identical content; the manifest and checksum are right', async () => {
  const r = await backupDatabase(sb.prodCfg, { mode: 'direct', ui });
  assert.match(path.basename(r.file), /^makapix-\d{8}-\d{6}\.dump$/);
  assert.equal(await sha256File(r.file), { sha256: r.sha256, bytes: r.bytes });
  assert.is((await readFile(r.checksumFile, 'utf8')), checksumLine(r.sha256, path.basename(r.file)));
  const manifest = JSON.parse(await readFile(r.manifestFile, 'utf8')) as BackupManifest;
  assert.is(manifest.verified, true);
  assert.ok(manifest.database.sizeBytes > 0);
  assert.ok(manifest.tables.some((t) => t.name === 'users' && (t.rowEstimate ?? 0) > 0), 'row estimates missing');
  assert.match(await readFile(r.globalsFile, 'utf8'), /CREATE ROLE/);
  assert.not.ok((await listing(backupDir(sb.prodCfg))).some((n) => n.includes('.tmp-')), 'a temporary file was left');

  const live = sb.prodCfg.vars.DB_DATABASE;
  await withClient(sb.prod.connection(), (c) => c.query('CREATE DATABASE restored_custom'));
  await restoreInto({ kind: 'local', connection: sb.prod.connection() }, r.file, 'custom', 'restored_custom', ui);
  const [a, b] = await Promise.all([fingerprint(sb.prod.connection(live)), fingerprint(sb.prod.connection('restored_custom'))]);
  assert.ok(Object.keys(a).length >= 10, 'the sandbox should have many tables');
  assert.ok(Number(a.users!.split(':')[0]) > 0);
  assert.equal(b, a);
});

test('the plain .sql format restores with psql into an empty database with identical content', async () => {
  const run = await script('backup-prod', ['--direct', '--format', 'plain', '--json']);
  assert.is(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout) as { file: string };
  assert.match(r.file, /\.sql$/);
  await withClient(sb.prod.connection(), (c) => c.query('CREATE DATABASE restored_plain'));
  await restoreInto({ kind: 'local', connection: sb.prod.connection() }, r.file, 'plain', 'restored_plain', ui);
  assert.equal(await fingerprint(sb.prod.connection('restored_plain')), await fingerprint(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE)));
});

test('rotation with 9 older backups keeps the newest 7; foreign files, a live run\'s temp file and unverified dumps survive', async () => {
  const dir = path.join(sb.envDir, 'rotation');
  await mkdir(dir, { recursive: true });
  const seedBackup = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir: path.join(sb.envDir, 'rotation-source') });
  const manifest = JSON.parse(await readFile(seedBackup.manifestFile, 'utf8')) as BackupManifest;
  const stems: string[] = [];
  for (let day = 1; day <= 9; day++) {
    const stem = `makapix-202601${String(day).padStart(2, '0')}-030000`;
    stems.push(stem);
    await copyFile(seedBackup.file, path.join(dir, `${stem}.dump`));
    await writeFile(path.join(dir, `${stem}.dump.sha256`), checksumLine(seedBackup.sha256, `${stem}.dump`));
    await writeFile(path.join(dir, manifestFileName(stem)), JSON.stringify({ ...manifest, file: `${stem}.dump` }));
    await writeFile(path.join(dir, `${stem}.globals.sql`), '-- roles\n');
  }
  // pid 1 is alive: its temporary file is someone's run in progress. A dead writer's is removed.
  const foreign = ['notes.txt', 'makapix-20251231-000000.dump.bak', '.makapix-20261230-000000.dump.tmp-1-0a1b2c3d', 'makapix-20261231-235959.dump'];
  for (const f of foreign) await writeFile(path.join(dir, f), 'not a backup of ours\n');
  const stale = `.makapix-20261229-000000.dump.tmp-${spawnSync('true').pid}-0a1b2c3d`;
  await writeFile(path.join(dir, stale), 'left by a run that was killed\n');
  assert.is((await listBackups(dir)).length, 9);

  const run = await script('backup-prod', ['--direct', '--json', '--dir', dir]);
  assert.is(run.code, 0, run.stderr);
  const r = JSON.parse(run.stdout) as { file: string; rotated: string[] };
  assert.equal(r.rotated.sort(), stems.slice(0, 3).map((s) => `${s}.dump`));
  const left = (await listBackups(dir)).map((b) => b.stem);
  assert.equal(left, [path.basename(r.file, '.dump'), ...stems.slice(3).reverse()]);
  const names = await listing(dir);
  for (const f of foreign) assert.ok(names.includes(f), `${f} was deleted`);
  for (const s of stems.slice(0, 3)) assert.not.ok(names.some((n) => n.startsWith(s)), `${s} left files behind`);
  assert.not.ok(names.includes(stale), 'the dead run\'s temporary file is still there');
});

test('a pg_dump killed mid-run leaves no file under a final name, the previous backups intact, exit 1', async () => {
  const dir = backupDir(sb.prodCfg);
  const before = await listing(dir);
  const previous = await listBackups(dir);
  assert.ok(previous.length > 0);
  const block = await blockDumps(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE));
  try {
    const run = script('backup-prod', ['--direct']);
    const pid = await block.dumpPid();
    await withClient(sb.prod.connection(), (c) => c.query('SELECT pg_terminate_backend($1)', [pid]));
    const r = await run;
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /pg_dump \(database\) failed/);
  } finally {
    await block.release();
  }
  assert.equal(await listing(dir), before, 'the folder changed');
  for (const b of previous) await verifyChecksum(b.file);
});

test('two concurrent runs: one refuses with a clear message (exit 1), the other completes', async () => {
  const block = await blockDumps(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE));
  let first: Promise<Run> | undefined;
  try {
    first = script('backup-prod', ['--direct', '--json']);
    await block.dumpPid();
    const second = await script('backup-prod', ['--direct', '--json']);
    assert.is(second.code, 1);
    assert.match(second.stderr, /Another backup is running \(pid \d+/);
    assert.is(JSON.parse(second.stdout).ok, false);
  } finally {
    await block.release();
  }
  const r = await first!;
  assert.is(r.code, 0, r.stderr);
});

test('--ping sends start and success to a healthchecks-style URL, and fail when the backup fails', async () => {
  const hits: string[] = [];
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('OK'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/ping/abc`;
  try {
    const ok = await script('backup-prod', ['--direct', '--ping', base]);
    assert.is(ok.code, 0, ok.stderr);
    assert.equal(hits.splice(0), ['POST /ping/abc/start', 'POST /ping/abc']);
    const held = await open(path.join(backupDir(sb.prodCfg), '.makapix-backup.lock'), 'wx');
    await held.writeFile(JSON.stringify({ pid: process.pid, job: 'backup', since: 'now' }));
    await held.close();
    const failed = await script('backup-prod', ['--direct', '--ping', base]);
    await rm(path.join(backupDir(sb.prodCfg), '.makapix-backup.lock'));
    assert.is(failed.code, 1);
    assert.equal(hits, ['POST /ping/abc/start', 'POST /ping/abc/fail']);
  } finally {
    server.close();
  }
});

test('a corrupted backup (bytes flipped) fails its checksum, the restore and the drill', async () => {
  const dir = path.join(sb.envDir, 'corrupt');
  const good = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir });
  const drillOk = await script('restore', ['--env', 'prod', '--drill', '--direct', '--dir', dir, '--json']);
  assert.is(drillOk.code, 0, drillOk.stderr);
  const report = JSON.parse(drillOk.stdout) as { ok: boolean; tables: { table: string; restored: number; live: number }[] };
  assert.ok(report.ok);
  assert.ok(report.tables.find((t) => t.table === 'public.users')!.restored > 0);

  const h = await open(good.file, 'r+');
  const middle = Math.floor(good.bytes / 2);
  const buf = Buffer.alloc(16);
  await h.read(buf, 0, 16, middle);
  for (let i = 0; i < 16; i++) buf[i] = buf[i]! ^ 0xff;
  await h.write(buf, 0, 16, middle);
  await h.close();
  const err = await verifyChecksum(good.file).then(() => undefined, (e: Error) => e);
  assert.match(err?.message ?? '', /is damaged/);
  const drill = await script('restore', ['--env', 'prod', '--drill', '--direct', '--dir', dir, '--file', good.file]);
  assert.is(drill.code, 1);
  assert.match(drill.stderr, /is damaged/);
  const restore = await script('restore', ['--env', 'dev', '--direct', '--file', good.file]);
  assert.is(restore.code, 1);
  const { rows } = await withClient(sb.prod.connection(), (c) => c.query("SELECT datname FROM pg_database WHERE datname LIKE '%drill%' OR datname LIKE '%restore\\_%'"));
  assert.equal(rows, [], 'a scratch database was left behind');
});

test('restoring into production without the typed confirmation is refused (exit 3), and so is --yes alone; --dry-run changes nothing', async () => {
  const [latest] = await listBackups(backupDir(sb.prodCfg));
  const before = await fingerprint(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE));
  const noTty = await script('restore', ['--env', 'prod', '--direct', '--file', latest!.file]);
  assert.is(noTty.code, 3, noTty.stderr);
  assert.match(noTty.stderr, /Not confirmed/);
  const yesAlone = await script('restore', ['--env', 'prod', '--direct', '--yes', '--file', latest!.file]);
  assert.is(yesAlone.code, 3, yesAlone.stderr);
  assert.match(yesAlone.stderr, /--yes alone/);
  const dryRun = await script('restore', ['--env', 'prod', '--direct', '--dry-run', '--file', latest!.file]);
  assert.is(dryRun.code, 0, dryRun.stderr);
  assert.match(dryRun.stdout, /Would restore .* into prod's makapix:\n  1\. back up the current production database \(pinned\)/);
  assert.equal(await fingerprint(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE)), before);
  assert.not.ok((await readdir(backupDir(sb.prodCfg))).includes('pinned'), 'a refused restore took a backup');
});

test('restore into dev swaps in the backup; into prod (both flags) it first takes a pinned backup', async () => {
  const [latest] = await listBackups(backupDir(sb.prodCfg));
  const prodPrint = await fingerprint(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE));
  const unasked = await script('restore', ['--env', 'dev', '--direct', '--file', latest!.file]);
  assert.is(unasked.code, 3, 'production data went into dev without a confirmation');
  assert.match(unasked.stderr, /is a backup of prod; restore its unanonymised data into dev/);
  const dev = await script('restore', ['--env', 'dev', '--direct', '--file', latest!.file, '--yes', '--json']);
  assert.is(dev.code, 0, dev.stderr);
  assert.equal(await fingerprint(sb.dev.connection(sb.devCfg.vars.DB_DATABASE)), prodPrint, 'dev does not hold the backup');

  await withClient(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE), (c) => c.query('CREATE TABLE made_after_backup (id int)'));
  const prod = await script('restore', ['--env', 'prod', '--direct', '--file', latest!.file, '--yes', '--i-know-this-is-production', '--json']);
  assert.is(prod.code, 0, prod.stderr);
  const r = JSON.parse(prod.stdout) as { preRestoreBackup: { file: string; pinned: boolean } };
  assert.ok(r.preRestoreBackup.pinned);
  assert.is(path.dirname(r.preRestoreBackup.file), path.join(backupDir(sb.prodCfg), 'pinned'));
  assert.ok(stemTime(path.basename(r.preRestoreBackup.file, '.dump')));
  assert.equal(await fingerprint(sb.prod.connection(sb.prodCfg.vars.DB_DATABASE)), prodPrint, 'the table made after the backup survived');
});

test.run();
