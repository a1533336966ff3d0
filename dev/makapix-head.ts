// The real app's schema at its Alembic head (dev/makapix-head/schema.sql) and a generator of its data
// (seed.sql), for the data tools' tests and bench: loaded in place of the sandbox's own schema.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';

const dir = path.join(import.meta.dirname, 'makapix-head');

/** Replaces the connected database's public schema with the head's; with users, seeds that many. */
export async function loadHeadSchema(client: pg.Client, opts: { users?: number } = {}): Promise<void> {
  await client.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public; DROP EXTENSION IF EXISTS pg_trgm');
  await client.query(readFileSync(path.join(dir, 'schema.sql'), 'utf8'));
  await client.query('RESET search_path');
  if (opts.users) await client.query(readFileSync(path.join(dir, 'seed.sql'), 'utf8').replaceAll('__USERS__', String(opts.users)));
  // The planner's estimates of a freshly loaded database.
  await client.query('ANALYZE');
}

/**
 * Writes EA's vault as the app lays it out (lib/domain/vault.ts says where each family follows the
 * app) for every row of the connected head database: artwork per post_files format plus an upscaled
 * variant, `.mkpx` sources, avatars and blog images named by their URLs, export zips. Returns the
 * relative paths written. Small files: the layout is under test, not the bytes.
 */
export async function writeHeadVault(client: pg.Client, root: string): Promise<string[]> {
  const written: string[] = [];
  const put = (rel: string) => {
    mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
    writeFileSync(path.join(root, rel), `${rel}\n`);
    written.push(rel);
  };
  const { rows: art } = await client.query<{ shard: string; key: string; formats: string[]; mkpx: boolean }>(
    `SELECT p.storage_shard AS shard, p.storage_key::text AS key, coalesce(array_agg(f.format) FILTER (WHERE f.format IS NOT NULL), '{}') AS formats, p.mkpx_file_bytes IS NOT NULL AS mkpx
       FROM posts p LEFT JOIN post_files f ON f.post_id = p.id WHERE p.storage_shard IS NOT NULL GROUP BY p.id`,
  );
  for (const a of art) {
    for (const f of a.formats) put(`${a.shard}/${a.key}.${f}`);
    put(`${a.shard}/${a.key}_x4.png`);
    if (a.mkpx) put(`mkpx/${a.shard}/${a.key}.mkpx`);
  }
  const { rows: urls } = await client.query<{ u: string }>("SELECT avatar_url AS u FROM users WHERE avatar_url LIKE '%/avatar/%' UNION SELECT unnest(image_urls) FROM blog_posts");
  for (const { u } of urls) put(/\/((avatar|blog_image)\/.*)$/.exec(u)![1]!);
  const { rows: zips } = await client.query<{ p: string }>('SELECT file_path AS p FROM batch_download_requests WHERE file_path IS NOT NULL');
  for (const { p } of zips) put(p);
  return written;
}
