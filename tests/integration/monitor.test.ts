import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, utimesSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import tls from 'node:tls';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import pg from 'pg';
import { $ } from 'zx';
import { loadEnvConfig, type EnvConfig } from '../../lib/core/config.ts';
import { composeDir, projectRoot } from '../../lib/core/paths.ts';
import { freePort } from '../../dev/ports.ts';
import { writeBackupSet } from '../harness/backups.ts';
import { defaultThresholds, type CheckName } from '../../lib/domain/monitoring.ts';
import { httpsHosts, runMonitor, type MonitorOptions } from '../../lib/jobs/monitor.ts';
import { initCa, issueDevice, revokeDevice } from '../../lib/jobs/mqtt-certs.ts';
import { brokerUid } from '../harness/mosquitto.ts';
import { startTestCluster } from '../../dev/scratch-cluster.ts';
import { onExit } from '../../dev/cleanup.ts';

const root = mkdtempSync(path.join(tmpdir(), 'monitor-'));
onExit(() => rmSync(root, { recursive: true, force: true }));
const servers: { close(): void }[] = [];
test.after(() => servers.forEach((s) => s.close()));

/** A self-signed certificate valid for `days`, made by the real openssl. */
async function makeCert(dir: string, name: string, days: number): Promise<{ cert: string; key: string }> {
  mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await $({ quiet: true })`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days ${days} -subj ${`/CN=${name}`} -keyout ${key} -out ${cert}`;
  return { cert, key };
}

/** Both environments' files from the examples, with per-environment edits, in their own folder. */
function envFiles(edits: Partial<Record<'prod' | 'dev', Record<string, string>>>): { dir: string; prod: EnvConfig; dev: EnvConfig } {
  const dir = mkdtempSync(path.join(root, 'env-'));
  for (const env of ['prod', 'dev'] as const) {
    const vars = {
      VAULT_HOST_PATH: path.join(dir, `vault-${env}`),
      BACKUP_DIR: path.join(dir, `backups-${env}`),
      MQTT_CERTS_DIR: path.join(dir, `mqtt-${env}`),
      ...edits[env],
    };
    for (const p of [vars.VAULT_HOST_PATH, vars.BACKUP_DIR]) mkdirSync(p, { recursive: true });
    const text = readFileSync(path.join(composeDir, `.env.${env}.example`), 'utf8')
      .split('\n')
      .map((l) => {
        const key = l.split('=')[0]!;
        return key in vars ? `${key}=${vars[key as keyof typeof vars]}` : l;
      })
      .join('\n');
    writeFileSync(path.join(dir, `.env.${env}`), text);
  }
  return { dir, prod: loadEnvConfig('prod', path.join(dir, '.env.prod')), dev: loadEnvConfig('dev', path.join(dir, '.env.dev')) };
}

const options = (env: { prod: EnvConfig; dev: EnvConfig }, only: CheckName[], extra: Partial<MonitorOptions> = {}): MonitorOptions => ({
  prod: env.prod,
  dev: env.dev,
  only,
  thresholds: defaultThresholds,
  probes: 5,
  httpsPort: 443,
  resolve: new Map(),
  docker: 'docker',
  timeoutMs: 3000,
  ...extra,
});

async function listen(server: http.Server | tls.Server): Promise<number> {
  const port = await freePort();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return port;
}

/** Player keys (the CN of a player certificate is its player_key). */
const P1 = '11111111-1111-4111-8111-111111111111';
const P0 = '00000000-0000-4000-8000-000000000000';

