// sync-vault-to-dev against real files and a real PostgreSQL: the script is run as an operator
// (or cron) would, by path, without a TTY, configured by the sandbox's env files.
import { test } from 'uvu';
import { envFilePath, loadEnvConfig } from '../../lib/core/config.ts';
import * as assert from 'uvu/assert';
import { runEntry } from '../harness/server.ts';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, statSync, rmSync, symlinkSync, mkdirSync, truncateSync, existsSync, readdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { onExit } from '../../dev/cleanup.ts';
import { expectedVaultFiles, listTree, samplePosts } from '../../dev/vault-fixture.ts';
import { sandboxDatabases } from '../../dev/sandbox.ts';
import { isTemporaryName } from '../../lib/core/atomic-file.ts';
import { runSyncVault, type SyncVaultRequest, type SyncVaultSummary } from '../../lib/jobs/vault-sync.ts';
import { OpsError } from '../../lib/core/errors.ts';
import { Ui, makeConfirm } from '../../lib/core/ui.ts';
import { Writable } from 'node:stream';

const root = path.resolve(import.meta.dirname, '../..');
const script = path.join(root, 'scripts/sync-vault-to-dev.ts');
const seed = 11;

let sb: TestSandbox;
let expected: Set<string>;

interface Run {
  code: number | null;
  out: SyncVaultSummary & { error?: string };
  stderr: string;
}

