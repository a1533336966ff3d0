import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, existsSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { acquireLock, withLock, judgeRecord, ownRecord, parseRecord, processStart, type LockRecord } from '../../../lib/core/lock.ts';
import { writeFileAtomic, isTemporaryName, temporaryName } from '../../../lib/core/atomic-file.ts';
import { JobError } from '../../../lib/core/errors.ts';

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

const deadPid = () => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
const refused = (file: string) => (e: unknown) => {
  assert.instance(e, JobError);
  assert.ok((e as Error).message.includes(file), `the message names the lock file: ${(e as Error).message}`);
};

test('an empty lock (a full disk at start) and a damaged one are taken once they are not being written, never "Unexpected end of JSON"', async () => {
  for (const content of ['', '{"pid": 12', 'not json at all', '[]', '{"pid": -1}']) {
    const file = path.join(dir(), 'x.lock');
    writeFileSync(file, content);
    const old = new Date(Date.now() - 60_000);
    utimesSync(file, old, old);
    const lock = await acquireLock(file, 'backup');
    assert.is(parseRecord(readFileSync(file, 'utf8'))?.pid, process.pid, JSON.stringify(content));
    await lock.release();
    assert.not.ok(existsSync(file));
  }
});

test('a half-written lock that is still fresh is waited for (its writer may be finishing), then taken', async () => {
  const file = path.join(dir(), 'half.lock');
  writeFileSync(file, '{"pid": 4');
  const started = Date.now();
  const lock = await acquireLock(file, 'backup', { unreadableGraceMs: 400 });
  assert.ok(Date.now() - started >= 300, 'a fresh unreadable lock was taken at once');
  await lock.release();
});

test('a live holder is refused, naming the holder and the file; with waitMs the second run waits for it', async () => {
  const file = path.join(dir(), 'live.lock');
  const first = await acquireLock(file, 'gen-basic-auth');
  await acquireLock(file, 'gen-basic-auth').then(() => assert.unreachable('two holders'), refused(file));
  setTimeout(() => void first.release(), 300);
  const second = await acquireLock(file, 'gen-basic-auth', { waitMs: 5000 });
  await second.release();
});

test('a dead owner, a reused pid and an earlier boot are stale; another host never is', async () => {
  const here = { host: 'vps', boot: 'b1', alive: (pid: number) => pid === 10, startOf: (pid: number) => (pid === 10 ? 500 : null) };
  const r = (over: Partial<LockRecord>): LockRecord => ({ job: 'backup', host: 'vps', pid: 10, start: 500, boot: 'b1', since: 'then', ...over });
  assert.is(judgeRecord(r({}), here).live, true);
  assert.is(judgeRecord(r({ pid: 11 }), here).live, false);
  assert.is(judgeRecord(r({ start: 499 }), here).live, false, 'pid reused by a later process');
  assert.is(judgeRecord(r({ boot: 'b0' }), here).live, false);
  assert.is(judgeRecord(r({ host: 'other', pid: 11 }), here).live, true);
  assert.is(judgeRecord(r({ start: null, boot: null }), here).live, true, 'an older record without start time: alive is enough');
  // For real: a record naming a live pid with another start time is taken over.
  const file = path.join(dir(), 'reused.lock');
  writeFileSync(file, JSON.stringify({ ...ownRecord('backup'), start: (processStart(process.pid) ?? 0) + 1 }));
  const lock = await acquireLock(file, 'backup');
  await lock.release();
  const other = path.join(dir(), 'other-host.lock');
  writeFileSync(other, JSON.stringify({ ...ownRecord('backup'), host: `not-${hostname()}`, pid: deadPid() }));
  await acquireLock(other, 'backup').then(() => assert.unreachable('took a lock held on another host'), refused(other));
});

test('the lock appears with its record already complete (no window where it is empty)', async () => {
  const d = dir();
  const file = path.join(d, 'atomic.lock');
  const lock = await acquireLock(file, 'backup');
  assert.equal(parseRecord(readFileSync(file, 'utf8')), { ...ownRecord('backup'), since: parseRecord(readFileSync(file, 'utf8'))!.since });
  assert.equal(readdirSync(d), ['atomic.lock'], 'no temporary file left beside it');
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
