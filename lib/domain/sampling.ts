// The sampling plan: which rows of EA go to EB, decided from the catalog (never a table list) and
// written as one `COPY (SELECT ...) TO STDOUT` per table. Pure: the catalog is read once (readCatalog)
// and everything else is computed from it, so every decision has a table-driven unit test.
import { quoteIdent, quoteLiteral } from './sql.ts';
import type { Catalog, Column, ForeignKey, Table } from '../tools/catalog.ts';
import { columnExpression, unruledColumns, unusedRules, type AnonymizationContext, type AnonymizationRules } from './anonymize.ts';


// ---- the configuration ------------------------------------------------------------------------

/**
 * What to do with a reference to a row that is not in the sample:
 * - drop: the referencing row stays out (the row belongs to what it points at)
 * - null: the reference becomes NULL (nullable columns only)
 * - repoint: the reference moves to a stand-in row of the sample, the same one for the same
 *   original row (deterministic); where that would break a unique index, NULL or drop instead
 * - pull: the referenced row is copied too, anonymized, without anything that hangs off it
 */
export type Policy = 'drop' | 'null' | 'repoint' | 'pull';

/**
 * How a table is filled: `sample` by the rules, `whole` (lookups), `skip` (emptied on EB: logs you do
 * not want), `keep` (EB's own rows are left alone: alembic_version).
 */
export type TableMode = 'sample' | 'whole' | 'skip' | 'keep';

export interface SamplingConfig {
  /** The table whose rows are picked at random; everything else follows from it. */
  root: string;
  /** Conditions on the root's columns that make a user "banned" for --exclude-banned (those whose column exists apply). */
  banned: readonly { column: string; when: string }[];
  /** Table modes that the catalog cannot tell (logs to skip, tables to leave alone). */
  tables: Readonly<Record<string, TableMode>>;
  /** `table.column` (the foreign key's first column) → policy, overriding the defaults. */
  policies: Readonly<Record<string, Policy>>;
  /** Columns that hold ids of another table without a foreign key (int[] of post ids): `table.column` → table. Ids outside the sample are removed. */
  implicitReferences: Readonly<Record<string, string>>;
  rules: AnonymizationRules;
  /**
   * App invariants the schema does not declare: `table` → columns of which at least one must stay
   * set (a reaction has a user or an IP). A row that re-pointing or nulling leaves with none of them
   * is dropped, and the report counts it.
   */
  requireOneOf: Readonly<Record<string, readonly string[]>>;
  /**
   * The leak guard's sources: `table.column`s of EA whose values (e-mails, IPs, provider ids, device
   * keys, key material) must not appear anywhere in what EB receives, whole or inside text or JSON.
   */
  secrets: readonly string[];
  /** Reading EA: a statement may not run longer than this (ms). */
  statementTimeoutMs: number;
}

export interface SampleOptions {
  /** Percentage of the root's rows picked, in (0, 100]. */
  pct: number;
  /** Makes the pick (and every stand-in) reproducible. */
  seed: number;
  /** Root keys always included (a developer's own account), banned or not. */
  users: readonly string[];
  excludeBanned: boolean;
}

// ---- the plan ---------------------------------------------------------------------------------

export interface ReferencePlan {
  /** `table.column` of the foreign key's first column. */
  key: string;
  constraint: string;
  refTable: string;
  policy: Policy;
  /** Why this policy (the default's reason, or "config"). */
  why: string;
}

export interface TablePlan {
  table: string;
  mode: TableMode;
  why: string;
  /** Columns EB receives, in COPY order (generated columns are EB's own). */
  columns: string[];
  references: ReferencePlan[];
  /** The references whose null/repoint a row's flags report, in bit order. */
  touching: string[];
  /**
   * How EA reads the table (absent when it is not read), in parts for combinedCopy: the CTEs it
   * needs (the membership sets `s_<table>` and stand-ins `st_<table>` are the same in every
   * table's list), then `SELECT <flags>, <fields> FROM <from>`. The flags are a bit set: bit 0 the
   * row is sampled (else pulled in by a reference), then per reference i of `touching` bit 1+2i
   * nulled and bit 2+2i re-pointed; -2 marks a row an app invariant drops (requireOneOf).
   */
  query?: { ctes: Cte[]; flags: string; fields: string[]; from: string };
  /** Rows anchored to the sample but left out by a drop policy or a unique-index clash (dry run). */
  droppedCount?: string;
}

export interface Cte {
  name: string;
  /** `name AS [MATERIALIZED] (...)` */
  sql: string;
}

