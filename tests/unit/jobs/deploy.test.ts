import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { aliasesFromInspect, deployPlan, deployStepId, deployRefusal, deployRefusals, deploySteps, imageTag, parseDeployLog, parseMemMb, parseRevisions, rollbackTarget, servicesFromConfig, servicesToStop, switchStrategy, testShell, testVerdict, testsComposeFile, withEnvValue, type DeployFacts, type DeployRecord, type DeployOptions, type DeployTasks } from '../../../lib/jobs/deploy.ts';
import { renderCommand, renderPlan, type Command, type Step } from '../../../lib/core/exec.ts';
import { spawnSync } from 'node:child_process';
import { Exit } from '../../../lib/core/errors.ts';

const a = 'a'.repeat(40);
const b = 'b'.repeat(40);
const facts = (over: Partial<DeployFacts> = {}): DeployFacts => ({
  project: 'makapix-prod',
  appDir: '/opt/makapix',
  branch: 'main',
  clean: true,
  head: a,
  target: b,
  fastForward: true,
  commits: [{ sha: b, subject: 'add prices' }],
  migrations: ['api/alembic/versions/0002_price.py'],
  currentTag: imageTag(a),
  services: [
    { name: 'db', built: false, healthcheck: true, publishesPorts: true, memMb: 0 },
    { name: 'worker', built: true, healthcheck: false, publishesPorts: false, memMb: 0 },
    { name: 'api', built: true, healthcheck: true, publishesPorts: false, memMb: 0 },
    { name: 'web', built: true, healthcheck: false, publishesPorts: false, memMb: 0 },
  ],
  ebHead: 'c'.repeat(40),
  ebBranch: 'develop',
  ebTree: 't'.repeat(40),
  targetTree: 't'.repeat(40),
  // EB as docker-compose.dev.yml limits it: 1920 MiB in all.
  ebServices: [['db', 768], ['cache', 128], ['api', 384], ['worker', 256], ['web', 256], ['mqtt', 64], ['vault', 64]].map(([name, memMb]) => ({ name: name as string, built: false, healthcheck: false, publishesPorts: false, memMb: memMb as number })),
  testDbExists: true,
  flavor: 'v2',
  devEnvFile: '/srv/ops/compose/.env.dev',
  ebDbAdmin: 'owner',
  ebDbWorker: 'api_worker',
  envFile: '/srv/ops/compose/.env.prod',
  deployLog: '/var/lib/makapix-ops/deploys.jsonl',
  backupDir: '/backups',
  ...over,
});
const opts: DeployOptions = { skipTests: false, yes: false };

/** The tasks record what they were handed, so a test can compare it with what the plan shows. */
function recorder() {
  const handed: Record<string, Command[]> = {};
  const note = (k: string) => async (...c: Command[]) => void (handed[k] = c);
  const tasks: DeployTasks = { preflight: note('preflight'), runTests: note('tests'), backup: note('backup'), revisionBefore: note('revision'), checkHead: note('head'), switchAndHealth: note('switch') };
  return { tasks, handed };
}
const stepsOf = (f: DeployFacts, o = opts) => {
  const r = recorder();
  return { steps: deploySteps(f, o, deployPlan(f, o), r.tasks), ...r };
};
const commandOf = (st: Step) => (st.kind === 'command' || st.kind === 'rollback' ? st.command : undefined);

test('the plan: the steps in order, with the real commit, tags and commands', () => {
  const { steps } = stepsOf(facts());
  assert.equal(steps.map((st) => [st.kind, st.title.split(' ').slice(0, 3).join(' ')]), [
    ['task', 'Preflight'],
    ['command', "Stop EB's worker,"],
    ['rollback', "start EB's worker,"],
    ['task', "Run the app's"],
    ['command', "Start EB's worker,"],
    ['task', "Back up EA's"],
    ['command', 'Update the code'],
    ['command', "Build EA's images"],
    ['task', "Read EA's schema"],
    ['command', 'Apply migrations where'],
    ['task', 'Check the schema'],
    ['task', 'Switch EA to'],
  ]);
  assert.equal(commandOf(steps[6]!), { cmd: 'git', argv: ['-C', '/opt/makapix', 'merge', '--ff-only', b] });
  const build = commandOf(steps[7]!)!;
  assert.equal([build.cmd, ...build.argv.slice(-8)], ['docker', '--env-file', '/srv/ops/compose/.env.prod', '-p', 'makapix-prod', 'build', 'api', 'worker', 'web']);
  assert.equal(build.env, { IMAGE_TAG: 'bbbbbbbbbbbb' });
  const migrate = commandOf(steps[9]!)!;
  assert.equal(migrate.argv.slice(-10), ['makapix-prod', 'run', '--rm', '--no-deps', '-T', '-w', '/workspace/api', 'api', 'alembic', 'upgrade', 'head'].slice(-10));
  assert.equal(migrate.env, { IMAGE_TAG: 'bbbbbbbbbbbb' });
  const lines = renderPlan(steps);
  assert.match(lines[0]!, '/var/lib/makapix-ops/deploy.lock');
  assert.match(lines[6]!, `git -C /opt/makapix merge --ff-only ${b}`);
  assert.match(lines[7]!, 'IMAGE_TAG=… docker compose');
});

