import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { acquireLock, withLock } from '../../lib/core/lock.ts';
import { writeFileAtomic, isTemporaryName, temporaryName } from '../../lib/core/atomic-file.ts';
import { JobError } from '../../lib/core/errors.ts';

const dir = () => mkdtempSync(path.join(tmpdir(), 'lock-'));

test('a second holder is refused with a message naming the first', async () => {
  const file = path.join(dir(), 'backup.lock');
  const first = await acquireLock(file, 'backup-prod');
  await acquireLock(file, 'backup-prod').then(
    () => assert.unreachable('two holders'),
    (e) => {
      assert.instance(e, JobError);
      assert.match((e as Error).message, `Another backup-prod is running (pid ${process.pid}`);
    },
  );
  await first.release();
  const again = await acquireLock(file, 'backup-prod');
  await again.release();
  assert.not.ok(existsSync(file));
});

test('a lock left by a dead process is taken over', async () => {
  const file = path.join(dir(), 'stale.lock');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(file, JSON.stringify({ pid: Number(dead.stdout), job: 'x', since: 'then' }));
  const lock = await acquireLock(file, 'backup-prod');
  assert.is(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
  await lock.release();
});

test('withLock releases even when the job throws', async () => {
  const file = path.join(dir(), 'job.lock');
  await withLock(file, 'job', async () => {
    throw new Error('boom');
  }).catch(() => undefined);
  assert.not.ok(existsSync(file));
});

test('an atomic write leaves the final file complete, with its mode, and no temp file', async () => {
  const d = dir();
  const file = path.join(d, 'credentials.caddy');
  await writeFileAtomic(file, 'one', 0o640);
  await writeFileAtomic(file, 'two', 0o640);
  assert.is(readFileSync(file, 'utf8'), 'two');
  assert.is(statSync(file).mode & 0o777, 0o640);
  assert.equal(readdirSync(d), ['credentials.caddy']);
});

test('a failed atomic write keeps the previous file and removes its temp file', async () => {
  const d = dir();
  const file = path.join(d, 'f');
  await writeFileAtomic(file, 'good');
  const bad = { [Symbol.iterator]: () => { throw new Error('generator died'); } } as unknown as Uint8Array;
  await writeFileAtomic(file, bad).then(() => assert.unreachable(), () => undefined);
  assert.is(readFileSync(file, 'utf8'), 'good');
  assert.equal(readdirSync(d), ['f']);
});

test('temporary names are recognisable, final names are not', () => {
  assert.ok(isTemporaryName(path.basename(temporaryName('/b/makapix-20261125-030000.dump'))));
  assert.not.ok(isTemporaryName('makapix-20261125-030000.dump'));
});

test.run();
