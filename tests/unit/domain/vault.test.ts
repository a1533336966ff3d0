import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SafetyError, UsageError } from '../../../lib/core/errors.ts';
import {
  ReferenceIndex,
  belongsTo,
  checkRoots,
  decide,
  fileGroup,
  filesOfGroup,
  freeSpaceVerdict,
  isInside,
  joinRel,
  needsOwnership,
  parseOwner,
  resolveIn,
  vaultLayout,
  type DecideOptions,
  type FileState,
  type VaultRelPath,
  type VaultRoot,
} from '../../../lib/domain/vault.ts';

const artwork = vaultLayout.kinds[0]!;
const refused = (e: unknown) => e instanceof SafetyError && e.exitCode === 3;
const key = '0f8fad5b-d9cb-469f-a165-70867728950e';
const other = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

test('a post row maps to <shard>/<key>.<ext>, variants sharing the key, and nothing else', () => {
  const g = fileGroup(artwork, { dir: '24/07', key, exts: ['png', 'webp', 'png'] });
  assert.equal(g, { kind: 'artwork', dir: '24/07', key, exts: ['png', 'webp'] });
  const names = [`${key}.png`, `${key}_x4.png`, `${key}-upscaled.webp`, `${key}.gif`, `${other}.png`, `${key}0.png`, `.${key}.png.tmp-12-0a0b0c0d`, 'README'];
  const { found, missing } = filesOfGroup(g, names);
  assert.equal(found, [`${key}.png`, `${key}_x4.png`, `${key}-upscaled.webp`, `${key}.gif`]);
  assert.equal(missing, [`${key}.webp`]);
  assert.equal(filesOfGroup(fileGroup(artwork, { dir: 'a4/47/ee', key, exts: [] }), []), { found: [], missing: [] });
});

test('belongsTo needs a separator after the key, so keys never claim each other', () => {
  const table: [string, string, boolean][] = [
    ['abc', 'abc', true],
    ['abc.png', 'abc', true],
    ['abc_2x.png', 'abc', true],
    ['abcd.png', 'abc', false],
    ['ab.png', 'abc', false],
    ['.abc.png.tmp-1-00000000', 'abc', false],
  ];
  for (const [name, k, want] of table) assert.is(belongsTo(name, k), want, `${name} vs ${k}`);
});

test('rows that would escape the vault are refused (exit 3): the database is data', () => {
  const bad: [string, unknown, unknown, unknown][] = [
    ['dotdot', '../../etc', key, ['png']],
    ['absolute', '/etc/passwd', key, ['png']],
    ['absolute shard-like', '/24/07', key, ['png']],
    ['one component', '24', key, ['png']],
    ['four components', '24/07/aa/bb', key, ['png']],
    ['upper case hex', 'AB/07', key, ['png']],
    ['trailing slash', '24/07/', key, ['png']],
    ['dot segment', '24/./07', key, ['png']],
    ['inner dotdot', '24/../07', key, ['png']],
    ['null shard', null, key, ['png']],
    ['key with slash', '24/07', `../${key}`, ['png']],
    ['key not a uuid', '24/07', 'passwd', ['png']],
    ['ext with slash', '24/07', key, ['../png']],
    ['ext empty', '24/07', key, ['']],
  ];
  for (const [label, dir, k, exts] of bad) {
    assert.throws(() => fileGroup(artwork, { dir, key: k, exts }), refused, label);
  }
  for (const ok of ['24/07', 'a4/47/ee', '00/ff']) assert.is(fileGroup(artwork, { dir: ok, key, exts: null }).dir, ok);
});

test('paths are joined only inside the root', () => {
  const root = '/mnt/vault-dev' as VaultRoot;
  assert.is(resolveIn(root, '24/07/x.png'), '/mnt/vault-dev/24/07/x.png');
  for (const rel of ['../vault-1/x', '/etc/passwd', '24/../../etc', '', '.']) assert.throws(() => resolveIn(root, rel), refused, rel);
  assert.is(joinRel('24/07' as VaultRelPath, 'a.png'), '24/07/a.png');
  for (const n of ['', '.', '..', 'a/b', 'a\0b']) assert.throws(() => joinRel('24/07' as VaultRelPath, n), refused, JSON.stringify(n));
});

test('isInside compares whole components', () => {
  const table: [string, string, boolean][] = [
    ['/mnt/vault', '/mnt/vault', true],
    ['/mnt/vault', '/mnt/vault/24', true],
    ['/mnt/vault', '/mnt/vault-dev', false],
    ['/mnt/vault', '/mnt', false],
    ['/', '/mnt', true],
    ['/mnt/vault', '/mnt/vault/..foo', true],
  ];
  for (const [p, c, want] of table) assert.is(isInside(p, c), want, `${c} in ${p}`);
});