test("the test run: EB's api image in a one-off container with 768 MiB, in /workspace/api, the app's command; EB's worker, web and api stopped first and started after (or on failure)", () => {
  const { steps, handed } = stepsOf(facts());
  const stop = commandOf(steps[1]!)!;
  assert.equal(stop.argv.slice(-4), ['stop', 'worker', 'web', 'api']);
  assert.match(stop.argv.join(' '), '--env-file /srv/ops/compose/.env.dev -p makapix-dev');
  assert.equal(commandOf(steps[2]!)!.argv.slice(-4), ['start', 'worker', 'web', 'api']);
  assert.equal(commandOf(steps[4]!)!.argv.slice(-4), ['start', 'worker', 'web', 'api']);
  const tests = steps[3]!;
  assert.is(tests.kind, 'task');
  return (async () => {
    await (tests as Extract<Step, { kind: 'task' }>).run();
    const run = handed.tests![0]!;
    // --dry-run shows exactly the command the task runs.
    assert.is((tests as Extract<Step, { kind: 'task' }>).detail, renderCommand(run));
    const i = run.argv.indexOf('run');
    assert.equal(run.argv.slice(i - 2, i + 10), ['-f', testsComposeFile, 'run', '--rm', '--no-deps', '-T', '-w', '/workspace/api', 'api', 'sh', '-c', testShell(['python', 'scripts/run_tests.py'], 768)]);
    assert.equal(run.env, { MAKAPIX_TEST_MEMORY: '768M' });
    assert.ok(run.argv.includes('makapix-dev'));
  })();
});

test("dry-run argv equals executed argv: every command step's value is the object the runner is handed", async () => {
  const { steps, handed } = stepsOf(facts());
  for (const st of steps) if (st.kind === 'task') await st.run();
  const lines = renderPlan(steps);
  assert.ok(lines.some((l) => l.includes(renderCommand(handed.tests![0]!))));
  assert.ok(lines.some((l) => l.includes(renderCommand(handed.revision![0]!))));
  assert.ok(lines.some((l) => l.includes(`${renderCommand(handed.head![0]!)} must equal ${renderCommand(handed.head![1]!)}`)));
});

test('each step has a stable id for the deploy log', () => {
  assert.equal(stepsOf(facts({ testDbExists: false })).steps.map((st) => deployStepId(st.title)), ['preflight', 'test-db', 'test-db', 'tests-stop', 'tests-start', 'tests', 'tests-start', 'backup', 'update', 'build', 'revision', 'migrate', 'head', 'switch']);
});

test('memory: EB stays within 2 GiB with the test container; stopped, not paused, in the order worker, web, api', () => {
  const eb = facts().ebServices;
  assert.equal(servicesToStop(eb, 768), { stop: ['worker', 'web', 'api'], totalMb: 1792 });
  assert.equal(servicesToStop(eb, 128), { stop: [], totalMb: 2048 });
  assert.equal(servicesToStop(eb, 384), { stop: ['worker'], totalMb: 2048 });
  assert.throws(() => servicesToStop(eb, 1500), /do not fit/);
  assert.equal([parseMemMb('768M'), parseMemMb('1g'), parseMemMb(805306368), parseMemMb('805306368'), parseMemMb(undefined)], [768, 1024, 768, 768, 0]);
});

