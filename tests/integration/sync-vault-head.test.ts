// sync-vault-to-dev on the vault as the real app lays it out (api/app/vault.py, avatar_vault.py,
// blog_vault.py, tasks.py's exports), after sample-data-to-dev filled EB from the Alembic-head
// fixture with the shipped configuration: both through the CLI, as an operator runs them.
import { test } from 'uvu';
import { withClient } from '../../dev/cluster.ts';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { loadHeadSchema, writeHeadVault } from '../../dev/makapix-head.ts';
import { listTree } from '../../dev/vault-fixture.ts';
import { projectRoot } from '../../lib/core/paths.ts';

let sb: TestSandbox;
let eaFiles: string[];

const cli = (script: string, args: string[]) => {
  const r = spawnSync(path.join(projectRoot, 'scripts', script), [...args, '--json'], { cwd: '/', env: { ...process.env, MAKAPIX_ENV_DIR: sb.envDir }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

test.before(async () => {
  sb = await startSandbox({ users: 10, seed: 4 });
  await withClient(sb.prod, 'makapix', (cl) => loadHeadSchema(cl, { users: 120 }));
  await withClient(sb.dev, 'makapix_dev', (cl) => loadHeadSchema(cl));
  eaFiles = await withClient(sb.prod, 'makapix', (cl) => writeHeadVault(cl, sb.vaultProd));
  const sample = cli('sample-data-to-dev.ts', ['--pct', '30', '--seed', '2', '--yes']);
  assert.is(sample.code, 0, sample.stderr);
});

test.after(async () => {
  await sb?.stop();
});

test('every family EB references is copied; playlist posts (no shard) are skipped; export zips never leave EA; --prune keeps what EB references', async () => {
  // What EB's database references after the sample, family by family (the app's own paths).
  const refs = await withClient(sb.dev, 'makapix_dev', async (cl) => {
    const q = async (sql: string) => (await cl.query<{ r: string }>(sql)).rows.map((x) => x.r);
    return {
      artwork: await q("SELECT p.storage_shard || '/' || p.storage_key || '.' || f.format AS r FROM posts p JOIN post_files f ON f.post_id = p.id"),
      mkpx: await q("SELECT 'mkpx/' || storage_shard || '/' || storage_key || '.mkpx' AS r FROM posts WHERE mkpx_file_bytes IS NOT NULL"),
      avatar: await q("SELECT substring(avatar_url from '/(avatar/.*)$') AS r FROM users WHERE avatar_url LIKE '%/avatar/%'"),
      blog: await q("SELECT substring(u from '/(blog_image/.*)$') AS r FROM blog_posts, unnest(image_urls) u"),
      playlists: Number((await cl.query<{ n: string }>("SELECT count(*) AS n FROM posts WHERE storage_shard IS NULL")).rows[0]!.n),
    };
  });
  for (const [family, list] of Object.entries(refs)) if (Array.isArray(list)) assert.ok(list.length > 0, `the sample references no ${family}`);
  assert.ok(refs.playlists > 0, 'no playlist post in the sample');
  assert.ok(refs.artwork.some((r) => r.split('/').length === 4) && refs.artwork.some((r) => r.split('/').length === 3), 'both shard depths');

  // EB's own export zip (its table row made by EB's app) and a stray file nothing references.
  const ownZip = 'bdr/u1/0b8f7a4c-6d3e-4f21-9a55-1c2d3e4f5a6b.zip';
  await withClient(sb.dev, 'makapix_dev', (cl) =>
    cl.query(`INSERT INTO batch_download_requests (id, user_id, post_ids, include_comments, include_reactions, send_email, status, file_path, artwork_count, created_at)
              SELECT '0b8f7a4c-6d3e-4f21-9a55-1c2d3e4f5a6b', min(id), '{}', false, false, false, 'ready', $1, 0, now() FROM users`, [ownZip]),
  );
  mkdirSync(path.join(sb.vaultDev, 'bdr/u1'), { recursive: true });
  writeFileSync(path.join(sb.vaultDev, ownZip), 'EB export');
  mkdirSync(path.join(sb.vaultDev, 'avatar/00/00'), { recursive: true });
  writeFileSync(path.join(sb.vaultDev, 'avatar/00/00/stray.png'), 'stray');

  const r = cli('sync-vault-to-dev.ts', ['--prune', '--yes']);
  assert.is(r.code, 0, r.stderr);
  const tree = new Set(listTree(sb.vaultDev));
  for (const rel of [...refs.artwork, ...refs.mkpx, ...refs.avatar, ...refs.blog]) {
    assert.ok(tree.has(rel), `${rel} not copied`);
    assert.equal(readFileSync(path.join(sb.vaultDev, rel), 'utf8'), `${rel}\n`, rel);
  }
  // Variants come with their artwork.
  assert.ok(refs.artwork.every((rel) => tree.has(rel.replace(/\.[a-z]+$/, '_x4.png'))), 'variants');
  // No export zip of EA's; EB's own kept by --prune; the stray file pruned.
  assert.ok(eaFiles.some((f) => f.startsWith('bdr/')), 'the fixture has export zips');
  assert.not.ok([...tree].some((f) => f.startsWith('bdr/') && f !== ownZip), 'an export zip of EA reached EB');
  assert.ok(existsSync(path.join(sb.vaultDev, ownZip)), '--prune deleted a file EB references');
  assert.not.ok(existsSync(path.join(sb.vaultDev, 'avatar/00/00/stray.png')), 'the stray file survived --prune');
  // Nothing but what EB references: every file in EB's vault is one of them (or a variant).
  const referenced = new Set([...refs.artwork, ...refs.mkpx, ...refs.avatar, ...refs.blog, ownZip]);
  for (const f of tree) assert.ok(referenced.has(f) || f.endsWith('_x4.png'), `${f} copied without a reference`);
});

test.run();
