import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { envSchema, parseEnvFile } from '../../../lib/core/config.ts';
import {
  apiContainerSource,
  containerFacts,
  dbContainerSource,
  formatEnvValue,
  pinnedPostgresImage,
  planEnvFiles,
  renderEnvFile,
  schemaKeys,
  secretShapeProblems,
  type EnvInputs,
  type KeySpec,
  type LoginCheck,
  type Planned,
  type Source,
} from '../../../lib/domain/env-files.ts';
import { envFilesExitCode, type EnvFilesResult } from '../../../lib/jobs/env-files.ts';

const src = (label: string, values: Record<string, string>): Source => ({
  label,
  values: new Map(Object.entries(values).map(([k, v], i) => [k, { value: v, where: `${label}:${i + 1}` }])),
});
const tpl = (values: Record<string, string>) => new Map(Object.entries(values));
let counter = 0;
/** Deterministic "random" hex, different on every call. */
const random = (bytes: number) => (counter++).toString(16).padStart(2, '0').repeat(bytes).slice(0, bytes * 2);
const get = (p: Planned, key: string) => p.entries.find((e) => e.key === key)!;
const inputs = (sources: Source[], template: Record<string, string> = {}, logins: LoginCheck[] = []): EnvInputs => ({ sources, template: tpl(template), templateName: 'compose/.env.x.example', logins });

// A small schema slice, including a variable the schema may gain (SQIDS_ALPHABET): the rules go by name.
const keys: KeySpec[] = [
  { key: 'COMPOSE_PROJECT_NAME', secret: false },
  { key: 'ENVIRONMENT', secret: false },
  { key: 'ROOT_DOMAIN', secret: false },
  { key: 'BASE_URL', secret: false },
  { key: 'NEXT_PUBLIC_API_BASE_URL', secret: false },
  { key: 'DB_DATABASE', secret: false },
  { key: 'DB_ADMIN_USER', secret: false },
  { key: 'DB_ADMIN_PASSWORD', secret: true },
  { key: 'DB_API_WORKER_USER', secret: false },
  { key: 'DB_API_WORKER_PASSWORD', secret: true },
  { key: 'DB_VOLUME_NAME', secret: false },
  { key: 'POSTGRES_IMAGE', secret: false, default: 'postgres:17-alpine' },
  { key: 'MQTT_PASSWORD', secret: true },
  { key: 'JWT_SECRET_KEY', secret: true },
  { key: 'MAKAPIX_IP_HASH_SALT', secret: true },
  { key: 'GITHUB_OAUTH_CLIENT_ID', secret: false },
  { key: 'GITHUB_OAUTH_CLIENT_SECRET', secret: true },
  { key: 'SQIDS_ALPHABET', secret: false },
  { key: 'BACKUP_KEEP', secret: false, default: '7' },
  { key: 'DEPLOY_LOG', secret: false, only: 'prod', default: '/var/lib/makapix-ops/deploys.jsonl' },
  { key: 'DEV_LOGIN_PASSWORD', secret: true, only: 'dev', default: '' },
];
const ea = {
  DB_DATABASE: 'makapix',
  DB_ADMIN_USER: 'owner',
  DB_ADMIN_PASSWORD: 'ea-admin-pw',
  DB_API_WORKER_USER: 'api_worker',
  DB_API_WORKER_PASSWORD: 'ea-worker-pw',
  DB_VOLUME_NAME: 'makapix_pg_data',
  POSTGRES_IMAGE: 'postgres:17-alpine',
  MQTT_PASSWORD: 'ea-mqtt',
  JWT_SECRET_KEY: 'ea-jwt-0123456789abcdef0123456789abcdef',
  MAKAPIX_IP_HASH_SALT: 'ea-salt',
  GITHUB_OAUTH_CLIENT_ID: 'Iv1.prod',
  GITHUB_OAUTH_CLIENT_SECRET: 'ea-oauth',
  SQIDS_ALPHABET: 'abcdefghijkmnpqrstuvwxyz23456789',
  ROOT_DOMAIN: 'makapix.club',
};
const devTemplate = { ROOT_DOMAIN: 'development.makapix.club', DB_DATABASE: 'makapix_dev', DB_ADMIN_USER: 'owner', DB_API_WORKER_USER: 'api_worker', DB_VOLUME_NAME: 'makapix_dev_pg_data', DB_ADMIN_PASSWORD: 'change-me-dev', GITHUB_OAUTH_CLIENT_ID: 'change-me-dev-oauth-id' };

