import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runEntry } from '../harness/server.ts';
import { mkdtempSync, chmodSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { onExit } from '../../dev/cleanup.ts';
import { asClusterUser, pgBin } from '../../dev/cluster.ts';
import { connectionFor } from '../../lib/tools/database.ts';
import { loadEnvConfig } from '../../lib/core/config.ts';
import { createMakapixSchema, foreignKeyViolations, sandboxSchemaRevision } from '../../lib/tools/schema.ts';
import { foreignKeysOf, readCatalog } from '../../lib/tools/catalog.ts';
import { hasUpscaledVariant, seedDatabase, vaultFilePath, vaultVariantPath } from '../../dev/seed.ts';
import { sandboxDown, sandboxPaths, sandboxStatus, sandboxUp } from '../../dev/sandbox.ts';
import { SafetyError } from '../../lib/core/errors.ts';
import { Ui } from '../../lib/core/ui.ts';
import { describeDemo, runDemo } from '../../dev/demo.ts';

const USERS = 150;
const SEED = 11;
const quiet = new Ui({ tty: false, verbose: false, stream: new Writable({ write: (_c, _e, cb) => cb() }) });

let sb: TestSandbox;
const clients: pg.Client[] = [];
async function open(config: pg.ClientConfig): Promise<pg.Client> {
  const c = new pg.Client(config);
  await c.connect();
  clients.push(c);
  return c;
}

test.before(async () => {
  sb = await startSandbox({ users: USERS, seed: SEED, vault: true });
});
test.after(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await sb?.stop();
});

test('both environments have the Makapix schema and an alembic_version row; only EA holds data', async () => {
  const ea = await open(connectionFor(sb.prodCfg));
  const eb = await open(connectionFor(sb.devCfg));
  for (const c of [ea, eb]) {
    const { rows } = await c.query<{ n: string }>("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'");
    assert.ok(Number(rows[0]!.n) >= 20, `${rows[0]!.n} tables`);
    assert.equal((await c.query('SELECT version_num FROM alembic_version')).rows, [{ version_num: sandboxSchemaRevision }]);
  }
  assert.is(Number((await ea.query('SELECT count(*) AS n FROM users')).rows[0].n), USERS);
  assert.is(Number((await eb.query('SELECT count(*) AS n FROM users')).rows[0].n), 0);
  assert.is(sb.seedReport.rows.users, USERS);
  assert.ok(sb.seedReport.databaseBytes > 1_000_000);
  assert.is(sb.prodCfg.vars.DB_PUBLISHED_PORT, sb.prod.port);
  assert.is(sb.devCfg.vars.DB_PUBLISHED_PORT, sb.dev.port);
});

