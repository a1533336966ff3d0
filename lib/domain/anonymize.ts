// What EB may see of EA's data: one declarative table of rules (table.column → rule), turned into
// SQL expressions that run inside the COPY SELECT on EA, so secrets never leave production.
import { quoteIdent, quoteLiteral } from './sql.ts';
import type { Column, Table } from '../tools/catalog.ts';

/**
 * How one column travels to EB. Every rule keeps NULL as NULL (a missing value stays missing).
 * - keep: copied as is (a sensitive-looking column that is not a secret, e.g. posts.storage_key)
 * - user-email: `user{id}@dev.makapix.local`, id read from `idColumn` of the same row, so every
 *   column derived from a user's e-mail (email, email_normalized, an identity's email) agrees
 * - fake-email: another e-mail address, replaced by a hashed stand-in at dev.makapix.local
 * - hash: a hashed stand-in of the column's type (text, uuid, bytea, integers), equal inputs give
 *   equal outputs within one run (a per-run salt, so EA values cannot be recovered by guessing)
 * - ip: a hashed stand-in address in 240.0.0.0/8 (text or inet column)
 * - password: the bcrypt hash of DEV_LOGIN_PASSWORD, or of a random password nobody knows
 * - null: emptied (nullable columns only)
 * - sql: any SQL expression over the row's (already re-pointed) column names, e.g. `'{}'::jsonb`
 * - scrub: free text or JSON kept, but the PEM blocks, e-mail addresses, IP addresses and
 *   identity-carrying URLs (and, when asked, UUIDs: device keys inside a JSON payload) in it
 *   replaced by fixed stand-ins
 */
export type Rule =
  | { kind: 'keep' }
  | { kind: 'user-email'; idColumn: string }
  | { kind: 'fake-email' }
  | { kind: 'hash' }
  | { kind: 'ip' }
  | { kind: 'password' }
  | { kind: 'null' }
  | { kind: 'sql'; expr: string }
  | { kind: 'scrub'; uuids: boolean };

export const keep: Rule = { kind: 'keep' };
export const userEmail = (idColumn: string): Rule => ({ kind: 'user-email', idColumn });
export const fakeEmail: Rule = { kind: 'fake-email' };
export const hashed: Rule = { kind: 'hash' };
export const ipAddress: Rule = { kind: 'ip' };
export const password: Rule = { kind: 'password' };
export const nulled: Rule = { kind: 'null' };
export const sql = (expr: string): Rule => ({ kind: 'sql', expr });
/** Content scrubbing of free text or JSON; `uuids` also replaces every UUID in it (keys in a payload). */
export const scrub = (opts: { uuids?: boolean } = {}): Rule => ({ kind: 'scrub', uuids: Boolean(opts.uuids) });

export interface AnonymizationRules {
  /** Tables whose rows are secrets as a whole (tokens, sessions, reset codes): EB gets them empty. */
  emptyTables: readonly string[];
  /** Tables that hold credentials even though their name does not say so: every column needs a rule. */
  credentialTables: readonly string[];
  /** `table.column` → rule. A rule for a column the schema does not have is an error (stale after a migration). */
  columns: Readonly<Record<string, Rule>>;
  /**
   * Hosts (PostgreSQL regular expressions, e.g. `avatars\.githubusercontent\.com`) whose URLs carry who a
   * person is elsewhere (a provider's user id in an avatar URL): scrub rules replace such URLs.
   */
  identityUrlHosts: readonly string[];
}

/** Word parts that make a column name look sensitive (`author_ip`, `player_key`), split on `_`. */
const sensitiveParts = new Set(['ip', 'ips', 'ipaddr', 'key', 'keys', 'apikey', 'otp', 'pin']);
const sensitiveSubstrings = /email|token|secret|passw|hash|salt|credential/i;
const credentialTableName = /token|secret|credential|passw|session/i;
const credentialTableParts = new Set(['auth', 'oauth', 'otp', 'mfa', 'totp', 'key', 'keys', 'apikeys']);

const parts = (name: string) => name.toLowerCase().split(/[_\W]+/);

export function looksSensitive(column: string): boolean {
  return sensitiveSubstrings.test(column) || parts(column).some((p) => sensitiveParts.has(p));
}

