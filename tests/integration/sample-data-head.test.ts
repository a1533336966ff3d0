// sample-data-to-dev on the real app's schema at its Alembic head (dev/makapix-head: 46
// tables, 62 foreign keys, pg_trgm) with the shipped configuration (config/sampling.ts), through the
// CLI as an operator runs it: the proof paragraph of issue 16.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { loadHeadSchema } from '../../dev/makapix-head.ts';
import { pgBin, withClient } from '../../dev/cluster.ts';
import { projectRoot } from '../../lib/core/paths.ts';
import { foreignKeyViolations } from '../../lib/tools/schema.ts';
import { loadEnvConfig } from '../../lib/core/config.ts';
import { Ui } from '../../lib/core/ui.ts';
import { OpsError } from '../../lib/core/errors.ts';
import { defaultSamplingConfigFile, sampleDataToDev } from '../../lib/jobs/sample-data.ts';

const USERS = 1000;
const PCT = 10;
const script = path.join(projectRoot, 'scripts/sample-data-to-dev.ts');
let sb: TestSandbox;

const count = async (cl: pg.Client, sql: string): Promise<number> => Number((await cl.query<{ n: string }>(sql)).rows[0]!.n);
const ea = <T>(fn: (cl: pg.Client) => Promise<T>) => withClient(sb.prod, 'makapix', fn);
const eb = <T>(fn: (cl: pg.Client) => Promise<T>) => withClient(sb.dev, 'makapix_dev', fn);

/** The real entry, as an operator runs it (the shipped config unless args name another). */
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(script, args, { env: { ...process.env, MAKAPIX_ENV_DIR: sb.envDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Every row of every table of EB, as one text: "unchanged" is equality of this. */
const snapshot = () =>
  eb(async (cl) => {
    const { rows } = await cl.query<{ t: string }>("SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1");
    const parts: string[] = [];
    for (const { t } of rows) parts.push(`${t}:${(await cl.query<{ h: string }>(`SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) AS h FROM ${pg.escapeIdentifier(t)} x`)).rows[0]!.h}`);
    return parts.join(' ');
  });

/** An operator's own configuration file: the shipped one, changed by `edit` (a JS expression over `base`). */
function configFile(name: string, edit: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'makapix-config-'));
  const file = path.join(dir, `${name}.ts`);
  writeFileSync(file, `import base from ${JSON.stringify(defaultSamplingConfigFile)};\nexport default ${edit};\n`);
  return file;
}

test.before(async () => {
  sb = await startSandbox({ users: 10, seed: 3 });
  await ea((cl) => loadHeadSchema(cl, { users: USERS }));
  await eb((cl) => loadHeadSchema(cl));
});

test.after(async () => {
  await sb?.stop();
});

test('the shipped configuration fits the head: 0 dangling references, users near PCT, sequences past their maximum, the app\'s rules kept', async () => {
  const dry = await run(['--pct', String(PCT), '--seed', '5', '--dry-run']);
  assert.is(dry.code, 0, dry.stderr);
  const r = await run(['--pct', String(PCT), '--seed', '5', '--yes', '--json']);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { users: { target: number }; tables: { table: string; rows: number; invariantDropped: number }[] };
  assert.ok(report.users.target > 0 && report.users.target <= 1.2 * (USERS * PCT) / 100, `users: ${report.users.target}`);
  await eb(async (cl) => {
    assert.equal(await foreignKeyViolations(cl), [], 'dangling references');
    // Every sequence past its column's maximum: the app's next insert cannot collide.
    const { rows } = await cl.query<{ t: string; c: string; s: string }>(
      "SELECT c.table_name AS t, c.column_name AS c, pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) AS s FROM information_schema.columns c WHERE c.table_schema = 'public' AND pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) IS NOT NULL",
    );
    assert.ok(rows.length > 20);
    for (const x of rows) {
      const max = await count(cl, `SELECT coalesce(max(${pg.escapeIdentifier(x.c)}), 0) AS n FROM ${pg.escapeIdentifier(x.t)}`);
      const next = await count(cl, `SELECT nextval('${x.s}') AS n`);
      assert.ok(next > max, `${x.s}: next ${next}, max ${max}`);
    }
    // A device whose current post is out keeps its row, the pointer nulled (it used to be dropped).
    const players = await count(cl, 'SELECT count(*) AS n FROM players');
    const owners = await count(cl, 'SELECT count(*) AS n FROM users WHERE id % 2 = 1');
    assert.is(players, owners, 'every sampled owner keeps every device');
    // A highlight is its user's: never handed to someone else.
    const eaHighlights = await ea((x) => x.query<{ user_id: number; post_id: number }>('SELECT user_id, post_id FROM user_highlights'));
    const own = new Set(eaHighlights.rows.map((h) => `${h.user_id}:${h.post_id}`));
    const { rows: highlights } = await cl.query<{ user_id: number; post_id: number }>('SELECT user_id, post_id FROM user_highlights');
    assert.ok(highlights.length > 0);
    for (const h of highlights) assert.ok(own.has(`${h.user_id}:${h.post_id}`), `highlight ${h.user_id}:${h.post_id} re-pointed`);
    // No reaction without a user and an IP; per-user exports and secrets' tables empty.
    assert.is(await count(cl, 'SELECT count(*) AS n FROM reactions WHERE user_id IS NULL AND user_ip IS NULL'), 0);
    for (const t of ['batch_download_requests', 'refresh_tokens', 'player_tokens', 'email_verification_tokens', 'password_reset_tokens']) assert.is(await count(cl, `SELECT count(*) AS n FROM ${t}`), 0, t);
    // Playlist posts (no storage shard) come along with their owners.
    assert.ok((await count(cl, "SELECT count(*) AS n FROM posts WHERE kind = 'playlist' AND storage_shard IS NULL")) > 0);
    assert.is(await count(cl, 'SELECT count(*) AS n FROM alembic_version'), 1);
  });
});

