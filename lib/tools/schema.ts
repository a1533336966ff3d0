import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { readCatalog, type Catalog } from './catalog.ts';
import { projectRoot } from '../core/paths.ts';
import { Secret } from '../core/secret.ts';

/** The Makapix-like schema the sandbox and the tests use (see the comment at its top). */
export const sandboxSchemaFile = path.join(projectRoot, 'dev', 'sandbox-schema.sql');
/** The alembic_version row the sandbox schema carries, as a migrated app database would. */
export const sandboxSchemaRevision = 'a7c3e91f0b42';

export interface SchemaOptions {
  /** The app's DML-only role (DB_API_WORKER_USER); created when missing, granted DML on the schema. */
  apiWorker?: { user: string; password: Secret };
}

/**
 * Creates the Makapix-like schema in the connected (empty) database, in one transaction, and when
 * asked, the app's api_worker role with DML grants. Needs a superuser (or the database owner plus
 * CREATEROLE) connection.
 */
export async function createMakapixSchema(client: pg.Client, opts: SchemaOptions = {}): Promise<void> {
  const ddl = await readFile(sandboxSchemaFile, 'utf8');
  await client.query('BEGIN');
  try {
    await client.query(ddl);
    if (opts.apiWorker) await grantApiWorker(client, opts.apiWorker.user, opts.apiWorker.password);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** The statements that give the app's role DML (never DDL) on everything in public, now and later. */
export function apiWorkerGrantStatements(user: string, database: string): string[] {
  const role = pg.escapeIdentifier(user);
  return [
    `GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(database)} TO ${role}`,
    `GRANT USAGE ON SCHEMA public TO ${role}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`,
    `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${role}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${role}`,
  ];
}

async function grantApiWorker(client: pg.Client, user: string, password: Secret): Promise<void> {
  const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
  // Roles are cluster-wide: an existing one (another database of this cluster) keeps its password.
  if (!rowCount) await client.query(`CREATE ROLE ${pg.escapeIdentifier(user)} LOGIN PASSWORD ${client.escapeLiteral(password.reveal())}`);
  const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
  for (const sql of apiWorkerGrantStatements(user, rows[0]!.db)) await client.query(sql);
}

export interface ForeignKeyViolation {
  constraint: string;
  table: string;
  rows: number;
}

/** The check of one table's foreign keys: it can run once the table and every table it points at are complete. */
export interface ForeignKeyCheck {
  table: string;
  refTables: string[];
  run(client: pg.Client): Promise<ForeignKeyViolation[]>;
}

/**
 * One check per table with foreign keys: a single scan that joins, for each key, the row it points
 * at (unique, so no row repeats) and counts the rows where it finds none.
 */
export function foreignKeyChecks(catalog: Catalog): ForeignKeyCheck[] {
  const col = (alias: string, c: string) => `${alias}.${pg.escapeIdentifier(c)}`;
  return [...catalog.values()]
    .filter((t) => t.foreignKeys.length)
    .map(({ name: table, foreignKeys: fks }) => {
      const joins = fks.map((fk, k) => `LEFT JOIN ${pg.escapeIdentifier(fk.refTable)} r${k} ON ${fk.columns.map((c, i) => `${col(`r${k}`, fk.refColumns[i]!)} = ${col('t', c)}`).join(' AND ')}`);
      const counts = fks.map((fk, k) => `count(*) FILTER (WHERE ${fk.columns.map((c) => `${col('t', c)} IS NOT NULL`).join(' AND ')} AND ${col(`r${k}`, fk.refColumns[0]!)} IS NULL) AS v${k}`);
      const sql = `SELECT ${counts.join(', ')} FROM ${pg.escapeIdentifier(table)} t ${joins.join(' ')}`;
      return {
        table,
        refTables: [...new Set(fks.map((fk) => fk.refTable))],
        run: async (client: pg.Client) => {
          const { rows } = await client.query<Record<string, string>>(sql);
          return fks.flatMap((fk, k) => (Number(rows[0]![`v${k}`]) > 0 ? [{ constraint: fk.name, table, rows: Number(rows[0]![`v${k}`]) }] : []));
        },
      };
    });
}

/**
 * Rows whose foreign key points at nothing, per constraint (only the ones with any). Loads that
 * bypass the foreign-key triggers (COPY under session_replication_role = replica) prove their
 * result with this; it is also how a copied database is checked.
 */
export async function foreignKeyViolations(client: pg.Client, catalog?: Catalog): Promise<ForeignKeyViolation[]> {
  const out: ForeignKeyViolation[] = [];
  for (const check of foreignKeyChecks(catalog ?? (await readCatalog(client)))) out.push(...(await check.run(client)));
  return out;
}