export interface SamplingPlan {
  tables: TablePlan[];
  /** Tables EB empties before loading (all but `keep`). */
  truncate: string[];
  /** Sequences to move past their column's maximum after loading. */
  sequences: { table: string; column: string; sequence: string }[];
}

export class PlanError extends Error {
  readonly problems: string[];
  constructor(message: string, problems: string[]) {
    super(message);
    this.problems = problems;
  }
}

/** Thrown when columns look sensitive and have no rule: the run stops before writing. */
export class UnruledColumnsError extends PlanError {}

const q = quoteIdent;
const lit = quoteLiteral;
const fkKey = (fk: ForeignKey) => `${fk.table}.${fk.columns[0]}`;
const isNullable = (t: Table, fk: ForeignKey) => fk.columns.every((c) => t.columns.find((col) => col.name === c)?.nullable);

/** Modulus of the hash pick: PCT is honoured to 1/10,000 of a percent. */
const PICK_SCALE = 1_000_000;
/** `hash(seed, value) mod PICK_SCALE < threshold`: a deterministic pick of pct % of the values. */
const pick = (expr: string, seed: number, pct: number) => {
  const h = `mod(hashtextextended(${expr}::text, ${seed}), ${PICK_SCALE})`;
  const t = Math.round((pct * PICK_SCALE) / 100);
  // |h| < t written as a range, which the planner estimates as a small share (a lone `<` on an
  // expression it has no statistics for counts as a third): it then starts its joins from the
  // small sets, walking indexes, instead of hashing whole tables.
  return `${h} > -${t} AND ${h} < ${t}`;
};

/** Decides every table's mode: config first, then the catalog (what references nothing is a lookup). */
function tableModes(catalog: Catalog, config: SamplingConfig): Map<string, { mode: TableMode; why: string }> {
  const modes = new Map<string, { mode: TableMode; why: string }>();
  for (const t of catalog.values()) {
    const configured = config.tables[t.name];
    if (configured) modes.set(t.name, { mode: configured, why: 'config' });
    else if (config.rules.emptyTables.includes(t.name)) modes.set(t.name, { mode: 'skip', why: 'anonymization: emptied (secrets)' });
    else if (t.name === config.root) modes.set(t.name, { mode: 'sample', why: 'root: picked at random' });
  }
  // Whole: references nothing but other whole tables (itself aside), transitively.
  for (let changed = true; changed; ) {
    changed = false;
    for (const t of catalog.values()) {
      if (modes.has(t.name)) continue;
      const outside = t.foreignKeys.filter((fk) => fk.refTable !== t.name && modes.get(fk.refTable)?.mode !== 'whole');
      if (outside.length === 0) {
        modes.set(t.name, { mode: 'whole', why: t.foreignKeys.length ? 'references only lookup tables' : 'lookup: references nothing' });
        changed = true;
      }
    }
  }
  for (const t of catalog.values()) if (!modes.has(t.name)) modes.set(t.name, { mode: 'sample', why: 'follows its foreign keys' });
  return modes;
}

/** The default policy of a foreign key, and why: the catalog's shape decides, the config overrides. */
export function defaultPolicy(t: Table, fk: ForeignKey, root: string, modes: ReadonlyMap<string, { mode: TableMode }>): { policy: Policy; why: string } {
  const nullable = isNullable(t, fk);
  if (fk.refTable === t.name) return nullable ? { policy: 'null', why: 'self-reference: a row whose parent is out becomes a top-level row' } : { policy: 'drop', why: 'self-reference (NOT NULL)' };
  if (modes.get(fk.refTable)?.mode === 'whole') return { policy: 'drop', why: 'lookup: always present' };
  if (t.name === root) return nullable ? { policy: 'null', why: 'the root is picked, not followed' } : { policy: 'drop', why: 'NOT NULL on the root' };
  // An actor on content that is in the sample (a comment's author, a reaction's user): keeping the
  // row but not its author keeps threads whole without pulling in nearly every user.
  const anchoredElsewhere = t.foreignKeys.some(
    (o) => o !== fk && o.refTable !== t.name && o.refTable !== root && modes.get(o.refTable)?.mode === 'sample' && !isNullable(t, o),
  );
  // Only a nullable actor: a NOT NULL reference to a user means the row is that user's (a highlight,
  // a like), and giving it to someone else would invent what they did.
  if (fk.refTable === root && anchoredElsewhere && fk.columns.length === 1 && nullable) return { policy: 'repoint', why: 'actor on sampled content: a stand-in user of the sample' };
  if (fk.onDelete === 'set null' && nullable) return { policy: 'null', why: 'ON DELETE SET NULL: the row outlives what it points at' };
  // A nullable NO ACTION reference beside what the row belongs to (a device's current post beside
  // its owner) is a pointer, not a parent: dropping the row for it would halve the table.
  const belongsElsewhere = t.foreignKeys.some(
    (o) => o !== fk && o.refTable !== t.name && modes.get(o.refTable)?.mode === 'sample' && (o.refTable === root || !isNullable(t, o)),
  );
  if (nullable && (fk.onDelete === 'no action' || fk.onDelete === 'restrict') && belongsElsewhere) return { policy: 'null', why: 'nullable pointer beside the row\'s owner: nulled' };
  return { policy: 'drop', why: 'the row belongs to what it points at' };
}