export function holdsCredentials(table: string, rules: AnonymizationRules): boolean {
  return rules.credentialTables.includes(table) || credentialTableName.test(table) || parts(table).some((p) => credentialTableParts.has(p));
}

/**
 * The guard: columns of tables about to be copied that have no rule but look sensitive, or belong
 * to a table holding credentials. A non-empty answer stops the run before anything is written.
 */
export function unruledColumns(tables: readonly Table[], rules: AnonymizationRules): string[] {
  const missing: string[] = [];
  for (const t of tables) {
    if (rules.emptyTables.includes(t.name)) continue;
    const strict = holdsCredentials(t.name, rules);
    for (const c of t.columns) {
      const key = `${t.name}.${c.name}`;
      if (rules.columns[key]) continue;
      if (strict || looksSensitive(c.name)) missing.push(key);
    }
  }
  return missing;
}

/** Rules naming a table or column the catalog does not have (stale after a migration). */
export function unusedRules(tables: ReadonlyMap<string, Table>, rules: AnonymizationRules): string[] {
  return Object.keys(rules.columns).filter((key) => {
    const [t, c] = key.split('.') as [string, string];
    return !tables.get(t)?.columns.some((col) => col.name === c);
  });
}

/** Per-run values the rules need: never stored, so EB cannot be used to guess EA's values. */
export interface AnonymizationContext {
  /** Random per run: salts every hashed stand-in. */
  salt: string;
  /** The bcrypt hash every password rule writes. */
  passwordHash: string;
}

const q = quoteIdent;
const lit = quoteLiteral;

/** `md5(salt || value)` as hex text: the source of every hashed stand-in. */
const digest = (col: string, ctx: AnonymizationContext) => `md5(${lit(ctx.salt)} || ${q(col)}::text)`;

const textLength = (type: string) => Number(/^(?:character varying|character|varchar|char)\((\d+)\)$/.exec(type)?.[1] ?? 0);
const isText = (type: string) => type === 'text' || /^(character varying|character|varchar|char)\b/.test(type) || type === 'citext';

/** A value of the column's own type derived from a hash, or undefined when the type has no stand-in. */
function hashedValue(col: Column, ctx: AnonymizationContext): string | undefined {
  const d = digest(col.name, ctx);
  if (isText(col.type)) {
    const n = textLength(col.type);
    return n > 0 && n < 32 ? `left(${d}, ${n})` : d;
  }
  switch (col.type) {
    case 'uuid':
      return `${d}::uuid`;
    case 'bytea':
      return `decode(${d}, 'hex')`;
    case 'integer':
      return `(('x' || left(${d}, 7))::bit(28)::integer)`;
    case 'bigint':
      return `(('x' || left(${d}, 15))::bit(60)::bigint)`;
    case 'json':
    case 'jsonb':
      return `to_${col.type}(${d})`;
    default:
      return undefined;
  }
}

/** What a scrub rule puts in place of what it finds: fixed, recognisable, never an EA value. */
export const scrubbed = {
  email: 'redacted@example.invalid',
  ip: '192.0.2.0',
  url: 'https://example.invalid/',
  pem: '[key material removed]',
  uuid: '00000000-0000-0000-0000-000000000000',
} as const;

const hex = '[0-9A-Fa-f]';
/** PostgreSQL (ARE) patterns of what scrub rules replace; docs/sample-data.md says what they miss. */
export const scrubPatterns = {
  email: '[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*\\.[A-Za-z]{2,}',
  ipv4: '\\m([0-9]{1,3}\\.){3}[0-9]{1,3}\\M',
  ipv6: `\\m((${hex}{1,4}:){7}${hex}{1,4}|(${hex}{1,4}:){1,7}:(${hex}{1,4}(:${hex}{1,4}){0,6})?)`,
  uuid: `${hex}{8}-${hex}{4}-${hex}{4}-${hex}{4}-${hex}{12}`,
  // Non-greedy from its first quantifier on (PostgreSQL gives a whole pattern that one's greed): one block at a time.
  pem: '-----BEGIN [A-Z0-9 ]+?-----.*?-----END [A-Z0-9 ]+?-----',
  url: (hosts: readonly string[]) => `https?://(${hosts.join('|')})(:[0-9]+)?(/[^[:space:]"'<>\\\\]*)?`,
} as const;