test('a missing makapix_test is created first, as the app\'s db init script makes it on a new volume', () => {
  const { steps } = stepsOf(facts({ testDbExists: false }));
  const [create, grant] = [commandOf(steps[1]!)!, commandOf(steps[2]!)!];
  assert.equal(create.argv.slice(-11), ['exec', '-T', 'db', 'psql', '-v', 'ON_ERROR_STOP=1', '-U', 'owner', '-d', 'postgres', '-c', 'CREATE DATABASE makapix_test'].slice(-11));
  assert.match(grant.argv.at(-1)!, 'GRANT CONNECT ON DATABASE makapix_test TO "api_worker"');
  assert.is(stepsOf(facts()).steps.filter((st) => st.title.includes('Create makapix_test')).length, 0);
});

test("the test verdict: an OOM kill is reported as such, not as failed tests", () => {
  assert.is(testVerdict(0, 768), undefined);
  assert.match(testVerdict(137, 768)!.message, /ran out of memory on EB: .* 768 MiB limit; deploy refused/);
  assert.is(testVerdict(137, 768)!.exitCode, Exit.failed);
  assert.match(testVerdict(1, 768)!.message, /tests failed on EB \(exit 1\)/);
});

test("the test shell: the app's exit code passes through; the cgroup's oom_kill counter turns it into 137", () => {
  const sh = (cmd: string[]) => spawnSync('sh', ['-c', testShell(cmd, 768)], { encoding: 'utf8' });
  assert.is(sh(['true']).status, 0);
  assert.is(sh(['sh', '-c', 'exit 3']).status, 3);
  assert.is(sh(['echo', "it's quoted"]).stdout, "it's quoted\n");
  assert.match(testShell(['python', 'scripts/run_tests.py'], 768), /oom_kill[\s\S]*exit 137/);
});

test('alembic revisions: the ids of `current` and `heads` output', () => {
  assert.equal(parseRevisions('INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n0002_price (head)\n'), ['0002_price']);
  assert.equal(parseRevisions('b2 (head)\na1 (head)\n'), ['a1', 'b2']);
  assert.equal(parseRevisions(''), []);
});

test('api (healthcheck, no port) overlaps and goes first; worker and web are recreated; db is never switched', () => {
  assert.equal(deployPlan(facts(), opts).switches, [
    { service: 'api', strategy: 'overlap' },
    { service: 'worker', strategy: 'recreate' },
    { service: 'web', strategy: 'recreate' },
  ]);
});

test('switch strategy table', () => {
  const cases: [boolean, boolean, string][] = [
    [true, false, 'overlap'],
    [true, true, 'recreate'], // a published port cannot be held by two containers
    [false, false, 'recreate'], // no way to know the new one is ready
    [false, true, 'recreate'],
  ];
  for (const [healthcheck, publishesPorts, expected] of cases) assert.is(switchStrategy({ name: 'x', built: true, healthcheck, publishesPorts, memMb: 0 }), expected);
});

