import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JobError, systemError } from '../../../lib/core/errors.ts';

const errno = (code: string, p?: string) => Object.assign(new Error(`${code}: something, open '${p}'`), { code, ...(p && { path: p }) });

test('system errors on a folder: one sentence each, naming the place, with a next step', () => {
  const cases: [string, RegExp][] = [
    ['ENOSPC', /^The disk holding \/srv\/backups is full\.$/],
    ['EACCES', /^Permission denied on \/srv\/backups\.$/],
    ['EROFS', /^\/srv\/backups is on a read-only filesystem\.$/],
    ['ENOENT', /^\/srv\/backups does not exist\.$/],
  ];
  for (const [code, message] of cases) {
    const e = systemError(errno(code, '/srv/backups'));
    assert.instance(e, JobError);
    assert.match(e!.message, message);
    assert.ok(e!.hint && e!.hint.length > 10, code);
  }
  assert.is(systemError(errno('ENOSPC', '/x'), '/srv/backups', 'writing the lock /srv/backups/.lock')!.message, 'Writing the lock /srv/backups/.lock failed: the disk holding /srv/backups is full.');
  assert.is(systemError(errno('ECONNRESET', '/x')), undefined, 'not a folder error');
  assert.is(systemError(errno('ENOSPC')), undefined, 'no place to name');
  assert.is(systemError(new Error('plain')), undefined);
});

test.run();