/** Runs the entry by path, no TTY, from /, as cron would; the sandbox's env files configure it. */
function syncCli(...args: string[]): Run {
  const r = runEntry('sync-vault-to-dev.ts', [...args, '--json'], { cwd: '/', env: { ...process.env, MAKAPIX_ENV_DIR: sb.envDir }, timeoutMs: 120_000 });
  let out: Run['out'];
  try {
    out = JSON.parse(r.stdout);
  } catch {
    throw new Error(`no JSON from sync-vault-to-dev (exit ${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  return { code: r.status, out, stderr: r.stderr };
}

/**
 * The same job in this process (a spawned tsx costs seconds on a busy machine): the request the
 * entry would build from its flags, without a TTY, errors mapped to their exit codes.
 */
async function sync(flags: Partial<Omit<SyncVaultRequest, 'ui' | 'confirm'>> & { yes?: boolean } = {}): Promise<Run> {
  let stderr = '';
  const stream = new Writable({ write: (chunk, _enc, done) => ((stderr += chunk), done()) });
  const { yes = false, ...rest } = flags;
  const request: SyncVaultRequest = { owner: '1000:1000', jobs: 8, link: false, checksum: false, prune: false, strict: false, dryRun: false, ...rest, ui: new Ui({ tty: false, verbose: false, stream }), confirm: makeConfirm({ yes, tty: false }) };
  try {
    const config = (env: 'prod' | 'dev') => loadEnvConfig(env, envFilePath(env, sb.envDir));
    return { code: 0, out: await runSyncVault(config('prod'), config('dev'), request), stderr };
  } catch (err) {
    if (!(err instanceof OpsError)) throw err;
    return { code: err.exitCode, out: { error: err.message } as Run['out'], stderr };
  }
}

async function eb<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client(sb.dev.connection(sandboxDatabases.dev));
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

const freshDir = (name: string) => mkdtempSync(path.join(sb.dir, `${name}-`));
const same = (rel: string, target = sb.vaultDev) => readFileSync(path.join(target, rel)).equals(readFileSync(path.join(sb.vaultProd, rel)));

test.before(async () => {
  sb = await startSandbox({ users: 150, seed, vault: true });
  await samplePosts(sb.prod, sb.dev, 'p.id % 3 = 0');
  expected = await expectedVaultFiles(sb.dev, seed);
  assert.ok(expected.size > 200, `a sample of ${expected.size} files is too small to prove much`);
});

test('copies exactly the referenced files (originals and variants), byte-identical, owned by uid 1000', async () => {
  const r = syncCli();
  assert.is(r.code, 0, r.stderr);
  assert.equal(listTree(sb.vaultDev), [...expected].sort());
  assert.ok([...expected].some((f) => f.endsWith('_x4.png')), 'the sample holds variants');
  assert.ok([...expected].some((f) => f.split('/').length === 4), 'the sample holds three-level (old) shards');
  for (const rel of expected) assert.ok(same(rel), `${rel} differs from EA's`);
  for (const orphan of sb.vaultReport!.orphanPaths) assert.not.ok(existsSync(path.join(sb.vaultDev, orphan)), `orphan ${orphan} was copied`);
  assert.is(r.out.copied, expected.size);
  assert.is(r.out.missing, 0);
  assert.is(r.out.bytesCopied, [...expected].reduce((n, f) => n + statSync(path.join(sb.vaultProd, f)).size, 0));
  for (const rel of expected) {
    const s = statSync(path.join(sb.vaultDev, rel));
    assert.equal([s.uid, s.gid, s.mode & 0o7777], [1000, 1000, 0o644], rel);
    const d = statSync(path.dirname(path.join(sb.vaultDev, rel)));
    assert.equal([d.uid, d.gid, d.mode & 0o7777], [1000, 1000, 0o755], path.dirname(rel));
  }
});

test('a second run copies nothing', async () => {
  const r = await sync();
  assert.is(r.code, 0, r.stderr);
  assert.equal([r.out.copied, r.out.linked, r.out.skipped, r.out.staleTempsRemoved], [0, 0, expected.size, 0]);
});

test('a run killed mid-copy leaves no half file under a final name; the next run sweeps its temp files and completes', async () => {
  const target = freshDir('killed');
  const child = spawn(script, ['--target', target, '--jobs', '1'], { env: { ...process.env, MAKAPIX_ENV_DIR: sb.envDir }, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const temps = () => {
    try {
      return listTree(target).filter((f) => isTemporaryName(path.basename(f)));
    } catch {
      return []; // a folder appeared or went mid-walk
    }
  };
  const deadline = Date.now() + 90_000;
  while (temps().length === 0 && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  child.kill('SIGKILL');
  await exited;
  const left = temps();
  assert.ok(left.length > 0, 'the run was not caught mid-copy');
  for (const rel of listTree(target).filter((f) => !isTemporaryName(path.basename(f)))) assert.ok(same(rel, target), `${rel} is under its final name but incomplete`);

  const r = await sync({ target });
  assert.is(r.code, 0, r.stderr);
  assert.ok(r.out.staleTempsRemoved >= left.length, `${r.out.staleTempsRemoved} temp files removed, ${left.length} were left`);
  assert.equal(listTree(target), [...expected].sort());
  for (const rel of expected) assert.ok(same(rel, target), rel);
  assert.is((await sync({ target })).out.staleTempsRemoved, 0, 'a finished run leaves nothing to sweep');
});

test('a final file whose size differs (its source changed) is copied again', async () => {
  const rel = [...expected].sort()[0]!;
  truncateSync(path.join(sb.vaultDev, rel), 5);
  const r = await sync();
  assert.is(r.code, 0, r.stderr);
  assert.equal([r.out.copied, r.out.replaced], [1, 1]);
  assert.ok(same(rel));
});

test('--checksum finds a same-size file whose content differs; a plain run trusts the size', async () => {
  const rel = [...expected].sort()[2]!;
  const file = path.join(sb.vaultDev, rel);
  const bytes = readFileSync(file);
  bytes[bytes.length - 1] ^= 0xff;
  writeFileSync(file, bytes);
  assert.is((await sync()).out.copied, 0);
  const r = await sync({ checksum: true });
  assert.is(r.code, 0, r.stderr);
  assert.equal([r.out.copied, r.out.replaced], [1, 1]);
  assert.ok(same(rel));
});

test('missing source files are reported, and fatal only with --strict', async () => {
  const [post] = await eb<{ id: number; shard: string; key: string }>(
    "SELECT p.id, p.storage_shard AS shard, p.storage_key::text AS key FROM posts p WHERE NOT EXISTS (SELECT 1 FROM post_files f WHERE f.post_id = p.id AND f.format = 'bmp') ORDER BY p.id LIMIT 1",
  );
  await eb("INSERT INTO post_files (post_id, format, width, height, file_bytes) VALUES ($1, 'bmp', 8, 8, 100)", [post!.id]);
  try {
    const r = await sync();
    assert.is(r.code, 0, r.stderr);
    assert.is(r.out.missing, 1);
    assert.equal(r.out.missingFirst, [`${post!.shard}/${post!.key}.bmp`]);
    assert.match(r.stderr, /1 file referenced by EB's database is missing/);
    const strict = await sync({ strict: true });
    assert.is(strict.code, 1);
    assert.match(strict.out.error!, /missing from the source vault/);
  } finally {
    await eb("DELETE FROM post_files WHERE post_id = $1 AND format = 'bmp'", [post!.id]);
  }
});

test('--dry-run lists what would be copied and the bytes, and writes nothing', async () => {
  const target = freshDir('dry');
  const r = await sync({ dryRun: true, target });
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.out.wouldTransfer!.map((f) => f.path).sort(), [...expected].sort());
  assert.is(r.out.plannedBytes, [...expected].reduce((n, f) => n + statSync(path.join(sb.vaultProd, f)).size, 0));
  assert.equal(readdirSync(target), []);
});

test('--link hard-links only when EA\'s owner and mode already are EB\'s (it never changes EA\'s inode)', async () => {
  const linked = freshDir('link');
  const r = await sync({ link: true, owner: '0:0', target: linked });
  assert.is(r.code, 0, r.stderr);
  assert.equal([r.out.linked, r.out.copied], [expected.size, 0]);
  for (const rel of expected) assert.is(statSync(path.join(linked, rel)).ino, statSync(path.join(sb.vaultProd, rel)).ino, rel);
  const copied = freshDir('nolink');
  const r2 = await sync({ link: true, target: copied });
  assert.equal([r2.out.linked, r2.out.copied], [0, expected.size]);
  for (const rel of expected) assert.is(statSync(path.join(sb.vaultProd, rel)).uid, 0, `EA's ${rel} changed owner`);
});

test('refuses (exit 3) a target that is EA\'s vault, inside it, around it, or a symlink to it', async () => {
  const before = listTree(sb.vaultProd);
  const link = path.join(sb.dir, 'ea-alias');
  symlinkSync(sb.vaultProd, link);
  const inside = path.join(sb.vaultProd, 'dev');
  assert.is(syncCli('--target', sb.vaultProd).code, 3, 'through the entry');
  for (const target of [sb.vaultProd, link, sb.dir]) {
    const r = await sync({ target });
    assert.is(r.code, 3, `${target}: ${r.stderr}`);
  }
  mkdirSync(inside);
  try {
    assert.is((await sync({ target: inside })).code, 3);
  } finally {
    rmSync(inside, { recursive: true });
  }
  assert.equal(listTree(sb.vaultProd), before);
});

test('a storage_shard of ../../etc or an absolute path is refused before anything is written', async () => {
  const [post] = await eb<{ id: number; shard: string }>('SELECT id, storage_shard AS shard FROM posts ORDER BY id LIMIT 1');
  try {
    for (const shard of ['../../etc', '/etc', '24/../../x']) {
      await eb('UPDATE posts SET storage_shard = $1 WHERE id = $2', [shard, post!.id]);
      const target = freshDir('evil');
      const r = await sync({ target });
      assert.is(r.code, 3, `${shard}: ${r.stderr}`);
      assert.match(r.out.error!, /not a vault folder/);
      assert.equal(readdirSync(target), [], shard);
    }
  } finally {
    await eb('UPDATE posts SET storage_shard = $1 WHERE id = $2', [post!.shard, post!.id]);
  }
});

test('symlinks leading out of either vault are refused', async () => {
  // In EB's vault: a shard's top folder pointing elsewhere would send writes there.
  const target = freshDir('symlinked');
  const elsewhere = freshDir('elsewhere');
  const top = [...expected][0]!.split('/')[0]!;
  symlinkSync(elsewhere, path.join(target, top));
  const r = await sync({ target });
  assert.is(r.code, 3, r.stderr);
  assert.equal(readdirSync(elsewhere), []);
  assert.equal(readdirSync(target), [top], 'nothing was written before the refusal');
  // Even a link that stays inside EB's vault: writes go only through real folders.
  const inner = freshDir('inner-link');
  mkdirSync(path.join(inner, 'real'));
  symlinkSync(path.join(inner, 'real'), path.join(inner, top));
  assert.is((await sync({ target: inner })).code, 3);
  assert.equal(readdirSync(path.join(inner, 'real')), []);
  // In EA's vault: a file sharing a referenced key that points out of the vault.
  const rel = [...expected].find((f) => f.endsWith('.png') && !f.endsWith('_x4.png'))!;
  const evil = path.join(sb.vaultProd, rel.replace(/\.png$/, '_evil.png'));
  symlinkSync('/etc/hostname', evil);
  try {
    const r2 = await sync({ target: freshDir('evil-src') });
    assert.is(r2.code, 3, r2.stderr);
    assert.match(r2.out.error!, /outside the source vault/);
  } finally {
    unlinkSync(evil);
  }
});

test('refuses (exit 1) when the target has no room for the copy, and --link across filesystems (exit 2)', async () => {
  const small = freshDir('small');
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
  assert.is(mount.status, 0, `mount tmpfs: ${mount.stderr}`);
  onExit(() => void spawnSync('umount', ['-l', small]));
  try {
    const r = await sync({ target: small });
    assert.is(r.code, 1, r.stderr);
    assert.match(r.out.error!, /free/);
    assert.equal(readdirSync(small), []);
    assert.is((await sync({ link: true, target: small })).code, 2);
  } finally {
    spawnSync('umount', [small]);
  }
});

test('--prune removes exactly what EB no longer references, only with confirmation, never the root', async () => {
  writeFileSync(path.join(sb.vaultDev, 'stray.txt'), 'x');
  mkdirSync(path.join(sb.vaultDev, 'zz/zz'), { recursive: true });
  writeFileSync(path.join(sb.vaultDev, 'zz/zz/stray.png'), 'x');
  writeFileSync(path.join(sb.vaultDev, 'zz/.old.png.tmp-1-0a0b0c0d'), 'x');
  await eb('DELETE FROM posts WHERE id % 2 = 0');
  const kept = await expectedVaultFiles(sb.dev, seed);
  assert.ok(kept.size > 0 && kept.size < expected.size);
  const before = listTree(sb.vaultDev);
  const unconfirmed = syncCli('--prune');
  assert.is(unconfirmed.code, 3, unconfirmed.stderr);
  assert.equal(listTree(sb.vaultDev), before);

  const r = await sync({ prune: true, yes: true });
  assert.is(r.code, 0, r.stderr);
  assert.equal(listTree(sb.vaultDev), [...kept].sort());
  assert.is(r.out.pruned, expected.size - kept.size + 3);
  assert.is(r.out.staleTempsRemoved, 0);
  assert.ok(existsSync(sb.vaultDev));
  // Folders the prune emptied are gone too: every folder left holds something.
  const dirs = readdirSync(sb.vaultDev, { recursive: true, withFileTypes: true }).filter((e) => e.isDirectory());
  for (const d of dirs) assert.ok(readdirSync(path.join(d.parentPath, d.name)).length > 0, `${d.name} left empty`);
  assert.not.ok(listTree(sb.vaultDev).some((f) => isTemporaryName(path.basename(f))));
  assert.is((await sync()).out.copied, 0);
});

test.after(async () => {
  await Promise.all([sb?.prod.stop(), sb?.dev.stop()]);
});

test.run();
