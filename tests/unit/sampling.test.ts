import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { combinedCopy, planSampling, makapixSampling, PlanError, UnruledColumnsError, type SamplingConfig, type SampleOptions, type TablePlan } from '../../lib/domain/sampling.ts';
import type { Catalog, Column, ForeignKey, Table } from '../../lib/tools/catalog.ts';
import { keep, makapixRules } from '../../lib/domain/anonymize.ts';
import { connectionFromUrl, schemaDifferences } from '../../lib/jobs/sample-data.ts';

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
const rules = { ...makapixRules, credentialTables: [], columns: { 'users.email': makapixRules.columns['users.email']!, 'players.id': keep } };
const config: SamplingConfig = { ...makapixSampling, policies: {}, implicitReferences: {}, rules };
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

test.run();
