// EA and EB side by side on a real Docker engine: separate containers, networks, volumes and ports;
// EB's resource limits really applied; down-dev leaves EA running; refusals before Docker is called.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { World } from './harness/world.ts';

let w: World;
const inspect = async (name: string) => JSON.parse((await $({ quiet: true })`docker inspect ${name}`).stdout)[0];
const running = async (project: string) =>
  (await $({ quiet: true })`docker ps --format {{.Names}} --filter ${`label=com.docker.compose.project=${project}`}`).stdout.split('\n').filter(Boolean).sort();

test.before(async () => {
  w = await World.create();
});

test('a missing env file is refused (exit 2) and an EB file loaded as EA is refused (exit 3), before Docker runs', async () => {
  const missing = await w.script('stack.ts', ['up', '--env', 'prod'], { MAKAPIX_ENV_DIR: path.join(w.root, 'nowhere') });
  assert.is(missing.code, 2, missing.stderr);
  assert.match(missing.stderr, /does not exist/);
  const swapped = path.join(w.root, 'swapped');
  $.sync({ quiet: true })`mkdir -p ${swapped}`;
  w.writeEnv('dev', {}, path.join(swapped, '.env.prod'));
  const wrong = await w.script('stack.ts', ['up', '--env', 'prod'], { MAKAPIX_ENV_DIR: swapped });
  assert.is(wrong.code, 3, wrong.stderr);
  assert.equal(await running('makapix-prod'), [], 'nothing was started');
});

test('up-dev (creating caddy_net and its vault folder) and up-prod run side by side, isolated', async () => {
  await $({ quiet: true, nothrow: true })`docker network rm caddy_net`; // unused at this point: prove up-dev creates it
  const dev = await w.script('stack.ts', ['up', '--env', 'dev']);
  assert.is(dev.code, 0, dev.stderr);
  assert.match(dev.stderr, 'created network caddy_net');
  assert.match(dev.stderr, `created vault folder ${path.join(w.root, 'vault-dev')} (uid 1000)`);
  const prod = await w.script('stack.ts', ['up', '--env', 'prod']);
  assert.is(prod.code, 0, prod.stderr);
  const services = ['api', 'broker', 'cache', 'db', 'mqtt', 'vault', 'web', 'worker'];
  assert.equal(await running('makapix-prod'), services.map((s) => `makapix-prod-${s}`));
  assert.equal(await running('makapix-dev'), services.map((s) => `makapix-dev-${s}`));
  // Separate networks and volumes.
  const prodDb = await inspect('makapix-prod-db');
  const devDb = await inspect('makapix-dev-db');
  assert.equal(Object.keys(prodDb.NetworkSettings.Networks), ['makapix-prod-internal']);
  assert.equal(Object.keys(devDb.NetworkSettings.Networks), ['makapix-dev-internal']);
  assert.is(prodDb.Mounts.find((m: { Destination: string }) => m.Destination === '/var/lib/postgresql/data').Name, w.volumes.prod);
  assert.is(devDb.Mounts.find((m: { Destination: string }) => m.Destination === '/var/lib/postgresql/data').Name, w.volumes.dev);
  // Separate published ports, on loopback only for the databases.
  assert.equal(prodDb.HostConfig.PortBindings['5432/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(w.ports.prodDb) }]);
  assert.equal(devDb.HostConfig.PortBindings['5432/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(w.ports.devDb) }]);
  // EB cannot resolve EA's database: the internal networks do not meet.
  const cross = await $({ quiet: true, nothrow: true })`docker exec makapix-dev-api getent hosts makapix-prod-db`;
  assert.is.not(cross.exitCode, 0, 'EB must not resolve EA containers');
  // Each serves its own version of the app through its own alias on caddy_net.
  assert.is(await w.versionOnceUp('prod'), 'v1');
  assert.is(await w.versionOnceUp('dev'), 'v1');
});

test("EB's resource limits are applied (docker inspect) and EA has none", async () => {
  const limits: Record<string, [number, number]> = { db: [0.55, 640], cache: [0.1, 96], broker: [0.1, 96], api: [0.35, 512], worker: [0.3, 320], web: [0.3, 256], mqtt: [0.15, 64], vault: [0.1, 64] };
  let cpus = 0;
  let mem = 0;
  for (const [s, [c, m]] of Object.entries(limits)) {
    const h = (await inspect(`makapix-dev-${s}`)).HostConfig;
    const gotCpus = h.NanoCpus ? h.NanoCpus / 1e9 : h.CpuQuota / h.CpuPeriod;
    assert.ok(Math.abs(gotCpus - c) < 1e-6, `${s}: ${gotCpus} CPUs, expected ${c}`);
    assert.is(h.Memory, m * 1024 * 1024, `${s} memory`);
    cpus += gotCpus;
    mem += h.Memory;
  }
  assert.ok(cpus <= 2 + 1e-9, `EB total ${cpus} CPUs`);
  assert.ok(mem <= 2 * 1024 ** 3, `EB total ${mem} bytes`);
  assert.is((await inspect('makapix-prod-api')).HostConfig.Memory, 0);
});

test("up-dev created EB's vault folder owned by uid 1000, and caddy_net", async () => {
  const st = statSync(path.join(w.root, 'vault-dev'));
  assert.ok(st.isDirectory());
  assert.is(st.uid, 1000);
  assert.is((await $({ quiet: true, nothrow: true })`docker network inspect caddy_net`).exitCode, 0);
});

test('rebuild-dev with a broken build leaves EB running; a good one recreates only what changed', async () => {
  const apiBefore = (await inspect('makapix-dev-api')).Id;
  await w.commit('broken worker build', { version: 'v1', brokenBuild: true });
  await w.pullDev();
  const broken = await w.script('stack.ts', ['rebuild', '--env', 'dev']);
  assert.is(broken.code, 1, broken.stderr);
  assert.is((await inspect('makapix-dev-api')).Id, apiBefore, 'api untouched by the failed build');
  assert.is((await inspect('makapix-dev-worker')).State.Running, true);
  await w.commit('v2 of the api', { version: 'v2' });
  await w.pullDev();
  const good = await w.script('stack.ts', ['rebuild', '--env', 'dev']);
  assert.is(good.code, 0, good.stderr);
  assert.is.not((await inspect('makapix-dev-api')).Id, apiBefore, 'api recreated');
  // rebuild returns once Compose has recreated the api (compose up -d), not once it answers.
  assert.is(await w.versionOnceUp('dev'), 'v2');
  assert.is(await w.version('prod'), 'v1', 'EA untouched');
});

test('down-dev stops EB and leaves EA running', async () => {
  const r = await w.script('stack.ts', ['down', '--env', 'dev']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(await running('makapix-dev'), []);
  assert.is((await running('makapix-prod')).length, 8);
  assert.is(await w.version('prod'), 'v1');
  // The volume survives a down.
  assert.is((await $({ quiet: true, nothrow: true })`docker volume inspect ${w.volumes.dev}`).exitCode, 0);
  assert.match(readFileSync(w.envFile('dev'), 'utf8'), /IMAGE_TAG=dev/);
});

test.run();