test('every foreign key holds; the users<->posts cycle, the comment self-reference and nullable FKs are there', async () => {
  const ea = await open(connectionFor(sb.prodCfg));
  assert.equal(await foreignKeyViolations(ea), []);
  // Orphans made with the triggers off are found, per constraint, and a NULL reference is none.
  await ea.query('BEGIN');
  await ea.query('SET LOCAL session_replication_role = replica');
  await ea.query('UPDATE view_events SET player_id = gen_random_uuid() WHERE id IN (SELECT id FROM view_events ORDER BY id LIMIT 3)');
  await ea.query('UPDATE view_events SET viewer_user_id = NULL WHERE id IN (SELECT id FROM view_events ORDER BY id LIMIT 5)');
  await ea.query('UPDATE comments SET parent_id = gen_random_uuid() WHERE id = (SELECT id FROM comments WHERE parent_id IS NOT NULL LIMIT 1)');
  const broken = await foreignKeyViolations(ea);
  await ea.query('ROLLBACK');
  assert.equal(broken.map((b) => [b.table, b.rows]).sort(), [['comments', 1], ['view_events', 3]]);
  assert.match(broken.find((b) => b.table === 'view_events')!.constraint, /player_id/);
  const fks = foreignKeysOf(await readCatalog(ea));
  const has = (table: string, column: string, ref: string) => fks.some((f) => f.table === table && f.columns.join() === column && f.refTable === ref);
  assert.ok(has('users', 'avatar_source_post_id', 'posts') && has('posts', 'owner_id', 'users'), 'users <-> posts cycle');
  assert.ok(has('comments', 'parent_id', 'comments'), 'comments self-reference');
  assert.ok(has('view_events', 'player_id', 'players') && has('players', 'current_post_id', 'posts'));
  const q = async (sql: string) => Number((await ea.query(sql)).rows[0].n);
  const avatars = await q('SELECT count(*) AS n FROM users WHERE avatar_source_post_id IS NOT NULL');
  assert.ok(avatars > 0 && avatars < USERS * 0.25, `${avatars} avatars`);
  assert.is(await q('SELECT count(*) AS n FROM users u JOIN posts p ON p.id = u.avatar_source_post_id WHERE p.owner_id <> u.id'), 0, 'avatars are the users own posts');
  assert.ok((await q('SELECT count(*) AS n FROM comments WHERE author_id IS NULL')) > 0, 'anonymous comments');
  assert.ok((await q('SELECT count(*) AS n FROM comments WHERE depth = 2')) > 0, 'replies to replies');
  assert.is(await q('SELECT count(*) AS n FROM comments c JOIN comments p ON p.id = c.parent_id WHERE c.post_id <> p.post_id OR c.depth <> p.depth + 1'), 0);
  assert.ok((await q('SELECT count(*) AS n FROM reactions WHERE user_id IS NULL')) > 0, 'anonymous reactions');
  assert.ok((await q('SELECT count(*) AS n FROM users WHERE banned_until IS NOT NULL')) > 0, 'banned users');
  assert.ok((await q("SELECT count(*) AS n FROM posts WHERE storage_shard ~ '^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{2}$'")) > 0, 'old three-level shards');
  assert.ok((await q("SELECT count(*) AS n FROM posts WHERE storage_shard ~ '^[0-9a-f]{2}/[0-9a-f]{2}$'")) > 0, 'two-level shards');
  const types = (await ea.query("SELECT table_name || '.' || column_name AS c, data_type AS t FROM information_schema.columns WHERE table_schema = 'public'")).rows as { c: string; t: string }[];
  const typeOf = (c: string) => types.find((x) => x.c === c)?.t;
  assert.is(typeOf('users.roles'), 'json');
  assert.is(typeOf('auth_identities.provider_metadata'), 'jsonb');
  assert.is(typeOf('posts.hashtags'), 'ARRAY');
  assert.is(typeOf('comments.author_ip'), 'inet');
  const partial = (await ea.query("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_reactions_post_user_emoji'")).rows[0].indexdef as string;
  assert.match(partial, 'WHERE (user_id IS NOT NULL)');
});

test('sequences continue after the seeded ids, and api_worker may write rows but not change the schema', async () => {
  const worker = await open(connectionFor(sb.prodCfg, 'api_worker'));
  await worker.query('BEGIN');
  try {
    const { rows } = await worker.query("INSERT INTO users (user_key, handle, email_normalized) VALUES (gen_random_uuid(), 'fresh_handle', 'fresh@example.com') RETURNING id");
    assert.is(rows[0].id, USERS + 1);
    const { rows: files } = await worker.query("INSERT INTO post_files (post_id, format, width, height, file_bytes) VALUES (1, 'bmp', 1, 1, 1) ON CONFLICT DO NOTHING RETURNING id");
    if (files.length) assert.ok(files[0].id > sb.seedReport.rows.post_files!);
  } finally {
    await worker.query('ROLLBACK');
  }
  const refused = await worker.query('CREATE TABLE not_allowed (x int)').then(() => false, () => true);
  assert.ok(refused, 'api_worker created a table');
});

async function tableChecksums(client: pg.Client): Promise<Record<string, string>> {
  const { rows } = await client.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
  const out: Record<string, string> = {};
  for (const { t } of rows) {
    const q = `SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) AS h FROM ${pg.escapeIdentifier(t)} r`;
    out[t] = (await client.query<{ h: string }>(q)).rows[0]!.h;
  }
  return out;
}