interface Ref {
  fk: ForeignKey;
  policy: Policy;
  why: string;
  /** Alias of the joined membership set. */
  alias: string;
  self: boolean;
}

/**
 * Every name the configuration gives that the schema does not have: a table, a column, a foreign
 * key (by its first column). A stale name would silently do nothing (a banned condition on a column
 * that was renamed), so each is an error.
 */
export function configProblems(catalog: Catalog, config: SamplingConfig): string[] {
  const out: string[] = [];
  const hasTable = (t: string, what: string) => (catalog.has(t) ? true : (out.push(`${what}: no table ${t}`), false));
  const hasColumn = (key: string, what: string) => {
    const [t, c] = key.split('.') as [string, string | undefined];
    if (!c) return void out.push(`${what} ${key}: not table.column`);
    if (hasTable(t, `${what} ${key}`) && !catalog.get(t)!.columns.some((x) => x.name === c)) out.push(`${what} ${key}: no such column`);
  };
  for (const b of config.banned) hasColumn(`${config.root}.${b.column}`, 'banned condition on');
  for (const t of Object.keys(config.tables)) hasTable(t, 'table mode');
  for (const t of [...config.rules.emptyTables, ...config.rules.credentialTables]) hasTable(t, 'anonymization table list');
  for (const key of Object.keys(config.policies)) {
    hasColumn(key, 'policy for');
    const [t, c] = key.split('.');
    if (catalog.get(t!)?.columns.some((x) => x.name === c) && !catalog.get(t!)!.foreignKeys.some((fk) => fk.columns[0] === c)) out.push(`policy for ${key}: no foreign key starts at that column`);
  }
  for (const [key, target] of Object.entries(config.implicitReferences)) {
    hasColumn(key, 'implicit reference');
    hasTable(target, `implicit reference ${key}`);
  }
  for (const key of unusedRules(catalog, config.rules)) out.push(`anonymization rule for ${key}: no such column`);
  for (const [t, cols] of Object.entries(config.requireOneOf)) for (const c of cols) hasColumn(`${t}.${c}`, 'requireOneOf');
  for (const key of config.secrets) hasColumn(key, 'secret source');
  return out;
}

export interface PlanInput {
  catalog: Catalog;
  config: SamplingConfig;
  options: SampleOptions;
  anonymization: AnonymizationContext;
}

/**
 * The whole plan. Throws UnruledColumnsError (sensitive columns without a rule) or PlanError (a rule
 * or policy that cannot apply, a cycle of drop policies) before anything runs.
 */
