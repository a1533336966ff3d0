// The two stacks rendered by the real compose CLI (Debian's docker-compose v1 here, v2 where
// installed; no Docker engine needed), audited by the real `scripts/check.ts`; then broken copies.
import { test } from 'uvu';
import { settingsFrom } from '../../lib/core/settings.ts';
import * as assert from 'uvu/assert';
import { runEntry } from '../harness/server.ts';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { $ } from 'zx';
import { parse as parseYaml } from 'yaml';
import { composeCommand, detectComposeFlavor } from '../../lib/tools/compose.ts';
import { loadEnvConfig, type Environment } from '../../lib/core/config.ts';
import { composeDir, projectRoot } from '../../lib/core/paths.ts';
import { limitsOf, servicesOf, publishedPorts, runIsolationAudit, type CheckRow } from '../../lib/jobs/check.ts';
import { Ui } from '../../lib/core/ui.ts';
import { Writable } from 'node:stream';
import { onExit } from '../../dev/cleanup.ts';

const work = mkdtempSync(path.join(tmpdir(), 'compose-config-'));
onExit(() => rmSync(work, { recursive: true, force: true }));
// Compose v1 insists the build context exists; the app checkout is not part of this repository.
const appDir = path.join(work, 'app');
mkdirSync(appDir);

/** An env folder made from the committed examples, with edits (null drops the variable). */
function envDir(edits: Partial<Record<Environment, Record<string, string | null>>> = {}, swap = false): string {
  const dir = mkdtempSync(path.join(work, 'env-'));
  for (const env of ['prod', 'dev'] as const) {
    const source = swap ? (env === 'prod' ? 'dev' : 'prod') : env;
    let text = readFileSync(path.join(composeDir, `.env.${source}.example`), 'utf8').replace(/^APP_DIR=.*$/m, `APP_DIR=${appDir}`);
    for (const [key, value] of Object.entries(edits[env] ?? {})) {
      text = value === null ? text.replace(new RegExp(`^${key}=.*\\n`, 'm'), '') : text.replace(new RegExp(`^${key}=.*$`, 'm'), `${key}=${value}`);
    }
    writeFileSync(path.join(dir, `.env.${env}`), text);
  }
  return dir;
}

/** A copy of compose/ with one file rewritten. */
function composeCopy(file: string, change: (text: string) => string): string {
  const dir = mkdtempSync(path.join(work, 'compose-'));
  cpSync(composeDir, dir, { recursive: true });
  const target = path.join(dir, file);
  const before = readFileSync(target, 'utf8');
  const after = change(before);
  assert.is.not(after, before, `the edit of ${file} changed nothing`);
  writeFileSync(target, after);
  return dir;
}

interface CheckRun {
  code: number | null;
  stdout: string;
  stderr: string;
  rows: CheckRow[];
}

/** Runs the real entry point, as cron or an operator would. */
function check(args: string[], env: NodeJS.ProcessEnv = process.env): CheckRun {
  const r = runEntry('check.ts', ['--json', ...args], { env });
  let rows: CheckRow[] = [];
  try {
    rows = (JSON.parse(r.stdout) as { rows?: CheckRow[] }).rows ?? [];
  } catch {
    // error runs print {"ok":false,...} without rows, or nothing parseable
  }
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, rows };
}
const failed = (r: CheckRun) => r.rows.filter((x) => x.status === 'fail');

async function render(env: Environment, dir: string) {
  const cfg = loadEnvConfig(env, path.join(dir, `.env.${env}`));
  const { cmd, argv } = composeCommand(cfg, ['config'], await detectComposeFlavor());
  const r = await $({ quiet: true })`${cmd} ${argv}`;
  return { model: parseYaml(r.stdout) as unknown, stderr: r.stderr };
}

