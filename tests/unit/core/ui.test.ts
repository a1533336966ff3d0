import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { Ui, describeProgress, formatBytes, formatDuration, loadSpinners, makeConfirm } from '../../../lib/core/ui.ts';
import { SafetyError } from '../../../lib/core/errors.ts';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d) => (text += d));
  return { stream, text: () => text };
}

test('without a TTY, steps are plain timestamped lines with a duration, no spinner escapes', async () => {
  const out = capture();
  let now = Date.parse('2026-11-25T03:00:00Z');
  const ui = new Ui({ tty: false, verbose: false, stream: out.stream, now: () => now });
  await ui.run('dump database', async () => {
    now += 2500;
    return 42;
  }, (n) => `${n} tables`);
  const lines = out.text().trimEnd().split('\n');
  assert.equal(lines, ['2026-11-25T03:00:00.000Z info dump database ...', '2026-11-25T03:00:02.500Z info dump database: done, 42 tables (2.5s)']);
  assert.not.match(out.text(), /\u001b\[/);
});

test('without a TTY, progress prints at most one line per interval and a final summary', () => {
  const out = capture();
  let now = 0;
  const ui = new Ui({ tty: false, verbose: false, stream: out.stream, now: () => now });
  const p = ui.progress('copy', 'files', 1000, 5000);
  for (let i = 0; i < 1000; i++) {
    now += 10; // 10 s in all: two interval lines
    p.tick();
  }
  p.done();
  const lines = out.text().trimEnd().split('\n');
  assert.is(lines.length, 3);
  assert.match(lines[0]!, /copy: 500\/1,000 files \(50%\), 100 files\/s, ETA 5\.0s/);
  assert.match(lines[2]!, /copy: 1,000 files \(10\.0s\)/);
});

test('on a terminal, a progress line advances while ticks come faster than its refresh (issue 20: it stayed at 1/138,184)', async () => {
  await loadSpinners();
  const out = capture();
  Object.assign(out.stream, { isTTY: true, columns: 120, clearLine: () => true, cursorTo: () => true, moveCursor: () => true });
  let now = 0;
  const ui = new Ui({ tty: true, verbose: false, stream: out.stream as unknown as NodeJS.WriteStream, now: () => now });
  const p = ui.progress('writing vault files', 'files', 1000);
  for (let i = 0; i < 900; i++) {
    now += 10; // 100 files/s, a tick every 10 ms: closer together than the 100 ms refresh
    p.tick();
  }
  await new Promise((r) => setTimeout(r, 250)); // the spinner draws its text on its own timer
  const shown = out.text();
  p.done();
  assert.match(shown, /writing vault files: (8\d\d|900)\/1,000 files/);
});

test('a failing step says so and the error propagates', async () => {
  const out = capture();
  const ui = new Ui({ tty: false, verbose: false, stream: out.stream });
  await ui.run('restore', async () => {
    throw new Error('disk full');
  }).then(() => assert.unreachable(), (e: Error) => assert.is(e.message, 'disk full'));
  assert.match(out.text(), /error restore: failed, disk full/);
});

test('progress descriptions: counts, bytes, rate and ETA', () => {
  assert.is(describeProgress(250, 1000, 'rows', 1000), '250/1,000 rows (25%), 250 rows/s, ETA 3.0s');
  assert.is(describeProgress(1024 * 1024, 4 * 1024 * 1024, 'bytes', 1000), '1.0 MiB/4.0 MiB (25%), 1.0 MiB/s, ETA 3.0s');
  assert.is(describeProgress(10, undefined, 'files', 1000), '10 files, 10 files/s');
  assert.is(formatBytes(512), '512 B');
  assert.is(formatDuration(125_000), '2m05s');
});

test('a confirmation without a TTY and without --yes refuses (exit 3) instead of hanging', async () => {
  const confirm = makeConfirm({ yes: false, tty: false });
  await confirm('Replace EB data?').then(
    () => assert.unreachable('confirmed without anyone answering'),
    (e) => {
      assert.instance(e, SafetyError);
      assert.is((e as SafetyError).exitCode, 3);
      assert.match((e as Error).message, /Replace EB data\?/);
    },
  );
  await makeConfirm({ yes: true, tty: false })('Replace EB data?');
});

test.run();
