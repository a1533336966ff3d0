// Both stacks running the fixture app with the real contract, behind the toolkit's edge Caddy
// (caddy/docker-compose.edge.yml on loopback ports, local certificates): EA's page calls the API on
// the origin it was built with and that call succeeds; EB answers 401 without credentials and
// serves with them; the vault rules and access logs work with the edge's real mounts; the app's
// containers run as the app needs (working_dir, no reloader, beat).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { $ } from 'zx';
import { caddyDir } from '../../lib/core/paths.ts';
import { hashPassword } from '../../lib/core/password.ts';
import { Secret } from '../../lib/core/secret.ts';
import { runAtExit, onExit } from '../../dev/cleanup.ts';
import { World } from './harness/world.ts';
import { edgeEnv, edgePorts, get, type EdgePorts } from './harness/edge.ts';

let w: World;
let ports: EdgePorts;
const key = randomUUID();
const vaultFiles = { [`24/27/${key}.png`]: 'artwork bytes', [`mkpx/${key}.mkpx`]: 'restricted layers' };
const developer = { user: 'e2edev', password: 'e2e-developer-password-1' };
const credentials = path.join(caddyDir, 'credentials');
const logs = async (name: string) => {
  const r = await $({ quiet: true, nothrow: true })`docker logs ${name}`;
  return `${r.stdout}${r.stderr}`;
};

test.before(async () => {
  w = await World.create();
  ports = await edgePorts();
  // A developer account in the edge's credentials folder (git-ignored), put back as it was afterwards.
  const backup = `${credentials}.e2e-backup`;
  if (existsSync(credentials)) renameSync(credentials, backup);
  onExit(() => {
    rmSync(credentials, { recursive: true, force: true });
    if (existsSync(backup)) renameSync(backup, credentials);
  });
  mkdirSync(credentials, { recursive: true });
  // Cost 10, as make basic-auth writes them (Caddy's own default, 14, takes seconds per request here).
  const hash = await hashPassword(new Secret(developer.password), 10);
  writeFileSync(path.join(credentials, 'developers.caddy'), `(eb_developers_auth) {\n\tbasicauth {\n\t\t${developer.user} ${hash}\n\t}\n}\n`);
  writeFileSync(path.join(credentials, 'devices.caddy'), readFileSync(path.join(caddyDir, 'credentials.default', 'devices.caddy'), 'utf8'));
  runAtExit('docker', ['rm', '-f', 'makapix-edge-caddy']);
  for (const env of ['prod', 'dev'] as const) {
    const r = await w.script('stack.ts', ['up', '--env', env]);
    assert.is(r.code, 0, `up ${env}: ${r.stderr}`);
  }
  // Artwork in EA's vault, as the app lays it out: a 2-level file and a restricted .mkpx.
  for (const [rel, content] of Object.entries(vaultFiles)) {
    mkdirSync(path.dirname(path.join(w.root, 'vault-prod', rel)), { recursive: true });
    writeFileSync(path.join(w.root, 'vault-prod', rel), content);
  }
  const edge = await w.script('stack.ts', ['up-edge'], edgeEnv(ports, w.images, w.root));
  assert.is(edge.code, 0, `up-edge: ${edge.stderr}`);
  for (let i = 0; i < 60 && (await get(ports.https, 'makapix.club', '/api/health')).status !== 200; i++) await new Promise((r) => setTimeout(r, 500));
  // EB's check (edge-auth, a Node process) starts a few seconds after Caddy; until then EB answers 502.
  for (let i = 0; i < 60 && (await get(ports.https, 'development.makapix.club', '/')).status === 502; i++) await new Promise((r) => setTimeout(r, 500));
});

test("EA: the page calls /api/... on the origin it was built with, and that call succeeds through the edge", async () => {
  const page = await get(ports.https, 'makapix.club', '/');
  assert.is(page.status, 200, page.error ?? page.body);
  const call = /fetch\("([^"]+)"\)/.exec(page.body)?.[1];
  assert.is(call, 'https://makapix.club/api/items', 'NEXT_PUBLIC_API_BASE_URL is the origin, baked in at build time');
  const u = new URL(call!);
  const api = await get(ports.https, u.hostname, u.pathname);
  assert.is(api.status, 200, api.error ?? api.body);
  assert.equal(JSON.parse(api.body), { items: [], vault: 'https://vault.makapix.club' });
});

