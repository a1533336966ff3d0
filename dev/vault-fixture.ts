import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type { Cluster } from './cluster.ts';
import { sandboxDatabases } from './sandbox.ts';
import { hasUpscaledVariant, vaultFilePath, vaultVariantPath } from './seed.ts';

/**
 * Stands in for sample-data-to-dev: copies EA's posts matching `postFilter` (SQL on posts `p`),
 * their owners and post_files into EB's empty tables, as plain rows through COPY. EB's foreign-key
 * triggers are off for the load (session_replication_role = replica): users keep their avatar
 * reference to posts that may not be copied, which the vault sync does not care about.
 */
export async function samplePosts(prod: Cluster, dev: Cluster, postFilter: string): Promise<void> {
  await samplePostsBetween(prod.connection(sandboxDatabases.prod), dev.connection(sandboxDatabases.dev), postFilter);
}

/** The same between any two databases with the Makapix schema (the bench keeps both in one cluster). */
export async function samplePostsBetween(from: pg.ClientConfig, to: pg.ClientConfig, postFilter: string): Promise<void> {
  const ea = new pg.Client(from);
  const eb = new pg.Client(to);
  await Promise.all([ea.connect(), eb.connect()]);
  try {
    await ea.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await eb.query('BEGIN');
    await eb.query('SET LOCAL session_replication_role = replica');
    const posts = `SELECT p.id FROM posts p WHERE ${postFilter}`;
    const tables: [string, string][] = [
      ['users', `SELECT * FROM users WHERE id IN (SELECT owner_id FROM posts p WHERE ${postFilter})`],
      ['posts', `SELECT * FROM posts p WHERE ${postFilter}`],
      ['post_files', `SELECT * FROM post_files WHERE post_id IN (${posts})`],
    ];
    for (const [table, select] of tables) await pipeline(ea.query(copyTo(`COPY (${select}) TO STDOUT`)), eb.query(copyFrom(`COPY ${table} FROM STDIN`)));
    await eb.query('COMMIT');
    await ea.query('COMMIT');
  } finally {
    await Promise.all([ea.end(), eb.end()]);
  }
}

/**
 * The files EB's posts should have in the vault, from the seed generator's own rules (one file per
 * post_files row, plus the upscaled variant it writes for some png originals): an account of the
 * expected set that does not go through lib/domain/vault.ts.
 */
export async function expectedVaultFiles(dev: Cluster, seed: number): Promise<Set<string>> {
  const eb = new pg.Client(dev.connection(sandboxDatabases.dev));
  await eb.connect();
  try {
    const { rows } = await eb.query<{ id: number; shard: string; key: string; format: string }>(
      'SELECT p.id, p.storage_shard AS shard, p.storage_key::text AS key, f.format FROM posts p JOIN post_files f ON f.post_id = p.id',
    );
    const out = new Set<string>();
    for (const r of rows) {
      out.add(vaultFilePath(r.shard, r.key, r.format));
      if (r.format === 'png' && hasUpscaledVariant(seed, r.id)) out.add(vaultVariantPath(r.shard, r.key));
    }
    return out;
  } finally {
    await eb.end();
  }
}

/** Every non-folder entry under root, as relative paths. */
export function listTree(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}
