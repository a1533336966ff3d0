// ConfinedTree: the descriptor-relative file layer of the vault sync. The race itself is proved in
// tests/integration/vault-race.test.ts; these pin each rule deterministically.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, linkSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfinedTree } from '../../../lib/core/confined-tree.ts';
import { SafetyError } from '../../../lib/core/errors.ts';

const base = mkdtempSync(path.join(tmpdir(), 'confined-'));
const root = path.join(base, 'root');
const outside = path.join(base, 'outside');
mkdirSync(path.join(root, 'a/b'), { recursive: true });
mkdirSync(outside);
writeFileSync(path.join(outside, 'f'), 'outside', { mode: 0o600 });
const me = { uid: process.getuid!(), gid: process.getgid!() };

test('a folder reached through a symlink is refused, whichever component it is', async () => {
  symlinkSync(outside, path.join(root, 'a/link'));
  const tree = await ConfinedTree.open(root);
  try {
    await tree.folder('a/link').then(() => assert.unreachable('followed a link'), (err) => assert.instance(err, SafetyError));
    await tree.folder('a/link/deeper', { ...me, mode: 0o755 }).then(() => assert.unreachable('followed a link'), (err) => assert.instance(err, SafetyError));
    assert.equal(readdirSync(outside), ['f']);
  } finally {
    await tree.close();
    rmSync(path.join(root, 'a/link'));
  }
});

test('an open folder stays the one it was: a parent swapped for a link afterwards redirects nothing', async () => {
  const tree = await ConfinedTree.open(root);
  try {
    const b = (await tree.folder('a/b'))!;
    renameSync(path.join(root, 'a'), path.join(root, 'a-moved'));
    symlinkSync(outside, path.join(root, 'a'));
    mkdirSync(path.join(outside, 'b'));
    writeFileSync(path.join(base, 'src'), 'data');
    await tree.copyInto(path.join(base, 'src'), b, 'new');
    b.release();
    assert.equal(readdirSync(path.join(outside, 'b')), []);
    assert.is(readFileSync(path.join(root, 'a-moved/b/new'), 'utf8'), 'data');
  } finally {
    await tree.close();
    rmSync(path.join(root, 'a'));
    rmSync(path.join(outside, 'b'), { recursive: true });
    renameSync(path.join(root, 'a-moved'), path.join(root, 'a'));
  }
});

test('own() never changes a link\'s target or a file with a second name; copyInto never writes through a link', async () => {
  symlinkSync(path.join(outside, 'f'), path.join(root, 'a/b/l'));
  linkSync(path.join(root, 'a/b/new'), path.join(root, 'a/b/second'));
  const tree = await ConfinedTree.open(root);
  try {
    const b = (await tree.folder('a/b'))!;
    assert.is(await tree.own(b, 'l', me, 0o644), false);
    assert.is(statSync(path.join(outside, 'f')).mode & 0o777, 0o600);
    assert.is(await tree.own(b, 'second', me, 0o640), false);
    await tree.copyInto(path.join(base, 'src'), b, 'l').then(() => assert.unreachable('wrote through a link'), (err) => assert.is(err.code, 'EEXIST'));
    assert.is(readFileSync(path.join(outside, 'f'), 'utf8'), 'outside');
    await tree.remove(b, 'second');
    assert.is(await tree.own(b, 'new', me, 0o640), true);
    assert.is(statSync(path.join(root, 'a/b/new')).mode & 0o777, 0o640);
    await tree.remove(b, 'l');
    assert.ok(lstatSync(path.join(outside, 'f')).isFile(), 'removing the link kept its target');
    b.release();
  } finally {
    await tree.close();
  }
});

test('walk() lists entries through real folders only; removeEmptyFolders stops at the root', async () => {
  symlinkSync(outside, path.join(root, 'a/into-outside'));
  const tree = await ConfinedTree.open(root);
  try {
    const seen: string[] = [];
    await tree.walk(async (_f, _e, rel) => void seen.push(rel));
    assert.equal(seen.sort(), ['a/b/new', 'a/into-outside']);
    await tree.walk(async (f, name) => tree.remove(f, name));
    await tree.removeEmptyFolders('a/b');
    assert.equal(readdirSync(root), []);
    assert.equal(readdirSync(outside), ['f']);
  } finally {
    await tree.close();
  }
});

test.after(() => rmSync(base, { recursive: true, force: true }));
test.run();
