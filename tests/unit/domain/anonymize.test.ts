import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  columnExpression,
  fakeEmail,
  hashed,
  holdsCredentials,
  ipAddress,
  keep,
  looksSensitive,
  nulled,
  password,
  scrub,
  sql,
  unruledColumns,
  unusedRules,
  userEmail,
  type AnonymizationRules,
  type Rule,
} from '../../../lib/domain/anonymize.ts';
import type { Column, Table } from '../../../lib/tools/catalog.ts';
import sandboxSampling from '../../../dev/sandbox-sampling.ts';

const col = (name: string, type = 'text', nullable = true): Column => ({ name, type, nullable, generated: false });
const table = (name: string, columns: Column[]): Table => ({ name, columns, primaryKey: ['id'], foreignKeys: [], uniques: [], sequences: [] });
const ctx = { salt: 'pepper', passwordHash: '$2a$10$abcdefghijklmnopqrstuv' };

test('which column names look sensitive', () => {
  const cases: [string, boolean][] = [
    ['email', true],
    ['email_normalized', true],
    ['contact_email', true],
    ['author_ip', true],
    ['ip_address', true],
    ['viewer_ip_hash', true],
    ['token_hash', true],
    ['secret_hash', true],
    ['password', true],
    ['player_key', true],
    ['api_key', true],
    ['client_secret', true],
    ['description', false],
    ['recipient_id', false],
    ['zip', false],
    ['keyword', false],
    ['handle', false],
    ['title', false],
  ];
  for (const [name, expected] of cases) assert.is(looksSensitive(name), expected, name);
});

test('which tables hold credentials (every column needs a rule)', () => {
  const cases: [string, boolean][] = [
    ['auth_identities', true],
    ['refresh_tokens', true],
    ['password_reset_tokens', true],
    ['user_sessions', true],
    ['oauth_accounts', true],
    ['api_keys', true],
    ['players', true], // by configuration: its secrets hide in plainly named columns
    ['posts', false],
    ['authors', false],
    ['keyframes', false],
  ];
  for (const [name, expected] of cases) assert.is(holdsCredentials(name, sandboxSampling.rules), expected, name);
});

test('the SQL each rule becomes, keeping NULL as NULL', () => {
  const users = table('users', [col('id', 'integer', false), col('email', 'character varying(255)'), col('code', 'character varying(6)'), col('ip', 'inet'), col('key', 'uuid', false), col('meta', 'jsonb')]);
  const c = (name: string) => users.columns.find((x) => x.name === name)!;
  const cases: [string, Rule | undefined, RegExp][] = [
    ['email', undefined, /^"email"$/],
    ['email', keep, /^"email"$/],
    ['email', userEmail('id'), /^CASE WHEN "email" IS NULL THEN NULL ELSE 'user' \|\| "id"::text \|\| '@dev\.makapix\.local' END$/],
    ['email', fakeEmail, /@dev\.makapix\.local'/],
    ['email', hashed, /md5\('pepper' \|\| "email"::text\)/],
    ['code', hashed, /^CASE .* left\(md5\('pepper' \|\| "code"::text\), 6\) END$/],
    ['key', hashed, /::uuid END$/],
    ['ip', ipAddress, /^CASE .* \('240\.0\.0\.0'::inet \+ \('x' \|\| left\(md5\('pepper' \|\| "ip"::text\), 6\)\)::bit\(24\)::integer\) END$/],
    ['email', password, /'\$2a\$10\$abcdefghijklmnopqrstuv'/],
    ['email', nulled, /^NULL::character varying\(255\)$/],
    ['meta', sql(`'{}'::jsonb`), /ELSE \('\{\}'::jsonb\) END$/],
    // Scrubbed as text and cast back; a varchar(n) is cut to n (a stand-in can be longer).
    ['meta', scrub({ uuids: true }), /^CASE WHEN "meta" IS NULL THEN NULL ELSE regexp_replace\(.*"meta"::text.*00000000-0000-0000-0000-000000000000.*\)::jsonb END$/],
    ['email', scrub(), /^CASE .* ELSE left\(regexp_replace\(.*redacted@example\.invalid.*, 255\) END$/],
  ];
  for (const [name, rule, expected] of cases) assert.match(columnExpression(users, c(name), rule, ctx), expected, `${name} ${rule?.kind}`);
});

test('a rule that cannot fit its column is refused with the column named', () => {
  const t = table('players', [col('id', 'integer', false), col('addr', 'inet'), col('n', 'integer', false), col('mail', 'text')]);
  const c = (name: string) => t.columns.find((x) => x.name === name)!;
  const cases: [Column, Rule, RegExp][] = [
    [c('addr'), hashed, /players\.addr is inet: the hash rule has no stand-in/],
    [c('n'), nulled, /players\.n is NOT NULL/],
    [c('n'), fakeEmail, /players\.n is integer, not text/],
    [c('mail'), userEmail('user_id'), /reads players\.user_id, which does not exist/],
    [c('n'), scrub(), /players\.n is integer: the scrub rule fits text and JSON/],
  ];
  for (const [column, rule, expected] of cases) assert.throws(() => columnExpression(t, column, rule, ctx), expected);
});

test('the guard lists sensitive-looking columns without a rule, and every column of a credentials table', () => {
  const rules: AnonymizationRules = { emptyTables: ['refresh_tokens'], credentialTables: ['players'], identityUrlHosts: [], columns: { 'users.email': userEmail('id'), 'players.id': keep } };
  const tables = [
    table('users', [col('id'), col('email'), col('contact_email'), col('bio')]),
    table('players', [col('id'), col('name'), col('cert_pem')]),
    table('refresh_tokens', [col('id'), col('token_hash')]),
    table('posts', [col('id'), col('title')]),
  ];
  assert.equal(unruledColumns(tables, rules), ['users.contact_email', 'players.name', 'players.cert_pem']);
  assert.equal(unusedRules(new Map(tables.map((t) => [t.name, t])), { ...rules, columns: { ...rules.columns, 'users.gone': keep } }), ['users.gone']);
});

test.run();