test('--skip-tests --yes: no test step, nothing of EB stopped', () => {
  const { steps } = stepsOf(facts(), { skipTests: true, yes: true });
  assert.not.ok(steps.some((st) => /tests|EB's/.test(st.title)), JSON.stringify(steps.map((st) => st.title)));
});

test('refusals: each unsafe fact has its own exit code and sentence', () => {
  const cases: [Partial<DeployFacts>, DeployOptions, number, RegExp][] = [
    [{}, { skipTests: true, yes: false }, Exit.usage, /needs --yes/],
    [{ clean: false }, opts, Exit.refused, /uncommitted changes/],
    [{ branch: 'feature' }, opts, Exit.refused, /on "feature", not main/],
    [{ fastForward: false }, opts, Exit.refused, /not a fast-forward/],
    [{ ebTree: 'u'.repeat(40) }, opts, Exit.refused, /EB runs cccccccccccc \(tree uuuuuuuuuuuu\), but main is at bbbbbbbbbbbb \(tree tttttttttttt\): the trees differ/],
    [{ ebBranch: 'feature-x' }, opts, Exit.refused, /EB's checkout is on "feature-x", not develop/],
    [{ ebBranch: 'main' }, { ...opts, ebBranch: 'release' }, Exit.refused, /not release/],
  ];
  for (const [over, o, code, message] of cases) {
    const err = deployRefusal(facts(over), o);
    assert.ok(err, JSON.stringify(over));
    assert.is(err!.exitCode, code);
    assert.match(err!.message, message);
  }
  assert.is(deployRefusal(facts(), opts), undefined);
  // main has merge commits EB never ran: a different commit with the same tree is what EB tested.
  assert.is(deployRefusal(facts({ ebHead: 'd'.repeat(40) }), opts), undefined);
  assert.is(deployRefusal(facts({ ebBranch: 'release' }), { ...opts, ebBranch: 'release' }), undefined);
  // Skipping the tests (confirmed) lifts the EB rules: nothing is tested anyway, and it is recorded.
  assert.is(deployRefusal(facts({ ebTree: 'u'.repeat(40), ebBranch: 'x' }), { skipTests: true, yes: true }), undefined);
  // --dry-run lists every refusal, not just the first.
  assert.is(deployRefusals(facts({ clean: false, ebTree: 'u'.repeat(40) }), opts).length, 2);
});

test('servicesFromConfig reads build, healthcheck (NONE and disable count as none) and ports', () => {
  const yaml = `services:
  api:
    build: {context: /opt/makapix, dockerfile: api/Dockerfile}
    healthcheck: {test: [CMD-SHELL, curl -f http://127.0.0.1:8000/health]}
    mem_limit: "402653184"
  web:
    build: {context: /opt/makapix}
    healthcheck: {test: [NONE]}
  worker:
    build: {context: /opt/makapix}
    healthcheck: {disable: true}
  db:
    image: postgres:17
    ports: ["127.0.0.1:5432:5432"]
`;
  assert.equal(servicesFromConfig(yaml), [
    { name: 'api', built: true, healthcheck: true, publishesPorts: false, memMb: 384 },
    { name: 'web', built: true, healthcheck: false, publishesPorts: false, memMb: 0 },
    { name: 'worker', built: true, healthcheck: false, publishesPorts: false, memMb: 0 },
    { name: 'db', built: false, healthcheck: false, publishesPorts: true, memMb: 0 },
  ]);
});

test('withEnvValue replaces one line and keeps everything else byte for byte', () => {
  const text = '# comment\nIMAGE_TAG=latest\nAPP_DIR=/opt/makapix\n';
  assert.is(withEnvValue(text, 'IMAGE_TAG', 'abc'), '# comment\nIMAGE_TAG=abc\nAPP_DIR=/opt/makapix\n');
  assert.is(withEnvValue('A=1\n', 'IMAGE_TAG', 'abc'), 'A=1\nIMAGE_TAG=abc\n');
  assert.is(withEnvValue('A=1', 'IMAGE_TAG', 'abc'), 'A=1\nIMAGE_TAG=abc');
  assert.is(withEnvValue('MY_IMAGE_TAG=x\n', 'IMAGE_TAG', 'y'), 'MY_IMAGE_TAG=x\nIMAGE_TAG=y\n');
});

const rec = (from: string, to: string, result: DeployRecord['result']): DeployRecord => ({
  at: '2026-11-25T00:00:00Z', kind: 'deploy', user: 'ops', from: { commit: null, tag: from }, to: { commit: null, tag: to }, images: [], backup: null, skipTests: false, migrations: [], steps: [], result,
});

test('rollbackTarget: the tag before the successful deploy of the current tag; failures never count', () => {
  const log = [rec('t1', 't2', 'succeeded'), rec('t2', 't3', 'succeeded'), rec('t3', 't4', 'rolled-back'), rec('t3', 't5', 'failed')];
  assert.equal(rollbackTarget(log, 't3'), { tag: 't2', commit: null });
  assert.equal(rollbackTarget(log, 't2'), { tag: 't1', commit: null });
  assert.is(rollbackTarget(log, 't4'), undefined);
  assert.is(rollbackTarget([], 't1'), undefined);
});

test('parseDeployLog skips a line cut by a crash', () => {
  const line = JSON.stringify(rec('t1', 't2', 'succeeded'));
  assert.is(parseDeployLog(`${line}\n{"at":"2026-11-2\n${line}\n`).length, 2);
});

test('aliasesFromInspect keeps the service aliases and drops the container-id alias', () => {
  const id = '0123456789abcdef0123';
  const json = JSON.stringify({ 'makapix-prod-internal': { Aliases: ['api', '0123456789ab'] }, caddy_net: { Aliases: ['api.makapix-prod', 'api', '0123456789ab'] }, other: { Aliases: null } });
  assert.equal([...aliasesFromInspect(json, id)], [['makapix-prod-internal', ['api']], ['caddy_net', ['api.makapix-prod', 'api']], ['other', []]]);
});

test.run();
