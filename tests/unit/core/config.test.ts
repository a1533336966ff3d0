import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { envSchema, loadEnvConfig, parseEnvFile, parseEnvironment, secretsOf } from '../../../lib/core/config.ts';
import { ConfigError, SafetyError, Exit } from '../../../lib/core/errors.ts';
import { Secret } from '../../../lib/core/secret.ts';
import { composeDir } from '../../../lib/core/paths.ts';

const example = (env: 'prod' | 'dev') => readFileSync(path.join(composeDir, `.env.${env}.example`), 'utf8');

function writeEnv(text: string, name = '.env.prod'): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'cfg-')), name);
  writeFileSync(file, text);
  return file;
}

/** Replaces KEY's line in an env text (or drops it with value null). */
function edit(text: string, key: string, value: string | null): string {
  const lines = text.split('\n').filter((l) => value !== null || !l.startsWith(`${key}=`));
  return lines.map((l) => (value !== null && l.startsWith(`${key}=`) ? `${key}=${value}` : l)).join('\n');
}

function problemsOf(text: string, env: 'prod' | 'dev' = 'prod'): string[] {
  try {
    loadEnvConfig(env, writeEnv(text, `.env.${env}`));
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

test('both example files are valid and typed', () => {
  for (const env of ['prod', 'dev'] as const) {
    const cfg = loadEnvConfig(env, writeEnv(example(env), `.env.${env}`));
    assert.is(cfg.env, env);
    assert.type(cfg.vars.DB_PUBLISHED_PORT, 'number');
    assert.ok(cfg.vars.DB_ADMIN_PASSWORD instanceof Secret);
    assert.is(cfg.vars.IMAGE_TAG, 'latest');
  }
});

test('each example file spells out every variable of its environment, and only those', () => {
  for (const env of ['prod', 'dev'] as const) {
    const { entries } = parseEnvFile(example(env), `.env.${env}.example`);
    const expected = Object.entries(envSchema).filter(([, f]) => !('only' in f) || f.only === env).map(([k]) => k).sort();
    assert.equal([...entries.keys()].sort(), expected, `.env.${env}.example`);
  }
});

const cases: [string, (t: string) => string, RegExp][] = [
  ['missing key', (t) => edit(t, 'JWT_SECRET_KEY', null), /\.env\.prod: JWT_SECRET_KEY is missing/],
  ['empty value', (t) => edit(t, 'DB_DATABASE', ''), /\.env\.prod:\d+: DB_DATABASE is empty/],
  ['malformed URL', (t) => edit(t, 'BASE_URL', 'makapix.club'), /:\d+: BASE_URL "makapix.club" is not a URL/],
  ['URL with a wrong scheme', (t) => edit(t, 'GITHUB_REDIRECT_URI', 'ftp://x.org/cb'), /GITHUB_REDIRECT_URI .* must start with https: or http:/],
  ['port out of range', (t) => edit(t, 'MQTT_PUBLIC_PORT', '70000'), /:\d+: MQTT_PUBLIC_PORT "70000" is not a port/],
  ['port not a number', (t) => edit(t, 'DB_PUBLISHED_PORT', 'abc'), /DB_PUBLISHED_PORT "abc" is not a port/],
  ['relative path', (t) => edit(t, 'VAULT_HOST_PATH', 'mnt/vault'), /VAULT_HOST_PATH "mnt\/vault" must be an absolute path/],
  ['bad host name', (t) => edit(t, 'VAULT_DOMAIN', 'vault_makapix club'), /VAULT_DOMAIN .* is not a host name/],
  ['bad e-mail', (t) => edit(t, 'RESEND_FROM_EMAIL', 'noreply'), /RESEND_FROM_EMAIL "noreply" is not an e-mail address/],
  ['unknown environment name', (t) => edit(t, 'ENVIRONMENT', 'staging'), /ENVIRONMENT "staging" must be one of production, development/],
  ['syntax error', (t) => `${t}\nthis is not a pair`, /:\d+: not a KEY=value line/],
  // The app's required variables (fabkury/makapix 4350ab8): without them it does not boot or fails on first use.
  ['no SQIDS_ALPHABET (api/app/sqids_config.py raises at import)', (t) => edit(t, 'SQIDS_ALPHABET', null), /\.env\.prod: SQIDS_ALPHABET is missing/],
  ['a SQIDS_ALPHABET with repeated characters', (t) => edit(t, 'SQIDS_ALPHABET', 'aab'), /:\d+: SQIDS_ALPHABET must be at least 3 distinct characters/],
  ['a JWT_SECRET_KEY under 32 characters (api/app/auth.py raises at import)', (t) => edit(t, 'JWT_SECRET_KEY', 'short-but-not-empty'), /:\d+: JWT_SECRET_KEY is 19 characters long; the app refuses to start under 32/],
  ['no VAULT_PUBLIC_BASE_URL (api/app/settings.py raises on first use)', (t) => edit(t, 'VAULT_PUBLIC_BASE_URL', ''), /:\d+: VAULT_PUBLIC_BASE_URL is empty/],
  ['a malformed SENTRY_TRACES_SAMPLE_RATE', (t) => edit(t, 'SENTRY_TRACES_SAMPLE_RATE', '2'), /SENTRY_TRACES_SAMPLE_RATE "2" is not a rate/],
  ['duplicate key', (t) => `${t}\nDB_DATABASE=other`, /DB_DATABASE is set again \(first at line \d+\)/],
];

for (const [name, breakIt, expected] of cases) {
  test(`reports ${name} with file and line`, () => {
    const problems = problemsOf(breakIt(example('prod')));
    assert.ok(problems.some((p) => expected.test(p)), `no problem matched ${expected}: ${problems.join(' | ')}`);
  });
}

test("an empty feature of the app is a warning naming what is lost, with file and line, never an error", () => {
  let text = edit(example('prod'), 'RESEND_API_KEY', '');
  text = edit(text, 'HEALTHCHECKS_PING_KEY', null);
  const cfg = loadEnvConfig('prod', writeEnv(text));
  assert.is(cfg.vars.RESEND_API_KEY, undefined);
  const resend = cfg.warnings.find((w) => w.includes('RESEND_API_KEY'));
  assert.match(resend ?? '', /\.env\.prod:\d+: RESEND_API_KEY is empty: no e-mail is sent/);
  assert.match(cfg.warnings.find((w) => w.includes('HEALTHCHECKS_PING_KEY')) ?? '', /\.env\.prod: HEALTHCHECKS_PING_KEY is missing: .*dead-man/);
  const filled = loadEnvConfig('prod', writeEnv(edit(edit(example('prod'), 'RESEND_API_KEY', 're_x'), 'HEALTHCHECKS_PING_KEY', 'k')));
  assert.ok(filled.vars.RESEND_API_KEY instanceof Secret);
  assert.not.ok(filled.warnings.some((w) => /RESEND_API_KEY|HEALTHCHECKS_PING_KEY/.test(w)));
});

test('the classes per environment: CERT_RENEWAL_THRESHOLD_DAYS is an EB feature, not a production variable', () => {
  assert.is(loadEnvConfig('dev', writeEnv(example('dev'), '.env.dev')).vars.CERT_RENEWAL_THRESHOLD_DAYS, 3650);
  const dev = loadEnvConfig('dev', writeEnv(edit(example('dev'), 'CERT_RENEWAL_THRESHOLD_DAYS', ''), '.env.dev'));
  assert.match(dev.warnings.join('\n'), /CERT_RENEWAL_THRESHOLD_DAYS is empty: players renew/);
  const prod = loadEnvConfig('prod', writeEnv(example('prod')));
  assert.not.match(prod.warnings.join('\n'), 'CERT_RENEWAL_THRESHOLD_DAYS');
  for (const key of ['SQIDS_ALPHABET', 'VAULT_PUBLIC_BASE_URL', 'JWT_SECRET_KEY', 'MAKAPIX_IP_HASH_SALT']) assert.not.ok('feature' in envSchema[key as keyof typeof envSchema], `${key} is required`);
  for (const key of ['RESEND_API_KEY', 'CORS_ORIGINS', 'SENTRY_DSN', 'HEALTHCHECKS_PING_KEY', 'MAKAPIX_ADMIN_USER', 'MAKAPIX_ADMIN_PASSWORD', 'CERT_RENEWAL_THRESHOLD_DAYS']) assert.ok('feature' in envSchema[key as keyof typeof envSchema], `${key} is a feature`);
});

test('NEXT_PUBLIC_API_BASE_URL in the examples is the origin (the web code appends /api/...)', () => {
  for (const env of ['prod', 'dev'] as const) {
    const u = new URL(loadEnvConfig(env, writeEnv(example(env), `.env.${env}`)).vars.NEXT_PUBLIC_API_BASE_URL);
    assert.is(u.pathname, '/', env);
  }
});

test('reports every problem at once, not just the first', () => {
  let text = example('prod');
  text = edit(text, 'JWT_SECRET_KEY', null);
  text = edit(text, 'BASE_URL', 'nope');
  text = edit(text, 'MQTT_PUBLIC_PORT', '0');
  assert.is(problemsOf(text).length, 3);
});

test('a missing file names the path and the example to copy (exit 2)', () => {
  const missing = path.join(tmpdir(), 'nowhere', '.env.dev');
  try {
    loadEnvConfig('dev', missing);
    assert.unreachable('loaded a missing file');
  } catch (err) {
    assert.instance(err, ConfigError);
    assert.is((err as ConfigError).exitCode, Exit.usage);
    assert.match((err as Error).message, missing);
    assert.match((err as ConfigError).hint!, /compose\/\.env\.dev\.example/);
  }
});

test('a dev file loaded as prod is refused for safety (exit 3)', () => {
  try {
    loadEnvConfig('prod', writeEnv(example('dev')));
    assert.unreachable('dev file accepted as prod');
  } catch (err) {
    assert.instance(err, SafetyError);
    assert.is((err as SafetyError).exitCode, Exit.refused);
  }
});

test('secrets never print, in errors or logs', () => {
  const cfg = loadEnvConfig('prod', writeEnv(example('prod')));
  const shown = [String(cfg.vars.JWT_SECRET_KEY), JSON.stringify(cfg.vars), inspect(cfg, { depth: 5 })].join('\n');
  assert.not.match(shown, 'change-me-prod-jwt-secret-of-32-characters-or-more');
  assert.ok(secretsOf(cfg).some((s) => s.reveal() === 'change-me-prod-jwt-secret-of-32-characters-or-more'));
  const problems = problemsOf(edit(example('prod'), 'DB_ADMIN_PASSWORD', ''));
  assert.not.match(problems.join(' '), 'change-me');
});

test('parses quotes, comments and export like Compose', () => {
  const { entries } = parseEnvFile('export A=1\nB="two words"\nC=\'x#y\'\nD=plain # comment\n# skipped\n', 'f');
  assert.equal([...entries].map(([k, v]) => [k, v.value, v.line]), [['A', '1', 1], ['B', 'two words', 2], ['C', 'x#y', 3], ['D', 'plain', 4]]);
});

test('--env accepts only prod and dev', () => {
  assert.is(parseEnvironment('dev'), 'dev');
  assert.throws(() => parseEnvironment('production'), /must be "prod" or "dev"/);
});

test.run();