export function planSampling({ catalog, config, options, anonymization }: PlanInput): SamplingPlan {
  const problems: string[] = [];
  const root = catalog.get(config.root);
  if (!root) throw new PlanError(`The root table ${config.root} is not in the database.`, [config.root]);
  if (root.primaryKey.length !== 1) throw new PlanError(`The root table ${config.root} needs a one-column primary key.`, [config.root]);
  const stale = configProblems(catalog, config);
  if (stale.length) throw new PlanError(`The sampling configuration names what the schema does not have: ${stale.join('; ')}.`, stale);
  const modes = tableModes(catalog, config);
  const modeOf = (t: string) => modes.get(t)!.mode;
  const sampled = (t: string) => modeOf(t) === 'sample' || modeOf(t) === 'skip';

  // Policies of every foreign key between sampled tables.
  const refs = new Map<string, Ref[]>();
  for (const t of catalog.values()) {
    const list: Ref[] = [];
    t.foreignKeys.forEach((fk, i) => {
      if (!sampled(fk.refTable)) return;
      const configured = config.policies[fkKey(fk)];
      const { policy, why } = configured ? { policy: configured, why: 'config' } : defaultPolicy(t, fk, config.root, modes);
      if (policy === 'null' && !isNullable(t, fk)) problems.push(`${fkKey(fk)}: policy null on a NOT NULL column`);
      if (policy === 'repoint' && fk.columns.length !== 1) problems.push(`${fkKey(fk)}: policy repoint needs a one-column foreign key`);
      if (fk.refTable === t.name && policy !== 'null') problems.push(`${fkKey(fk)}: a self-reference can only use policy null`);
      list.push({ fk, policy, why, alias: `r${i}`, self: fk.refTable === t.name });
    });
    refs.set(t.name, list);
  }
  // Which foreign keys decide membership: the drop policies, or, when a table has none, its nulls.
  const anchors = (t: string) => {
    const list = refs.get(t)!.filter((r) => !r.self && sampled(r.fk.refTable));
    const drops = list.filter((r) => r.policy === 'drop');
    return drops.length ? drops : list.filter((r) => r.policy === 'null');
  };
  // Pulls: referenced rows copied into their table; such a table's own references must be nullable.
  const pulls = new Map<string, Ref[]>();
  for (const [t, list] of refs)
    for (const r of list.filter((x) => x.policy === 'pull')) {
      pulls.set(r.fk.refTable, [...(pulls.get(r.fk.refTable) ?? []), r]);
      const target = catalog.get(r.fk.refTable)!;
      for (const other of refs.get(target.name)!) if (!other.self && !isNullable(target, other.fk)) problems.push(`${t}.${r.fk.columns[0]}: policy pull into ${target.name}, whose ${fkKey(other.fk)} is NOT NULL`);
    }
  for (const t of catalog.values()) {
    if (modeOf(t.name) !== 'whole') continue;
    const out = refs.get(t.name)!.filter((r) => !r.self);
    if (out.length) problems.push(`${t.name}: copied whole, but ${out.map((r) => fkKey(r.fk)).join(', ')} point${out.length === 1 ? 's' : ''} into sampled tables`);
  }
  if (problems.length) throw new PlanError(`The sampling configuration does not fit the schema: ${problems.join('; ')}.`, problems);

  // Membership sets in dependency order; a cycle of anchors cannot be decided.
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (t: string, path: string[]) => {
    if (state.get(t) === 'done') return;
    if (state.get(t) === 'visiting') throw new PlanError(`The foreign keys ${[...path, t].join(' → ')} form a cycle of drop policies.`, [...path, t]);
    state.set(t, 'visiting');
    if (t !== config.root && modeOf(t) === 'sample') for (const a of anchors(t)) visit(a.fk.refTable, [...path, t]);
    state.set(t, 'done');
    order.push(t);
  };
  for (const t of [...catalog.keys()].sort()) if (sampled(t)) visit(t, []);

  const cte = (t: string) => `s_${t}`;
  const standins = (t: string) => `st_${t}`;
  const pickWhere = (alias: string) => {
    const id = `${alias}.${q(root.primaryKey[0]!)}`;
    // The conditions name the root's columns plainly: the root is never joined to a table that has them.
    const notBanned = options.excludeBanned && config.banned.length ? ` AND NOT (${config.banned.map((b) => `COALESCE(${b.when}, false)`).join(' OR ')})` : '';
    const named = options.users.length ? ` OR ${id} IN (${options.users.map(lit).join(', ')})` : '';
    return `((${pick(id, options.seed, options.pct)})${notBanned})${named}`;
  };
  const nullTest = (r: Ref) => `(${r.fk.columns.map((c) => `x.${q(c)} IS NULL`).join(' OR ')})`;
  const inTest = (r: Ref) => `${r.alias}.${q(r.fk.refColumns[0]!)} IS NOT NULL`;
  const joinOf = (r: Ref, inner = false) =>
    `${inner ? 'JOIN' : 'LEFT JOIN'} ${cte(r.fk.refTable)} ${r.alias} ON ${r.fk.columns.map((c, i) => `${r.alias}.${q(r.fk.refColumns[i]!)} = x.${q(c)}`).join(' AND ')}`;
  /** Rows with no anchor set: picked by a hash of their key at the same percentage. */
  const rowPick = (t: Table) => pick(t.primaryKey.length ? `(${t.primaryKey.map((c) => `x.${q(c)}`).join(', ')})` : 'x', options.seed, options.pct);

  /**
   * `WHERE` of table t over alias x with its anchors joined: the row is in the sample. A NOT NULL
   * drop reference is an inner join (the row needs it; the planner then hashes the small set and
   * scans the table once), except in a table that rows are pulled into, which needs outer joins.
   */
  const membership = (t: Table, allowInner = true): { joins: Ref[]; inner: Set<string>; where: string } => {
    if (modeOf(t.name) === 'skip') return { joins: [], inner: new Set(), where: 'false' };
    if (t.name === config.root) return { joins: [], inner: new Set(), where: pickWhere('x') };
    const a = anchors(t.name);
    if (!a.length) return { joins: [], inner: new Set(), where: rowPick(t) };
    const inner = new Set(allowInner && !pulls.has(t.name) ? a.filter((r) => r.policy === 'drop' && r.fk.columns.every((c) => !t.columns.find((x) => x.name === c)?.nullable)).map((r) => r.alias) : []);
    const drops = a.filter((r) => r.policy === 'drop' && !inner.has(r.alias)).map((r) => `(${nullTest(r)} OR ${inTest(r)})`);
    const anchored = inner.size ? [] : [`(${a.map(inTest).join(' OR ')} OR ((${a.map((r) => nullTest(r)).join(' AND ')}) AND ${rowPick(t)}))`];
    return { joins: a, inner, where: [...drops, ...anchored].join(' AND ') || 'true' };
  };
  const joinsOf = (m: { joins: Ref[]; inner: Set<string> }) => m.joins.map((r) => joinOf(r, m.inner.has(r.alias))).join(' ');

  // The membership sets one table's COPY needs, transitively, in dependency order.
  const needed = (tables: string[]): string[] => {
    const want = new Set<string>();
    const add = (t: string) => {
      if (want.has(t) || !sampled(t)) return;
      want.add(t);
      for (const a of t === config.root ? [] : anchors(t)) add(a.fk.refTable);
    };
    tables.forEach(add);
    return order.filter((t) => want.has(t));
  };
  const setCte = (name: string) => {
    const t = catalog.get(name)!;
    const m = membership(t);
    const keys = keyColumns(t, refs);
    return { name: cte(name), sql: `${cte(name)} AS MATERIALIZED (SELECT ${keys.map((k) => `x.${q(k)}`).join(', ')} FROM ${q(name)} x ${joinsOf(m)} WHERE ${m.where})` };
  };

  const tablePlans: TablePlan[] = [];
  const copied: Table[] = [];
  // Lookups first: the tables that point at them can then be checked as soon as they are loaded.
  const byOrder = [...[...catalog.keys()].sort().filter((t) => !order.includes(t)), ...order];
  for (const name of byOrder) {
    const t = catalog.get(name)!;
    const { mode, why } = modes.get(name)!;
    const columns = t.columns.filter((c) => !c.generated).map((c) => c.name);
    const tableRefs = refs.get(name)!;
    const references = tableRefs.map((r) => ({ key: fkKey(r.fk), constraint: r.fk.name, refTable: r.fk.refTable, policy: r.policy, why: r.why }));
    if (mode === 'skip' || mode === 'keep') {
      tablePlans.push({ table: name, mode, why, columns, references, touching: [] });
      continue;
    }
    copied.push(t);
    const anonymized = (c: Column) => {
      try {
        return columnExpression(t, c, config.rules.columns[`${name}.${c.name}`], anonymization, config.rules.identityUrlHosts);
      } catch (err) {
        problems.push((err as Error).message);
        return q(c.name);
      }
    };
    const outCols = t.columns.filter((c) => !c.generated);
    if (mode === 'whole') {
      const query = { ctes: [], flags: '1::bigint', fields: outCols.map(anonymized), from: q(name) };
      tablePlans.push({ table: name, mode, why, columns, references, touching: [], query });
      continue;
    }
    // This table's own CTEs are named after it: one COPY of every table holds them all.
    const baseName = `b_${name}`;

    // Layer 1: membership first (the table's rows in the sample, its base), then every reference
    // resolved by its policy. The base is a plain CTE: inlined where the query reads it once (the
    // planner, which sizes the sets as small, starts from them), kept where it reads it twice (a
    // reply's parent, an array's members).
    const m = membership(t);
    const pulledBy = pulls.get(name) ?? [];
    const inBase = new Set(m.joins.map((r) => r.alias));
    const useBase = inBase.size > 0 || pulledBy.length > 0;
    const inRef = (r: Ref) => (useBase && inBase.has(r.alias) ? `x.${q(`__in_${r.alias}`)}` : inTest(r));
    // A reply's parent is in the sample exactly when it is in base (no rows are pulled into it).
    const selfFromBase = useBase && pulledBy.length === 0;
    const touching = tableRefs.filter((r) => r.policy === 'null' || r.policy === 'repoint' || (pulledBy.length > 0 && r.policy === 'drop'));
    const value = new Map<string, string>();
    const flagTerms: string[] = [pulledBy.length ? `CASE WHEN x."__member" THEN 1 ELSE 0 END` : '1'];
    const extraJoins: string[] = [];
    const extraWhere: string[] = [];
    touching.forEach((r, i) => {
      const nulledBit = 2 ** (1 + 2 * i);
      const repointBit = 2 ** (2 + 2 * i);
      if (r.self && selfFromBase) extraJoins.push(joinOf(r).replace(`JOIN ${cte(name)} `, `JOIN ${baseName} `));
      else if (!(useBase && inBase.has(r.alias))) extraJoins.push(joinOf(r));
      const out = `NOT ${nullTest(r)} AND NOT ${inRef(r)}`;
      if (r.policy === 'repoint') {
        const col = r.fk.columns[0]!;
        const st = `st${r.alias}`;
        extraJoins.push(
          `LEFT JOIN ${standins(r.fk.refTable)} ${st} ON ${st}.n = abs(mod(hashtextextended(x.${q(col)}::text, ${options.seed}), (SELECT NULLIF(count(*), 0) FROM ${standins(r.fk.refTable)})))`,
        );
        value.set(col, `CASE WHEN ${nullTest(r)} OR ${inRef(r)} THEN x.${q(col)} ELSE ${st}.id END`);
        flagTerms.push(`CASE WHEN ${out} AND ${st}.id IS NOT NULL THEN ${repointBit} WHEN ${out} THEN ${nulledBit} ELSE 0 END`);
        if (!isNullable(t, r.fk)) extraWhere.push(`(${nullTest(r)} OR ${inRef(r)} OR ${st}.id IS NOT NULL)`);
      } else {
        for (const col of r.fk.columns) value.set(col, `CASE WHEN ${inRef(r)} THEN x.${q(col)} END`);
        flagTerms.push(`CASE WHEN ${out} THEN ${nulledBit} ELSE 0 END`);
      }
    });
    // Arrays of ids without a foreign key keep only the ids in the sample, in their order. Filtered
    // set-wise (unnest, one hash join, regroup by key): a per-row subquery would hash the set per row.
    const implicit = Object.entries(config.implicitReferences).filter(([key]) => key.startsWith(`${name}.`));
    const arrayCtes: Cte[] = [];
    implicit.forEach(([key, target], k) => {
      const col = key.slice(name.length + 1);
      if (!t.columns.some((c) => c.name === col) || !sampled(target)) return;
      const refKey = q(catalog.get(target)!.primaryKey[0]!);
      if (t.primaryKey.length !== 1) {
        value.set(col, `ARRAY(SELECT e FROM unnest(x.${q(col)}) WITH ORDINALITY u(e, o) WHERE e IN (SELECT ${refKey} FROM ${cte(target)}) ORDER BY o)`);
        return;
      }
      const pk = q(t.primaryKey[0]!);
      const ia = `ia_${name}_${k}`;
      const rows = useBase ? `${baseName} x CROSS JOIN LATERAL unnest(x.${q(col)}) WITH ORDINALITY u(e, o)` : `${q(name)} x CROSS JOIN LATERAL unnest(x.${q(col)}) WITH ORDINALITY u(e, o) WHERE ${m.where}`;
      arrayCtes.push({ name: ia, sql: `${ia} AS MATERIALIZED (SELECT a.k, array_agg(a.e ORDER BY a.o) AS v FROM (SELECT x.${pk} AS k, u.e, u.o FROM ${rows}) a JOIN ${cte(target)} s ON s.${refKey} = a.e GROUP BY a.k)` });
      extraJoins.push(`LEFT JOIN ${ia} ON ${ia}.k = x.${pk}`);
      value.set(col, `CASE WHEN x.${q(col)} IS NULL THEN NULL ELSE COALESCE(${ia}.v, '{}') END`);
    });
    const pullJoins = pulledBy.map((r, i) => {
      const src = catalog.get(r.fk.table)!;
      const sm = membership(src);
      const sel = r.fk.columns.map((c, k) => `x.${q(c)} AS ${q(r.fk.refColumns[k]!)}`).join(', ');
      const p = `p_${name}_${i}`;
      return {
        join: `LEFT JOIN ${p} ON ${r.fk.refColumns.map((c) => `${p}.${q(c)} = x.${q(c)}`).join(' AND ')}`,
        cte: { name: p, sql: `${p} AS MATERIALIZED (SELECT DISTINCT ${sel} FROM ${q(src.name)} x ${joinsOf(sm)} WHERE ${sm.where})` },
        test: `${p}.${q(r.fk.refColumns[0]!)} IS NOT NULL`,
      };
    });

    const setsNeeded = needed([
      ...m.joins.map((r) => r.fk.refTable),
      ...tableRefs.filter((r) => !(r.self && selfFromBase)).map((r) => r.fk.refTable),
      ...implicit.map(([, target]) => target),
      ...pulledBy.flatMap((r) => anchors(r.fk.table).map((a) => a.fk.refTable)),
    ]);
    const where = pullJoins.length ? `((${m.where}) OR ${pullJoins.map((p) => p.test).join(' OR ')})` : m.where;
    const baseCte: Cte[] = useBase
      ? [
          { name: baseName, sql: `${baseName} AS (SELECT x.*${[...m.joins].map((r) => `, ${inTest(r)} AS ${q(`__in_${r.alias}`)}`).join('')}${pullJoins.length ? `, (${m.where}) AS "__member"` : ''} ` +
            `FROM ${q(name)} x ${joinsOf(m)} ${pullJoins.map((p) => p.join).join(' ')} WHERE ${where})` },
        ]
      : [];
    const ctes: Cte[] = [
      ...setsNeeded.map(setCte),
      ...[...new Set(touching.filter((r) => r.policy === 'repoint').map((r) => r.fk.refTable))].map((u) => ({
        name: standins(u),
        sql: `${standins(u)} AS MATERIALIZED (SELECT ${q(catalog.get(u)!.primaryKey[0]!)} AS id, row_number() OVER (ORDER BY ${q(catalog.get(u)!.primaryKey[0]!)}) - 1 AS n FROM ${cte(u)})`,
      })),
      ...pullJoins.map((p) => p.cte),
      ...baseCte,
      ...arrayCtes,
    ];
    const layer1 = [
      `SELECT ${flagTerms.join(' + ')} AS "__flags", ${outCols.map((c) => `${value.get(c.name) ?? `x.${q(c.name)}`} AS ${q(c.name)}`).join(', ')}`,
      useBase ? `FROM ${baseName} x ${extraJoins.join(' ')}` : `FROM ${q(name)} x ${extraJoins.join(' ')}`,
      `WHERE ${[useBase ? 'true' : where, ...extraWhere].join(' AND ')}`,
    ].join(' ');

    // Layer 2: a re-pointed reference must not break a unique index (one reaction per user, post
    // and emoji). The first row of each key keeps it (originals before stand-ins); later ones get
    // NULL, or stay out when the column is NOT NULL.
    const repointed = touching.map((r, i) => ({ r, bit: 2 ** (2 + 2 * i), nullBit: 2 ** (1 + 2 * i) })).filter((x) => x.r.policy === 'repoint');
    // The primary key too: a schema may key reactions by (post_id, user_id, emoji).
    const keys = [...t.uniques, ...(t.primaryKey.length ? [{ name: `${name} primary key`, columns: t.primaryKey, predicate: null }] : [])];
    const clashes = keys
      .map((u) => ({ u, reps: repointed.filter((x) => u.columns.includes(x.r.fk.columns[0]!)) }))
      .filter((x) => x.reps.length > 0);
    let source = `(${layer1}) y`;
    if (clashes.length) {
      const rn = clashes.map(({ u, reps }, k) => {
        const mask = reps.reduce((s, x) => s + x.bit, 0);
        const part = [...(u.predicate ? [`(${u.predicate})`] : []), ...u.columns.map(q)].join(', ');
        const order = `(("__flags" & ${mask}) <> 0), ${(t.primaryKey.length ? t.primaryKey : columns.slice(0, 1)).map(q).join(', ')}`;
        const clash = `(__rn${k} > 1 AND ("__flags" & ${mask}) <> 0 AND ${u.columns.map((c) => `${q(c)} IS NOT NULL`).join(' AND ')}${u.predicate ? ` AND (${u.predicate})` : ''})`;
        return { window: `row_number() OVER (PARTITION BY ${part} ORDER BY ${order}) AS __rn${k}`, clash, reps };
      });
      const anyClash = `(${rn.map((x) => x.clash).join(' OR ')})`;
      const repCols = [...new Map(rn.flatMap((x) => x.reps).map((x) => [x.r.fk.columns[0]!, x])).values()];
      const flags = `"__flags"${repCols.map((x) => ` + CASE WHEN ${anyClash} AND ("__flags" & ${x.bit}) <> 0 THEN ${x.nullBit - x.bit} ELSE 0 END`).join('')}`;
      const cols = outCols.map((c) => {
        const rep = repCols.find((x) => x.r.fk.columns[0] === c.name);
        return rep ? `CASE WHEN ${anyClash} AND ("__flags" & ${rep.bit}) <> 0 THEN NULL ELSE ${q(c.name)} END AS ${q(c.name)}` : q(c.name);
      });
      const mustDrop = repCols.filter((x) => !isNullable(t, x.r.fk));
      const keep = mustDrop.length ? ` WHERE NOT (${anyClash} AND (${mustDrop.map((x) => `("__flags" & ${x.bit}) <> 0`).join(' OR ')}))` : '';
      source = `(SELECT ${flags} AS "__flags", ${cols.join(', ')} FROM (SELECT y.*, ${rn.map((x) => x.window).join(', ')} FROM (${layer1}) y) z${keep}) y`;
    }
    // Layer 3: anonymization over the final values. A row left without any of the columns an app
    // invariant needs is marked -2: TableDemux counts it and leaves it out.
    const required = config.requireOneOf[name];
    const flags = required ? `CASE WHEN ${required.map((c) => `${q(c)} IS NULL`).join(' AND ')} THEN -2 ELSE "__flags" END` : '"__flags"';
    const query = { ctes, flags, fields: outCols.map(anonymized), from: source };
    const withClause = withOf(ctes);
    const outer = membership(t, false);
    const anchoredIn = outer.joins.length ? `(${outer.joins.map(inTest).join(' OR ')})` : 'false';
    const clashDrops = clashes.length ? ` + (SELECT count(*) FROM (${layer1}) y) - (SELECT count(*) FROM ${source})` : '';
    tablePlans.push({
      table: name,
      mode,
      why: pulledBy.length ? `${why}; rows referenced by ${pulledBy.map((r) => fkKey(r.fk)).join(', ')} pulled in` : why,
      columns,
      references,
      touching: touching.map((r) => fkKey(r.fk)),
      query,
      droppedCount: `${withClause}SELECT (SELECT count(*) FROM ${q(name)} x ${joinsOf(outer)} WHERE ${anchoredIn} AND NOT (${outer.where}))${clashDrops} AS n`,
    });
  }
  const unruled = unruledColumns(copied, config.rules);
  if (unruled.length) {
    throw new UnruledColumnsError(`These columns look sensitive and have no anonymization rule: ${unruled.join(', ')}.`, unruled);
  }
  if (problems.length) throw new PlanError(`Anonymization rules do not fit the schema: ${problems.join('; ')}.`, problems);
  const truncate = tablePlans.filter((p) => p.mode !== 'keep').map((p) => p.table);
  const sequences = tablePlans.filter((p) => p.mode !== 'keep').flatMap((p) => catalog.get(p.table)!.sequences.map((s) => ({ table: p.table, ...s })));
  return { tables: tablePlans, truncate, sequences };
}

