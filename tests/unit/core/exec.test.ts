import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mapLimit, poll, renderCommand, renderPlan, run, runPlan, type Step } from '../../../lib/core/exec.ts';
import { JobError } from '../../../lib/core/errors.ts';

const sh = (script: string) => ({ cmd: 'sh', argv: ['-c', script] });
const quietRunner = { run: <T>(_title: string, fn: () => Promise<T>) => fn() };

test('renderCommand quotes what a shell would split and never shows environment values', () => {
  assert.is(renderCommand({ cmd: 'pg_dump', argv: ['-d', 'makapix', '--file', '/tmp/a b.dump'], env: { PGPASSWORD: 'hunter2' } }), "PGPASSWORD=… pg_dump -d makapix --file '/tmp/a b.dump'");
  assert.is(renderCommand({ cmd: 'echo', argv: ["it's", ''] }), `echo 'it'\\''s' ''`);
  assert.is(renderCommand({ cmd: 'git', argv: ['status'], cwd: '/opt/app' }), '(cd /opt/app && git status)');
});

test('run captures output, passes stdin and environment, and names a failing command', async () => {
  assert.equal(await run(sh('echo out; echo err >&2')), { exitCode: 0, stdout: 'out\n', stderr: 'err\n' });
  assert.is((await run({ ...sh('cat; printf %s "$X"'), env: { X: '-x' } }, { input: 'in' })).stdout, 'in-x');
  assert.is((await run(sh('exit 4'), { nothrow: true })).exitCode, 4);
  const err = await run(sh('echo boom >&2; exit 3')).catch((e: unknown) => e);
  assert.instance(err, JobError);
  assert.match((err as Error).message, "`sh -c 'echo boom >&2; exit 3'` exited 3: boom.");
});

test('a missing program is one sentence, not a stack trace', async () => {
  const err = await run({ cmd: 'no-such-tool-here', argv: [] }).catch((e: unknown) => e);
  assert.instance(err, JobError);
  assert.is((err as Error).message, 'no-such-tool-here is not installed (not on PATH).');
  assert.is((await run({ cmd: 'no-such-tool-here', argv: [] }, { nothrow: true })).exitCode, 127);
});

test('poll needs consecutive successes; any failure starts the count again', async () => {
  const seq = [true, true, false, true, true, true];
  let i = 0;
  assert.equal(await poll(async () => seq[i++]!, { intervalMs: 1, timeoutMs: 5000, consecutive: 3 }), { met: true, attempts: 6 });
  assert.equal((await poll(async () => false, { intervalMs: 5, timeoutMs: 30 })).met, false);
});

test('mapLimit keeps order and never runs more than its bound at once', async () => {
  let running = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n) => {
    peak = Math.max(peak, ++running);
    await new Promise((r) => setTimeout(r, n * 3));
    running--;
    return n * 10;
  });
  assert.equal(out, [50, 10, 40, 20, 30]);
  assert.is(peak, 2);
});

test('the printed plan is the executed plan, and rollbacks run newest first only after a failure', async () => {
  const ran: string[] = [];
  const steps: Step[] = [
    { kind: 'command', title: 'first', command: sh('true') },
    { kind: 'rollback', title: 'undo first', command: sh('true') },
    { kind: 'task', title: 'note', detail: 'records the step', run: async () => void ran.push('task') },
    { kind: 'rollback', title: 'undo note', command: sh('true') },
    { kind: 'command', title: 'fails', command: sh('exit 1') },
    { kind: 'command', title: 'never', command: sh('true') },
  ];
  assert.equal(renderPlan(steps), [
    '1. first: sh -c true',
    '2. if anything above failed, undo first: sh -c true',
    '3. note: records the step',
    '4. if anything above failed, undo note: sh -c true',
    "5. fails: sh -c 'exit 1'",
    '6. never: sh -c true',
  ]);
  const titles: string[] = [];
  const err = await runPlan(steps, { run: (t, fn) => (titles.push(t), fn()) }).catch((e: unknown) => e);
  assert.instance(err, JobError);
  assert.equal(titles, ['first', 'note', 'fails', 'undo note', 'undo first']);
  assert.equal(ran, ['task']);
  await runPlan(steps.slice(0, 4), quietRunner);
});

test('a wait step polls its probe until it succeeds, and fails naming it after the deadline', async () => {
  const file = `/tmp/exec-wait-${process.pid}`;
  setTimeout(() => void run(sh(`touch ${file}`)), 50);
  await runPlan([{ kind: 'wait', title: 'file appears', probe: { cmd: 'test', argv: ['-e', file] }, policy: { intervalMs: 10, timeoutMs: 5000 } }], quietRunner);
  await run(sh(`rm -f ${file}`));
  const err = await runPlan([{ kind: 'wait', title: 'never', probe: sh('exit 1'), policy: { intervalMs: 5, timeoutMs: 30 } }], quietRunner).catch((e: unknown) => e);
  assert.match((err as Error).message, "never: `sh -c 'exit 1'` did not succeed within");
});

test.run();