test('a certificate that expires in 5 days makes certs WARNING, naming it; the others stay OK', async () => {
  const env = envFiles({});
  // The real layout, written by lib/jobs/mqtt-certs.ts: a device certificate with 5 days left, and a revoked
  // device whose old certificate (2 days left) is no one's concern any more.
  const pki = (e: 'prod' | 'dev') => ({ env: e, dir: env[e].vars.MQTT_CERTS_DIR, publicHost: env[e].vars.MQTT_PUBLIC_HOST, publicPort: env[e].vars.MQTT_PUBLIC_PORT, brokerUid: brokerUid() });
  const opts = (days?: number) => ({ dryRun: false, force: false, days, crlDays: 3650, confirm: async () => undefined });
  await initCa(pki('prod'), opts());
  await initCa(pki('dev'), opts());
  await issueDevice(pki('dev'), P1, opts(5));
  await issueDevice(pki('dev'), P0, opts(2));
  await revokeDevice(pki('dev'), P0, opts());
  // Every HTTPS host, pinned to a local TLS server whose certificate has a year left.
  const site = await makeCert(path.join(root, 'site'), 'site', 365);
  const port = await listen(tls.createServer({ cert: readFileSync(site.cert), key: readFileSync(site.key) }, (s) => s.end()));
  const hosts = ['makapix.club', 'vault.makapix.club', 'development.makapix.club', 'vault-dev.makapix.club'];
  // No broker runs here (a docker CLI that is not there): the loaded-CRL items stay out of the count.
  const r = await runMonitor(options(env, ['certs'], { httpsPort: port, docker: path.join(root, 'no-such-docker'), resolve: new Map(hosts.map((h) => [h, '127.0.0.1'])) }));
  const certs = r.checks[0]!;
  assert.is(certs.status, 'WARNING', r.summary);
  assert.is(r.exitCode, 1);
  assert.is(certs.items.length, 11, JSON.stringify(certs.items));
  assert.not.ok(certs.items.some((i) => i.label.includes('revoked')), 'a revoked certificate was checked');
  const warned = certs.items.filter((i) => i.status === 'WARNING');
  assert.is(warned.length, 1, JSON.stringify(certs.items));
  assert.match(warned[0]!.label, new RegExp(`mqtt-dev/devices/${P1}\\.crt$`));
  assert.match(warned[0]!.detail, /expires in [45] days/);
  assert.ok(certs.items.filter((i) => i.label.endsWith(`:${port}`)).every((i) => i.status === 'OK' && /\(site\) expires in 36[45] days/.test(i.detail)));
  assert.match(r.summary, new RegExp(`^MONITOR WARNING - certs WARNING: .*${P1}\\.crt \\(.+\\) expires in [45] days`));
});

test("the MQTT CRL's next update is watched like an expiry (Mosquitto refuses everyone after it)", async () => {
  const env = envFiles({});
  const settings = { env: 'dev' as const, dir: env.dev.vars.MQTT_CERTS_DIR, publicHost: env.dev.vars.MQTT_PUBLIC_HOST, publicPort: 8884, brokerUid: brokerUid() };
  await initCa(settings, { dryRun: false, force: false, days: undefined, crlDays: 2, confirm: async () => undefined });
  const r = await runMonitor(options(env, ['certs'], { httpsPort: await freePort(), resolve: new Map(httpsHosts([env.prod, env.dev]).map((h) => [h, '127.0.0.1'])) }));
  const items = r.checks[0]!.items;
  const crl = items.find((i) => i.label.endsWith('/crl.pem'));
  assert.ok(crl, JSON.stringify(items));
  assert.is(crl.status, 'CRITICAL', crl.detail);
  assert.match(crl.detail, /^\(CRL next update: past it the broker refuses every device\) expires in 1 days/);
  assert.equal(items.filter((i) => i.label.startsWith(env.dev.vars.MQTT_CERTS_DIR)).map((i) => [path.basename(i.label), i.status]), [['ca.crt', 'OK'], ['server.crt', 'OK'], ['crl.pem', 'CRITICAL']]);
  assert.match(items.find((i) => i.label === env.prod.vars.MQTT_CERTS_DIR)!.detail, /^cannot read: ENOENT|holds no ca\.crt/);
  assert.is(r.status, 'CRITICAL');
});