test('both example env files render with the real compose CLI, without any unset-variable warning', async () => {
  const dir = envDir();
  for (const env of ['prod', 'dev'] as const) {
    const { model, stderr } = await render(env, dir);
    assert.not.match(stderr, /variable is not set/i, `${env}: ${stderr}`);
    const services = servicesOf(model);
    assert.equal(Object.keys(services).sort(), ['api', 'broker', 'cache', 'db', 'mqtt', 'vault', 'web', 'worker']);
    for (const [name, s] of Object.entries(services)) assert.is(s.container_name, `makapix-${env}-${name}`);
    const db = publishedPorts(model).filter((p) => p.service === 'db');
    assert.equal(db.map((p) => `${p.hostIp}:${p.published}`), [`127.0.0.1:${env === 'prod' ? 5432 : 5433}`]);
    assert.equal(publishedPorts(model).filter((p) => p.service === 'mqtt').map((p) => `${p.published}->${p.target}`), [`${env === 'prod' ? 8883 : 8884}->8883`]);
    assert.is((services.api as { image: string }).image, `makapix-${env}-api:latest`);
    if (env === 'dev') {
      const all = Object.values(services).map(limitsOf);
      assert.ok(all.every((l) => l.cpus !== undefined && l.memoryBytes !== undefined), 'a dev service has no limit');
      assert.ok(all.reduce((a, l) => a + l.cpus!, 0) <= 2.0 + 1e-9);
      assert.ok(all.reduce((a, l) => a + l.memoryBytes!, 0) <= 2 * 1024 ** 3);
    } else {
      const volumes = (model as { volumes: Record<string, { external?: boolean; name?: string }> }).volumes;
      assert.equal(volumes.db_data, { external: true, name: 'makapix_pg_data' });
    }
  }
});

test('check passes on the committed files and exits 0, without printing a secret', () => {
  const json = check(['--env-dir', envDir()]);
  assert.is(json.code, 0, json.stderr);
  assert.equal(failed(json), []);
  assert.ok(json.rows.length >= 20);
  assert.match(json.rows.find((r) => r.check === 'EB resource budget')!.detail, /^1\.95 CPUs, 2048 MiB/);
  // The rendered configs carry every secret: none may reach the output.
  assert.not.match(json.stdout + json.stderr, /change-me-(prod|dev)-(db|jwt|mqtt|oauth-secret|salt)/);
});

// Each broken copy makes the real check fail, exit 1, with the right message.
const broken: { name: string; args: () => string[]; check: string; detail: RegExp }[] = [
  {
    name: 'EB reusing EA\'s database volume',
    args: () => ['--env-dir', envDir({ dev: { DB_VOLUME_NAME: 'makapix_pg_data' } })],
    check: 'named volumes',
    detail: /shared: makapix_pg_data/,
  },
  { name: 'the same JWT secret', args: () => ['--env-dir', envDir({ dev: { JWT_SECRET_KEY: 'change-me-prod-jwt-secret-of-32-characters-or-more' } })], check: 'JWT secret', detail: /same JWT_SECRET_KEY/ },
  {
    name: 'EB over its CPU budget',
    args: () => ['--env-dir', envDir(), '--compose-dir', composeCopy('docker-compose.dev.yml', (t) => t.replace(/(  db:\n(?:.*\n)*?    cpus: )0\.55/, '$11.0'))],
    check: 'EB resource budget',
    detail: /CPU limits add up to 2\.4 > 2/,
  },
  {
    name: 'an EB service without limits',
    args: () => ['--env-dir', envDir(), '--compose-dir', composeCopy('docker-compose.dev.yml', (t) => t.replace(/  vault:\n    cpus: 0\.1\n    mem_limit: 64M\n/, ''))],
    check: 'EB resource budget',
    detail: /no limit on vault \(cpus, memory\)/,
  },
  {
    name: 'EA\'s database volume no longer external',
    args: () => ['--env-dir', envDir(), '--compose-dir', composeCopy('docker-compose.prod.yml', (t) => t.replace(/^    external: true\n/m, ''))],
    check: 'EA database volume',
    detail: /not external/,
  },
  {
    name: 'the same MQTT port',
    args: () => ['--env-dir', envDir({ dev: { MQTT_PUBLIC_PORT: '8883' } })],
    check: 'host ports',
    detail: /both publish 8883\/tcp/,
  },
  {
    name: 'a compose file using a variable the env files lack',
    args: () => ['--env-dir', envDir(), '--compose-dir', composeCopy('docker-compose.yml', (t) => t.replace('    container_name: ${COMPOSE_PROJECT_NAME}-cache\n', '    container_name: ${COMPOSE_PROJECT_NAME}-cache\n    hostname: ${CACHE_HOSTNAME}\n'))],
    check: 'prod config renders',
    detail: /unset variable CACHE_HOSTNAME/,
  },
  {
    name: 'an EB site without basic auth',
    args: () => {
      const caddyfile = path.join(mkdtempSync(path.join(work, 'caddy-')), 'Caddyfile');
      // check points the imports at the real credentials, or the committed defaults, wherever the file is.
      const text = readFileSync(path.join(projectRoot, 'caddy/Caddyfile'), 'utf8');
      const cut = text.replace('\t\troute @eb_protected {\n\t\t\timport eb_developer_session\n\t\t}\n', '');
      assert.is.not(cut, text);
      writeFileSync(caddyfile, cut);
      return ['--env-dir', envDir(), '--caddyfile', caddyfile];
    },
    check: 'EB behind basic auth',
    detail: /development\.makapix\.club has no basic auth; development\.makapix\.club answers without credentials: static_response 200, static_response 404, file_server \/srv\/vault-dev, reverse_proxy api\.makapix-dev:8000, reverse_proxy web\.makapix-dev:3000/,
  },
  {
    name: "an EB site that passes the developer's Basic credential on",
    args: () => {
      const caddyfile = path.join(mkdtempSync(path.join(work, 'caddy-')), 'Caddyfile');
      const text = readFileSync(path.join(projectRoot, 'caddy/Caddyfile'), 'utf8');
      const cut = text.replace('\trequest_header @eb_basic -Authorization\n', '');
      assert.is.not(cut, text);
      writeFileSync(caddyfile, cut);
      return ['--env-dir', envDir(), '--caddyfile', caddyfile];
    },
    check: 'EB passwords to upstreams',
    detail: /development\.makapix\.club passes a Basic credential \(a password\) on to api\.makapix-dev:8000, web\.makapix-dev:3000$/,
  },
];

