import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { changedFilesCommand, changedSince } from '../../../lib/tools/find.ts';

/** A vault of 60 files in two-level shards and one beside them, all written now. */
function vault(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'makapix-find-'));
  for (let i = 0; i < 60; i++) {
    const rel = path.join((i % 12).toString(16).padStart(2, '0'), (i % 5).toString(16).padStart(2, '0'), `${i}.png`);
    mkdirSync(path.join(root, path.dirname(rel)), { recursive: true });
    writeFileSync(path.join(root, rel), 'x');
  }
  writeFileSync(path.join(root, 'top-level.json'), '{}'); // a file beside the shards counts too
  return root;
}

test('argv: files only, mtime or ctime after the moment, to the millisecond', () => {
  assert.equal(changedFilesCommand(['/v/00', '/v/02'], 1_764_900_000_123).argv, ['/v/00', '/v/02', '-xdev', '!', '-type', 'd', '(', '-newermt', '@1764900000.123', '-o', '-newerct', '@1764900000.123', ')', '-print']);
});

test('files changed after the moment are counted across every shard (one find per core), with examples relative to the vault', async () => {
  const root = vault();
  try {
    const all = await changedSince(root, Date.now() - 60_000, { limit: 100 });
    assert.is(all.count, 61);
    assert.ok(all.examples.includes(path.join('03', '03', '3.png')) && all.examples.includes('top-level.json'), all.examples.join(', '));
    assert.is((await changedSince(root, Date.now() - 60_000)).examples.length, 5, 'examples are capped');
    const none = await changedSince(root, Date.now() + 60_000);
    assert.equal(none, { count: 0, examples: [] });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a vault that is not there is no change; a find that cannot run rejects instead of crashing the run', async () => {
  assert.equal(await changedSince('/nonexistent/makapix-vault', 0), { count: 0, examples: [] });
  const root = vault();
  try {
    await changedSince(root, 0, { find: 'makapix-no-such-find' }).then(
      () => assert.unreachable('a missing find was not reported'),
      (err: NodeJS.ErrnoException) => assert.is(err.code, 'ENOENT'),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
