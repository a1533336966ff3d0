// deploy-to-prod against real stacks: a new commit reaches EA while a prober measures downtime; a
// concurrent deploy is refused; a commit whose tests fail never reaches EA; a commit whose health
// fails is rolled back by itself; --rollback returns to the previous deploy.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { World, Prober, downtime } from './harness/world.ts';
import { imageTag, lockPathFor, parseDeployLog, type DeployRecord } from '../../lib/jobs/deploy.ts';

let w: World;
/** The world's EB checkout tracks main (the app's dev stack tracks develop, the default). */
const ebBranch = ['--eb-branch', 'main'];
let v1 = '';
let v2 = '';
let dryRun = '';
const head = async (dir: string) => (await $({ quiet: true, cwd: dir })`git rev-parse HEAD`).stdout.trim();
const records = (): DeployRecord[] => parseDeployLog(existsSync(w.deployLog) ? readFileSync(w.deployLog, 'utf8') : '');
const envTag = () => /^IMAGE_TAG=(.*)$/m.exec(readFileSync(w.envFile('prod'), 'utf8'))?.[1];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const report = (label: string, d: ReturnType<typeof downtime>) =>
  process.stdout.write(`DOWNTIME ${label}: longest ${d.longestMs} ms without a healthy answer, ${d.failures} failed of ${d.total} probes (every 100 ms); versions seen ${d.versions.join(' -> ')}; failures by kind ${JSON.stringify(d.errors)}\n`);

/** Puts EB on origin/main and rebuilds it, as a developer does before a deploy. */
async function ebOnMain(): Promise<void> {
  await w.pullDev();
  const r = await w.script('stack.ts', ['rebuild', '--env', 'dev']);
  assert.is(r.code, 0, r.stderr);
}

test.before(async () => {
  w = await World.create();
  v1 = await head(w.work);
  for (const env of ['prod', 'dev']) {
    const r = await w.script('stack.ts', ['up', '--env', env]);
    if (r.code !== 0) throw new Error(`up ${env}: ${r.stderr}`);
  }
});

test('--dry-run prints the plan with real values and changes nothing', async () => {
  v2 = await w.commit('v2: items get a price', { version: 'v2', migration: { name: '0002_price', sql: 'ALTER TABLE items ADD COLUMN price int NOT NULL DEFAULT 0;\n' } });
  await ebOnMain();
  const r = await w.script('deploy-to-prod.ts', ['--dry-run', ...ebBranch]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, `${imageTag(v1)} (${v1}) -> ${imageTag(v2)} (${v2})`);
  assert.match(r.stdout, 'api/alembic/versions/0002_price.sql');
  assert.match(r.stdout, 'Apply migrations where the app keeps alembic.ini (/workspace/api)');
  assert.match(r.stdout, `git -C ${w.prodApp} merge --ff-only ${v2}`);
  assert.not.match(r.stdout, 'REFUSED');
  dryRun = r.stdout;
  assert.is(await head(w.prodApp), v1, 'checkout untouched');
  assert.is(envTag(), imageTag(v1));
  assert.equal(records(), []);
});

test('a deploy of a new commit reaches EA with (almost) no downtime; a concurrent deploy is refused', async () => {
  const prober = await Prober.start(w.images.prober);
  await sleep(1500);
  const first = w.script('deploy-to-prod.ts', ebBranch);
  const lock = lockPathFor(w.deployLog);
  for (let i = 0; i < 100 && !existsSync(lock); i++) await sleep(100);
  assert.ok(existsSync(lock), 'the first deploy holds the lock');
  const second = await w.script('deploy-to-prod.ts', ebBranch);
  assert.is(second.code, 3, second.stderr);
  assert.match(second.stderr, /Another deploy-to-prod is running/);
  const r = await first;
  await sleep(1500);
  const d = downtime(await prober.stop());
  report('deploy v1 -> v2', d);
  assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.ok(d.total > 50, `the prober ran (${d.total} probes)`);
  assert.ok(d.longestMs <= 3000, `downtime ${d.longestMs} ms`);
  assert.equal([d.versions[0], d.versions.at(-1)], ['v1', 'v2']);
  assert.is(await w.version('prod'), 'v2');
  assert.is(await w.versionOnceUp('dev'), 'v2'); // EB's api may still be starting: deploy starts it again after the test run
  assert.is(await head(w.prodApp), v2);
  assert.is(envTag(), imageTag(v2), '.env.prod records the deployed tag');
  assert.is(await w.psql('prod', 'SELECT string_agg(version_num, \',\' ORDER BY 1) FROM alembic_version'), '0001_items,0002_price');
  const rec = records().at(-1)!;
  process.stdout.write(`STEPS deploy v1 -> v2: ${rec.steps.map((s) => `${s.id} ${(s.ms / 1000).toFixed(1)}s`).join(', ')}\n`);
  assert.is(rec.result, 'succeeded');
  assert.equal([rec.from.tag, rec.to.tag], [imageTag(v1), imageTag(v2)]);
  assert.ok(rec.backup && w.existsBackup(rec.backup), `pinned backup ${rec.backup}`);
  assert.match(rec.backup!, `${path.sep}pinned${path.sep}`);
  assert.equal(rec.steps.map((s) => s.id).filter((id) => id !== 'test-db'), ['preflight', 'tests-stop', 'tests', 'tests-start', 'backup', 'update', 'build', 'revision', 'migrate', 'head', 'switch']);
  // EA's api migrated to 0001_items when it started (as the app's does); the deploy's step ran 0002.
  assert.match(rec.migrations[0]!, /^ran by this deploy: 0001_items -> 0002_price$/, JSON.stringify(rec.migrations));
  // What ran is what --dry-run printed: every step's command, argv for argv.
  for (const st of rec.steps) assert.ok(dryRun.includes(`${st.title}: ${st.does}`) || dryRun.includes(`if anything above failed, ${st.title}: ${st.does}`), `${st.title}: ${st.does}`);
  assert.ok(!existsSync(lock), 'lock released');
  const helpers = (await $({ quiet: true })`docker ps -aq --filter name=makapix-prod-api-next`).stdout.trim();
  assert.is(helpers, '', 'the helper container is gone');
});