test('roots: the target may not be, contain or sit inside the source or production vault', () => {
  const unsafe: [string, string, string, string][] = [
    ['target is production', '/mnt/vault-1', '/mnt/vault-1', '/srv/copy-of-ea'],
    ['target is the source', '/srv/src', '/srv/src', '/mnt/vault-1'],
    ['target inside source', '/mnt/vault-1', '/mnt/vault-1/dev', '/mnt/vault-1'],
    ['source inside target', '/mnt/all/ea', '/mnt/all', '/mnt/vault-1'],
    ['target inside production (other source)', '/srv/src', '/mnt/vault-1/x', '/mnt/vault-1'],
    ['target contains production', '/srv/src', '/mnt', '/mnt/vault-1'],
  ];
  for (const [label, source, target, prod] of unsafe) {
    assert.throws(() => checkRoots({ source, target, production: [prod] }), refused, label);
  }
  checkRoots({ source: '/mnt/vault-1', target: '/mnt/vault-dev', production: ['/mnt/vault-1'] });
  checkRoots({ source: '/mnt/vault', target: '/mnt/vault-dev', production: ['/mnt/vault'] });
});

const state = (over: Partial<FileState> = {}): FileState => ({ type: 'file', size: 100, uid: 1000, gid: 1000, mode: 0o644, dev: 1, ino: 10, ...over });
const opts = (over: Partial<DecideOptions> = {}): DecideOptions => ({ link: false, checksum: false, owner: { uid: 1000, gid: 1000 }, fileMode: 0o644, ...over });

test('plan decisions', () => {
  const src = state();
  const table: [string, FileState | undefined, DecideOptions, string][] = [
    ['absent: copy', undefined, opts(), 'copy'],
    ['same size: skip', state({ ino: 11 }), opts(), 'skip'],
    ['same size with --checksum: compare', state({ ino: 11 }), opts({ checksum: true }), 'compare'],
    ['other size (changed source): replace', state({ ino: 11, size: 7 }), opts(), 'replace'],
    ['a symlink where the file goes: replace', state({ type: 'symlink', ino: 11 }), opts(), 'replace'],
    ['absent with --link: link', undefined, opts({ link: true }), 'link'],
    ['other size with --link: link', state({ ino: 11, size: 7 }), opts({ link: true }), 'link'],
    ['already the same inode: skip even with --checksum', state(), opts({ checksum: true, link: true }), 'skip'],
  ];
  for (const [label, dst, o, want] of table) assert.is(decide(src, dst, o), want, label);
  // A hard link shares EA's inode: only when its owner and mode already are EB's, else a copy.
  assert.is(decide(state({ uid: 0 }), undefined, opts({ link: true })), 'copy');
  assert.is(decide(state({ mode: 0o600 }), undefined, opts({ link: true })), 'copy');
});

test('ownership is fixed on kept files, never on a hard link to the source', () => {
  assert.ok(needsOwnership(state(), state({ ino: 11, uid: 0 }), opts()));
  assert.ok(needsOwnership(state(), state({ ino: 11, mode: 0o600 }), opts()));
  assert.not.ok(needsOwnership(state(), state({ ino: 11 }), opts()));
  assert.not.ok(needsOwnership(state({ uid: 0 }), state({ uid: 0 }), opts()), 'same inode as the source');
});

test('prune keeps exactly the files of referenced keys in their own folder', () => {
  const index = new ReferenceIndex();
  index.add(fileGroup(artwork, { dir: '24/07', key, exts: ['png'] }));
  index.add(fileGroup(artwork, { dir: 'a4/47/ee', key: other, exts: [] }));
  const table: [string, boolean][] = [
    [`24/07/${key}.png`, true],
    [`24/07/${key}_x4.png`, true],
    [`24/08/${key}.png`, false],
    [`24/07/${other}.png`, false],
    [`a4/47/ee/${other}.gif`, true],
    [`24/07/.${key}.png.tmp-1-0a0b0c0d`, false],
    [`${key}.png`, false],
    ['stray.txt', false],
  ];
  for (const [rel, want] of table) assert.is(index.references(rel), want, rel);
});

test('free space: planned bytes plus a margin must fit', () => {
  const MiB = 1024 * 1024;
  assert.equal(freeSpaceVerdict(0, { bavail: 0, bsize: 4096 }), { ok: true, available: 0, required: 0 });
  assert.is(freeSpaceVerdict(10 * MiB, { bavail: (266 * MiB) / 4096, bsize: 4096 }).ok, true);
  assert.is(freeSpaceVerdict(10 * MiB, { bavail: (265 * MiB) / 4096, bsize: 4096 }).ok, false);
  const big = freeSpaceVerdict(10_000 * MiB, { bavail: (10_400 * MiB) / 4096, bsize: 4096 });
  assert.is(big.required, 10_500 * MiB);
  assert.is(big.ok, false);
});

test('--owner parsing', () => {
  assert.equal(parseOwner('1000:1000'), { uid: 1000, gid: 1000 });
  assert.equal(parseOwner('33'), { uid: 33, gid: 33 });
  for (const bad of ['www-data', '1000:', '-1:2', '']) assert.throws(() => parseOwner(bad), (e: unknown) => e instanceof UsageError && e.exitCode === 2, bad);
});

test.run();
