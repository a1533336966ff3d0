import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { combinedCopy, planSampling, PlanError, UnruledColumnsError, type SamplingConfig, type SampleOptions, type TablePlan } from '../../../lib/domain/sampling.ts';
import type { Catalog, Column, ForeignKey, Table } from '../../../lib/tools/catalog.ts';
import { keep } from '../../../lib/domain/anonymize.ts';
import sandboxSampling from '../../../dev/sandbox-sampling.ts';
import { connectionFromUrl, copyInto, defaultSamplingConfigFile, loadSamplingConfig, optionsFromFlags, schemaDifferences, schemaDumpArgs } from '../../../lib/jobs/sample-data.ts';
import { ConfigError } from '../../../lib/core/errors.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadEnvConfig } from '../../../lib/core/config.ts';
import { composeDir, projectRoot } from '../../../lib/core/paths.ts';
import { pgCommand } from '../../../lib/tools/pgtools.ts';
import { EventEmitter } from 'node:events';
import type pgTypes from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

// A small Makapix-shaped catalog, as readCatalog returns it.
const col = (name: string, type = 'integer', nullable = true): Column => ({ name, type, nullable, generated: false });
const fk = (table: string, column: string, refTable: string, onDelete: ForeignKey['onDelete'] = 'cascade', refColumn = 'id'): ForeignKey => ({
  name: `${table}_${column}_fkey`,
  table,
  columns: [column],
  refTable,
  refColumns: [refColumn],
  onDelete,
});
function catalogOf(...tables: Partial<Table>[]): Catalog {
  return new Map(tables.map((t) => [t.name!, { columns: [], primaryKey: ['id'], foreignKeys: [], uniques: [], sequences: [], ...t } as Table]));
}
const base = (): Partial<Table>[] => [
  { name: 'licenses', columns: [col('id', 'integer', false), col('title', 'text')] },
  { name: 'users', columns: [col('id', 'integer', false), col('email', 'text'), col('handle', 'text'), col('avatar_source_post_id'), col('banned_until', 'timestamp with time zone')], foreignKeys: [fk('users', 'avatar_source_post_id', 'posts', 'set null')], sequences: [{ column: 'id', sequence: 'users_id_seq' }] },
  { name: 'posts', columns: [col('id', 'integer', false), col('owner_id', 'integer', false), col('license_id'), col('title', 'text')], foreignKeys: [fk('posts', 'owner_id', 'users'), fk('posts', 'license_id', 'licenses', 'no action')] },
  {
    name: 'comments',
    columns: [col('id', 'uuid', false), col('post_id', 'integer', false), col('author_id'), col('parent_id', 'uuid'), col('body', 'text', false)],
    foreignKeys: [fk('comments', 'post_id', 'posts'), fk('comments', 'author_id', 'users', 'set null'), fk('comments', 'parent_id', 'comments')],
  },
  {
    name: 'reactions',
    columns: [col('id', 'integer', false), col('post_id', 'integer', false), col('user_id'), col('emoji', 'text', false)],
    foreignKeys: [fk('reactions', 'post_id', 'posts'), fk('reactions', 'user_id', 'users')],
    uniques: [{ name: 'uq_reactions_post_user_emoji', columns: ['post_id', 'user_id', 'emoji'], predicate: '(user_id IS NOT NULL)' }],
  },
  { name: 'follows', columns: [col('id', 'integer', false), col('follower_id', 'integer', false), col('following_id', 'integer', false)], foreignKeys: [fk('follows', 'follower_id', 'users'), fk('follows', 'following_id', 'users')] },
  { name: 'players', columns: [col('id', 'uuid', false), col('owner_id'), col('current_post_id')], foreignKeys: [fk('players', 'owner_id', 'users', 'set null'), fk('players', 'current_post_id', 'posts', 'set null')] },
  { name: 'refresh_tokens', columns: [col('id', 'uuid', false), col('user_id', 'integer', false), col('token_hash', 'text', false)], foreignKeys: [fk('refresh_tokens', 'user_id', 'users')] },
  { name: 'alembic_version', primaryKey: ['version_num'], columns: [col('version_num', 'character varying(32)', false)] },
];
const rules = { ...sandboxSampling.rules, emptyTables: ['refresh_tokens'], credentialTables: [], columns: { 'users.email': sandboxSampling.rules.columns['users.email']!, 'players.id': keep } };
const config: SamplingConfig = { ...sandboxSampling, banned: [sandboxSampling.banned[0]!], policies: {}, implicitReferences: {}, requireOneOf: {}, secrets: [], rules };
const options: SampleOptions = { pct: 10, seed: 42, users: [], excludeBanned: false };
const anonymization = { salt: 's', passwordHash: 'h' };
const plan = (over: { tables?: Partial<Table>[]; config?: Partial<SamplingConfig>; options?: Partial<SampleOptions> } = {}) =>
  planSampling({ catalog: catalogOf(...(over.tables ?? base())), config: { ...config, ...over.config }, options: { ...options, ...over.options }, anonymization });
