// sample-data-to-dev against two real PostgreSQL clusters: EA seeded by the project's generator,
// EB with the same schema. Every item of issue 5's "Tests" paragraph is one test below.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import bcrypt from 'bcryptjs';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { foreignKeysOf, readCatalog } from '../../lib/tools/catalog.ts';
import { freePort } from '../../dev/ports.ts';
import { pgBin, type Cluster } from '../../dev/cluster.ts';
import { loadEnvConfig } from '../../lib/core/config.ts';
import { Ui } from '../../lib/core/ui.ts';
import { sampleDataToDev, type SampleDataReport } from '../../lib/jobs/sample-data.ts';
import sandboxSampling, { sandboxSamplingConfigFile } from '../../dev/sandbox-sampling.ts';
import { fakeEmail } from '../../lib/domain/anonymize.ts';
import { projectRoot } from '../../lib/core/paths.ts';

const USERS = 2000;
const PCT = 10;
const DEV_PASSWORD = 'dev-login-password-for-tests';
const script = path.join(projectRoot, 'scripts/sample-data-to-dev.ts');

interface World {
  sandbox: TestSandbox;
  ea: Cluster;
  eb: Cluster;
  envDir: string;
  eaUrl: string;
  ebUrl: string;
}
let w: World;

const client = async (c: Cluster, db: string) => {
  const cl = new pg.Client(c.connection(db));
  await cl.connect();
  return cl;
};

async function withClient<T>(c: Cluster, db: string, fn: (cl: pg.Client) => Promise<T>): Promise<T> {
  const cl = await client(c, db);
  try {
    return await fn(cl);
  } finally {
    await cl.end();
  }
}

/** A copy of the sandbox's env files into dir, with some variables of one of them replaced or added. */
function copyEnv(from: string, dir: string, env: 'prod' | 'dev', vars: Record<string, string>): void {
  for (const e of ['prod', 'dev'] as const) {
    let text = readFileSync(path.join(from, `.env.${e}`), 'utf8');
    if (e === env) {
      for (const [key, value] of Object.entries(vars)) {
        const line = new RegExp(`^${key}=.*$`, 'm');
        text = line.test(text) ? text.replace(line, `${key}=${value}`) : `${text.trimEnd()}\n${key}=${value}\n`;
      }
    }
    writeFileSync(path.join(dir, `.env.${e}`), text, { mode: 0o600 });
  }
}