const withOf = (ctes: readonly Cte[]) => (ctes.length ? `WITH ${ctes.map((c) => c.sql).join(', ')} ` : '');

/**
 * One COPY of every table's rows, so that each membership set is computed once for all of them
 * (EA's read-only snapshot cannot keep them in temporary tables between statements). Every row is
 * `<index in tables>\t<flags>\t<fields as text>`, padded with NULLs to the widest table; the tables
 * come one after the other, in the order given, each closed by an end row whose flags are -1: EA
 * sends it as soon as the table is complete, before it computes the next one's sets. TableDemux
 * splits the stream back into tables.
 */
export function combinedCopy(tables: readonly TablePlan[]): string {
  const ctes = new Map<string, Cte>();
  for (const p of tables)
    for (const c of p.query!.ctes) {
      const known = ctes.get(c.name);
      if (known && known.sql !== c.sql) throw new Error(`combinedCopy: two definitions of ${c.name}`);
      ctes.set(c.name, c);
    }
  const width = Math.max(...tables.map((p) => p.query!.fields.length));
  const padding = (n: number) => Array.from({ length: n }, () => ', NULL::text').join('');
  const branches = tables.flatMap(({ query }, i) => [
    `SELECT ${i} AS "__table", ${query!.flags}::bigint AS "__flags", ${query!.fields.map((f) => `(${f})::text`).join(', ')}${padding(width - query!.fields.length)} FROM ${query!.from}`,
    `SELECT ${i}, -1::bigint${padding(width)}`,
  ]);
  return `COPY (${withOf([...ctes.values()])}${branches.join(' UNION ALL ')}) TO STDOUT`;
}

/** The columns a membership set carries: every column another table's foreign key or a stand-in reads. */
function keyColumns(t: Table, refs: ReadonlyMap<string, Ref[]>): string[] {
  const cols = new Set<string>(t.primaryKey);
  for (const list of refs.values()) for (const r of list) if (r.fk.refTable === t.name) r.fk.refColumns.forEach((c) => cols.add(c));
  return [...cols];
}