test('EB: 401 without credentials (noindex on it too), served with a developer\'s', async () => {
  const anonymous = await get(ports.https, 'development.makapix.club', '/');
  assert.is(anonymous.status, 401);
  assert.match(String(anonymous.headers['x-robots-tag']), 'noindex');
  const api = await get(ports.https, 'development.makapix.club', '/api/items');
  assert.is(api.status, 401, 'the API too: EB is entirely behind basic auth');
  const page = await get(ports.https, 'development.makapix.club', '/', developer, 10_000);
  assert.is(page.status, 200, page.error ?? page.body);
  assert.match(page.body, 'fetch("https://development.makapix.club/api/items")');
  const items = await get(ports.https, 'development.makapix.club', '/api/items', developer, 10_000);
  assert.is(items.status, 200);
});

test("the vault through the edge: files from EA's vault folder, /mkpx/* 404, the legacy remap; the worker reads the access log", async () => {
  const file = await get(ports.https, 'vault.makapix.club', `/24/27/${key}.png`);
  assert.is(file.status, 200, file.error ?? file.body);
  assert.is(file.body, 'artwork bytes');
  assert.is(file.headers['cache-control'], 'public, max-age=31536000, immutable');
  const mkpx = await get(ports.https, 'vault.makapix.club', `/mkpx/${key}.mkpx`);
  assert.is(mkpx.status, 404);
  assert.not.match(mkpx.body, 'restricted');
  assert.is((await get(ports.https, 'vault.makapix.club', `/e4/a7/3c/${key}.png`)).body, 'artwork bytes');
  // The edge writes vault-access.log where the worker's download statistics read it.
  let seen = '';
  for (let i = 0; i < 20 && !seen.includes(`/e4/a7/3c/${key}.png`); i++) {
    seen = (await $({ quiet: true, nothrow: true })`docker exec makapix-prod-worker cat /var/log/caddy/vault-access.log`).stdout;
    if (!seen.includes(key)) await new Promise((r) => setTimeout(r, 250));
  }
  assert.match(seen, `"uri":"/e4/a7/3c/${key}.png"`);
  assert.match(seen, '"logger":"http.log.access');
});

test('EA\'s vault: artwork served, the restricted /mkpx/* answers 404 (the file exists)', async () => {
  const vault = path.join(w.root, 'vault-prod');
  mkdirSync(path.join(vault, 'ab', 'cd'), { recursive: true });
  mkdirSync(path.join(vault, 'mkpx'), { recursive: true });
  writeFileSync(path.join(vault, 'ab', 'cd', 'art.png'), 'png');
  writeFileSync(path.join(vault, 'mkpx', 'layers.mkpx'), 'secret layers');
  const art = await get(ports.https, 'vault.makapix.club', '/ab/cd/art.png');
  assert.is(art.status, 200, art.error ?? art.body);
  const restricted = await get(ports.https, 'vault.makapix.club', '/mkpx/layers.mkpx');
  assert.is(restricted.status, 404);
  assert.not.match(restricted.body, 'secret layers');
});

test('the api runs in /workspace/api without the reloader; alembic and the test runner work from there', async () => {
  for (const env of ['prod', 'dev']) {
    assert.match(await logs(`makapix-${env}-api`), 'listening on 8000 (reload: False)');
    const wd = (await $({ quiet: true })`docker inspect --format {{.Config.WorkingDir}} ${`makapix-${env}-api`}`).stdout.trim();
    assert.is(wd, '/workspace/api');
  }
  const migrate = await $({ quiet: true, nothrow: true })`docker exec makapix-dev-api alembic upgrade head`;
  assert.is(migrate.exitCode, 0, migrate.stderr);
  const tests = await $({ quiet: true, nothrow: true })`docker exec makapix-dev-api python scripts/run_tests.py`;
  assert.is(tests.exitCode, 0, tests.stderr);
});

test("the worker runs the app's worker.py with beat; the broker Redis is separate; the db init made api_worker and makapix_test", async () => {
  assert.match(await logs('makapix-prod-worker'), 'celery worker --beat');
  const policy = (await $({ quiet: true })`docker exec makapix-prod-broker redis-cli config get maxmemory-policy`).stdout;
  assert.match(policy, 'noeviction');
  const dev = await $({ quiet: true })`docker exec makapix-dev-db psql -U owner -d postgres -tAc ${"SELECT (SELECT count(*) FROM pg_roles WHERE rolname = 'api_worker') || ',' || (SELECT count(*) FROM pg_database WHERE datname = 'makapix_test')"}`;
  assert.is(dev.stdout.trim(), '1,1');
});

test('the api refuses to boot without a required variable (the fixture keeps the real contract)', async () => {
  const image = (await $({ quiet: true })`docker inspect --format {{.Config.Image}} makapix-dev-api`).stdout.trim();
  const r = await $({ quiet: true, nothrow: true })`docker run --rm -w /workspace/api -e JWT_SECRET_KEY=${'x'.repeat(40)} ${image} uvicorn app.main:app`;
  assert.is.not(r.exitCode, 0);
  assert.match(r.stderr, 'SQIDS_ALPHABET');
});

test.run();