test("a CRL within crl-warn-days of its next update is a WARNING; one the running broker has not loaded is CRITICAL", async () => {
  const env = envFiles({});
  const settings = { env: 'dev' as const, dir: env.dev.vars.MQTT_CERTS_DIR, publicHost: env.dev.vars.MQTT_PUBLIC_HOST, publicPort: 8884, brokerUid: brokerUid() };
  await initCa(settings, { dryRun: false, force: false, days: undefined, crlDays: 4, confirm: async () => undefined });
  const crlFile = path.join(env.dev.vars.MQTT_CERTS_DIR, 'crl.pem');
  // A docker CLI standing in for the engine: EB's broker runs, and its watcher's marker says which CRL it loaded.
  const marker = path.join(root, 'crl.loaded');
  const fake = path.join(root, 'fake-docker');
  writeFileSync(fake, `#!/bin/sh\ncase "$1 $2" in\n  "inspect --format") [ "$4" = makapix-dev-mqtt ] && echo true || exit 1 ;;\n  "exec makapix-dev-mqtt") cat ${marker} ;;\n  *) exit 1 ;;\nesac\n`, { mode: 0o755 });
  const check = async () => (await runMonitor(options(env, ['certs'], { docker: fake, httpsPort: await freePort(), resolve: new Map(httpsHosts([env.prod, env.dev]).map((h) => [h, '127.0.0.1'])) }))).checks[0]!.items;
  const sha = createHash('sha256').update(readFileSync(crlFile)).digest('hex');
  writeFileSync(marker, `${sha}\n`);
  let items = await check();
  assert.equal(items.filter((i) => i.label.includes('crl.pem')).map((i) => [i.label.replace(env.dev.vars.MQTT_CERTS_DIR, '<dir>'), i.status]), [['<dir>/crl.pem', 'WARNING'], ['makapix-dev-mqtt: <dir>/crl.pem', 'OK']]);
  // The broker still runs an older CRL, and the new one is older than the grace a watcher needs.
  writeFileSync(marker, `${'0'.repeat(64)}\n`);
  const old = new Date(Date.now() - 10 * 60_000);
  utimesSync(crlFile, old, old);
  items = await check();
  const loaded = items.find((i) => i.label.startsWith('makapix-dev-mqtt'))!;
  assert.is(loaded.status, 'CRITICAL');
  assert.match(loaded.detail, /has not loaded this CRL/);
  // Just written: the watcher reloads within seconds, no alarm yet.
  utimesSync(crlFile, new Date(), new Date());
  assert.is((await check()).find((i) => i.label.startsWith('makapix-dev-mqtt'))!.status, 'OK');
});

test('a slow health endpoint fails the latency check; a fast one passes', async () => {
  let delay = 0;
  const port = await listen(
    http.createServer((req, res) => {
      setTimeout(() => res.writeHead(req.url === '/api/health' ? 200 : 404).end('{"status":"ok"}'), delay);
    }),
  );
  const env = envFiles({});
  const healthUrl = `http://127.0.0.1:${port}/api/health`;
  const fast = await runMonitor(options(env, ['latency'], { healthUrl }));
  assert.is(fast.status, 'OK', fast.summary);
  delay = 600;
  const slow = await runMonitor(options(env, ['latency'], { healthUrl, probes: 3 }));
  assert.is(slow.status, 'WARNING', slow.summary);
  const p99 = Number(/latency WARNING: p99 (\d+) ms over 3 probes .*> 500 ms/.exec(slow.summary)?.[1]);
  assert.ok(p99 >= 600, slow.summary);
  const missing = await runMonitor(options(env, ['latency'], { healthUrl: `http://127.0.0.1:${port}/nope`, probes: 2 }));
  assert.is(missing.status, 'CRITICAL');
  assert.match(missing.summary, /2 of 2 probes failed \(HTTP 404\)/);
});

test('connections held open past 80 % of max_connections → CRITICAL; an unreachable database → UNKNOWN', async () => {
  const cluster = await startTestCluster({ settings: { max_connections: '10' } });
  const db = { DB_PUBLISHED_PORT: String(cluster.port), DB_ADMIN_USER: cluster.superuser, DB_ADMIN_PASSWORD: cluster.password.reveal(), DB_DATABASE: 'postgres' };
  const env = envFiles({ prod: db });
  const idle = await runMonitor(options(env, ['connections']));
  assert.is(idle.status, 'OK', idle.summary);
  const held: pg.Client[] = [];
  try {
    for (let i = 0; i < 9; i++) {
      const c = new pg.Client(cluster.connection());
      await c.connect();
      held.push(c);
    }
    const busy = await runMonitor(options(env, ['connections']));
    assert.is(busy.status, 'CRITICAL', busy.summary);
    assert.is(busy.exitCode, 2);
    assert.match(busy.summary, /connections CRITICAL: 9 of max_connections 10 in use \(90%; > 80%\)/);
  } finally {
    await Promise.all(held.map((c) => c.end()));
  }
  await cluster.stop();
  const down = await runMonitor(options(env, ['connections']));
  assert.is(down.status, 'UNKNOWN');
  assert.is(down.exitCode, 3);
  assert.match(down.summary, new RegExp(`connections UNKNOWN: Cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${cluster.port} \\(database postgres\\): ECONNREFUSED`));
});

