import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { aliasesFromInspect, deployPlan, deployRefusal, imageTag, parseDeployLog, rollbackTarget, servicesFromConfig, switchStrategy, withEnvValue, type DeployFacts, type DeployRecord } from '../../lib/jobs/deploy.ts';
import { Exit } from '../../lib/core/errors.ts';

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
    { name: 'db', built: false, healthcheck: true, publishesPorts: true },
    { name: 'worker', built: true, healthcheck: false, publishesPorts: false },
    { name: 'api', built: true, healthcheck: true, publishesPorts: false },
    { name: 'web', built: true, healthcheck: false, publishesPorts: false },
  ],
  ebHead: b,
  envFile: '/srv/ops/compose/.env.prod',
  deployLog: '/var/lib/makapix-ops/deploys.jsonl',
  backupDir: '/backups',
  ...over,
});
const opts = { skipTests: false, yes: false };

test('the plan has the nine steps in order, with the real commit, tags and commands', () => {
  const p = deployPlan(facts(), opts);
  assert.equal(p.steps.map((s) => s.id), ['preflight', 'tests', 'backup', 'update', 'build', 'migrate', 'switch', 'health', 'record']);
  assert.equal(p.from, { commit: a, tag: 'aaaaaaaaaaaa' });
  assert.equal(p.to, { commit: b, tag: 'bbbbbbbbbbbb' });
  assert.equal(p.steps[3]!.does, [`git -C /opt/makapix merge --ff-only ${b}`]);
  assert.equal(p.steps[4]!.does, ['IMAGE_TAG=bbbbbbbbbbbb docker compose -p makapix-prod build api worker web']);
  assert.match(p.steps[5]!.does[0]!, 'run --rm --no-deps -T api alembic upgrade head');
  assert.match(p.steps[0]!.does[0]!, '/var/lib/makapix-ops/deploy.lock');
  assert.match(p.steps[8]!.does.join(' '), '/srv/ops/compose/.env.prod: IMAGE_TAG=bbbbbbbbbbbb');
  assert.is(p.steps[1]!.skipped, undefined);
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
  for (const [healthcheck, publishesPorts, expected] of cases) assert.is(switchStrategy({ name: 'x', built: true, healthcheck, publishesPorts }), expected);
});

test('--skip-tests shows as skipped in the plan', () => {
  assert.is(deployPlan(facts(), { skipTests: true, yes: true }).steps[1]!.skipped, '--skip-tests --yes');
});

test('refusals: each unsafe fact has its own exit code and sentence', () => {
  const cases: [Partial<DeployFacts>, typeof opts, number, RegExp][] = [
    [{}, { skipTests: true, yes: false }, Exit.usage, /needs --yes/],
    [{ clean: false }, opts, Exit.refused, /uncommitted changes/],
    [{ branch: 'feature' }, opts, Exit.refused, /on "feature", not main/],
    [{ fastForward: false }, opts, Exit.refused, /not a fast-forward/],
    [{ ebHead: a }, opts, Exit.refused, /EB runs aaaaaaaaaaaa, but main is at bbbbbbbbbbbb/],
  ];
  for (const [over, o, code, message] of cases) {
    const err = deployRefusal(facts(over), o);
    assert.ok(err, JSON.stringify(over));
    assert.is(err!.exitCode, code);
    assert.match(err!.message, message);
  }
  assert.is(deployRefusal(facts(), opts), undefined);
  // Skipping the tests (confirmed) lifts the EB-commit rule: nothing is tested anyway, and it is recorded.
  assert.is(deployRefusal(facts({ ebHead: a }), { skipTests: true, yes: true }), undefined);
});

test('servicesFromConfig reads build, healthcheck (NONE and disable count as none) and ports', () => {
  const yaml = `services:
  api:
    build: {context: /opt/makapix, dockerfile: api/Dockerfile}
    healthcheck: {test: [CMD-SHELL, curl -f http://127.0.0.1:8000/health]}
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
    { name: 'api', built: true, healthcheck: true, publishesPorts: false },
    { name: 'web', built: true, healthcheck: false, publishesPorts: false },
    { name: 'worker', built: true, healthcheck: false, publishesPorts: false },
    { name: 'db', built: false, healthcheck: false, publishesPorts: true },
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
