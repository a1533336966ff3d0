// make check's contract audit against an app tree (tests/fixtures/app mirrors the real app's layout):
// the variables the code reads that compose does not pass, moved files, services ours lacks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, mkdtempSync, renameSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { composeDir, projectRoot } from '../../../lib/core/paths.ts';
import { auditAppContract, pythonEnvReads, scriptEnvReads } from '../../../lib/domain/app-contract.ts';
import { appContractInput, servicesReading, appComposeFile } from '../../../lib/jobs/check.ts';
import { readAppTree } from '../../../lib/tools/app-tree.ts';
import { onExit } from '../../../dev/cleanup.ts';

const fixture = path.join(projectRoot, 'tests', 'fixtures', 'app');

/** The toolkit's compose files as data (keys are what matters here; ${...} stays unexpanded). */
function ourStack(env: 'prod' | 'dev'): unknown {
  const base = parseYaml(readFileSync(path.join(composeDir, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { environment?: Record<string, string> }> };
  const over = parseYaml(readFileSync(path.join(composeDir, `docker-compose.${env}.yml`), 'utf8')) as { services: Record<string, { environment?: Record<string, string> }> };
  for (const [name, s] of Object.entries(over.services)) if (s.environment) base.services[name]!.environment = { ...base.services[name]!.environment, ...s.environment };
  return base;
}

async function audit(dir: string) {
  const tree = await readAppTree(dir, (p) => servicesReading(p).length > 0 || p === appComposeFile);
  return auditAppContract(appContractInput(tree, ourStack('prod'), ourStack('dev')));
}
const rowOf = (rows: { check: string; status: string; detail: string }[], check: string) => rows.find((r) => r.check === check)!;

function copyFixture(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'app-contract-'));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(fixture, dir, { recursive: true });
  return dir;
}

test('Python reads: getenv, environ.get, environ[...], *_env helpers, across line breaks; an empty fallback is no fallback', () => {
  const text = 'a = os.getenv("A")\nb = os.getenv(\n    "B", "x"\n)\nc = os.environ.get("C", "")\nd = os.environ["D"]\ne = _int_env(\n  "E", 5\n)\n';
  assert.equal(pythonEnvReads('f.py', text).map((r) => [r.name, r.line, r.hasDefault]).sort(), [['A', 1, false], ['B', 2, true], ['C', 5, false], ['D', 6, false], ['E', 7, true]]);
});

test('script reads: process.env.X and ["X"], with ?? or || fallbacks', () => {
  const text = 'const a = process.env.A;\nconst b = process.env.B || "x";\nconst c = process.env["C"] ?? 1;\n';
  assert.equal(scriptEnvReads('f.js', text).map((r) => [r.name, r.hasDefault]), [['A', false], ['B', true], ['C', true]]);
});

test('which code each service runs: the worker imports the api package; tests and one-off scripts are nobody', () => {
  assert.equal(servicesReading('api/app/routers/player.py'), ['api', 'worker']);
  assert.equal(servicesReading('api/alembic/env.py'), ['api', 'worker']);
  assert.equal(servicesReading('worker/worker.py'), ['worker']);
  assert.equal(servicesReading('web/src/lib/api.js'), ['web']);
  assert.equal(servicesReading('web/next.config.mjs'), ['web']);
  assert.equal(servicesReading('api/tests/test_x.py'), []);
  assert.equal(servicesReading('api/scripts/run_tests.py'), []);
});

test('the fixture at the fitted contract passes every row', async () => {
  const rows = await audit(fixture);
  assert.equal(rows.filter((r) => r.status !== 'ok'), []);
  assert.match(rowOf(rows, 'app services').detail, 'except on purpose: caddy, www-redirect, redis');
});

test('a variable added later without a fallback fails, per environment, with file and line', async () => {
  const dir = copyFixture();
  writeFileSync(path.join(dir, 'api', 'app', 'billing.py'), 'import os\n\n\nSTRIPE_SECRET_KEY = os.environ["STRIPE_SECRET_KEY"]\n');
  const rows = await audit(dir);
  for (const env of ['prod', 'dev']) {
    const r = rowOf(rows, `${env} app variables`);
    assert.is(r.status, 'fail', env);
    assert.match(r.detail, 'STRIPE_SECRET_KEY (read by api, worker; api/app/billing.py:4): no fallback');
  }
});

test('a variable added later with a fallback warns until it is classified; a known wrong fallback is an error', async () => {
  const dir = copyFixture();
  appendFileSync(path.join(dir, 'worker', 'worker.py'), 'poll = os.getenv("POLL_SECONDS", "30")\n');
  let rows = await audit(dir);
  assert.is(rowOf(rows, 'prod app variables').status, 'warn');
  assert.match(rowOf(rows, 'prod app variables').detail, 'POLL_SECONDS (read by worker; worker/worker.py:4): has a fallback, not classified yet');
  // MQTT_USERNAME is passed today; were it dropped from compose, its fallback (api-server) is known to be wrong.
  const prod = ourStack('prod') as { services: Record<string, { environment: Record<string, string> }> };
  delete prod.services.api!.environment.MQTT_USERNAME;
  const tree = await readAppTree(dir, (p) => servicesReading(p).length > 0 || p === appComposeFile);
  rows = auditAppContract(appContractInput(tree, prod, ourStack('dev')));
  assert.is(rowOf(rows, 'prod app variables').status, 'fail');
  assert.match(rowOf(rows, 'prod app variables').detail, 'MQTT_USERNAME (read by api; api/app/routers/player.py:3): fallback api-server');
  assert.is(rowOf(rows, 'dev app variables').status, 'warn', 'dev still passes it; only the unclassified one warns');
});

test('CERT_RENEWAL_THRESHOLD_DAYS: the default is right for EA, EB must pass it', async () => {
  const dev = ourStack('dev') as { services: Record<string, { environment: Record<string, string> }> };
  delete dev.services.api!.environment.CERT_RENEWAL_THRESHOLD_DAYS;
  delete dev.services.worker!.environment.CERT_RENEWAL_THRESHOLD_DAYS;
  const tree = await readAppTree(fixture, (p) => servicesReading(p).length > 0 || p === appComposeFile);
  const rows = auditAppContract(appContractInput(tree, ourStack('prod'), dev));
  assert.is(rowOf(rows, 'prod app variables').status, 'ok');
  assert.is(rowOf(rows, 'dev app variables').status, 'warn');
  assert.match(rowOf(rows, 'dev app variables').detail, 'CERT_RENEWAL_THRESHOLD_DAYS');
});

test('moved files are named with where they went; a new service of the app fails', async () => {
  const dir = copyFixture();
  renameSync(path.join(dir, 'api', 'alembic.ini'), path.join(dir, 'alembic.ini'));
  rmSync(path.join(dir, 'worker', 'worker.py'));
  appendFileSync(path.join(dir, 'deploy', 'stack', 'docker-compose.yml'), '  search: {image: "meilisearch:1"}\n');
  const rows = await audit(dir);
  const files = rowOf(rows, 'app files');
  assert.is(files.status, 'fail');
  assert.match(files.detail, 'api/alembic.ini moved to alembic.ini');
  assert.match(files.detail, 'worker/worker.py is gone');
  assert.equal(rowOf(rows, 'app services'), { check: 'app services', status: 'fail', detail: "the app's compose defines search, ours does not" });
});

test.run();
