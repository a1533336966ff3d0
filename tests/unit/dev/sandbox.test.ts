import { test } from 'uvu';
import { parseFlagValue } from '../../../lib/core/cli.ts';
import * as assert from 'uvu/assert';
import { parseEnvFile, validateEnv, envSchema, type Environment } from '../../../lib/core/config.ts';
import { UsageError } from '../../../lib/core/errors.ts';
import { describeSandbox, envInput, generateSecrets, renderActivate, sandboxSizeFlags, renderEnvFile, sandboxEnvVars, sandboxPaths, sandboxShellEnv } from '../../../dev/sandbox.ts';

const paths = sandboxPaths('/tmp/some-sandbox');
const input = (env: Environment, port: number) => envInput(paths, env, port, generateSecrets(env));

test('sandbox env files pass the config validator, for both environments', () => {
  for (const [env, port] of [['prod', 40001], ['dev', 40002]] as const) {
    const file = `/tmp/.env.${env}`;
    const { entries, problems: syntax } = parseEnvFile(renderEnvFile(env, sandboxEnvVars(env, input(env, port))), file);
    const { vars, problems } = validateEnv(file, entries);
    assert.equal([...syntax, ...problems], []);
    assert.is(vars!.ENVIRONMENT, env === 'prod' ? 'production' : 'development');
    assert.is(vars!.COMPOSE_PROJECT_NAME, `makapix-${env}`);
    assert.is(vars!.DB_PUBLISHED_PORT, port);
    assert.is(vars!.DB_DATABASE, env === 'prod' ? 'makapix' : 'makapix_dev');
    assert.is(vars!.VAULT_HOST_PATH, paths.vault(env));
  }
});

test('every schema variable is written out (Compose reads the file too), except the other environment\'s', () => {
  const prod = sandboxEnvVars('prod', input('prod', 1));
  const dev = sandboxEnvVars('dev', input('dev', 2));
  for (const [key, field] of Object.entries(envSchema) as [string, { only?: Environment }][]) {
    assert.is(key in prod, field.only !== 'dev', `prod ${key}`);
    assert.is(key in dev, field.only !== 'prod', `dev ${key}`);
  }
});

test('every path is inside the sandbox and every host is under .localhost', () => {
  for (const env of ['prod', 'dev'] as const) {
    const vars = sandboxEnvVars(env, input(env, 5432));
    for (const [key, value] of Object.entries(vars)) {
      if (value!.startsWith('/') && key !== 'VAULT_LOCATION') assert.ok(value!.startsWith(`${paths.dir}/`), `${key}=${value}`);
      if (/_(DOMAIN|PUBLIC_HOST)$/.test(key)) assert.ok(value!.endsWith('.localhost'), `${key}=${value}`);
    }
  }
});

test('secrets are fresh per environment: no value is shared between prod and dev', () => {
  const a = generateSecrets('prod');
  const b = generateSecrets('dev');
  const again = generateSecrets('prod');
  for (const key of Object.keys(a) as (keyof typeof a)[]) {
    assert.not.ok(a[key].equals(b[key]), key);
    assert.not.ok(a[key].equals(again[key]), key);
    assert.is(String(a[key]), '[redacted]');
  }
});

test('--users and --seed: defaults, whole numbers, usage errors', () => {
  assert.equal([sandboxSizeFlags.users.default, sandboxSizeFlags.seed.default], [2000, 42]);
  assert.equal([parseFlagValue('users', sandboxSizeFlags.users, '100000'), parseFlagValue('seed', sandboxSizeFlags.seed, '0')], [100000, 0]);
  for (const [flag, bad] of [['users', '0'], ['users', '-5'], ['users', '1e3'], ['users', 'many'], ['seed', '4294967296'], ['seed', '1.5']] as const) {
    assert.throws(() => parseFlagValue(flag, sandboxSizeFlags[flag], bad), (e: unknown) => e instanceof UsageError, `${flag} ${bad}`);
  }
});

test('the activate file exports the env dir and the edge host names, shell-quoted', () => {
  const text = renderActivate(sandboxShellEnv(paths));
  assert.match(text, `export MAKAPIX_ENV_DIR='${paths.envDir}'`);
  assert.match(text, "export EB_HOST='development.makapix.localhost'");
  // The edge project's folders match the env files', or `make check` fails the edge rows.
  assert.match(text, `export EA_VAULT_HOST_PATH='${paths.vault('prod')}'`);
  assert.match(text, `export EB_VAULT_HOST_PATH='${paths.vault('dev')}'`);
  assert.match(text, `export CADDY_LOG_HOST_DIR='${paths.dir}/state/caddy-logs'`);
  assert.match(renderActivate({ X: "it's" }), "export X='it'\\''s'");
});

test('describeSandbox says how to start one when there is none', () => {
  assert.match(describeSandbox({ up: false, dir: '/x', envDir: '/x/env' }), 'No sandbox in /x');
});

test.run();
