// cutover-prod against a stand-in of the old single-environment stack: refuses without the
// production volume, keeps the existing data, and its printed rollback command brings the old back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';
import { World } from './harness/world.ts';
import { runAtExit } from '../../dev/cleanup.ts';

let w: World;
const old = 'makapix_db_1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const running = async (name: string) => (await $({ quiet: true, nothrow: true })`docker inspect --format {{.State.Running}} ${name}`).stdout.trim() === 'true';
const oldSql = async (sql: string) => (await $({ quiet: true })`docker exec ${old} psql -U owner -d makapix -tAc ${sql}`).stdout.trim();

test.before(async () => {
  w = await World.create();
  // Registered after the world's own cleanup, so it runs first: the volume is free when that removes it.
  runAtExit('docker', ['rm', '-f', old]);
  // The old stack: project "makapix", its database on the volume production keeps using.
  await $({ quiet: true })`docker run -d --name ${old} --label com.docker.compose.project=makapix --label com.docker.compose.service=db -v ${`${w.volumes.prod}:/var/lib/postgresql/data`} -e POSTGRES_USER=owner -e POSTGRES_PASSWORD=change-me-prod-db-admin -e POSTGRES_DB=makapix ${w.images.postgres}`;
  for (let i = 0; i < 60; i++) {
    if ((await $({ quiet: true, nothrow: true })`docker exec ${old} pg_isready -h 127.0.0.1 -U owner -d makapix`).exitCode === 0) break;
    await sleep(500);
  }
  await oldSql('CREATE TABLE users (id int PRIMARY KEY, handle text); INSERT INTO users SELECT g, \'user\' || g FROM generate_series(1, 500) g;');
});

test('refuses (exit 3) when the configured production volume does not exist, and changes nothing', async () => {
  const dir = path.join(w.root, 'env-typo');
  mkdirSync(dir);
  w.writeEnv('prod', { DB_VOLUME_NAME: 'makapix_pg_dta' }, path.join(dir, '.env.prod'));
  const r = await w.script('cutover-prod.ts', ['--yes'], { MAKAPIX_ENV_DIR: dir });
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stderr, /makapix_pg_dta .*does not exist/);
  assert.ok(await running(old), 'the old stack still runs');
});

test('without --yes and without a terminal it refuses (exit 3)', async () => {
  const r = await w.script('cutover-prod.ts', []);
  assert.is(r.code, 3, r.stderr);
  assert.ok(await running(old));
});

test('the cutover keeps the existing data, backs up first, and prints a rollback command that works', async () => {
  const r = await w.script('cutover-prod.ts', ['--yes']);
  assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.ok(!(await running(old)), 'the old stack is stopped');
  assert.ok((await $({ quiet: true, nothrow: true })`docker inspect ${old}`).exitCode === 0, 'but kept for the rollback');
  assert.is(await w.psql('prod', 'SELECT count(*) FROM users'), '500');
  assert.is(await w.version('prod'), 'v1');
  const backup = /Backup: (\S+)/.exec(r.stdout)?.[1];
  assert.ok(backup && w.existsBackup(backup), `backup ${backup}`);
  const rollback = /Rollback: (.+)/.exec(r.stdout)?.[1];
  assert.is(rollback, `make down-prod && docker start ${old}`);
  // The rollback, as an operator would run it (make down-prod is stack.ts down --env prod).
  assert.is((await w.script('stack.ts', ['down', '--env', 'prod'])).code, 0);
  await $({ quiet: true })`docker start ${old}`;
  for (let i = 0; i < 60 && (await $({ quiet: true, nothrow: true })`docker exec ${old} pg_isready -h 127.0.0.1 -U owner`).exitCode !== 0; i++) await sleep(500);
  assert.is(await oldSql('SELECT count(*) FROM users'), '500');
});

test.run();