test('no EA secret value anywhere in a dump of EB: e-mails, IPs, provider ids, device keys, key material, tokens', async () => {
  const secrets = await ea(async (cl) => {
    const out = new Set<string>();
    const queries = [
      'SELECT email AS v FROM users UNION SELECT email_normalized FROM users UNION SELECT lower(email) FROM users UNION SELECT email FROM auth_identities',
      "SELECT provider_user_id FROM auth_identities WHERE provider = 'github' UNION SELECT secret_hash FROM auth_identities",
      'SELECT author_ip FROM comments UNION SELECT user_ip FROM reactions UNION SELECT reporter_ip FROM reports UNION SELECT author_ip FROM blog_post_comments UNION SELECT user_ip FROM blog_post_reactions',
      'SELECT player_key::text FROM players UNION SELECT cert_serial_number FROM players UNION SELECT registration_code FROM players',
      'SELECT token_hash FROM refresh_tokens UNION SELECT token_hash FROM player_tokens UNION SELECT prefix FROM player_tokens UNION SELECT token_hash FROM email_verification_tokens',
      'SELECT viewer_ip_hash FROM view_events UNION SELECT visitor_ip_hash FROM site_events',
    ];
    for (const sql of queries) for (const r of (await cl.query<{ v: string | null }>(sql)).rows) if (r.v) out.add(r.v);
    for (const r of (await cl.query<{ v: string }>('SELECT cert_pem || key_pem AS v FROM players')).rows) for (const line of r.v.split('\n')) if (line.length > 20 && !line.startsWith('-----')) out.add(line);
    // The IPs written into free text by the seed, and the GitHub ids inside avatar URLs.
    for (let i = 0; i < 250; i++) out.add(`203.0.113.${i}`).add(`198.51.100.${i}`);
    return out;
  });
  assert.ok(secrets.size > 3000, `${secrets.size} secrets`);
  const dump = spawnSync(path.join(pgBin, 'pg_dump'), ['--host=127.0.0.1', `--port=${sb.dev.port}`, `--username=${sb.dev.superuser}`, '--no-password', '--data-only', 'makapix_dev'], {
    env: { ...process.env, PGPASSWORD: sb.dev.password.reveal() },
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
  });
  assert.is(dump.status, 0, dump.stderr);
  // Every token of the dump (split on what cannot be inside an address or key) against the set.
  const tokens = dump.stdout.split(/[\s,"{}()[\]\\:=?&;'<>]+|\\n/);
  const leaked = [...new Set(tokens.filter((t) => secrets.has(t) || secrets.has(t.replace(/^n/, ''))))];
  assert.equal(leaked.slice(0, 5), [], 'EA secrets in EB');
  const lower = dump.stdout.toLowerCase();
  for (const s of [...secrets].filter((x) => x.includes('@'))) assert.not.ok(lower.includes(s.toLowerCase()), `e-mail ${s} in EB`);
  for (const id of Array.from({ length: USERS }, (_, i) => String(7000001 + i))) assert.not.ok(dump.stdout.includes(`/u/${id}`), `GitHub id ${id} in EB`);
  assert.not.ok(/BEGIN PRIVATE KEY/.test(dump.stdout), 'key material in EB');
});

test('the leak guard: with a content rule missing, the run stops before EB commits and names table, column and the rule to add', async () => {
  const before = await snapshot();
  const file = configFile('no-scrub', `{ ...base, rules: { ...base.rules, columns: { ...base.rules.columns, 'comments.body': { kind: 'keep' } } } }`);
  const r = await run(['--pct', String(PCT), '--seed', '6', '--yes', '--config', file]);
  assert.is(r.code, 1, r.stderr);
  // The source is whichever secret column holds the value too (an e-mail is also a password identity's provider id).
  assert.match(r.stderr, /comments\.body would have carried a value of EA's (users|auth_identities|comments|reactions|reports|blog_post_comments)\.[a-z_]+ to EB/, r.stderr);
  assert.ok(r.stderr.includes(file), 'the hint names the configuration file to edit');
  assert.not.match(r.stderr, /@mail\.example\.com|203\.0\.113\./i, 'the message never shows the value');
  assert.is(await snapshot(), before, 'EB changed');
  // The same in a dry run: the guard reads what would be sent.
  const dry = await run(['--pct', String(PCT), '--seed', '6', '--dry-run', '--config', file]);
  assert.is(dry.code, 1, dry.stderr);
  assert.match(dry.stderr, /comments\.body would have carried/);
});

test('a configuration naming what the schema lacks stops with the name (deactivated_at is the sandbox\'s; the app has deactivated)', async () => {
  const file = configFile('stale', `{ ...base, banned: [{ column: 'deactivated_at', when: 'deactivated_at IS NOT NULL' }], policies: { ...base.policies, 'players.current_post': 'null' } }`);
  const r = await run(['--pct', String(PCT), '--dry-run', '--exclude-banned', '--config', file]);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /banned condition on users\.deactivated_at: no such column/);
  assert.match(r.stderr, /policy for players\.current_post: no such column/);
  assert.ok(r.stderr.includes(file));
});

test('a primary key (post_id, user_id, emoji) on reactions: re-pointing never collides (drops instead)', async () => {
  const ddl = `DELETE FROM reactions WHERE user_id IS NULL;
               ALTER TABLE reactions DROP CONSTRAINT reactions_pkey, ALTER COLUMN user_id SET NOT NULL, ADD CONSTRAINT reactions_pkey PRIMARY KEY (post_id, user_id, emoji);
               DROP INDEX uq_reaction_post_user_emoji;`;
  await ea((cl) => cl.query(ddl));
  await eb((cl) => cl.query(ddl));
  try {
    const file = configFile('composite', `{ ...base, policies: { ...base.policies, 'reactions.user_id': 'repoint' } }`);
    const r = await run(['--pct', String(PCT), '--seed', '8', '--yes', '--json', '--config', file]);
    assert.is(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { tables: { table: string; repointed: Record<string, number> }[] };
    assert.ok((report.tables.find((t) => t.table === 'reactions')!.repointed['reactions.user_id'] ?? 0) > 0, 'no reaction was re-pointed: the case is not exercised');
    await eb(async (cl) => assert.equal(await foreignKeyViolations(cl), []));
  } finally {
    const back = `DELETE FROM reactions; ALTER TABLE reactions DROP CONSTRAINT reactions_pkey, ALTER COLUMN user_id DROP NOT NULL, ADD CONSTRAINT reactions_pkey PRIMARY KEY (id);
                  CREATE UNIQUE INDEX uq_reaction_post_user_emoji ON reactions (post_id, user_id, emoji) WHERE user_id IS NOT NULL;`;
    await eb((cl) => cl.query(back));
    await ea((cl) => cl.query(back));
    await ea((cl) => cl.query(`INSERT INTO reactions (id, post_id, user_id, user_ip, emoji, created_at) SELECT row_number() OVER (), p, CASE WHEN k < 3 THEN (p * 7 + k * 31) % ${USERS} + 1 END, CASE WHEN k >= 3 THEN '198.51.100.' || ((p + k) % 250) END, CASE k % 2 WHEN 0 THEN 'a' ELSE 'b' END, now() FROM generate_series(1, ${USERS * 5}) p, generate_series(0, 4) k WHERE p % 5 <> 0`));
  }
});

test('EB\'s COPY failing at different points, many times: every run ends in the one-sentence error and EB unchanged', async () => {
  await eb((cl) =>
    // Outside public: the tool compares EA's and EB's public schemas, and must see no difference.
    cl.query(`CREATE SCHEMA fault; CREATE SEQUENCE fault.row; CREATE TABLE fault.at (tbl text, n bigint);
              CREATE FUNCTION fault.fault() RETURNS trigger LANGUAGE plpgsql AS $$
              BEGIN IF TG_TABLE_NAME = (SELECT tbl FROM fault.at) AND nextval('fault.row') = (SELECT n FROM fault.at) THEN RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$;`),
  );
  const tables = ['reactions', 'post_files', 'view_events', 'comments', 'posts', 'social_notifications'];
  for (const t of tables) await eb((cl) => cl.query(`CREATE TRIGGER fault BEFORE INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION fault.fault(); ALTER TABLE ${t} ENABLE ALWAYS TRIGGER fault;`));
  const before = await snapshot();
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  const quiet = new Ui({ tty: false, verbose: false, stream: new Writable({ write: (_c, _e, done) => done() }) });
  const dev = loadEnvConfig('dev', path.join(sb.envDir, '.env.dev'));
  try {
    let i = 0;
    for (const t of tables)
      for (const n of [1, 2, 37, 250, 800]) {
        i++;
        await eb((cl) => cl.query(`TRUNCATE fault.at; INSERT INTO fault.at VALUES (${pg.escapeLiteral(t)}, ${n}); SELECT setval('fault.row', 1, false)`));
        const err = await sampleDataToDev({
          source: sb.prod.connection('makapix'),
          target: sb.dev.connection('makapix_dev'),
          dev,
          pct: PCT,
          seed: i,
          users: [],
          excludeBanned: false,
          schemaFromProd: false,
          dryRun: false,
          configFile: defaultSamplingConfigFile,
          ui: quiet,
          confirm: async () => undefined,
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        // A table smaller than n loads whole: no fault, a good run.
        if (err === undefined) continue;
        assert.instance(err, OpsError, `${t}@${n}: ${String(err)}`);
        assert.is((err as OpsError).exitCode, 1);
        assert.match((err as Error).message, /injected fault.*EB was left as it was/, `${t}@${n}: ${(err as Error).message}`);
      }
    // Through the CLI: the exit code and one sentence, no stack trace.
    await eb((cl) => cl.query(`TRUNCATE fault.at; INSERT INTO fault.at VALUES ('reactions', 5); SELECT setval('fault.row', 1, false)`));
    const r = await run(['--pct', String(PCT), '--seed', '9', '--yes']);
    assert.is(r.code, 1, r.stderr);
    assert.not.match(r.stderr, /TypeError|    at /);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(uncaught, [], 'an uncaught exception escaped a run');
  } finally {
    process.off('uncaughtException', onUncaught);
  }
  // The runs that did load changed EB; the ones that failed must not have: compare after a clean run's failure only.
  await eb((cl) => cl.query(`TRUNCATE fault.at; INSERT INTO fault.at VALUES ('comments', 3); SELECT setval('fault.row', 1, false)`));
  const mid = await snapshot();
  const again = await run(['--pct', String(PCT), '--seed', '10', '--yes']);
  assert.is(again.code, 1, again.stderr);
  assert.is(await snapshot(), mid, 'EB changed');
  assert.ok(before.length > 0);
});

test('--schema-from-prod recreates EB with EA\'s extensions (pg_trgm\'s operator class, a pgcrypto default)', async () => {
  // EB without pg_trgm (and so without the trigram index); EA with a pgcrypto default on a new column.
  await eb((cl) => cl.query('DROP EXTENSION pg_trgm CASCADE'));
  await ea((cl) => cl.query("CREATE EXTENSION pgcrypto WITH SCHEMA public; ALTER TABLE posts ADD COLUMN checksum text DEFAULT encode(public.digest('x', 'sha256'), 'hex')"));
  const stopped = await run(['--pct', String(PCT), '--seed', '11', '--yes']);
  assert.is(stopped.code, 1, stopped.stderr);
  assert.match(stopped.stderr, /posts\.checksum: missing in EB/);
  // --direct: this EA is a cluster on the host, not a db container.
  const r = await run(['--pct', String(PCT), '--seed', '11', '--yes', '--schema-from-prod', '--direct']);
  assert.is(r.code, 0, r.stderr);
  await eb(async (cl) => {
    const ext = (await cl.query<{ e: string }>('SELECT extname AS e FROM pg_extension ORDER BY 1')).rows.map((x) => x.e);
    assert.ok(ext.includes('pg_trgm') && ext.includes('pgcrypto'), ext.join(', '));
    assert.is(await count(cl, "SELECT count(*) AS n FROM pg_indexes WHERE indexname = 'ix_users_handle_trgm'"), 1);
    assert.is(await count(cl, "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'posts' AND column_name = 'checksum'"), 1);
    assert.equal(await foreignKeyViolations(cl), []);
  });
});

test.run();