async function seededCopy(name: string, seed: number): Promise<pg.Client> {
  const admin = await open(sb.prod.connection('postgres'));
  await admin.query(`CREATE DATABASE ${name}`);
  const c = await open(sb.prod.connection(name));
  await createMakapixSchema(c);
  await seedDatabase(c, { users: USERS, seed, verify: false });
  return c;
}

test('the seed is deterministic: same seed, identical tables; another seed, different tables', async () => {
  const original = await tableChecksums(await open(connectionFor(sb.prodCfg)));
  const same = await tableChecksums(await seededCopy('same_seed', SEED));
  const other = await tableChecksums(await seededCopy('other_seed', SEED + 1));
  assert.equal(same, original);
  for (const table of ['users', 'auth_identities', 'posts', 'post_files', 'comments', 'reactions', 'follows', 'view_events']) assert.is.not(other[table], original[table], table);
  assert.is(other.licenses, original.licenses, 'lookup tables do not depend on the seed');
});

test('the vault holds exactly one file per post_files row (right size), the variants and the orphans', async () => {
  const ea = await open(connectionFor(sb.prodCfg));
  const expected = new Map<string, number | undefined>();
  const { rows } = await ea.query<{ id: number; storage_shard: string; storage_key: string; format: string; file_bytes: number }>(
    'SELECT p.id, p.storage_shard, p.storage_key, f.format, f.file_bytes FROM post_files f JOIN posts p ON p.id = f.post_id',
  );
  let variants = 0;
  for (const r of rows) {
    expected.set(vaultFilePath(r.storage_shard, r.storage_key, r.format), r.file_bytes);
    if (r.format === 'png' && hasUpscaledVariant(SEED, r.id)) {
      expected.set(vaultVariantPath(r.storage_shard, r.storage_key), undefined);
      variants++;
    }
  }
  assert.ok(variants > 0, 'some variants');
  const report = sb.vaultReport!;
  assert.is(report.variants, variants);
  assert.is(report.orphans, 5);
  const keys = new Set(((await ea.query('SELECT storage_key::text AS k FROM posts')).rows as { k: string }[]).map((r) => r.k));
  for (const orphan of report.orphanPaths) {
    assert.not.ok(keys.has(path.basename(orphan, '.png')), `orphan ${orphan} belongs to a post`);
    expected.set(orphan, undefined);
  }
  const found = (await readdir(sb.vaultProd, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.relative(sb.vaultProd, path.join(e.parentPath ?? e.path, e.name)));
  assert.equal(found.sort(), [...expected.keys()].sort());
  assert.is(report.files, expected.size);
  for (const [rel, size] of expected) if (size !== undefined) assert.is((await stat(path.join(sb.vaultProd, rel))).size, size, rel);
  assert.equal(await readdir(sb.vaultDev), []);
});

test('sandbox up/status/down: reuses a running sandbox, restarts a stopped cluster on another port (never a squatter), refuses foreign folders', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'makapix-sandbox-life-'));
  chmodSync(dir, 0o755);
  const paths = sandboxPaths(dir);
  onExit(() => {
    for (const env of ['prod', 'dev'] as const) {
      const argv = [...asClusterUser(), path.join(pgBin, 'pg_ctl'), '-D', paths.cluster(env), '-m', 'immediate', '-w', 'stop'];
      spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const first = await sandboxUp({ users: 30, seed: 5, ui: quiet, dir });
  assert.ok(first.up && first.reused === false);
  assert.ok(first.vault!.prod.files > 0);
  assert.ok(existsSync(paths.activate));
  const prodCfg = loadEnvConfig('prod', path.join(paths.envDir, '.env.prod'));
  const devCfg = loadEnvConfig('dev', path.join(paths.envDir, '.env.dev'));
  assert.is(prodCfg.vars.DB_PUBLISHED_PORT, first.clusters!.prod.port);
  assert.is(devCfg.vars.ENVIRONMENT, 'development');
  assert.not.ok(prodCfg.vars.DB_ADMIN_PASSWORD.equals(devCfg.vars.DB_ADMIN_PASSWORD));

  const again = await sandboxUp({ users: 30, seed: 5, ui: quiet, dir });
  assert.ok(again.reused && again.up);
  assert.is(again.clusters!.prod.port, first.clusters!.prod.port);

  // make demo: the sandbox first, then each step in order with the sandbox's configs.
  const seen: string[] = [];
  const demo = await runDemo({
    users: 30,
    seed: 5,
    ui: quiet,
    dir,
    steps: [
      { name: 'one', description: 'reads EB', run: async (ctx) => [`EB on ${ctx.config('dev').vars.DB_PUBLISHED_PORT}`, String(seen.push('one'))] },
      { name: 'two', description: 'runs second', run: async () => [String(seen.push('two'))] },
    ],
  });
  assert.equal(seen, ['one', 'two']);
  assert.equal(demo.steps.map((s) => s.name), ['sandbox', 'one', 'two']);
  assert.is(demo.steps[1]!.lines[0], `EB on ${first.clusters!.dev.port}`);
  assert.match(describeDemo(demo), `. ${paths.activate}`);

  // EB stops; a stranger takes its port. The next up must start EB elsewhere, not attach.
  const oldPort = first.clusters!.dev.port;
  const stop = [...asClusterUser(), path.join(pgBin, 'pg_ctl'), '-D', paths.cluster('dev'), '-m', 'fast', '-w', 'stop'];
  spawnSync(stop[0]!, stop.slice(1), { stdio: 'ignore' });
  assert.is((await sandboxStatus(dir)).clusters!.dev.running, false);
  const squatter: Server = createServer((s) => s.destroy());
  await new Promise<void>((resolve) => squatter.listen(oldPort, '127.0.0.1', resolve));
  try {
    const resumed = await sandboxUp({ users: 30, seed: 5, ui: quiet, dir });
    assert.ok(resumed.up);
    assert.is.not(resumed.clusters!.dev.port, oldPort);
    assert.is(loadEnvConfig('dev', path.join(paths.envDir, '.env.dev')).vars.DB_PUBLISHED_PORT, resumed.clusters!.dev.port);
    const eb = new pg.Client(connectionFor(loadEnvConfig('dev', path.join(paths.envDir, '.env.dev'))));
    await eb.connect();
    try {
      assert.is((await eb.query('SHOW data_directory')).rows[0].data_directory, paths.cluster('dev'));
    } finally {
      await eb.end();
    }
  } finally {
    await new Promise((resolve) => squatter.close(resolve));
  }

  // The entry script reads the same state (MAKAPIX_SANDBOX_DIR) and prints JSON.
  const cli = runEntry('sandbox.ts', ['status', '--json'], { env: { ...process.env, MAKAPIX_SANDBOX_DIR: dir } });
  assert.is(cli.status, 0, cli.stderr);
  assert.is(JSON.parse(cli.stdout).clusters.prod.port, first.clusters!.prod.port);
  const bad = runEntry('sandbox.ts', ['sideways'], { env: { ...process.env, MAKAPIX_SANDBOX_DIR: dir } });
  assert.is(bad.status, 2);

  assert.equal(await sandboxDown({ ui: quiet, dir }), { removed: true, dir });
  assert.not.ok(existsSync(dir));
  assert.is((await sandboxStatus(dir)).up, false);

  const foreign = mkdtempSync(path.join(tmpdir(), 'not-a-sandbox-'));
  onExit(() => rmSync(foreign, { recursive: true, force: true }));
  writeFileSync(path.join(foreign, 'precious.txt'), 'keep me');
  await sandboxDown({ ui: quiet, dir: foreign }).then(
    () => assert.unreachable('down deleted a folder that is not a sandbox'),
    (e: unknown) => assert.instance(e, SafetyError),
  );
  assert.is(readFileSync(path.join(foreign, 'precious.txt'), 'utf8'), 'keep me');
});

test.run();