test('disk and backup measure real folders; without docker the containers check alone is UNKNOWN', async () => {
  const env = envFiles({});
  writeBackupSet(env.prod.vars.BACKUP_DIR, new Date(Date.now() - 3_600_000));
  const r = await runMonitor(options(env, ['disk', 'containers', 'backup'], { docker: path.join(root, 'no-such-docker'), dockerRoot: root }));
  const by = Object.fromEntries(r.checks.map((c) => [c.check, c]));
  assert.is(by.disk!.status, 'OK', by.disk!.summary);
  assert.equal(by.disk!.items.map((i) => i.label.split(' /')[0]), ['prod vault', 'dev vault', 'prod backups', 'dev backups', 'docker data root']);
  assert.is(by.backup!.status, 'OK', by.backup!.summary);
  assert.is(by.containers!.status, 'UNKNOWN');
  assert.match(by.containers!.summary, /^docker not available \(.*no-such-docker ps: command not found\)/);
  assert.is(r.status, 'UNKNOWN');
  const strict = await runMonitor(options(env, ['disk'], { thresholds: { ...defaultThresholds, 'disk-warn-pct': 0, 'disk-crit-pct': 0 }, dockerRoot: root }));
  assert.is(strict.status, 'CRITICAL', 'a full-enough disk must be able to fail');
});

/** Runs the real entry script like cron: by absolute path, from /, without a TTY. */
async function monitorScript(envDir: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(path.join(projectRoot, 'scripts/monitor.ts'), args, { cwd: '/', env: { PATH: '/usr/bin:/bin', MAKAPIX_ENV_DIR: envDir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

test('the script exits like a Nagios plugin, pings on failure, and calls a usage error UNKNOWN', async () => {
  const pings: { url: string; body: string }[] = [];
  const port = await listen(
    http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        pings.push({ url: req.url ?? '', body });
        res.end('OK');
      });
    }),
  );
  const env = envFiles({});
  writeBackupSet(env.prod.vars.BACKUP_DIR, new Date(Date.now() - 30 * 3_600_000));
  const warn = await monitorScript(env.dir, ['--only', 'backup', '--ping', `http://127.0.0.1:${port}/ping/abc`]);
  assert.is(warn.code, 1, warn.stderr);
  assert.match(warn.stdout.split('\n')[0]!, /^MONITOR WARNING - backup WARNING: newest makapix-\d{8}-\d{6}\.dump is 30\.0 h old \(> 26 h\)$/);
  assert.match(warn.stdout, /ping http:\/\/127\.0\.0\.1:\d+: pinged fail$/m);
  assert.equal(pings.map((p) => p.url), ['/ping/abc/fail']);
  assert.match(pings[0]!.body, /^MONITOR WARNING - backup/);
  const ok = await monitorScript(env.dir, ['--only', 'backup', '--threshold', 'backup-warn-hours=40', '--json', '--ping', `http://127.0.0.1:${port}/ping/abc`]);
  assert.is(ok.code, 0, ok.stderr);
  const json = JSON.parse(ok.stdout) as { status: string; checks: { check: string }[]; ping: { ok: boolean } };
  assert.is(json.status, 'OK');
  assert.equal(json.checks.map((c) => c.check), ['backup']);
  assert.ok(json.ping.ok);
  assert.is(pings[1]!.url, '/ping/abc');
  const usage = await monitorScript(env.dir, ['--only', 'everything']);
  assert.is(usage.code, 3);
  assert.match(usage.stdout, /^MONITOR UNKNOWN - --only "everything" is not a check\.\n$/);
  assert.match(usage.stderr, /Checks: latency, connections, disk, containers, certs, backup, offsite\./);
  const badPing = await monitorScript(env.dir, ['--only', 'backup', '--ping', 'ftp://example.org/x']);
  assert.is(badPing.code, 3);
  assert.match(badPing.stdout, /^MONITOR UNKNOWN - --ping ftp:\/\/example\.org\/x must be an http\(s\) URL\./);
  assert.is(pings.length, 2, 'a bad --ping URL must stop before any check or ping');
  const noConfig = await monitorScript(path.join(root, 'nowhere'), []);
  assert.is(noConfig.code, 3);
  assert.match(noConfig.stdout, /^MONITOR UNKNOWN - The prod environment file .*\/nowhere\/\.env\.prod does not exist\./);
});

test.run();