test('the key list is the schema itself: every variable, in order, secrets recognised by their type', () => {
  const k = schemaKeys();
  assert.equal(
    k.map((x) => x.key),
    Object.keys(envSchema),
  );
  const by = (key: string) => k.find((x) => x.key === key)!;
  assert.ok(by('DB_ADMIN_PASSWORD').secret && by('JWT_SECRET_KEY').secret && by('MAKAPIX_IP_HASH_SALT').secret);
  assert.not.ok(by('ROOT_DOMAIN').secret || by('DB_ADMIN_USER').secret);
  assert.is(by('DEPLOY_LOG').only, 'prod');
  assert.is(by('DEV_LOGIN_PASSWORD').default, '');
});

test("EA: production's values carried exactly; a live container wins over the files and the disagreement names both", () => {
  const live = src('docker inspect makapix-api-1', { JWT_SECRET_KEY: 'live-jwt-0123456789abcdef0123456789ab' });
  const file = src('/opt/makapix/deploy/stack/.env', ea);
  const { prod } = planEnvFiles(keys, inputs([live, file]), inputs([]), random);
  for (const [k, v] of Object.entries(ea)) if (k !== 'JWT_SECRET_KEY') assert.is(get(prod, k).value, v, k);
  assert.is(get(prod, 'JWT_SECRET_KEY').value, 'live-jwt-0123456789abcdef0123456789ab');
  assert.equal(prod.disagreements, [{ env: 'prod', key: 'JWT_SECRET_KEY', chosen: 'docker inspect makapix-api-1:1', other: `/opt/makapix/deploy/stack/.env:${Object.keys(ea).indexOf('JWT_SECRET_KEY') + 1}` }]);
  assert.is(get(prod, 'DB_ADMIN_PASSWORD').origin, 'carried');
  assert.is(get(prod, 'DB_ADMIN_PASSWORD').source, '/opt/makapix/deploy/stack/.env:3');
  assert.is(get(prod, 'COMPOSE_PROJECT_NAME').value, 'makapix-prod');
  assert.is(get(prod, 'ENVIRONMENT').value, 'production');
  assert.is(get(prod, 'BACKUP_KEEP').origin, 'default');
  assert.ok(!prod.entries.some((e) => e.key === 'DEV_LOGIN_PASSWORD'), 'an EB-only variable stays out of EA');
});

test('EA: a database password is the candidate that logged in, even when another place comes first', () => {
  const live = src('docker inspect makapix-db-1', { DB_ADMIN_PASSWORD: 'stale' });
  const file = src('.env.prod', { ...ea });
  const logins: LoginCheck[] = [
    { env: 'prod', key: 'DB_ADMIN_PASSWORD', where: 'docker inspect makapix-db-1:1', ok: false, reason: 'password authentication failed' },
    { env: 'prod', key: 'DB_ADMIN_PASSWORD', where: '.env.prod:3', ok: true },
  ];
  const { prod } = planEnvFiles(keys, inputs([live, file], {}, logins), inputs([]), random);
  assert.is(get(prod, 'DB_ADMIN_PASSWORD').value, 'ea-admin-pw');
  assert.equal(prod.disagreements.find((d) => d.key === 'DB_ADMIN_PASSWORD'), { env: 'prod', key: 'DB_ADMIN_PASSWORD', chosen: '.env.prod:3', other: 'docker inspect makapix-db-1:1' });
});

