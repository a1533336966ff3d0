// `make env-files` from fixture app env files laid out like the real app's (deploy/stack/.env read by
// its containers, deploy/stack/.env.prod interpolated by its Makefile's compose; the DB_* names come
// from the app's api/app/db.py and deploy/stack/docker-compose.yml, as its .env.example holds none).
// The real entry point runs, then the real validator and the real `make check` (compose CLI, caddy).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { envFilePath, loadEnvConfig, parseEnvFile } from '../../lib/core/config.ts';
import { projectRoot } from '../../lib/core/paths.ts';
import type { EnvFilesResult } from '../../lib/jobs/env-files.ts';
import { onExit } from '../../dev/cleanup.ts';
import { runEntry } from '../harness/server.ts';

const work = mkdtempSync(path.join(tmpdir(), 'env-files-'));
onExit(() => rmSync(work, { recursive: true, force: true }));
const app = path.join(work, 'makapix');
const devApp = path.join(work, 'makapix-dev');
const stack = path.join(app, 'deploy', 'stack');
mkdirSync(stack, { recursive: true });
mkdirSync(devApp);

const hex = (n: number, seed: string) => Buffer.from(seed.repeat(n)).toString('hex').slice(0, n * 2);
// What the old production stack's containers read (the app's deploy/stack/.env, from its env.example
// and the variables its api reads).
const dotEnv = {
  ROOT_DOMAIN: 'makapix.club',
  WEB_DOMAIN: 'makapix.club',
  WEB_APP_PORT: '3000',
  ACME_EMAIL: 'admin@makapix.club',
  VAULT_DOMAIN: 'vault.makapix.club',
  VAULT_HOST_PATH: '/opt/makapix/vault',
  VAULT_PUBLIC_BASE_URL: 'https://vault.makapix.club',
  MAKAPIX_IP_HASH_SALT: hex(32, 'salt'),
  SQIDS_ALPHABET: 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789',
  ENVIRONMENT: 'production',
  BASE_URL: 'https://makapix.club',
  JWT_SECRET_KEY: `prod-jwt-${hex(24, 'jwt')}`,
  GITHUB_OAUTH_CLIENT_ID: 'Iv1.prod0123456789',
  GITHUB_OAUTH_CLIENT_SECRET: hex(20, 'oauth'),
  GITHUB_REDIRECT_URI: 'https://makapix.club/api/auth/github/callback',
  RESEND_FROM_EMAIL: 'noreply@makapix.club',
  MQTT_PUBLIC_HOST: 'makapix.club',
  MQTT_PUBLIC_PORT: '8883',
};
// What the app's Makefile interpolates the compose files with (deploy/stack/.env.prod).
const dotEnvProd = {
  DB_DATABASE: 'makapix',
  DB_ADMIN_USER: 'owner',
  DB_ADMIN_PASSWORD: `prod-admin-${hex(12, 'a')}`,
  DB_API_WORKER_USER: 'api_worker',
  DB_API_WORKER_PASSWORD: `prod-worker-${hex(12, 'w')}`,
  MQTT_PASSWORD: `prod-mqtt-${hex(12, 'm')}`,
  VAULT_HOST_PATH: '/mnt/vault-1',
  VAULT_LOCATION: '/vault',
};
// What only `docker inspect` tells; on a machine without the old stack running, given by hand.
const facts = { DB_VOLUME_NAME: 'makapix_pg_data', POSTGRES_IMAGE: 'postgres:17-alpine' };
const write = (file: string, values: Record<string, string>) => writeFileSync(file, `# fixture\n${Object.entries(values).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
write(path.join(stack, '.env'), dotEnv);
write(path.join(stack, '.env.prod'), dotEnvProd);
const factsFile = path.join(work, 'facts.env');
write(factsFile, facts);
const ebOauth = path.join(work, 'eb-oauth.env');
write(ebOauth, { GITHUB_OAUTH_CLIENT_ID: 'Iv1.dev0123456789', GITHUB_OAUTH_CLIENT_SECRET: hex(20, 'devoauth') });
const eaSecrets = [...Object.values(dotEnvProd), ...Object.values(dotEnv)].filter((v) => v.length >= 16 && /prod-|^[0-9a-f]{32,}$/.test(v));

const envDir = path.join(work, 'env');
const base = ['--no-docker', '--app-dir', app, '--dev-app-dir', devApp, '--env-dir', envDir];
const from = ['--from', path.join(stack, '.env.prod'), '--from', path.join(stack, '.env'), '--from', factsFile];

function envFiles(args: string[]): { code: number | null; stdout: string; stderr: string; result?: EnvFilesResult } {
  const r = runEntry('env-files.ts', [...args, '--json'], { timeoutMs: 120_000, env: { ...process.env, MAKAPIX_ENV_DIR: '/nonexistent' } });
  let result: EnvFilesResult | undefined;
  try {
    result = JSON.parse(r.stdout) as EnvFilesResult;
  } catch {
    // refusals print no result
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, result };
}
const valuesOf = (file: string) => new Map([...parseEnvFile(readFileSync(file, 'utf8'), file).entries].map(([k, e]) => [k, e.value]));
const noSecretIn = (text: string, secrets: string[]) => secrets.filter((s) => text.includes(s));

let firstDev: Map<string, string>;

test("without EB's OAuth app: both files written (0600), EB's OAuth listed to fill, exit 2; nothing secret printed", () => {
  assert.ok(eaSecrets.length >= 6, 'the fixture has secrets to look for');
  const r = envFiles([...base, ...from]);
  assert.is(r.code, 2, r.stderr);
  assert.equal(
    r.result!.placeholders.map((p) => `${p.env} ${p.key}`),
    ['dev GITHUB_OAUTH_CLIENT_ID', 'dev GITHUB_OAUTH_CLIENT_SECRET'],
  );
  assert.match(r.result!.placeholders[0]!.hint, /OAuth app/);
  for (const env of ['prod', 'dev'] as const) assert.is(statSync(envFilePath(env, envDir)).mode & 0o777, 0o600);
  firstDev = valuesOf(envFilePath('dev', envDir));
  const devSecrets = ['DB_ADMIN_PASSWORD', 'DB_API_WORKER_PASSWORD', 'MQTT_PASSWORD', 'JWT_SECRET_KEY', 'MAKAPIX_IP_HASH_SALT'].map((k) => firstDev.get(k)!);
  assert.equal(noSecretIn(r.stdout + r.stderr, [...eaSecrets, ...devSecrets]), []);
  const human = runEntry('env-files.ts', [...base, ...from, '--dry-run', '--force'], { timeoutMs: 120_000 });
  assert.is(human.status, 2);
  assert.match(human.stdout, /To fill before anything runs/);
  // Variables of the app's files the schema lacks are named, not silently dropped.
  assert.match(r.result!.notes.join('\n'), /deploy\/stack\/\.env sets \d+ variables the schema .* not carried: .*ACME_EMAIL/);
  assert.equal(noSecretIn(human.stdout + human.stderr, [...eaSecrets, ...devSecrets]), []);
  // The disagreement between the app's two files is named by both places, the interpolated one written.
  const d = r.result!.disagreements.find((x) => x.key === 'VAULT_HOST_PATH')!;
  assert.equal([d.chosen, d.other], [`${path.join(stack, '.env.prod')}:8`, `${path.join(stack, '.env')}:7`]);
});

test('a second run without --force refuses (exit 3) and changes nothing; its --dry-run says it would', () => {
  const before = readFileSync(envFilePath('prod', envDir), 'utf8');
  const r = envFiles([...base, ...from, '--dev-from', ebOauth]);
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stderr, /already exist.*--force/s);
  assert.is(readFileSync(envFilePath('prod', envDir), 'utf8'), before);
  const dry = envFiles([...base, ...from, '--dev-from', ebOauth, '--dry-run']);
  assert.match(dry.result!.notes.join('\n'), /the real run refuses \(exit 3\) unless given --force/);
  assert.is(readFileSync(envFilePath('prod', envDir), 'utf8'), before);
});

test("with EB's OAuth app and --force: dated copies kept, the validator and make check pass, EA carried exactly, EB's secrets its own", () => {
  const r = envFiles([...base, ...from, '--dev-from', ebOauth, '--force']);
  assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.equal(r.result!.placeholders, []);
  assert.equal(r.result!.problems, []);
  assert.ok(r.result!.check && r.result!.check.ok, JSON.stringify(r.result!.check));
  assert.ok('rows' in r.result!.check! && r.result!.check.rows.some((x) => x.check === 'database passwords' && x.status === 'ok'), 'the audit compared the secrets');
  const copies = readdirSync(envDir).filter((f) => /^\.env\.(prod|dev)\.bak-\d{8}T\d{6}Z$/.test(f));
  assert.is(copies.length, 2, readdirSync(envDir).join(' '));
  for (const c of copies) assert.is(statSync(path.join(envDir, c)).mode & 0o777, 0o600);

  const prod = loadEnvConfig('prod', envFilePath('prod', envDir));
  const dev = loadEnvConfig('dev', envFilePath('dev', envDir));
  const p = valuesOf(prod.file);
  const d = valuesOf(dev.file);
  // EA: every schema variable the app's files hold, exactly; the interpolated file wins over .env.
  for (const [k, v] of Object.entries({ ...dotEnv, ...dotEnvProd, ...facts })) if (p.has(k)) assert.is(p.get(k), v, k);
  assert.is(p.get('APP_DIR'), app);
  assert.is(p.get('COMPOSE_PROJECT_NAME'), 'makapix-prod');
  // EB: development values, its own secrets, EA's alphabet when the schema has it.
  assert.is(d.get('ENVIRONMENT'), 'development');
  assert.is(d.get('ROOT_DOMAIN'), 'development.makapix.club');
  assert.is(d.get('APP_DIR'), devApp);
  assert.is(d.get('GITHUB_OAUTH_CLIENT_ID'), 'Iv1.dev0123456789');
  for (const [k, v] of Object.entries(prod.vars)) {
    const other = (dev.vars as Record<string, unknown>)[k];
    if (v && typeof v === 'object' && 'equals' in v && other && typeof other === 'object' && 'equals' in other && !(v as { isEmpty: boolean }).isEmpty) {
      assert.not.ok((v as { equals(o: unknown): boolean }).equals(other), `EB's ${k} differs from EA's`);
    }
  }
  if (p.has('SQIDS_ALPHABET')) assert.is(d.get('SQIDS_ALPHABET'), dotEnv.SQIDS_ALPHABET);
  // The secrets generated by the first run are kept: EB may already use them.
  for (const k of ['DB_ADMIN_PASSWORD', 'JWT_SECRET_KEY', 'MAKAPIX_IP_HASH_SALT']) {
    assert.is(d.get(k), firstDev.get(k), k);
    assert.match(d.get(k)!, /^[0-9a-f]{48,}$/, `${k} is URL-safe`);
  }
  assert.ok(d.get('JWT_SECRET_KEY')!.length >= 32);
});

test("--force over the committed examples copied by hand: their change-me values are not taken for values", () => {
  const dir = path.join(work, 'copied');
  mkdirSync(dir);
  for (const env of ['prod', 'dev']) writeFileSync(path.join(dir, `.env.${env}`), readFileSync(path.join(projectRoot, 'compose', `.env.${env}.example`), 'utf8'));
  const r = envFiles(['--no-docker', '--app-dir', app, '--dev-app-dir', devApp, '--env-dir', dir, ...from, '--dev-from', ebOauth, '--force']);
  assert.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
  for (const env of ['prod', 'dev'] as const) {
    const leftovers = [...valuesOf(envFilePath(env, dir))].filter(([, v]) => /change-me/.test(v)).map(([k]) => k);
    assert.equal(leftovers, [], env);
  }
});

test('--dry-run writes nothing', () => {
  const dir = path.join(work, 'dry');
  const r = envFiles(['--no-docker', '--app-dir', app, '--dev-app-dir', devApp, '--env-dir', dir, ...from, '--dev-from', ebOauth, '--dry-run']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.result!.files.map((f) => f.written), [false, false]);
  assert.not.ok(readdirSync(work).includes('dry'));
});

test('an --from file that does not exist is a usage error (exit 2)', () => {
  const r = envFiles([...base, '--from', path.join(work, 'missing.env'), '--force']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /missing\.env .*does not exist/);
});

test.run();
