// env-files against a running stand-in of the old production stack (Compose project "makapix") and of
// EB's database (makapix-dev): the database passwords and volumes come from `docker inspect`, a stale
// password in the app's env file is caught by logging in, and EA started from the written file
// (make up-prod) reaches the existing data.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { $ } from 'zx';
import { parseEnvFile } from '../../lib/core/config.ts';
import { withEnvValue } from '../../lib/jobs/deploy.ts';
import type { EnvFilesResult } from '../../lib/jobs/env-files.ts';
import { World } from './harness/world.ts';
import { runAtExit } from '../../dev/cleanup.ts';

let w: World;
const oldDb = 'makapix-envfiles-db-1';
const oldApi = 'makapix-envfiles-api-1';
const ebDb = 'makapix-envfiles-devdb-1';
const ebPassword = randomBytes(16).toString('hex');
const adminPassword = randomBytes(16).toString('hex');
const workerPassword = randomBytes(16).toString('hex');
const jwt = randomBytes(32).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The labels Compose puts on a service's containers.
const labels = (service: string, extra: string[] = [], project = 'makapix') => ['--label', `com.docker.compose.project=${project}`, '--label', `com.docker.compose.service=${service}`, '--label', 'com.docker.compose.oneoff=False', ...extra];

test.before(async () => {
  w = await World.create();
  runAtExit('docker', ['rm', '-f', oldDb, oldApi, ebDb]);
  // EB already runs (as on the real VPS): its database, with its own password, on its own volume.
  await $({ quiet: true })`docker run -d --name ${ebDb} ${labels('db', [], 'makapix-dev')} -v ${`${w.volumes.dev}:/var/lib/postgresql/data`} -e POSTGRES_USER=owner -e ${`POSTGRES_PASSWORD=${ebPassword}`} -e POSTGRES_DB=makapix_dev ${w.images.postgres}`;
  // The old stack's database, on the volume production keeps using; the worker role as the app's
  // db/init-users.sh makes it.
  await $({ quiet: true })`docker run -d --name ${oldDb} ${labels('db')} -v ${`${w.volumes.prod}:/var/lib/postgresql/data`} -e POSTGRES_USER=owner -e ${`POSTGRES_PASSWORD=${adminPassword}`} -e POSTGRES_DB=makapix -e DB_API_WORKER_USER=api_worker -e ${`DB_API_WORKER_PASSWORD=${workerPassword}`} ${w.images.postgres}`;
  for (const db of [oldDb, ebDb]) for (let i = 0; i < 60 && (await $({ quiet: true, nothrow: true })`docker exec ${db} pg_isready -h 127.0.0.1 -U owner -d postgres`).exitCode !== 0; i++) await sleep(500);
  await $({ quiet: true })`docker exec ${oldDb} psql -U owner -d makapix -qc ${`CREATE ROLE api_worker LOGIN PASSWORD '${workerPassword}'; CREATE TABLE users (id int PRIMARY KEY); INSERT INTO users SELECT generate_series(1, 321); GRANT SELECT ON users TO api_worker;`}`;
  // Its api: the environment the app's compose gives it (env_file .env plus DATABASE_URL), started
  // from the app checkout's deploy/stack (Compose records that folder in a label).
  const stack = path.join(w.prodApp, 'deploy', 'stack');
  mkdirSync(stack, { recursive: true });
  await $({ quiet: true })`docker run -d --name ${oldApi} ${labels('api', ['--label', `com.docker.compose.project.working_dir=${stack}`])} -e ${`JWT_SECRET_KEY=${jwt}`} -e ${`DATABASE_URL=postgresql://api_worker:${workerPassword}@db:5432/makapix`} --entrypoint sleep ${w.images.postgres} infinity`;
  // The app's own env files: .env for the containers, .env.prod for compose. Its worker password is
  // stale (rotated since the containers were made); the admin password is not in them at all.
  writeFileSync(
    path.join(stack, '.env'),
    ['ROOT_DOMAIN=makapix.club', 'MQTT_PASSWORD=prod-mqtt-0123456789abcdef', 'MAKAPIX_IP_HASH_SALT=' + randomBytes(32).toString('hex'), 'GITHUB_OAUTH_CLIENT_ID=Iv1.prod', 'GITHUB_OAUTH_CLIENT_SECRET=prod-oauth-0123456789'].join('\n') + '\n',
  );
  writeFileSync(path.join(stack, '.env.prod'), 'DB_DATABASE=makapix\nDB_API_WORKER_USER=api_worker\nDB_API_WORKER_PASSWORD=stale-worker-password\n');
});