test('EA: nothing is invented: a missing secret or volume fact is a placeholder with where to get it, never the example', () => {
  const file = src('.env', { ROOT_DOMAIN: 'makapix.club' });
  const { prod } = planEnvFiles(keys, inputs([file], { DB_VOLUME_NAME: 'makapix_pg_data', DB_DATABASE: 'makapix', ROOT_DOMAIN: 'x' }), inputs([]), random);
  for (const k of ['JWT_SECRET_KEY', 'DB_ADMIN_PASSWORD', 'DB_VOLUME_NAME', 'DB_DATABASE', 'POSTGRES_IMAGE', 'GITHUB_OAUTH_CLIENT_SECRET']) {
    assert.is(get(prod, k).origin, 'placeholder', k);
    assert.is(get(prod, k).value, '');
    assert.ok(get(prod, k).hint!.length > 20, k);
  }
  assert.match(get(prod, 'DB_VOLUME_NAME').hint!, /docker inspect/);
  assert.is(get(prod, 'ROOT_DOMAIN').value, 'makapix.club');
});

test("EA: the toolkit's identity wins over an old COMPOSE_PROJECT_NAME, with a note", () => {
  const { prod } = planEnvFiles(keys, inputs([src('.env', { COMPOSE_PROJECT_NAME: 'makapix' })]), inputs([]), random);
  assert.is(get(prod, 'COMPOSE_PROJECT_NAME').value, 'makapix-prod');
  assert.match(prod.notes.join('\n'), /COMPOSE_PROJECT_NAME: \.env:1 has another value/);
});

test('EB from nothing: fresh secrets of the right shape, all different from EA and each other; OAuth left to fill; SQIDS and the PostgreSQL image from EA', () => {
  const { dev } = planEnvFiles(keys, inputs([src('.env.prod', ea)]), inputs([], devTemplate), random);
  const secrets = dev.entries.filter((e) => e.origin === 'generated');
  assert.equal(secrets.map((e) => e.key).sort(), ['DB_ADMIN_PASSWORD', 'DB_API_WORKER_PASSWORD', 'JWT_SECRET_KEY', 'MAKAPIX_IP_HASH_SALT', 'MQTT_PASSWORD']);
  for (const e of secrets) {
    assert.match(e.value, /^[0-9a-f]+$/, `${e.key} is hex (URL-safe)`);
    assert.equal(secretShapeProblems(e.key, e.value), [], e.key);
    assert.is.not(e.value, (ea as Record<string, string>)[e.key], `${e.key} differs from EA`);
  }
  assert.is(get(dev, 'JWT_SECRET_KEY').value.length, 64);
  assert.is(get(dev, 'MAKAPIX_IP_HASH_SALT').value.length, 64);
  assert.is(get(dev, 'DB_ADMIN_PASSWORD').value.length, 48);
  assert.is(new Set(secrets.map((e) => e.value)).size, secrets.length, 'no two generated secrets alike');
  assert.is(get(dev, 'GITHUB_OAUTH_CLIENT_SECRET').origin, 'placeholder');
  assert.match(get(dev, 'GITHUB_OAUTH_CLIENT_SECRET').hint!, /OAuth app/);
  assert.is(get(dev, 'GITHUB_OAUTH_CLIENT_ID').origin, 'placeholder', 'a change-me in the example is not a value');
  assert.is(get(dev, 'SQIDS_ALPHABET').value, ea.SQIDS_ALPHABET);
  assert.is(get(dev, 'POSTGRES_IMAGE').value, 'postgres:17-alpine');
  assert.is(get(dev, 'POSTGRES_IMAGE').origin, 'from-ea');
  assert.is(get(dev, 'DB_DATABASE').value, 'makapix_dev');
  assert.is(get(dev, 'ROOT_DOMAIN').value, 'development.makapix.club');
  assert.is(get(dev, 'ENVIRONMENT').value, 'development');
  assert.is(get(dev, 'DEV_LOGIN_PASSWORD').value, '', 'an optional secret is not generated');
  assert.ok(!dev.entries.some((e) => e.key === 'DEPLOY_LOG'));
});

