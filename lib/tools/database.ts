import pg from 'pg';
import type { EnvConfig } from '../core/config.ts';
import { JobError } from '../core/errors.ts';

export type DbRole = 'admin' | 'api_worker';

/** How the toolkit reaches an environment's database from the host: its loopback-published port. */
export function connectionFor(cfg: EnvConfig, role: DbRole = 'admin'): pg.ClientConfig {
  const v = cfg.vars;
  return {
    host: v.DB_PUBLISHED_HOST,
    port: v.DB_PUBLISHED_PORT,
    database: v.DB_DATABASE,
    user: role === 'admin' ? v.DB_ADMIN_USER : v.DB_API_WORKER_USER,
    password: (role === 'admin' ? v.DB_ADMIN_PASSWORD : v.DB_API_WORKER_PASSWORD).reveal(),
    application_name: 'makapix-ops',
  };
}

/** Where a connection goes, for messages: never the password. */
export const describeConnection = (c: pg.ClientConfig) => `${c.user}@${c.host}:${c.port}/${c.database}`;

/** Connects, turning "connection refused" and friends into one sentence naming host:port (exit 1). */
export async function connect(config: pg.ClientConfig): Promise<pg.Client> {
  const client = new pg.Client({ connectionTimeoutMillis: 10_000, ...config });
  try {
    await client.connect();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new JobError(`Cannot connect to PostgreSQL at ${config.host}:${config.port} (database ${config.database}): ${e.code ?? e.message}.`, 'Check that the database is up and the env file points at it.');
  }
  return client;
}

/** What makes a database this database: the cluster's system identifier plus the database name. */
export interface DatabaseIdentity {
  systemIdentifier: string;
  database: string;
}

export async function databaseIdentity(client: pg.Client): Promise<DatabaseIdentity> {
  const { rows } = await client.query<{ id: string; db: string }>('SELECT system_identifier::text AS id, current_database() AS db FROM pg_control_system()');
  return { systemIdentifier: rows[0]!.id, database: rows[0]!.db };
}

export const sameDatabase = (a: DatabaseIdentity, b: DatabaseIdentity) => a.systemIdentifier === b.systemIdentifier && a.database === b.database;