const tableOf = (p: ReturnType<typeof plan>, name: string) => p.tables.find((t) => t.table === name)!;
/** The SQL EA runs for one table: its part of the combined COPY. */
const sqlOf = (t: TablePlan) => combinedCopy([t]);

test('table modes come from the catalog: the root is picked, lookups copied whole, secrets emptied, alembic_version kept', () => {
  const p = plan();
  const cases: [string, string][] = [
    ['users', 'sample'],
    ['posts', 'sample'],
    ['licenses', 'whole'],
    ['refresh_tokens', 'skip'],
    ['alembic_version', 'keep'],
  ];
  for (const [t, mode] of cases) assert.is(tableOf(p, t).mode, mode, t);
  assert.not.ok(tableOf(p, 'refresh_tokens').query, 'an emptied table is never read');
  assert.ok(p.truncate.includes('refresh_tokens') && !p.truncate.includes('alembic_version'));
  assert.equal(p.sequences, [{ table: 'users', column: 'id', sequence: 'users_id_seq' }]);
  // Membership sets are built before the tables that need them.
  const order = p.tables.map((t) => t.table);
  assert.ok(order.indexOf('users') < order.indexOf('posts') && order.indexOf('posts') < order.indexOf('comments'));
});

test('default policy per foreign key', () => {
  const p = plan();
  const cases: [string, string, string][] = [
    ['users', 'users.avatar_source_post_id', 'null'],
    ['posts', 'posts.owner_id', 'drop'],
    ['comments', 'comments.post_id', 'drop'],
    ['comments', 'comments.author_id', 'repoint'],
    ['comments', 'comments.parent_id', 'null'],
    ['reactions', 'reactions.user_id', 'repoint'],
    ['follows', 'follows.follower_id', 'drop'],
    ['follows', 'follows.following_id', 'drop'],
    ['players', 'players.owner_id', 'null'],
    ['players', 'players.current_post_id', 'null'],
  ];
  for (const [t, key, policy] of cases) assert.is(tableOf(p, t).references.find((r) => r.key === key)?.policy, policy, key);
  // A reference to a lookup table is no decision at all.
  assert.not.ok(tableOf(p, 'posts').references.some((r) => r.key === 'posts.license_id'));
});

test('defaults that suit any schema: a nullable NO ACTION pointer beside the owner is nulled; a row that is a user\'s is never re-pointed', () => {
  const tables = [
    ...base().filter((t) => t.name !== 'players'),
    // The app's players: owner NO ACTION, current post NO ACTION (api/app/models.py).
    { name: 'players', columns: [col('id', 'uuid', false), col('owner_id'), col('current_post_id')], foreignKeys: [fk('players', 'owner_id', 'users', 'no action'), fk('players', 'current_post_id', 'posts', 'no action')] },
    { name: 'user_highlights', columns: [col('id', 'integer', false), col('user_id', 'integer', false), col('post_id', 'integer', false)], foreignKeys: [fk('user_highlights', 'user_id', 'users', 'no action'), fk('user_highlights', 'post_id', 'posts')] },
    // A report's only way in is its reporter: still a drop.
    { name: 'reports', columns: [col('id', 'uuid', false), col('reporter_id')], foreignKeys: [fk('reports', 'reporter_id', 'users', 'no action')] },
  ];
  const p = plan({ tables });
  const cases: [string, string, string][] = [
    ['players', 'players.owner_id', 'drop'],
    ['players', 'players.current_post_id', 'null'],
    ['user_highlights', 'user_highlights.user_id', 'drop'],
    ['user_highlights', 'user_highlights.post_id', 'drop'],
    ['reports', 'reports.reporter_id', 'drop'],
  ];
  for (const [t, key, policy] of cases) assert.is(tableOf(p, t).references.find((r) => r.key === key)?.policy, policy, key);
});