/** Runs the real entry (exit code, stdout, stderr), as cron or make would, with the sandbox schema's configuration. */
function run(args: string[], envDir = w.envDir, timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(script, [...args, '--config', sandboxSamplingConfigFile], { env: { ...process.env, MAKAPIX_ENV_DIR: envDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A checksum of every row of every table: "unchanged byte for byte". */
async function checksum(c: Cluster, db: string): Promise<string> {
  return withClient(c, db, async (cl) => {
    const { rows: tables } = await cl.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    const parts: string[] = [];
    for (const { t } of tables) {
      const { rows } = await cl.query<{ h: string }>(`SELECT md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM ${pg.escapeIdentifier(t)} x`);
      parts.push(`${t}:${rows[0]!.h}`);
    }
    return parts.join(' ');
  });
}

const ids = async (cl: pg.Client, sql: string): Promise<string[]> => (await cl.query<{ id: string }>(sql)).rows.map((r) => String(r.id));
const count = async (cl: pg.Client, sql: string, params: unknown[] = []): Promise<number> => Number((await cl.query<{ n: string }>(sql, params)).rows[0]!.n);

test.before(async () => {
  const sandbox = await startSandbox({ users: USERS, seed: 7 });
  // The test's own env folder: the sandbox's files, with a dev login password (its rule is tested).
  const envDir = mkdtempSync(path.join(tmpdir(), 'makapix-sample-env-'));
  copyEnv(sandbox.envDir, envDir, 'dev', { DEV_LOGIN_PASSWORD: DEV_PASSWORD });
  const url = (c: Cluster, db: string) => `postgresql://${c.superuser}:${c.password.reveal()}@127.0.0.1:${c.port}/${db}`;
  w = { sandbox, ea: sandbox.prod, eb: sandbox.dev, envDir, eaUrl: url(sandbox.prod, 'makapix'), ebUrl: url(sandbox.dev, 'makapix_dev') };
});

test.after(async () => {
  await w?.sandbox.stop();
});

test('bad input: PCT=0, 150, abc and an unreachable EA stop with a clear message', async () => {
  for (const pct of ['0', '150', 'abc']) {
    const r = await run(['--pct', pct, '--yes']);
    assert.is(r.code, 2, `--pct ${pct}: ${r.stderr}`);
    assert.match(r.stderr, /--pct must be a percentage/);
  }
  const unknown = await run(['--pct', '10', '--users', '99999999', '--yes']);
  assert.is(unknown.code, 2, unknown.stderr);
  assert.match(unknown.stderr, /--users names 99999999, not in EA's users/);
  const port = await freePort();
  const r = await run(['--pct', '10', '--yes', '--source-url', `postgresql://owner@127.0.0.1:${port}/makapix`]);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port}`));
});

test('safety: a database on EA\'s cluster is refused whatever its name, even when .env.dev names it (exit 3, nothing written)', async () => {
  await withClient(w.ea, 'postgres', (cl) => cl.query('CREATE DATABASE makapix_dev'));
  try {
    const onEa = mkdtempSync(path.join(tmpdir(), 'makapix-sample-on-ea-'));
    const eaVars = w.sandbox.prodCfg.vars;
    copyEnv(w.envDir, onEa, 'dev', { DB_PUBLISHED_HOST: eaVars.DB_PUBLISHED_HOST, DB_PUBLISHED_PORT: String(eaVars.DB_PUBLISHED_PORT), DB_ADMIN_USER: eaVars.DB_ADMIN_USER, DB_ADMIN_PASSWORD: eaVars.DB_ADMIN_PASSWORD.reveal() });
    const eaBefore = await checksum(w.ea, 'makapix');
    const r = await run(['--pct', '10', '--yes'], onEa);
    assert.is(r.code, 3, r.stderr);
    assert.match(r.stderr, /EA's PostgreSQL cluster/);
    assert.is(await withClient(w.ea, 'makapix_dev', (cl) => count(cl, "SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'public'")), 0, 'a table was written on EA\'s cluster');
    assert.is(await checksum(w.ea, 'makapix'), eaBefore, 'EA changed');
    // The same through --target-url.
    const byUrl = await run(['--pct', '10', '--yes', '--target-url', w.eaUrl.replace('/makapix', '/makapix_dev')]);
    assert.is(byUrl.code, 3, byUrl.stderr);
  } finally {
    await withClient(w.ea, 'postgres', (cl) => cl.query('DROP DATABASE makapix_dev WITH (FORCE)'));
  }
});

test('safety: the same database, a production target and another database are refused without a single write', async () => {
  const eaBefore = await checksum(w.ea, 'makapix');
  const ebBefore = await checksum(w.eb, 'makapix_dev');
  // The target is EA itself, reached by another host string (localhost, not 127.0.0.1).
  const same = await run(['--pct', '10', '--yes', '--target-url', w.eaUrl.replace('127.0.0.1', 'localhost')]);
  assert.is(same.code, 3, same.stderr);
  assert.match(same.stderr, /is the source database itself/);
  // .env.dev that declares production.
  const prodDir = mkdtempSync(path.join(tmpdir(), 'makapix-sample-prodenv-'));
  copyEnv(w.envDir, prodDir, 'dev', { ENVIRONMENT: 'production' });
  const prod = await run(['--pct', '10', '--yes'], prodDir);
  assert.is(prod.code, 3, prod.stderr);
  assert.match(prod.stderr, /ENVIRONMENT=production/);
  // Another database of EB's cluster is not the one .env.dev names.
  const other = await run(['--pct', '10', '--yes', '--target-url', w.ebUrl.replace('/makapix_dev', '/postgres')]);
  assert.is(other.code, 3, other.stderr);
  assert.match(other.stderr, /not the EB database named in/);
  // Without --yes and without a terminal nobody can confirm: refused, nothing written.
  const unconfirmed = await run(['--pct', '10']);
  assert.is(unconfirmed.code, 3, unconfirmed.stderr);
  assert.is(await checksum(w.ea, 'makapix'), eaBefore, 'EA changed');
  assert.is(await checksum(w.eb, 'makapix_dev'), ebBefore, 'EB changed');
});

test('dry run: the plan and its counts, nothing written', async () => {
  const ebBefore = await checksum(w.eb, 'makapix_dev');
  const r = await run(['--pct', String(PCT), '--seed', '1', '--dry-run', '--json']);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as SampleDataReport;
  assert.ok(report.dryRun);
  const comments = report.tables.find((t) => t.table === 'comments')!;
  assert.ok(comments.rows > 0 && typeof comments.dropped === 'number');
  assert.is(await checksum(w.eb, 'makapix_dev'), ebBefore);
});

let report: SampleDataReport;

test('integrity: a 10% sample loads whole; every foreign key re-validates; the share stays near PCT', async () => {
  const eaBefore = await checksum(w.ea, 'makapix');
  const banned = "(banned_until IS NOT NULL AND banned_until > now()) OR deactivated_at IS NOT NULL";
  // A named user who is banned: --users wins over --exclude-banned, which keeps every other one out.
  const named = await withClient(w.ea, 'makapix', (ea) => ids(ea, `SELECT id FROM users WHERE ${banned} ORDER BY id LIMIT 1`));
  assert.is(named.length, 1, 'the seed has no banned or deactivated user');
  const r = await run(['--pct', String(PCT), '--seed', '1', '--users', named[0]!, '--exclude-banned', '--yes', '--json']);
  assert.is(r.code, 0, r.stderr);
  report = JSON.parse(r.stdout) as SampleDataReport;
  await withClient(w.eb, 'makapix_dev', async (eb) => {
    assert.equal(await ids(eb, `SELECT id FROM users WHERE ${banned}`), named);
  });
  assert.is(await checksum(w.ea, 'makapix'), eaBefore, 'EA changed');
  // PCT % ± 2.5 points on 2,000 users (3 standard deviations), and never above 1.2 × PCT.
  assert.ok(report.users.share >= (PCT - 2.5) / 100 && report.users.share <= (1.2 * PCT) / 100, `share ${report.users.share}`);
  await withClient(w.eb, 'makapix_dev', async (eb) => {
    assert.is(await count(eb, 'SELECT count(*) AS n FROM users'), report.users.target);
    // Re-validate every foreign key: adding a copy of a constraint checks every row.
    await eb.query('BEGIN');
    for (const fk of foreignKeysOf(await readCatalog(eb))) {
      const { rows } = await eb.query<{ def: string }>('SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conname = $1', [fk.name]);
      await eb.query(`ALTER TABLE ${fk.table} ADD CONSTRAINT ${pg.escapeIdentifier(`${fk.name}_recheck`)} ${rows[0]!.def}`);
    }
    await eb.query('ROLLBACK');
    for (const t of ['posts', 'comments', 'reactions', 'post_files', 'follows', 'view_events']) assert.ok((await count(eb, `SELECT count(*) AS n FROM ${t}`)) > 0, `${t} is empty`);
    // Sequences are past every loaded id.
    assert.ok((await count(eb, "SELECT (nextval('posts_id_seq') > (SELECT max(id) FROM posts))::int AS n")) === 1);
  });
});

test('integrity: all posts of sampled users, whole threads and reactions on them, follows within the set, the users <-> posts cycle', async () => {
  const eb = await client(w.eb, 'makapix_dev');
  const ea = await client(w.ea, 'makapix');
  try {
    const users = await ids(eb, 'SELECT id FROM users');
    const posts = await ids(eb, 'SELECT id FROM posts');
    assert.is(await count(ea, 'SELECT count(*) AS n FROM posts WHERE owner_id = ANY($1::int[])', [users]), posts.length, 'posts of sampled users');
    assert.is(await count(ea, 'SELECT count(*) AS n FROM comments WHERE post_id = ANY($1::int[])', [posts]), await count(eb, 'SELECT count(*) AS n FROM comments'), 'threads on sampled posts');
    assert.is(await count(ea, 'SELECT count(*) AS n FROM reactions WHERE post_id = ANY($1::int[])', [posts]), await count(eb, 'SELECT count(*) AS n FROM reactions'), 'reactions on sampled posts');
    assert.ok((report.tables.find((t) => t.table === 'comments')!.repointed['comments.author_id'] ?? 0) > 0, 'authors outside the sample were re-pointed');
    // Reply chains: every reply keeps the parent it has in EA.
    const eaParents = new Map((await ea.query<{ id: string; p: string | null }>('SELECT id, parent_id AS p FROM comments WHERE post_id = ANY($1::int[])', [posts])).rows.map((r) => [r.id, r.p]));
    const ebRows = (await eb.query<{ id: string; p: string | null }>('SELECT id, parent_id AS p FROM comments')).rows;
    assert.ok(ebRows.some((r) => r.p !== null), 'no replies at all');
    for (const r of ebRows) assert.is(r.p, eaParents.get(r.id), `comment ${r.id} lost its parent`);
    // Follows: exactly EA's follows with both sides in the set.
    assert.is(await count(eb, 'SELECT count(*) AS n FROM follows'), await count(ea, 'SELECT count(*) AS n FROM follows WHERE follower_id = ANY($1::int[]) AND following_id = ANY($1::int[])', [users]));
    // The cycle: avatars pointing at sampled posts survive.
    const avatars = await count(ea, 'SELECT count(*) AS n FROM users WHERE id = ANY($1::int[]) AND avatar_source_post_id = ANY($2::int[])', [users, posts]);
    assert.ok(avatars > 0, 'the seed has no avatars to test the cycle with');
    assert.is(await count(eb, 'SELECT count(*) AS n FROM users WHERE avatar_source_post_id IS NOT NULL'), avatars);
    // Arrays of post ids without a foreign key keep exactly the sampled ones, in order.
    const postSet = new Set(posts);
    const eaLists = new Map((await ea.query<{ id: number; p: number[] }>('SELECT id, post_ids AS p FROM playlists')).rows.map((r) => [r.id, r.p]));
    const ebLists = (await eb.query<{ id: number; p: number[] }>('SELECT id, post_ids AS p FROM playlists')).rows;
    assert.ok(ebLists.length > 0, 'no playlists sampled');
    for (const l of ebLists) assert.equal(l.p, eaLists.get(l.id)!.filter((id) => postSet.has(String(id))), `playlist ${l.id}`);
    // Unique indexes held through re-pointing (the load would have failed otherwise), lookups whole.
    assert.is(await count(eb, 'SELECT count(*) AS n FROM licenses'), await count(ea, 'SELECT count(*) AS n FROM licenses'));
    assert.is(await count(eb, 'SELECT count(*) AS n FROM refresh_tokens'), 0);
  } finally {
    await Promise.all([eb.end(), ea.end()]);
  }
});

test('privacy: no EA e-mail, IP, token, password hash, OAuth id or device secret appears in a dump of EB', async () => {
  const secrets = await withClient(w.ea, 'makapix', async (ea) => {
    const queries = [
      'SELECT email AS v FROM users UNION SELECT email_normalized FROM users',
      'SELECT email FROM auth_identities UNION SELECT provider_user_id FROM auth_identities UNION SELECT secret_hash FROM auth_identities',
      "SELECT host(author_ip) FROM comments UNION SELECT user_ip FROM reactions UNION SELECT ip_address FROM audit_logs UNION SELECT created_ip FROM refresh_tokens",
      'SELECT token_hash FROM refresh_tokens UNION SELECT token_hash FROM email_verification_tokens UNION SELECT token_hash FROM password_reset_tokens UNION SELECT email FROM email_verification_tokens',
      'SELECT player_key::text FROM players UNION SELECT registration_code FROM players UNION SELECT cert_serial_number FROM players',
      'SELECT viewer_ip_hash FROM view_events UNION SELECT user_agent_hash FROM view_events',
    ];
    const out = new Set<string>();
    for (const sql of queries) for (const r of (await ea.query<{ v: string | null }>(sql)).rows) if (r.v) out.add(r.v);
    const pem = await ea.query<{ v: string }>('SELECT cert_private_key_pem AS v FROM players WHERE cert_private_key_pem IS NOT NULL');
    for (const r of pem.rows) for (const line of r.v.split('\n')) if (line.length > 20 && !line.startsWith('-----')) out.add(line);
    return out;
  });
  assert.ok(secrets.size > 1000, `only ${secrets.size} secrets collected`);
  const dump = spawnSync(path.join(pgBin, 'pg_dump'), ['--host=127.0.0.1', `--port=${w.eb.port}`, `--username=${w.eb.superuser}`, '--no-password', 'makapix_dev'], {
    env: { ...process.env, PGPASSWORD: w.eb.password.reveal() },
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
  });
  assert.is(dump.status, 0, dump.stderr);
  const text = dump.stdout;
  // Every token of the dump against the set, and a plain substring scan for a sample of secrets.
  const leaked = text.split(/[\t\n ,"{}()[\]\\]+/).filter((tok) => secrets.has(tok));
  assert.equal([...new Set(leaked)].slice(0, 5), [], 'EA secrets in EB');
  const some = [...secrets].filter((_, i) => i % 25 === 0);
  for (const s of some) assert.not.ok(text.includes(s), `found ${s}`);
  await withClient(w.eb, 'makapix_dev', async (eb) => {
    assert.is(await count(eb, "SELECT count(*) AS n FROM users WHERE email <> 'user' || id || '@dev.makapix.local' OR email_normalized <> email"), 0);
    assert.is(await count(eb, "SELECT count(*) AS n FROM auth_identities WHERE email <> 'user' || user_id || '@dev.makapix.local'"), 0);
    const { rows } = await eb.query<{ h: string }>('SELECT secret_hash AS h FROM auth_identities WHERE secret_hash IS NOT NULL LIMIT 1');
    assert.ok(rows.length === 1 && bcrypt.compareSync(DEV_PASSWORD, rows[0]!.h), 'DEV_LOGIN_PASSWORD does not log in');
  });
});

/**
 * Runs the tool while a trigger (it fires even under session_replication_role = replica) slows
 * EB's load of view_events, and calls kill once that load is under way: kill terminates a
 * backend and says whether it did. The run must fail and leave EB exactly as it was.
 */
async function failMidLoad(kill: () => Promise<boolean>): Promise<void> {
  const before = await checksum(w.eb, 'makapix_dev');
  const eaBefore = await checksum(w.ea, 'makapix');
  await withClient(w.eb, 'makapix_dev', (eb) =>
    eb.query(`CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN NEW; END $$;
              CREATE TRIGGER slow_row BEFORE INSERT ON view_events FOR EACH ROW EXECUTE FUNCTION slow_row();
              ALTER TABLE view_events ENABLE ALWAYS TRIGGER slow_row;`),
  );
  try {
    const running = run(['--pct', String(PCT), '--seed', '2', '--yes']);
    let killed = false;
    await withClient(w.eb, 'makapix_dev', async (eb) => {
      for (let i = 0; i < 600 && !killed; i++) {
        const { rows } = await eb.query("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'COPY \"view_events\"%' AND state = 'active'");
        if (rows.length) killed = await kill();
        else await new Promise((r) => setTimeout(r, 50));
      }
    });
    const r = await running;
    assert.ok(killed, 'never saw the load running');
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /EB was left as it was|terminat/i, r.stderr);
  } finally {
    await withClient(w.eb, 'makapix_dev', (eb) => eb.query('DROP TRIGGER slow_row ON view_events; DROP FUNCTION slow_row()'));
  }
  assert.is(await checksum(w.eb, 'makapix_dev'), before, 'EB changed');
  assert.is(await checksum(w.ea, 'makapix'), eaBefore, 'EA changed');
}

/** Terminates the backends of cluster c (database db) whose application_name is name; true if any. */
const terminate = (c: Cluster, db: string, name: string) =>
  withClient(c, db, async (cl) => (await cl.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name])).rowCount! > 0);

test('fault injection: killing the EB connection mid-load leaves the previous data intact', () => failMidLoad(() => terminate(w.eb, 'makapix_dev', 'makapix-ops sample-data (load)')));

test('fault injection: losing EA after its rows were read, before EB commits, leaves EB intact too', () => failMidLoad(() => terminate(w.ea, 'makapix', 'makapix-ops sample-data (read)')));

test('genericity: a new table with a foreign key to posts is sampled; a new contact_email column stops the run until it has a rule', async () => {
  const ddl = `CREATE TABLE post_notes (id serial PRIMARY KEY, post_id integer NOT NULL REFERENCES posts (id) ON DELETE CASCADE, body text NOT NULL);
               ALTER TABLE users ADD COLUMN contact_email text;`;
  await withClient(w.eb, 'makapix_dev', (eb) => eb.query(ddl));
  await withClient(w.ea, 'makapix', async (ea) => {
    await ea.query(ddl);
    await ea.query("INSERT INTO post_notes (post_id, body) SELECT id, 'note ' || id FROM posts WHERE id % 3 = 0");
    await ea.query("UPDATE users SET contact_email = 'contact' || id || '@example.org'");
  });
  const before = await checksum(w.eb, 'makapix_dev');
  const stopped = await run(['--pct', String(PCT), '--seed', '1', '--yes']);
  assert.is(stopped.code, 2, stopped.stderr);
  assert.match(stopped.stderr, /users\.contact_email/);
  // The hint names the file to edit: the configuration, never lib/.
  assert.match(stopped.stderr, /dev\/sandbox-sampling\.ts/);
  assert.not.match(stopped.stderr, /lib\//);
  assert.is(await checksum(w.eb, 'makapix_dev'), before, 'EB changed although the run stopped');
  // The same run with a rule for the new column (the configuration file would get one line).
  const config = { ...sandboxSampling, rules: { ...sandboxSampling.rules, columns: { ...sandboxSampling.rules.columns, 'users.contact_email': fakeEmail } } };
  const quiet = new Ui({ tty: false, verbose: false, stream: new Writable({ write: (_c, _e, done) => done() }) });
  const dev = loadEnvConfig('dev', path.join(w.envDir, '.env.dev'));
  const result = await sampleDataToDev({
    source: w.ea.connection('makapix'),
    target: w.eb.connection('makapix_dev'),
    dev,
    pct: PCT,
    seed: 1,
    users: [],
    excludeBanned: false,
    schemaFromProd: false,
    dryRun: false,
    configFile: sandboxSamplingConfigFile,
    config,
    ui: quiet,
    confirm: async () => undefined,
  });
  const notes = result.tables.find((t) => t.table === 'post_notes')!;
  await withClient(w.eb, 'makapix_dev', async (eb) => {
    const posts = await ids(eb, 'SELECT id FROM posts');
    const expected = await withClient(w.ea, 'makapix', (ea) => count(ea, 'SELECT count(*) AS n FROM post_notes WHERE post_id = ANY($1::int[])', [posts]));
    assert.ok(expected > 0);
    assert.is(notes.rows, expected);
    assert.is(await count(eb, 'SELECT count(*) AS n FROM post_notes'), expected);
    assert.is(await count(eb, "SELECT count(*) AS n FROM users WHERE contact_email NOT LIKE '%@dev.makapix.local'"), 0);
  });
});

test('schema check: a difference stops the run with it; --schema-from-prod recreates EB from EA first', async () => {
  await withClient(w.ea, 'makapix', (ea) => ea.query('ALTER TABLE posts ADD COLUMN remix_of integer'));
  const stopped = await run(['--pct', String(PCT), '--seed', '1', '--yes']);
  assert.is(stopped.code, 1, stopped.stderr);
  assert.match(stopped.stderr, /posts\.remix_of: missing in EB/);
  // The new contact_email column still has no rule in the code: the run would stop, so drop it on EA.
  await withClient(w.ea, 'makapix', (ea) => ea.query('ALTER TABLE users DROP COLUMN contact_email'));
  // --direct: the sandbox's EA is a cluster on this host, not a db container.
  const fixed = await run(['--pct', String(PCT), '--seed', '1', '--yes', '--schema-from-prod', '--direct', '--json']);
  assert.is(fixed.code, 0, fixed.stderr);
  await withClient(w.eb, 'makapix_dev', async (eb) => {
    assert.is(await count(eb, "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'remix_of'"), 1);
    assert.is(await count(eb, "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'contact_email'"), 0);
    assert.ok((await count(eb, 'SELECT count(*) AS n FROM posts')) > 0);
    assert.is(await count(eb, 'SELECT count(*) AS n FROM alembic_version'), 1);
  });
});

test.run();
