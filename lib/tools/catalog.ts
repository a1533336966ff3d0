// The catalog of a database's `public` schema: tables, columns, keys, unique indexes, sequences.
// Every tool that walks the data reads it from here, never from a table list: Alembic adds tables often.
import pg from 'pg';

export interface Column {
  name: string;
  /** format_type(): `integer`, `character varying(45)`, `uuid`, `json`, `text[]` ... */
  type: string;
  nullable: boolean;
  /** GENERATED ALWAYS AS (...) STORED: computed by EB itself, never copied. */
  generated: boolean;
}

export type OnDelete = 'cascade' | 'set null' | 'set default' | 'restrict' | 'no action';

export interface ForeignKey {
  name: string;
  table: string;
  columns: string[];
  refTable: string;
  refColumns: string[];
  onDelete: OnDelete;
}

export interface UniqueIndex {
  name: string;
  columns: string[];
  /** A partial index's WHERE, over plain column names. */
  predicate: string | null;
}

export interface Table {
  name: string;
  columns: Column[];
  primaryKey: string[];
  foreignKeys: ForeignKey[];
  /** Unique indexes over plain columns (expression indexes cannot be reasoned about here). */
  uniques: UniqueIndex[];
  /** Sequences feeding a column (serial, identity, or a nextval default), regclass text. */
  sequences: { column: string; sequence: string }[];
}

export type Catalog = ReadonlyMap<string, Table>;

const onDeleteCodes: Record<string, OnDelete> = { c: 'cascade', n: 'set null', d: 'set default', r: 'restrict', a: 'no action' };

/** Reads tables, columns, keys, unique indexes and sequences of the `public` schema. */
export async function readCatalog(client: pg.Client): Promise<Catalog> {
  const tables = new Map<string, Table>();
  const cols = await client.query<{ table: string; name: string; type: string; nullable: boolean; generated: boolean }>(`
    SELECT c.relname AS table, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
           NOT a.attnotnull AS nullable, a.attgenerated <> '' AS generated
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname, a.attnum`);
  for (const r of cols.rows) {
    let t = tables.get(r.table);
    if (!t) tables.set(r.table, (t = { name: r.table, columns: [], primaryKey: [], foreignKeys: [], uniques: [], sequences: [] }));
    t.columns.push({ name: r.name, type: r.type, nullable: r.nullable, generated: r.generated });
  }
  const attnames = (key: string, rel: string) =>
    `ARRAY(SELECT a.attname FROM unnest(${key}) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = ${rel} AND a.attnum = k.n ORDER BY k.i)::text[]`;
  const cons = await client.query<{ name: string; table: string; type: 'p' | 'f'; columns: string[]; ref_table: string | null; ref_columns: string[] | null; del: string }>(`
    SELECT con.conname AS name, c.relname AS table, con.contype AS type, ${attnames('con.conkey', 'con.conrelid')} AS columns,
           rc.relname AS ref_table, CASE WHEN con.contype = 'f' THEN ${attnames('con.confkey', 'con.confrelid')} END AS ref_columns,
           con.confdeltype AS del
    FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_class rc ON rc.oid = con.confrelid
    WHERE n.nspname = 'public' AND con.contype IN ('p', 'f')
    ORDER BY c.relname, con.conname`);
  for (const r of cons.rows) {
    const t = tables.get(r.table);
    if (!t) continue;
    if (r.type === 'p') t.primaryKey = r.columns;
    else if (r.ref_table && tables.has(r.ref_table))
      t.foreignKeys.push({ name: r.name, table: r.table, columns: r.columns, refTable: r.ref_table, refColumns: r.ref_columns ?? [], onDelete: onDeleteCodes[r.del] ?? 'no action' });
  }
  const idx = await client.query<{ table: string; name: string; columns: string[]; predicate: string | null; expressions: boolean }>(`
    SELECT c.relname AS table, i.relname AS name, ${attnames('x.indkey::int2[]', 'x.indrelid')} AS columns,
           pg_get_expr(x.indpred, x.indrelid) AS predicate, x.indexprs IS NOT NULL AS expressions
    FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND x.indisunique AND NOT x.indisprimary
    ORDER BY c.relname, i.relname`);
  for (const r of idx.rows) if (!r.expressions) tables.get(r.table)?.uniques.push({ name: r.name, columns: r.columns, predicate: r.predicate });
  const seqs = await client.query<{ table: string; column: string; sequence: string }>(`
    SELECT c.relname AS table, a.attname AS column, s.oid::regclass::text AS sequence
    FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_class c ON c.oid = d.refobjid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND n.nspname = 'public'
    UNION
    SELECT c.relname, a.attname, s.oid::regclass::text
    FROM pg_attrdef ad JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
    JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
    JOIN pg_class c ON c.oid = ad.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
    WHERE n.nspname = 'public'
    ORDER BY 1, 2`);
  for (const r of seqs.rows) tables.get(r.table)?.sequences.push({ column: r.column, sequence: r.sequence });
  return tables;
}

/** Every foreign key of a catalog, table by table. */
export const foreignKeysOf = (catalog: Catalog): ForeignKey[] => [...catalog.values()].flatMap((t) => t.foreignKeys);