test('every name the configuration gives must exist: tables, columns, keys (the stale deactivated_at is an error)', () => {
  const cases: [Partial<SamplingConfig>, RegExp][] = [
    [{ banned: [{ column: 'deactivated_at', when: 'deactivated_at IS NOT NULL' }] }, /banned condition on users\.deactivated_at: no such column/],
    [{ tables: { site_events: 'skip' } }, /table mode: no table site_events/],
    [{ policies: { 'players.current_post': 'null' } }, /policy for players\.current_post: no such column/],
    [{ policies: { 'gone.user_id': 'null' } }, /policy for gone\.user_id: no table gone/],
    [{ policies: { 'posts.title': 'null' } }, /policy for posts\.title: no foreign key starts at that column/],
    [{ implicitReferences: { 'playlists.post_ids': 'posts' } }, /implicit reference playlists\.post_ids: no table playlists/],
    [{ rules: { ...rules, columns: { ...rules.columns, 'users.website': keep } } }, /anonymization rule for users\.website: no such column/],
    [{ rules: { ...rules, emptyTables: ['player_tokens'] } }, /anonymization table list: no table player_tokens/],
    [{ requireOneOf: { reactions: ['user_id', 'user_ip'] } }, /requireOneOf reactions\.user_ip: no such column/],
    [{ secrets: ['players.key_pem'] }, /secret source players\.key_pem: no such column/],
  ];
  for (const [c, expected] of cases) assert.throws(() => plan({ config: c }), (e: unknown) => e instanceof PlanError && expected.test(e.message), JSON.stringify(c));
});