test('a commit whose tests fail is never deployed', async () => {
  const bad = await w.commit('v3: breaks a test', { version: 'v3', tests: 'fail' });
  await ebOnMain();
  const r = await w.script('deploy-to-prod.ts', ebBranch);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /tests failed on EB/);
  assert.is(await w.version('prod'), 'v2');
  assert.is(await head(w.prodApp), v2, 'code not updated');
  assert.is(envTag(), imageTag(v2));
  const images = (await $({ quiet: true, nothrow: true })`docker image inspect ${`makapix-prod-api:${imageTag(bad)}`}`).exitCode;
  assert.is.not(images, 0, 'nothing was built');
  const rec = records().at(-1)!;
  assert.is(rec.result, 'failed');
  assert.equal(rec.steps.filter((s) => s.id !== 'test-db').map((s) => [s.id, s.ok]), [['preflight', true], ['tests-stop', true], ['tests', false], ['tests-start', true]]);
});

test('a commit whose test chunk runs out of memory is refused with that reason, not as failed tests; EB is whole again', async () => {
  const oom = await w.commit('v3b: a test chunk needs 1.5 GiB', { version: 'v3b', tests: 'oom' });
  await ebOnMain();
  const r = await w.script('deploy-to-prod.ts', ebBranch);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /tests ran out of memory on EB/);
  assert.not.match(r.stderr, /tests failed on EB/);
  assert.is(await w.version('prod'), 'v2');
  assert.is(await head(w.prodApp), v2, 'code not updated');
  assert.is.not((await $({ quiet: true, nothrow: true })`docker image inspect ${`makapix-prod-api:${imageTag(oom)}`}`).exitCode, 0, 'nothing was built');
  // The services stopped for the run are back.
  const running = (await $({ quiet: true })`docker ps --format {{.Names}} --filter label=com.docker.compose.project=makapix-dev`).stdout;
  for (const svc of ['api', 'worker', 'web']) assert.match(running, `makapix-dev-${svc}`);
});

test('a commit whose health check fails is rolled back automatically; EA keeps serving the previous version', async () => {
  await w.commit('v4: unhealthy', { version: 'v4', health: 'fail-in-production', migration: { name: '0003_note', sql: 'ALTER TABLE items ADD COLUMN note text;\n' } });
  await ebOnMain();
  const prober = await Prober.start(w.images.prober);
  await sleep(1000);
  const r = await w.script('deploy-to-prod.ts', ['--health-timeout', '8', ...ebBranch]);
  await sleep(1000);
  const d = downtime(await prober.stop());
  report('unhealthy v4, rolled back', d);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /Rolling EA back/);
  assert.match(r.stderr, /restore\.ts --env prod --file \S+pinned/);
  assert.equal(d.versions, ['v2'], 'clients only ever saw v2');
  // The broken version never answered a client (it would show as HTTP 503); a probe that timed out
  // while the machine built images is load, not the deploy, and stays within the downtime bound.
  assert.equal(Object.keys(d.errors).filter((k) => k.startsWith('HTTP')), []);
  assert.ok(d.longestMs <= 3000, `downtime ${d.longestMs} ms`);
  assert.is(await w.version('prod'), 'v2');
  assert.is(envTag(), imageTag(v2));
  assert.is(records().at(-1)!.result, 'rolled-back');
  const helpers = (await $({ quiet: true })`docker ps -aq --filter name=makapix-prod-api-next`).stdout.trim();
  assert.is(helpers, '');
});

test('--rollback returns EA to the tag before the last successful deploy, without building', async () => {
  const prober = await Prober.start(w.images.prober);
  await sleep(1000);
  const r = await w.script('deploy-to-prod.ts', ['--rollback']);
  await sleep(1000);
  const d = downtime(await prober.stop());
  report('--rollback v2 -> v1', d);
  assert.is(r.code, 0, r.stderr);
  assert.is(await w.version('prod'), 'v1');
  assert.is(envTag(), imageTag(v1));
  assert.ok(d.longestMs <= 3000, `downtime ${d.longestMs} ms`);
  const rec = records().at(-1)!;
  assert.equal([rec.kind, rec.result, rec.to.tag], ['rollback', 'succeeded', imageTag(v1)]);
});

test('--skip-tests without --yes is refused (exit 2) before anything happens', async () => {
  const before = records().length;
  const r = await w.script('deploy-to-prod.ts', ['--skip-tests']);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /needs --yes/);
  assert.is(records().length, before, 'a refusal is not a deploy: nothing recorded');
  assert.is(await w.version('prod'), 'v1');
});

test.run();