test("EB already running: its database passwords are carried (they live in its volume), even one equal to EA's (reported); another shared secret is replaced", () => {
  const ebFile = src('/opt/makapix-dev/deploy/stack/.env.dev', {
    DB_DATABASE: 'makapix_dev',
    DB_ADMIN_PASSWORD: 'eb-admin-pw',
    DB_API_WORKER_PASSWORD: ea.DB_API_WORKER_PASSWORD,
    JWT_SECRET_KEY: ea.JWT_SECRET_KEY,
    SQIDS_ALPHABET: 'zyx',
    POSTGRES_IMAGE: 'postgres:16-alpine',
  });
  const ebLive = src('docker inspect makapix-dev-db', { DB_VOLUME_NAME: 'makapix-dev_pg_data' });
  const { dev } = planEnvFiles(keys, inputs([src('.env.prod', ea)]), inputs([ebLive, ebFile], devTemplate), random);
  assert.is(get(dev, 'DB_ADMIN_PASSWORD').value, 'eb-admin-pw');
  assert.is(get(dev, 'DB_ADMIN_PASSWORD').origin, 'carried');
  assert.is(get(dev, 'DB_API_WORKER_PASSWORD').value, ea.DB_API_WORKER_PASSWORD, 'never replaced: it is in the volume');
  assert.match(dev.notes.join('\n'), /DB_API_WORKER_PASSWORD: EB's value .* is EA's too and lives in EB's volume/);
  assert.is(get(dev, 'JWT_SECRET_KEY').origin, 'generated');
  assert.is.not(get(dev, 'JWT_SECRET_KEY').value, ea.JWT_SECRET_KEY);
  assert.match(dev.notes.join('\n'), /JWT_SECRET_KEY: EB's value .* was EA's; a new one was generated/);
  assert.is(get(dev, 'DB_VOLUME_NAME').value, 'makapix-dev_pg_data');
  assert.is(get(dev, 'POSTGRES_IMAGE').value, 'postgres:16-alpine', "EB's own image is kept");
  assert.is(get(dev, 'SQIDS_ALPHABET').value, ea.SQIDS_ALPHABET, "EB keeps EA's alphabet");
  assert.equal(
    dev.disagreements.map((d) => [d.key, d.other]),
    [['SQIDS_ALPHABET', '/opt/makapix-dev/deploy/stack/.env.dev:5']],
  );
  assert.match(dev.disagreements[0]!.chosen, /^EA's/);
});

test("NEXT_PUBLIC_API_BASE_URL: the origin of BASE_URL when no source has it (never the example's /api), a found value carried", () => {
  const template = { BASE_URL: 'https://development.makapix.club', NEXT_PUBLIC_API_BASE_URL: 'https://development.makapix.club/api' };
  const { prod, dev } = planEnvFiles(keys, inputs([src('.env', { BASE_URL: 'https://makapix.club/' })], { NEXT_PUBLIC_API_BASE_URL: 'https://makapix.club/api' }), inputs([], template), random);
  assert.is(get(prod, 'NEXT_PUBLIC_API_BASE_URL').value, 'https://makapix.club');
  assert.is(get(prod, 'NEXT_PUBLIC_API_BASE_URL').origin, 'derived');
  assert.is(get(dev, 'NEXT_PUBLIC_API_BASE_URL').value, 'https://development.makapix.club');
  const web = src('docker inspect makapix-web-1', { NEXT_PUBLIC_API_BASE_URL: 'https://makapix.club' });
  assert.is(get(planEnvFiles(keys, inputs([web]), inputs([]), random).prod, 'NEXT_PUBLIC_API_BASE_URL').source, 'docker inspect makapix-web-1:1');
});

test('the PostgreSQL image is pinned to the running major, keeping its libc variant', () => {
  assert.equal(pinnedPostgresImage('postgres:17-alpine', '17'), { image: 'postgres:17-alpine' });
  assert.equal(pinnedPostgresImage('postgres:17.2', '17'), { image: 'postgres:17.2' });
  assert.is(pinnedPostgresImage('postgres:alpine', '17').image, 'postgres:17-alpine');
  assert.is(pinnedPostgresImage('postgres', '16').image, 'postgres:16');
  assert.is(pinnedPostgresImage('docker.io/library/postgres:latest', '15').image, 'docker.io/library/postgres:15');
  assert.match(pinnedPostgresImage('postgres:16', '17').note!, /says 16 but the server runs 17/);
  assert.equal(pinnedPostgresImage('makapix-e2e/postgres:abc', '15'), { image: 'makapix-e2e/postgres:abc' });
  assert.equal(pinnedPostgresImage('postgres:alpine', undefined), { image: 'postgres:alpine' });
});

const inspected = (over: Record<string, unknown>) => ({
  Name: '/makapix-db-1',
  Config: { Image: 'postgres:alpine', Env: ['POSTGRES_USER=owner', 'POSTGRES_PASSWORD=pw=with=equals', 'POSTGRES_DB=makapix', 'PG_MAJOR=17', 'PATH=/usr/bin'], Labels: {} },
  Mounts: [{ Type: 'volume', Name: 'makapix_pg_data', Source: '/var/lib/docker/volumes/makapix_pg_data/_data', Destination: '/var/lib/postgresql/data' }],
  NetworkSettings: { Networks: { makapix_internal: { IPAddress: '172.20.0.3' } } },
  ...over,
});

test('docker inspect of the db container: POSTGRES_* as the app names them, the data volume, the image pinned', () => {
  const f = containerFacts(inspected({}));
  assert.is(f.name, 'makapix-db-1');
  assert.equal(f.addresses, ['172.20.0.3']);
  const { source, notes } = dbContainerSource(f);
  const v = (k: string) => source.values.get(k)?.value;
  assert.is(v('DB_ADMIN_USER'), 'owner');
  assert.is(v('DB_ADMIN_PASSWORD'), 'pw=with=equals');
  assert.is(v('DB_DATABASE'), 'makapix');
  assert.is(v('DB_VOLUME_NAME'), 'makapix_pg_data');
  assert.is(source.values.get('DB_VOLUME_NAME')!.where, 'docker inspect makapix-db-1 (the volume on /var/lib/postgresql/data)');
  assert.is(v('POSTGRES_IMAGE'), 'postgres:17-alpine');
  assert.match(notes.join(), /pinned/);
  // The data folder's PG_VERSION decides; a stand-in image is kept, with a note naming the major.
  assert.is(dbContainerSource(f, '16').source.values.get('POSTGRES_IMAGE')!.value, 'postgres:16-alpine');
  const standIn = dbContainerSource(containerFacts(inspected({ Config: { Image: 'makapix-e2e/postgres:abc', Env: ['POSTGRES_PASSWORD=x'] } })), '15');
  assert.is(standIn.source.values.get('POSTGRES_IMAGE')!.value, 'makapix-e2e/postgres:abc');
  assert.match(standIn.notes.join(), /not an official postgres image .* PostgreSQL 15/);
  const bind = dbContainerSource(containerFacts(inspected({ Mounts: [{ Type: 'bind', Source: '/srv/pg', Destination: '/var/lib/postgresql/data' }] })));
  assert.not.ok(bind.source.values.has('DB_VOLUME_NAME'));
  assert.match(bind.notes.join(), /no named volume/);
});

test('docker inspect of the api container: its environment, its DATABASE_URL taken apart, its vault folder and checkout', () => {
  const f = containerFacts({
    Name: '/makapix-api-1',
    Config: {
      Env: ['JWT_SECRET_KEY=j', 'DATABASE_URL=postgresql://api_worker:w0rk@db:5432/makapix', 'VAULT_LOCATION=/vault', 'EMPTY='],
      Labels: { 'com.docker.compose.project.working_dir': '/opt/makapix/deploy/stack' },
    },
    Mounts: [{ Type: 'bind', Source: '/mnt/vault-1', Destination: '/vault' }],
  });
  const s = apiContainerSource(f);
  const v = (k: string) => s.values.get(k)?.value;
  assert.is(v('JWT_SECRET_KEY'), 'j');
  assert.is(v('DB_API_WORKER_USER'), 'api_worker');
  assert.is(v('DB_API_WORKER_PASSWORD'), 'w0rk');
  assert.is(v('DB_DATABASE'), 'makapix');
  assert.is(v('VAULT_HOST_PATH'), '/mnt/vault-1');
  assert.is(v('APP_DIR'), '/opt/makapix');
  assert.not.ok(s.values.has('EMPTY'));
});

test('written values read back unchanged by the env-file parser; the file says where each came from', () => {
  const values = ['plain', 'with space', 'a#b', 'x #not a comment', 'dollar$HOME', 'https://a.b/c?d=e&f', ''];
  const p: Planned = {
    env: 'dev',
    entries: values.map((v, i) => ({ key: `K${i}`, value: v, origin: 'carried', source: `src${i}`, secret: false })),
    disagreements: [],
    notes: [],
  };
  p.entries.push({ key: 'TODO', value: '', origin: 'placeholder', source: 'not found', secret: true, hint: 'the OAuth app' });
  const text = renderEnvFile(p, ['header']);
  const { entries, problems } = parseEnvFile(text, 'f');
  assert.equal(problems, []);
  values.forEach((v, i) => assert.is(entries.get(`K${i}`)!.value, v, JSON.stringify(v)));
  assert.match(text, /# src2\nK2='a#b'\n/);
  assert.match(text, /# TO FILL: the OAuth app\nTODO=\n/);
  assert.throws(() => formatEnvValue('K', `it's "both" #`), /single quote/);
});

test('secret shapes: URL-safe database passwords, JWT at least 32 characters; a carried one of another shape is reported', () => {
  assert.equal(secretShapeProblems('DB_ADMIN_PASSWORD', 'abc-DEF_123.~'), []);
  assert.equal(secretShapeProblems('DB_ADMIN_PASSWORD', 'p@ss/word'), ['DB_ADMIN_PASSWORD holds characters that are not URL-safe']);
  assert.equal(secretShapeProblems('JWT_SECRET_KEY', 'short'), ['JWT_SECRET_KEY is shorter than 32 characters']);
  assert.equal(secretShapeProblems('GITHUB_OAUTH_CLIENT_SECRET', 'a/b'), [], 'only database passwords go into a URL');
  // A carried secret of the wrong shape is kept (the environment runs with it) and reported.
  const { prod } = planEnvFiles(keys, inputs([src('.env', { ...ea, DB_ADMIN_PASSWORD: 'p@ss', JWT_SECRET_KEY: 'short' })]), inputs([]), random);
  assert.is(get(prod, 'DB_ADMIN_PASSWORD').value, 'p@ss');
  assert.match(prod.notes.join('\n'), /DB_ADMIN_PASSWORD holds characters that are not URL-safe \(\.env:3\); kept/);
  assert.match(prod.notes.join('\n'), /JWT_SECRET_KEY is shorter than 32 characters/);
});

const result = (over: Partial<EnvFilesResult>): EnvFilesResult => ({ dryRun: false, files: [], sources: [], placeholders: [], disagreements: [], logins: [], notes: [], problems: [], ...over });
test('exit codes: 2 while anything is to fill, 1 when a password logs in nowhere or make check fails, else 0', () => {
  const login = (ok: boolean, where: string) => ({ env: 'prod' as const, key: 'DB_ADMIN_PASSWORD', user: 'owner', where, ok });
  assert.is(envFilesExitCode(result({})), 0);
  assert.is(envFilesExitCode(result({ placeholders: [{ env: 'dev', key: 'X', hint: 'h' }] })), 2);
  assert.is(envFilesExitCode(result({ problems: ['f:1: X is empty'] })), 2);
  assert.is(envFilesExitCode(result({ logins: [login(false, 'a')] })), 1);
  assert.is(envFilesExitCode(result({ logins: [login(false, 'a'), login(true, 'b')] })), 0, 'another candidate logged in and was written');
  assert.is(envFilesExitCode(result({ check: { ok: false, rows: [] } })), 1);
  assert.is(envFilesExitCode(result({ check: { ok: false, error: 'compose failed' } })), 1);
});

test.run();