test('collisions on re-pointing: a primary key (post_id, user_id, emoji) is handled like a unique index; an app invariant marks rows -2', () => {
  const tables = [
    ...base().filter((t) => t.name !== 'reactions'),
    {
      name: 'reactions',
      primaryKey: ['post_id', 'user_id', 'emoji'],
      columns: [col('post_id', 'integer', false), col('user_id', 'integer', false), col('emoji', 'text', false)],
      foreignKeys: [fk('reactions', 'post_id', 'posts'), fk('reactions', 'user_id', 'users', 'no action')],
    },
  ];
  const p = plan({ tables, config: { policies: { 'reactions.user_id': 'repoint' } } });
  const reactions = sqlOf(tableOf(p, 'reactions'));
  assert.match(reactions, /row_number\(\) OVER \(PARTITION BY "post_id", "user_id", "emoji" ORDER BY/);
  // user_id is NOT NULL (part of the key): a clashing stand-in drops the row instead of nulling it.
  assert.match(reactions, /WHERE NOT \(\(\(__rn0 > 1 AND/);
  const withIp = [...base().filter((t) => t.name !== 'reactions'), { ...base().find((t) => t.name === 'reactions')!, columns: [...base().find((t) => t.name === 'reactions')!.columns!, col('user_ip', 'text')] }];
  const inv = plan({ tables: withIp, config: { requireOneOf: { reactions: ['user_id', 'user_ip'] }, rules: { ...rules, columns: { ...rules.columns, 'reactions.user_ip': keep } } } });
  assert.match(sqlOf(tableOf(inv, 'reactions')), /CASE WHEN "user_id" IS NULL AND "user_ip" IS NULL THEN -2 ELSE "__flags" END::bigint/);
});

test('the pick: PCT as a hash threshold, named users, --exclude-banned', () => {
  const cases: [Partial<SampleOptions>, RegExp][] = [
    [{ pct: 10 }, /mod\(hashtextextended\(x\."id"::text, 42\), 1000000\) > -100000 AND mod\(hashtextextended\(x\."id"::text, 42\), 1000000\) < 100000/],
    [{ pct: 0.5, seed: 7 }, /hashtextextended\(x\."id"::text, 7\), 1000000\) < 5000/],
    [{ pct: 100 }, /< 1000000/],
    [{ users: ['12', '34'] }, /OR x\."id" IN \('12', '34'\)/],
    [{ excludeBanned: true }, /AND NOT \(COALESCE\(banned_until IS NOT NULL AND banned_until > now\(\), false\)\)/],
  ];
  for (const [o, expected] of cases) assert.match(sqlOf(tableOf(plan({ options: o }), 'users')), expected, JSON.stringify(o));
});

test('membership follows the drop policies through sets; re-pointing and unique clashes are planned in SQL', () => {
  const p = plan();
  const comments = sqlOf(tableOf(p, 'comments'));
  assert.match(comments, /^COPY \(WITH s_users AS MATERIALIZED \(.*\), s_posts AS MATERIALIZED/);
  assert.match(comments, /st_users AS MATERIALIZED \(SELECT "id" AS id, row_number\(\) OVER \(ORDER BY "id"\) - 1 AS n FROM s_users\)/);
  assert.match(comments, /LEFT JOIN b_comments r2 ON r2\."id" = x\."parent_id"/, 'a reply keeps its parent when the parent is in');
  assert.not.match(comments, /s_comments AS/, 'the sampled comments are its base set itself, not computed twice');
  assert.equal(tableOf(p, 'comments').touching, ['comments.author_id', 'comments.parent_id']);
  // One reaction per user, post and emoji: the partial index's predicate partitions the clash check.
  assert.match(sqlOf(tableOf(p, 'reactions')), /row_number\(\) OVER \(PARTITION BY \(\(user_id IS NOT NULL\)\), "post_id", "user_id", "emoji"/);
  // Follows need both sides: two inner joins on the membership set, no stand-ins.
  const follows = sqlOf(tableOf(p, 'follows'));
  assert.match(follows, /FROM "follows" x JOIN s_users r0 ON r0\."id" = x\."follower_id" JOIN s_users r1 ON r1\."id" = x\."following_id"/);
  assert.not.match(follows, /st_users/);
  // Emails are anonymized in the COPY itself.
  assert.match(sqlOf(tableOf(p, 'users')), /'user' \|\| "id"::text \|\| '@dev\.makapix\.local'/);
});

test('a table added tomorrow with a foreign key to posts is sampled with no code change', () => {
  const p = plan({ tables: [...base(), { name: 'post_notes', columns: [col('id', 'integer', false), col('post_id', 'integer', false), col('body', 'text')], foreignKeys: [fk('post_notes', 'post_id', 'posts')] }] });
  const notes = tableOf(p, 'post_notes');
  assert.is(notes.mode, 'sample');
  assert.is(notes.references[0]!.policy, 'drop');
  assert.match(sqlOf(notes), /FROM "post_notes" x JOIN s_posts r0 ON r0\."id" = x\."post_id"/);
  // A nullable reference that still decides (ON DELETE CASCADE): outer join, NULL or in the sample.
  const q2 = plan({ tables: [...base(), { name: 'mentions', columns: [col('id', 'integer', false), col('post_id'), col('user_id', 'integer', false)], foreignKeys: [fk('mentions', 'post_id', 'posts'), fk('mentions', 'user_id', 'users')] }] });
  assert.match(sqlOf(tableOf(q2, 'mentions')), /LEFT JOIN s_posts r0 ON r0\."id" = x\."post_id" JOIN s_users r1 .* WHERE \(\(x\."post_id" IS NULL\) OR r0\."id" IS NOT NULL\)/);
});

test('configured policies: pull copies referenced rows in; impossible ones are refused', () => {
  const pulled = plan({ config: { policies: { 'comments.author_id': 'pull' } } });
  assert.match(sqlOf(tableOf(pulled, 'users')), /p_users_0 AS MATERIALIZED \(SELECT DISTINCT x\."author_id" AS "id" FROM "comments" x/);
  assert.match(tableOf(pulled, 'users').why, /pulled in/);
  const cases: [Partial<SamplingConfig>, RegExp][] = [
    [{ policies: { 'posts.owner_id': 'null' } }, /posts\.owner_id: policy null on a NOT NULL column/],
    [{ policies: { 'comments.parent_id': 'drop' } }, /a self-reference can only use policy null/],
    [{ policies: { 'players.current_post_id': 'pull' } }, /policy pull into posts, whose posts\.owner_id is NOT NULL/],
    [{ tables: { alembic_version: 'keep', follows: 'whole' } }, /follows: copied whole, but follows\.follower_id, follows\.following_id point into sampled tables/],
  ];
  for (const [c, expected] of cases) {
    assert.throws(() => plan({ config: c }), (err: Error) => err instanceof PlanError && expected.test(err.message));
  }
});

test('a cycle of drop policies cannot be decided and is refused', () => {
  const tables = [
    ...base(),
    { name: 'a', columns: [col('id', 'integer', false), col('b_id', 'integer', false), col('user_id', 'integer', false)], foreignKeys: [fk('a', 'b_id', 'b'), fk('a', 'user_id', 'users')] },
    { name: 'b', columns: [col('id', 'integer', false), col('a_id', 'integer', false)], foreignKeys: [fk('b', 'a_id', 'a')] },
  ];
  assert.throws(() => plan({ tables }), /form a cycle of drop policies/);
});

test('a sensitive-looking column without a rule stops the plan, listing it', () => {
  const tables = base().map((t) => (t.name === 'users' ? { ...t, columns: [...t.columns!, col('contact_email', 'text')] } : t));
  assert.throws(
    () => plan({ tables }),
    (err: Error) => err instanceof UnruledColumnsError && err.problems.join() === 'users.contact_email',
  );
  const ruled = plan({ tables, config: { rules: { ...rules, columns: { ...rules.columns, 'users.contact_email': keep } } } });
  assert.ok(tableOf(ruled, 'users').query);
});

test('one COPY for every table: each set is defined once, every row padded to the widest table, every table closed by an end row', () => {
  const p = plan();
  const copied = p.tables.filter((t) => t.query);
  const sql = combinedCopy(copied);
  assert.is(sql.match(/\bs_posts AS MATERIALIZED/g)?.length, 1, 'the posts set is computed once for all tables');
  const width = Math.max(...copied.map((t) => t.columns.length));
  const branches = sql.split(' UNION ALL ');
  assert.is(branches.length, 2 * copied.length);
  for (const [i, t] of copied.entries()) {
    assert.match(branches[2 * i]!, new RegExp(`^(COPY \\(WITH .*)?SELECT ${i} AS "__table"`), t.table);
    assert.is(branches[2 * i]!.match(/NULL::text/g)?.length ?? 0, width - t.columns.length, `${t.table}: padded to ${width} fields`);
    assert.is(branches[2 * i + 1]!.replace(/\) TO STDOUT$/, ''), `SELECT ${i}, -1::bigint${', NULL::text'.repeat(width)}`, `${t.table}: end row`);
  }
  const firstSampled = p.tables.findIndex((t) => t.mode === 'sample');
  assert.ok(tableOf(p, 'licenses').mode === 'whole' && p.tables.every((t, i) => t.mode !== 'whole' || i < firstSampled), 'lookups load first, so what points at them can be checked early');
});

test('connection URLs (the typed flags --pct, --seed and --users are proven in cli.test.ts)', () => {
  assert.equal(connectionFromUrl('postgresql://owner:pw@127.0.0.1:5433/makapix_dev', '--target-url'), { host: '127.0.0.1', port: 5433, database: 'makapix_dev', user: 'owner', password: 'pw' });
  assert.throws(() => connectionFromUrl('mysql://x@h/db', '--source-url'), /--source-url must start with postgresql/);
});

test('schema differences name the revision and every column that differs', () => {
  const a = catalogOf(...base());
  const b = catalogOf(...base().map((t) => (t.name === 'posts' ? { ...t, columns: [...t.columns!, col('remix_of')] } : t.name === 'users' ? { ...t, columns: t.columns!.filter((c) => c.name !== 'handle') } : t)));
  assert.equal(schemaDifferences(a, b, { source: ['r2'], target: ['r1'] }), ['alembic_version: EA r2, EB r1', 'column users.handle: missing in EB', 'column posts.remix_of: only in EB']);
  assert.equal(schemaDifferences(a, a, { source: ['r1'], target: ['r1'] }), []);
});

test('--schema-from-prod takes the schema with EA\'s own pg_dump in its db container, extensions included; --direct or --source-url use the host\'s', () => {
  const loadEnv = (env: 'prod' | 'dev') => loadEnvConfig(env, path.join(composeDir, `.env.${env}.example`));
  const pg = { pgUser: undefined, pgPassword: undefined };
  const byDefault = optionsFromFlags({ pct: 10, users: [] }, loadEnv, pg);
  assert.is(byDefault.schemaPlace?.kind, 'container');
  assert.is(byDefault.configFile, defaultSamplingConfigFile);
  assert.is(path.relative(projectRoot, defaultSamplingConfigFile), 'config/sampling.ts');
  const dump = pgCommand('pg_dump', byDefault.schemaPlace!, { database: 'makapix', args: schemaDumpArgs() });
  assert.equal(dump.argv.slice(dump.argv.indexOf('exec'), dump.argv.indexOf('exec') + 3), ['exec', '-T', 'db']);
  assert.ok(dump.argv.includes('makapix-prod'), 'EA\'s compose project');
  // public and every extension (pg_trgm's operator classes), never the owner or the grants of EA.
  for (const a of ['--schema-only', '--schema=public', '--extension=*', '--no-owner', '--no-privileges']) assert.ok(dump.argv.includes(a), a);
  assert.is(optionsFromFlags({ pct: 10, users: [], direct: true }, loadEnv, pg).schemaPlace?.kind, 'local');
  assert.is(optionsFromFlags({ pct: 10, users: [], 'source-url': 'postgresql://u@127.0.0.1:5999/makapix' }, loadEnv, pg).schemaPlace?.kind, 'local');
  assert.is(optionsFromFlags({ pct: 10, users: [], config: '/tmp/mine.ts' }, loadEnv, pg).configFile, '/tmp/mine.ts');
});

test('--config: the shipped file loads; a file without a default SamplingConfig, or missing fields, stops with its name', async () => {
  const shipped = await loadSamplingConfig(defaultSamplingConfigFile);
  assert.is(shipped.root, 'users');
  assert.ok(shipped.rules.columns['players.key_pem'] && shipped.rules.columns['player_command_logs.payload']);
  const dir = mkdtempSync(path.join(tmpdir(), 'makapix-config-'));
  const partial = path.join(dir, 'partial.ts');
  writeFileSync(partial, "export default { root: 'users', banned: [] };\n");
  await loadSamplingConfig(partial).then(
    () => assert.unreachable('a partial configuration loaded'),
    (e: unknown) => {
      assert.instance(e, ConfigError);
      assert.match((e as Error).message, /partial\.ts lacks tables, policies, implicitReferences, requireOneOf, secrets, rules, statementTimeoutMs/);
    },
  );
  await loadSamplingConfig(path.join(dir, 'missing.ts')).then(
    () => assert.unreachable('a missing file loaded'),
    (e: unknown) => assert.match((e as Error).message, /Cannot load the sampling configuration .*missing\.ts/),
  );
});

test('EB\'s COPY failing while its socket is full ends in the COPY\'s error, never a TypeError thrown from a socket event', async () => {
  // pg's side of a COPY FROM, scripted: the socket is full (write returns false) when EB's error
  // comes; pg-copy-streams then lets go of the connection, and the socket drains afterwards.
  const scenario = (wrap: boolean) => {
    const socket = Object.assign(new EventEmitter(), { write: () => false });
    const connection = { stream: socket, query: () => undefined, sendCopyFail: () => undefined };
    const client = { query: (s: { submit(c: unknown): void }) => (s.submit(connection), s) } as unknown as Pick<pgTypes.Client, 'query'>;
    const sql = 'COPY t FROM STDIN';
    const stream = wrap ? copyInto(client, sql) : client.query(copyFrom(sql));
    const errors: string[] = [];
    stream.on('error', (e) => errors.push(e.message));
    const copy = stream as unknown as { handleCopyInResponse(c: unknown): void; handleError(e: Error): void };
    copy.handleCopyInResponse(connection);
    for (let i = 0; i < 3; i++) stream.write(Buffer.alloc(65536));
    copy.handleError(new Error('injected fault'));
    return { drain: () => socket.emit('drain'), errors };
  };
  // The race as it was: the queued rows reach for the connection that is gone.
  const bare = scenario(false);
  assert.throws(() => bare.drain(), /Cannot read properties of null \(reading 'stream'\)/);
  const safe = scenario(true);
  safe.drain();
  await new Promise((r) => setImmediate(r));
  assert.equal(safe.errors, ['injected fault']);
});

test.run();
