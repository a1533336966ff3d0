// The real app's schema at its Alembic head (tests/fixtures/makapix-head), for the data tools' tests
// and bench: loaded into a sandbox's databases in place of the sandbox's own schema.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../../lib/core/paths.ts';

const dir = path.join(projectRoot, 'tests', 'fixtures', 'makapix-head');

/** Replaces the connected database's public schema with the head's; with users, seeds that many. */
export async function loadHeadSchema(client: pg.Client, opts: { users?: number } = {}): Promise<void> {
  await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP EXTENSION IF EXISTS pg_trgm');
  await client.query(readFileSync(path.join(dir, 'schema.sql'), 'utf8'));
  await client.query('RESET search_path');
  if (opts.users) await client.query(readFileSync(path.join(dir, 'seed.sql'), 'utf8').replaceAll('__USERS__', String(opts.users)));
  // The planner's estimates of a freshly loaded database.
  await client.query('ANALYZE');
}
