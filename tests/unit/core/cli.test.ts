import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import path from 'node:path';
import { executeCommand, type CommandSpec, type Io } from '../../../lib/core/cli.ts';
import { JobError, SafetyError } from '../../../lib/core/errors.ts';
import { Secret } from '../../../lib/core/secret.ts';

function io(): Io & { out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (d) => (o += d));
  stderr.on('data', (d) => (e += d));
  return { stdout, stderr, tty: false, out: () => o, err: () => e };
}

const flags = { pct: { type: 'string' as const, value: 'N', description: 'percent', default: '10' } };
const spec = (run: CommandSpec<typeof flags, unknown>['run']): CommandSpec<typeof flags, unknown> => ({
  name: 'demo-script',
  summary: 'Does a demo thing.',
  common: ['env', 'dry-run', 'yes', 'json'],
  flags,
  run,
});

test('flags are parsed and typed, --env validated', async () => {
  const t = io();
  let seen: unknown;
  const code = await executeCommand(spec(async (ctx) => (seen = { pct: ctx.flags.pct, env: ctx.env, dry: ctx.dryRun })), ['--env', 'dev', '--dry-run'], t);
  assert.is(code, 0);
  assert.equal(seen, { pct: '10', env: 'dev', dry: true });
});

test('unknown flag → exit 2 with a pointer to --help', async () => {
  const t = io();
  assert.is(await executeCommand(spec(async () => 1), ['--env', 'dev', '--bogus'], t), 2);
  assert.match(t.err(), /Unknown option '--bogus'.*Run demo-script --help/);
});

test('missing or wrong --env → exit 2', async () => {
  assert.is(await executeCommand(spec(async () => 1), [], io()), 2);
  assert.is(await executeCommand(spec(async () => 1), ['--env', 'staging'], io()), 2);
});

test('--help lists every flag, the common ones too, and the exit codes', async () => {
  const t = io();
  assert.is(await executeCommand(spec(async () => assert.unreachable('ran on --help')), ['--help'], t), 0);
  for (const f of ['--pct <N>', '--env <prod|dev>', '--dry-run', '--yes', '--json', '--verbose', '--help', 'Exit codes']) assert.match(t.out(), f);
});

test('typed errors map to their exit codes, one line with a hint, no stack without --verbose', async () => {
  const t = io();
  assert.is(await executeCommand(spec(async () => { throw new SafetyError('Target is production.', 'Use --env dev.'); }), ['--env', 'dev'], t), 3);
  assert.match(t.err(), /error Target is production\. Use --env dev\.\n$/);
  const u = io();
  assert.is(await executeCommand(spec(async () => { throw new JobError('Dump failed.'); }), ['--env', 'dev'], u), 1);
  assert.not.match(u.err(), /at .*cli\.test/);
  const v = io();
  assert.is(await executeCommand(spec(async () => { throw new TypeError('boom'); }), ['--env', 'dev', '--verbose'], v), 1);
  assert.match(v.err(), /Unexpected error: boom/);
  assert.match(v.err(), /at /);
});

test('--json prints the result on stdout, or the error as JSON', async () => {
  const ok = io();
  await executeCommand(spec(async () => ({ rows: 3 })), ['--env', 'dev', '--json'], ok);
  assert.equal(JSON.parse(ok.out()), { rows: 3 });
  const bad = io();
  await executeCommand(spec(async () => { throw new JobError('Nope.'); }), ['--env', 'dev', '--json'], bad);
  assert.equal(JSON.parse(bad.out()), { ok: false, exitCode: 1, error: 'Nope.', hint: null });
});

test('secret values are scrubbed from error messages', async () => {
  const t = io();
  const pw = new Secret('hunter2-very-secret');
  await executeCommand(spec(async () => { throw new JobError(`psql failed for postgresql://owner:${pw.reveal()}@db/x: bad`); }), ['--env', 'dev'], t);
  assert.not.match(t.err(), 'hunter2-very-secret');
});

test('a confirmation without TTY or --yes refuses with exit 3; --yes passes', async () => {
  const run = spec(async (ctx) => { await ctx.confirm('Replace EB?'); return 'done'; });
  assert.is(await executeCommand(run, ['--env', 'dev'], io()), 3);
  assert.is(await executeCommand(run, ['--env', 'dev', '--yes'], io()), 0);
});


test('typed flags arrive parsed: numbers in range, words from their list, lists split at commas', async () => {
  const typed = {
    pct: { type: 'number' as const, min: 0, above: true, max: 100, default: 10, description: 'percent' },
    seed: { type: 'int' as const, description: 'seed' },
    scope: { type: 'enum' as const, values: ['developers', 'devices'] as const, default: 'developers', description: 'scope' },
    users: { type: 'list' as const, pattern: /^[A-Za-z0-9-]{1,64}$/, description: 'ids' },
    dir: { type: 'path' as const, description: 'folder' },
  };
  let seen: unknown;
  const run = (argv: string[]) => executeCommand({ name: 'typed', summary: 'x', common: [], flags: typed, run: async (ctx) => (seen = { ...ctx.flags }) }, argv, io());
  assert.is(await run(['--pct', '0.5', '--seed', '42', '--scope', 'devices', '--users', '12, 34,12', '--dir', 'rel']), 0);
  assert.equal(seen, { pct: 0.5, seed: 42, scope: 'devices', users: ['12', '34'], dir: path.resolve('rel') });
  assert.is(await run([]), 0);
  assert.equal(seen, { pct: 10, scope: 'developers', users: [] });
});

test('a bad typed value is one sentence naming the flag and what it takes (exit 2)', async () => {
  const typed = {
    pct: { type: 'number' as const, min: 0, above: true, max: 100, default: 10, description: 'percent' },
    jobs: { type: 'int' as const, min: 1, max: 64, default: 8, description: 'jobs' },
    scope: { type: 'enum' as const, values: ['developers', 'devices'] as const, description: 'scope' },
    users: { type: 'list' as const, pattern: /^\d+$/, description: 'ids' },
  };
  const cases: [string[], string][] = [
    [['--pct', '0'], '--pct must be a number above 0 and at most 100, got "0".'],
    [['--pct', '150'], '--pct must be a number above 0 and at most 100, got "150".'],
    [['--pct', '1e2'], '--pct must be a number above 0 and at most 100, got "1e2".'],
    [['--pct=-5'], '--pct must be a number above 0 and at most 100, got "-5".'],
    [['--pct', '-5'], '--pct was given a value that starts with a dash.'],
    [['--jobs', '65'], '--jobs must be a whole number from 1 to 64, got "65".'],
    [['--jobs', '2.5'], '--jobs must be a whole number from 1 to 64, got "2.5".'],
    [['--scope', 'admins'], '--scope must be "developers" or "devices", got "admins".'],
    [['--users', '12;DROP'], '--users takes values separated by commas; "12;DROP" is not one.'],
  ];
  for (const [argv, sentence] of cases) {
    const t = io();
    assert.is(await executeCommand({ name: 'typed', summary: 'x', common: [], flags: typed, run: async () => assert.unreachable('ran') }, argv, t), 2, argv.join(' '));
    assert.is(t.err().trim().split('\n').length, 1, `${argv.join(' ')}: one line, got ${t.err()}`);
    assert.match(t.err(), sentence);
  }
});

test.run();