/** The scrub of one text value `expr`: one regexp_replace per kind of finding. */
function scrubText(expr: string, uuids: boolean, hosts: readonly string[]): string {
  // Key material first: its base64 could hold what the later patterns would half-replace.
  let out = `regexp_replace(${expr}, ${lit(scrubPatterns.pem)}, ${lit(scrubbed.pem)}, 'g')`;
  if (hosts.length) out = `regexp_replace(${out}, ${lit(scrubPatterns.url(hosts))}, ${lit(scrubbed.url)}, 'gi')`;
  out = `regexp_replace(${out}, ${lit(scrubPatterns.email)}, ${lit(scrubbed.email)}, 'g')`;
  out = `regexp_replace(${out}, ${lit(scrubPatterns.ipv4)}, ${lit(scrubbed.ip)}, 'g')`;
  out = `regexp_replace(${out}, ${lit(scrubPatterns.ipv6)}, ${lit(scrubbed.ip)}, 'g')`;
  if (uuids) out = `regexp_replace(${out}, ${lit(scrubPatterns.uuid)}, ${lit(scrubbed.uuid)}, 'g')`;
  return out;
}

/**
 * The SQL expression a column is copied as, reading the row's columns by their plain names; throws
 * a message (the caller wraps it as a ConfigError) when the rule cannot fit the column.
 */
export function columnExpression(table: Table, col: Column, rule: Rule | undefined, ctx: AnonymizationContext, identityUrlHosts: readonly string[] = []): string {
  const c = q(col.name);
  const orNull = (expr: string) => `CASE WHEN ${c} IS NULL THEN NULL ELSE ${expr} END`;
  const where = `${table.name}.${col.name}`;
  if (!rule || rule.kind === 'keep') return c;
  switch (rule.kind) {
    case 'user-email':
    case 'fake-email': {
      if (!isText(col.type)) throw new Error(`${where} is ${col.type}, not text: an e-mail rule cannot fit it`);
      if (rule.kind === 'fake-email') return orNull(`'x' || left(${digest(col.name, ctx)}, 16) || '@dev.makapix.local'`);
      if (!table.columns.some((o) => o.name === rule.idColumn)) throw new Error(`${where}: its user-email rule reads ${table.name}.${rule.idColumn}, which does not exist`);
      return orNull(`'user' || ${q(rule.idColumn)}::text || '@dev.makapix.local'`);
    }
    case 'hash': {
      const v = hashedValue(col, ctx);
      if (!v) throw new Error(`${where} is ${col.type}: the hash rule has no stand-in of that type (use an sql or null rule)`);
      return orNull(v);
    }
    case 'ip': {
      // One digest per row: its first 24 bits pick an address in 240.0.0.0/8, reserved (RFC 1112), so
      // no client has one: a stand-in never equals a real address (10/8 could, behind a private
      // network), and the leak guard never mistakes one for EA's.
      const addr = `('240.0.0.0'::inet + ('x' || left(${digest(col.name, ctx)}, 6))::bit(24)::integer)`;
      if (col.type === 'inet') return orNull(addr);
      if (col.type === 'cidr') return orNull(`${addr}::cidr`);
      if (!isText(col.type)) throw new Error(`${where} is ${col.type}: the ip rule fits text, inet and cidr columns`);
      return orNull(`host(${addr})`);
    }
    case 'password':
      if (!isText(col.type)) throw new Error(`${where} is ${col.type}, not text: the password rule cannot fit it`);
      return orNull(lit(ctx.passwordHash));
    case 'null':
      if (!col.nullable) throw new Error(`${where} is NOT NULL: the null rule cannot empty it (use hash or sql)`);
      return `NULL::${col.type}`;
    case 'sql':
      return orNull(`(${rule.expr})`);
    case 'scrub': {
      // JSON is scrubbed as its text: the stand-ins hold no quote or backslash, so it stays JSON.
      if (col.type === 'json' || col.type === 'jsonb') return orNull(`${scrubText(`${c}::text`, rule.uuids, identityUrlHosts)}::${col.type}`);
      if (!isText(col.type)) throw new Error(`${where} is ${col.type}: the scrub rule fits text and JSON columns`);
      // A stand-in can be longer than what it replaces: cut to the column's length.
      const n = textLength(col.type);
      const out = scrubText(c, rule.uuids, identityUrlHosts);
      return orNull(n > 0 ? `left(${out}, ${n})` : out);
    }
  }
}