test('the database password and volume come from docker inspect; a stale password is caught by logging in; EA then reaches the existing database', async () => {
  const out = path.join(w.root, 'generated');
  const oauth = path.join(w.root, 'eb-oauth.env');
  writeFileSync(oauth, 'GITHUB_OAUTH_CLIENT_ID=Iv1.dev\nGITHUB_OAUTH_CLIENT_SECRET=dev-oauth-0123456789\n');
  const r = await w.script('env-files.ts', ['--app-dir', w.prodApp, '--dev-app-dir', w.devApp, '--dev-from', oauth, '--env-dir', out, '--json']);
  const result = JSON.parse(r.stdout) as EnvFilesResult;
  assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.not.ok(r.stdout.includes(adminPassword) || r.stdout.includes(workerPassword) || r.stdout.includes(jwt) || r.stderr.includes(adminPassword), 'no secret printed');

  const prodFile = path.join(out, '.env.prod');
  const values = new Map([...parseEnvFile(readFileSync(prodFile, 'utf8'), prodFile).entries].map(([k, e]) => [k, e.value]));
  const source = (key: string) => result.files[0]!.entries.find((e) => e.key === key)!.source;
  assert.is(values.get('DB_VOLUME_NAME'), w.volumes.prod);
  assert.match(source('DB_VOLUME_NAME'), new RegExp(`docker inspect ${oldDb} \\(the volume on /var/lib/postgresql/data\\)`));
  assert.is(values.get('DB_ADMIN_PASSWORD'), adminPassword);
  assert.match(source('DB_ADMIN_PASSWORD'), new RegExp(`docker inspect ${oldDb}`));
  assert.is(values.get('DB_API_WORKER_PASSWORD'), workerPassword, 'the password that logs in, not the stale one');
  assert.is(values.get('POSTGRES_IMAGE'), w.images.postgres);
  assert.match(result.notes.join('\n'), /not an official postgres image .*PostgreSQL 15/, "the data folder's major version is read");
  assert.is(values.get('JWT_SECRET_KEY'), jwt);
  assert.is(values.get('APP_DIR'), w.prodApp);
  // The stale value: a disagreement naming both places, and a failed login naming the file.
  const stale = result.logins.find((l) => l.key === 'DB_API_WORKER_PASSWORD' && !l.ok)!;
  assert.match(stale.where, /deploy\/stack\/\.env\.prod:3$/);
  assert.match(stale.reason ?? '', /password authentication failed/);
  assert.ok(result.logins.some((l) => l.key === 'DB_ADMIN_PASSWORD' && l.ok));
  assert.ok(result.disagreements.some((d) => d.key === 'DB_API_WORKER_PASSWORD' && /docker inspect/.test(d.chosen) && /\.env\.prod:3$/.test(d.other)));

  // EB: its running database's password and volume carried, confirmed by a login; its other secrets fresh.
  const devFile = path.join(out, '.env.dev');
  const dev = new Map([...parseEnvFile(readFileSync(devFile, 'utf8'), devFile).entries].map(([k, e]) => [k, e.value]));
  assert.is(dev.get('DB_ADMIN_PASSWORD'), ebPassword);
  assert.is(dev.get('DB_VOLUME_NAME'), w.volumes.dev);
  assert.is(dev.get('DB_DATABASE'), 'makapix_dev');
  assert.ok(result.logins.some((l) => l.env === 'dev' && l.key === 'DB_ADMIN_PASSWORD' && l.ok));
  assert.match(dev.get('JWT_SECRET_KEY')!, /^[0-9a-f]{64}$/);
  await $({ quiet: true })`docker rm -f ${ebDb}`;

  // EA from the written file: only this machine's settings (images, ports, folders) are the world's.
  let text = readFileSync(prodFile, 'utf8');
  const mine = readFileSync(w.envFile('prod'), 'utf8');
  const own = new Map([...parseEnvFile(mine, 'world').entries].map(([k, e]) => [k, e.value]));
  for (const k of ['IMAGE_TAG', 'REDIS_IMAGE', 'MOSQUITTO_IMAGE', 'VAULT_IMAGE', 'DB_PUBLISHED_PORT', 'MQTT_PUBLIC_PORT', 'VAULT_HOST_PATH', 'MQTT_CERTS_DIR', 'BACKUP_DIR', 'DEPLOY_LOG']) text = withEnvValue(text, k, own.get(k)!);
  writeFileSync(w.envFile('prod'), text, { mode: 0o600 });
  await $({ quiet: true })`docker stop ${oldDb} ${oldApi}`;
  const up = await w.script('stack.ts', ['up', '--env', 'prod']);
  assert.is(up.code, 0, `${up.stdout}\n${up.stderr}`);
  for (const [user, password] of [
    ['owner', adminPassword],
    ['api_worker', workerPassword],
  ] as const) {
    let client: pg.Client | undefined;
    for (let i = 0; i < 60 && !client; i++) {
      const c = new pg.Client({ host: '127.0.0.1', port: w.ports.prodDb, user, password, database: 'makapix' });
      client = await c.connect().then(() => c, async () => (await sleep(500), undefined));
    }
    assert.ok(client, `${user} logs in to EA with the written password`);
    const rows = await client!.query('SELECT count(*)::int AS n FROM users');
    assert.is(rows.rows[0].n, 321);
    await client!.end();
  }
});

test.run();