test('the real check exits 1 on a broken copy', () => {
  const r = check(broken[0]!.args());
  assert.is(r.code, 1, r.stderr);
  assert.ok(failed(r).some((x) => x.check === broken[0]!.check));
});

// The same audit in-process, two copies at a time: Compose v1 takes a second or two per render.
const quiet = new Ui({ tty: false, verbose: false, stream: new Writable({ write: (_c, _e, done) => done() }) });
test('every broken copy fails its own check with the right message', async () => {
  const outcomes: string[] = [];
  const queue = broken.map((b) => ({ b, args: b.args() }));
  const worker = async () => {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const flag = (name: string) => (job!.args.includes(name) ? job!.args[job!.args.indexOf(name) + 1] : undefined);
      const r = await runIsolationAudit({ envDir: flag('--env-dir'), composeDir: flag('--compose-dir'), caddyfile: flag('--caddyfile'), settings: settingsFrom(process.env), ui: quiet });
      const rows = r.rows.filter((x) => x.status === 'fail');
      if (r.ok || !rows.some((x) => x.check === job.b.check && job.b.detail.test(x.detail))) outcomes.push(`${job.b.name}: expected "${job.b.check}" ~ ${job.b.detail}, got ${JSON.stringify(rows)}`);
    }
  };
  await Promise.all([worker(), worker()]);
  assert.equal(outcomes, []);
});

test('exempt EB paths configured for the edge (caddy/.env) are reported as a warning, not a failure', async () => {
  const dir = mkdtempSync(path.join(work, 'caddy-'));
  cpSync(path.join(projectRoot, 'caddy/Caddyfile'), path.join(dir, 'Caddyfile'));
  writeFileSync(path.join(dir, '.env'), 'EB_AUTH_EXEMPT_PATHS=/api/provision/*\n');
  assert.is(process.env.EB_AUTH_EXEMPT_PATHS, undefined);
  const r = await runIsolationAudit({ envDir: envDir(), caddyfile: path.join(dir, 'Caddyfile'), settings: settingsFrom(process.env), ui: quiet });
  assert.ok(r.ok, JSON.stringify(r.rows.filter((x) => x.status === 'fail')));
  assert.equal(r.rows.find((x) => x.check === 'EB auth exemptions'), { check: 'EB auth exemptions', status: 'warn', detail: 'open without credentials: development.makapix.club/api/provision/*' });
});

test('a missing variable stops check before Compose runs, naming it (exit 2)', () => {
  // A PATH with only what the entry itself needs (sh, dirname, node) and no compose CLI: reaching
  // Compose would fail differently (exit 1, "Neither docker compose ... is installed").
  const bin = mkdtempSync(path.join(work, 'bin-'));
  for (const tool of ['sh', 'dirname']) symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), path.join(bin, tool));
  symlinkSync(process.execPath, path.join(bin, 'node'));
  const r = check(['--env-dir', envDir({ dev: { JWT_SECRET_KEY: null } })], { ...process.env, PATH: bin });
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /\.env\.dev: JWT_SECRET_KEY is missing/);
  assert.not.match(r.stderr, /docker/i);
});

test('EB contents in the production env file are refused (exit 3)', () => {
  const r = check(['--env-dir', envDir({}, true)]);
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stderr, /declares ENVIRONMENT=development/);
});

test.run();
