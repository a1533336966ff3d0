import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { countOutcome } from '../run.ts';

const root = path.resolve(import.meta.dirname, '../..');

test('a failing assertion fails the whole run and is counted', () => {
  const r = spawnSync(path.join(root, 'bin/ts'), [path.join(root, 'tests/run.ts'), path.join(root, 'tests/fixtures/runner')], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stdout.trimEnd().split('\n').at(-1)!, /^1 passed, 1 failed$/);
});

test("an error thrown in test.before is printed with its stack, and the file's tests count as failed", () => {
  const r = spawnSync(path.join(root, 'bin/ts'), [path.join(root, 'tests/run.ts'), path.join(root, 'tests/fixtures/runner-setup')], { encoding: 'utf8' });
  assert.is(r.status, 1);
  assert.match(r.stdout, 'test.before threw');
  assert.match(r.stdout, /Error: the world could not be created\n\s+at /);
  assert.match(r.stdout.trimEnd().split('\n').at(-1)!, /^0 passed, 2 failed$/);
});

test('a process that dies without uvu totals counts as a failure', () => {
  assert.equal(countOutcome('TypeError: boom', 1), { passed: 0, failed: 1 });
  assert.equal(countOutcome('  Total:     3\n  Passed:    3\n  Skipped:   0\n', 0), { passed: 3, failed: 0 });
  assert.equal(countOutcome('  Total:     3\n  Passed:    3\n  Skipped:   0\n', 1), { passed: 3, failed: 1 });
});

test.run();
