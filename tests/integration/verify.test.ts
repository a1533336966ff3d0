// verify against a real Caddy (the project's Caddyfile) and two real Mosquittos (the project's
// config, certificates from lib/jobs/mqtt-certs.ts), all on loopback: it passes on a correct setup and fails
// with the right line when one protection is taken away.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { loadEnvConfig, type Environment } from '../../lib/core/config.ts';
import { projectRoot } from '../../lib/core/paths.ts';
import { freePort } from '../../dev/ports.ts';
import { Secret } from '../../lib/core/secret.ts';
import { edgeCaddyfile, edgeEnvironment } from '../../lib/tools/caddy.ts';
import { credentialsFileName, renderCredentials, type Scope } from '../../lib/domain/credentials.ts';
import { hashPassword } from '../../lib/core/password.ts';
import { runVerify, type CheckLine, type VerifyOptions, type VerifyResult } from '../../lib/jobs/verify.ts';
import { verifyPlayerKey } from '../../lib/domain/pki.ts';
import { startCaddy, type Edge } from '../harness/caddy.ts';
import { brokerUid, makeCerts, startMosquitto, type Broker } from '../harness/mosquitto.ts';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { onExit } from '../../dev/cleanup.ts';
import { startEdgeAuth, type EdgeAuthServer } from '../../lib/jobs/edge-auth.ts';
import { ensureSessionKey } from '../../lib/tools/caddy.ts';
import { writeBackupSet } from '../harness/backups.ts';

const root = mkdtempSync(path.join(tmpdir(), 'verify-'));
chmodSync(root, 0o755); // the brokers' own user reads the certificate folders below
onExit(() => rmSync(root, { recursive: true, force: true }));
const servers: http.Server[] = [];
test.after(async () => {
  servers.forEach((s) => s.close());
  await edgeAuth?.close();
  edge?.stop();
  Object.values(brokers).forEach((b) => b.stop());
});

let sandbox: TestSandbox;
let hosts: { ea: string; eaVault: string; eb: string; ebVault: string };
const dirs = { creds: path.join(root, 'credentials'), logs: path.join(root, 'caddy-logs') };
const developer = { user: 'alice', password: new Secret('alice-correct-horse-14') };
const device = { user: 'tv1', password: new Secret('tv-device-password-1') };
const artwork = `24/07/${randomUUID()}.png`;
let edge: Edge;
// EB's developer check, as the edge compose runs it next to Caddy.
let edgeAuth: EdgeAuthServer | undefined;
const brokers: Partial<Record<'prod' | 'dev', Broker>> = {};
const mqttPorts = { prod: 0, dev: 0 };

async function listen(server: http.Server): Promise<number> {
  const port = await freePort();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  return port;
}

/** Points the sandbox's env files at this test's brokers (the sandbox writes the container defaults). */
function setEnvVars(env: Environment, vars: Record<string, string>): void {
  const file = path.join(sandbox.envDir, `.env.${env}`);
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => !(l.split('=')[0]! in vars));
  writeFileSync(file, `${lines.join('\n').trimEnd()}\n${Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
}

const cfg = (env: Environment) => loadEnvConfig(env, path.join(sandbox.envDir, `.env.${env}`));

const options = (extra: Partial<VerifyOptions> = {}): VerifyOptions => ({
  prod: cfg('prod'),
  dev: cfg('dev'),
  targets: ['prod', 'dev'],
  httpsPort: edge.httpsPort,
  httpPort: edge.httpPort,
  resolve: new Map(Object.values(hosts).map((h) => [h, '127.0.0.1'])),
  ca: [edge.rootCa],
  ebCredentials: developer,
  deviceCredentials: device,
  device: verifyPlayerKey,
  // EB's database is empty in the sandbox: a known file there; EA's files are sampled from its database.
  vaultFiles: { dev: artwork },
  vaultSample: 3,
  // Caddy's local leaf certificates live 12 hours.
  minCertDays: 0,
  timeoutMs: 5000,
  ...extra,
});

const failed = (r: VerifyResult) => r.checks.filter((c) => c.result === 'fail');
const show = (r: VerifyResult) => failed(r).map((c) => `${c.check}: ${c.detail}`).join('\n');

/** The project's Caddyfile with one edit, loaded into the running Caddy; the original comes back after `fn`. */
async function withEditedCaddyfile(edit: (text: string) => string, fn: () => Promise<void>): Promise<void> {
  const original = readFileSync(edgeCaddyfile, 'utf8');
  const edited = edit(original);
  assert.is.not(edited, original, 'the edit changed nothing: the Caddyfile no longer has what the test removes');
  const file = path.join(root, 'Caddyfile.edited');
  writeFileSync(file, edited);
  await edge.reload(file);
  try {
    await fn();
  } finally {
    await edge.reload(edgeCaddyfile);
  }
}

test('setup: the sandbox, certificates, credentials, upstreams, two brokers and the edge Caddy', async () => {
  sandbox = await startSandbox({ users: 20, seed: 9, vault: true });
  const [p, d] = [sandbox.prodCfg.vars, sandbox.devCfg.vars];
  hosts = { ea: p.WEB_DOMAIN, eaVault: p.VAULT_DOMAIN, eb: d.WEB_DOMAIN, ebVault: d.VAULT_DOMAIN };
  for (const env of ['prod', 'dev'] as const) {
    const v = (env === 'prod' ? sandbox.prodCfg : sandbox.devCfg).vars;
    mqttPorts[env] = await freePort();
    setEnvVars(env, { MQTT_PUBLIC_PORT: String(mqttPorts[env]), MQTT_BROKER_UID: String(brokerUid()) });
    await makeCerts(env, v.MQTT_CERTS_DIR, v.MQTT_PUBLIC_HOST, [verifyPlayerKey], mqttPorts[env]);
    brokers[env] = await startMosquitto(v.MQTT_CERTS_DIR, mqttPorts[env]);
  }
  mkdirSync(path.join(sandbox.vaultDev, '24', '07'), { recursive: true });
  writeFileSync(path.join(sandbox.vaultDev, artwork), 'pixels');
  mkdirSync(dirs.creds, { mode: 0o700 });
  mkdirSync(dirs.logs);
  const cred = async (scope: Scope, c: { user: string; password: Secret }) =>
    writeFileSync(path.join(dirs.creds, credentialsFileName(scope)), renderCredentials(scope, [{ user: c.user, hash: await hashPassword(c.password, 4), addedAt: new Date().toISOString() }], ''), { mode: 0o600 });
  await cred('developers', developer);
  await cred('devices', device);
  const app = await listen(http.createServer((req, res) => (req.url === '/health' ? res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}') : res.writeHead(200, { 'content-type': 'text/html' }).end('<html>makapix</html>'))));
  const up = (port: number) => `127.0.0.1:${port}`;
  const keyFile = (await ensureSessionKey(dirs.creds))!;
  edgeAuth = await startEdgeAuth({ host: '127.0.0.1', port: 0, credentialsDir: dirs.creds, key: new Secret(readFileSync(keyFile, 'utf8').trim()), sessionSeconds: 3600, log: () => {} });
  edge = await startCaddy(
    {
      credentialsDir: dirs.creds,
      ebAuthUpstream: up(edgeAuth.port),
      eaHost: hosts.ea,
      eaVaultHost: hosts.eaVault,
      ebHost: hosts.eb,
      ebVaultHost: hosts.ebVault,
      eaApiUpstream: up(app),
      eaWebUpstream: up(app),
      ebApiUpstream: up(app),
      ebWebUpstream: up(app),
      eaVaultRoot: sandbox.vaultProd,
      ebVaultRoot: sandbox.vaultDev,
      logDir: dirs.logs,
    },
    Object.values(hosts),
  );
});

test('verify passes on a correct setup, every line', async () => {
  const r = await runVerify(options());
  assert.ok(r.ok, show(r));
  const names = r.checks.map((c) => c.check);
  for (const expected of [
    'dns one address',
    `prod https://${hosts.ea}:${edge.httpsPort}/api/health healthy`,
    'prod no X-Robots-Tag',
    `dev https://${hosts.eb}:${edge.httpsPort}/ needs credentials`,
    'dev robots.txt disallows all',
    'dev X-Robots-Tag noindex',
    `dev http://${hosts.ebVault}:${edge.httpPort}/${artwork} with the device credential`,
    `dev mqtt ${hosts.eb}:${mqttPorts.dev} refuses a prod device`,
    `prod mqtt ${hosts.ea}:${mqttPorts.prod} accepts a prod device`,
    `prod mqtt ${hosts.ea}:${mqttPorts.prod} refuses no certificate`,
  ]) {
    assert.ok(names.includes(expected), `no line "${expected}" in:\n${names.join('\n')}`);
  }
  const sampled = r.checks.filter((c) => c.check.startsWith(`prod http://${hosts.eaVault}:${edge.httpPort}/`) && c.check.endsWith(' over plain HTTP'));
  assert.is(sampled.length, 3, 'three of the files EA\'s database references, fetched from its vault');
  assert.match(r.checks.find((c) => c.check.startsWith('dev mqtt') && c.check.endsWith('accepts a dev device'))!.detail, /connected, published and received/);
});

test('the developer check removed from the EB host → its "needs credentials" lines fail', async () => {
  await withEditedCaddyfile(
    (t) => t.replace(/^\s*import eb_developer_session\n/m, ''),
    async () => {
      const r = await runVerify(options({ targets: ['dev'] }));
      assert.not.ok(r.ok);
      const lines = failed(r).map((c) => c.check);
      assert.ok(lines.includes(`dev https://${hosts.eb}:${edge.httpsPort}/ needs credentials`), show(r));
      assert.match(failed(r)[0]!.detail, /^HTTP 200, expected 401 \(open without credentials\)/);
      assert.not.ok(lines.some((l) => l.includes('vault-dev')), `vault-dev kept its device auth:\n${show(r)}`);
    },
  );
});

test('noindex header missing on the EB site → the noindex line fails, naming the responses', async () => {
  await withEditedCaddyfile(
    // The first import is the EB site's; vault-dev keeps its own.
    (t) => t.replace(/^\s*import eb_noindex\n/m, ''),
    async () => {
      const r = await runVerify(options({ targets: ['dev'] }));
      assert.equal(failed(r).map((c) => c.check), ['dev X-Robots-Tag noindex'], show(r));
      assert.ok(failed(r)[0]!.detail.startsWith(`no X-Robots-Tag: noindex on https://${hosts.eb}:${edge.httpsPort}/ (HTTP 401)`), failed(r)[0]!.detail);
    },
  );
});

test('the EB broker accepting an EA certificate → the cross-environment line fails', async () => {
  // A dev broker that also trusts the EA CA (and has its CRL, or OpenSSL would refuse for lack of one).
  const lax = path.join(root, 'mqtt-dev-lax');
  const [prodCerts, devCerts] = [sandbox.prodCfg.vars.MQTT_CERTS_DIR, sandbox.devCfg.vars.MQTT_CERTS_DIR];
  spawnSync('cp', ['-a', devCerts, lax]);
  writeFileSync(path.join(lax, 'ca.crt'), readFileSync(path.join(devCerts, 'ca.crt'), 'utf8') + readFileSync(path.join(prodCerts, 'ca.crt'), 'utf8'));
  writeFileSync(path.join(lax, 'crl.pem'), readFileSync(path.join(devCerts, 'crl.pem'), 'utf8') + readFileSync(path.join(prodCerts, 'crl.pem'), 'utf8'));
  brokers.dev!.stop();
  const laxBroker = await startMosquitto(lax, mqttPorts.dev);
  try {
    const r = await runVerify(options({ targets: ['dev'] }));
    assert.equal(failed(r).map((c) => c.check), [`dev mqtt ${hosts.eb}:${mqttPorts.dev} refuses a prod device`], show(r));
    assert.is(failed(r)[0]!.detail, 'the broker ACCEPTED it');
  } finally {
    laxBroker.stop();
    brokers.dev = await startMosquitto(devCerts, mqttPorts.dev);
  }
});

test('a vault file missing → the vault line fails with the status', async () => {
  const file = path.join(sandbox.vaultDev, artwork);
  const keep = readFileSync(file);
  rmSync(file);
  try {
    const r = await runVerify(options({ targets: ['dev'] }));
    assert.equal(failed(r).map((c) => c.check), [`dev http://${hosts.ebVault}:${edge.httpPort}/${artwork} with the device credential`], show(r));
    assert.match(failed(r)[0]!.detail, /^HTTP 404, expected 200/);
  } finally {
    writeFileSync(file, keep);
  }
});

test('a host that does not resolve (asked of the real resolver) fails its DNS lines', async () => {
  const resolve = new Map(Object.values(hosts).filter((h) => h !== hosts.eaVault).map((h) => [h, '127.0.0.1']));
  const r = await runVerify(options({ targets: ['prod'], resolve }));
  const dns = r.checks.filter((c) => c.check.startsWith('dns '));
  assert.equal(dns.map((c) => [c.check, c.result]), [[`dns ${hosts.ea}`, 'pass'], [`dns ${hosts.eaVault}`, 'fail'], ['dns one address', 'fail']]);
  assert.match(dns[0]!.detail, /^127\.0\.0\.1 \(pinned by --resolve; DNS not asked\)$/);
  assert.match(dns[1]!.detail, /^(ENOTFOUND|EAI_AGAIN)$/);
  assert.match(dns[2]!.detail, new RegExp(`not every host resolves \\(${hosts.eaVault.replaceAll('.', '\\.')}\\)`));
});

test('the script: credentials from the environment, --resolve and --ca-file, checklist and exit codes', async () => {
  const caFile = path.join(root, 'edge-root.crt');
  writeFileSync(caFile, edge.rootCa);
  const args = ['--env', 'all', '--https-port', String(edge.httpsPort), '--http-port', String(edge.httpPort), '--ca-file', caFile, '--vault-file', `dev=${artwork}`, '--min-cert-days', '0', ...Object.values(hosts).flatMap((h) => ['--resolve', `${h}:127.0.0.1`])];
  const run = async (extraArgs: string[], env: Record<string, string>) => {
    const child = spawn(path.join(projectRoot, 'scripts/verify.ts'), [...args, ...extraArgs], { cwd: '/', env: { PATH: '/usr/bin:/bin', MAKAPIX_ENV_DIR: sandbox.envDir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number];
    return { code, stdout, stderr };
  };
  const creds = { VERIFY_EB_USER: developer.user, VERIFY_EB_PASSWORD: developer.password.reveal(), VERIFY_DEVICE_USER: device.user, VERIFY_DEVICE_PASSWORD: device.password.reveal() };
  const ok = await run(['--json'], creds);
  assert.is(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  const json = JSON.parse(ok.stdout) as VerifyResult;
  assert.ok(json.ok && json.checks.length > 20);
  assert.not.ok(ok.stdout.includes(developer.password.reveal()), 'a password reached the output');
  const noCreds = await run([], {});
  assert.is(noCreds.code, 1);
  assert.match(noCreds.stdout, /^FAIL {2}dev with credentials +VERIFY_EB_USER and VERIFY_EB_PASSWORD are not set/m);
  assert.match(noCreds.stdout, /^PASS {2}prod no X-Robots-Tag +no X-Robots-Tag on 2 responses +\(\d+ms\)$/m);
  assert.match(noCreds.stdout, /\n\d+ of \d+ checks FAILED\n$/);
});

/** The Caddyfile's host placeholders for the sandbox's names, as the edge's environment would hold them. */
const edgeHosts = () => ({
  ...edgeEnvironment({ eaHost: hosts.ea, eaVaultHost: hosts.eaVault, ebHost: hosts.eb, ebVaultHost: hosts.ebVault }),
  // The edge project's folders (caddy/.env on a VPS) are the sandbox's, as the audit requires.
  EA_VAULT_HOST_PATH: sandbox.prodCfg.vars.VAULT_HOST_PATH,
  EB_VAULT_HOST_PATH: sandbox.devCfg.vars.VAULT_HOST_PATH,
  CADDY_LOG_HOST_DIR: sandbox.prodCfg.vars.CADDY_LOG_DIR,
});

test('--pre: env files, the isolation audit, backup age and credentials files, each its own line', async () => {
  const backups = sandbox.prodCfg.vars.BACKUP_DIR;
  const run = async (env: Record<string, string>) => {
    const child = spawn(path.join(projectRoot, 'scripts/verify.ts'), ['--pre', '--json'], { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MAKAPIX_ENV_DIR: sandbox.envDir, MAKAPIX_CREDENTIALS_DIR: dirs.creds, ...edgeHosts(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = (await once(child, 'close')) as [number];
    return { code, result: JSON.parse(stdout || '{}') as VerifyResult, stderr };
  };
  const line = (r: VerifyResult, name: string): CheckLine => {
    const found = r.checks.find((c) => c.check === name);
    if (!found) throw new Error(`no line ${name}: ${JSON.stringify(r.checks)}`);
    return found;
  };
  writeBackupSet(backups, new Date(Date.now() - 2 * 3_600_000));
  // Compose v1 wants the app checkout's build folders to exist before it renders the config.
  for (const service of ['api', 'worker', 'web']) mkdirSync(path.join(sandbox.prodCfg.vars.APP_DIR, service), { recursive: true });
  const ok = await run({});
  for (const name of ['pre prod env file complete', 'pre dev env file complete', 'pre backup younger than 24 h', 'pre credentials file developers.caddy present', 'pre credentials file devices.caddy present']) {
    assert.is(line(ok.result, name).result, 'pass', `${name}: ${line(ok.result, name).detail}`);
  }
  { const audit = line(ok.result, 'pre isolation audit clean (make check)'); assert.match(audit.detail, /^\d+ checks, none failed$/, audit.detail); }
  assert.is(ok.code, 0, JSON.stringify(ok.result.checks));
  // Take the backup and a credentials file away: each line fails, saying what to run.
  rmSync(backups, { recursive: true });
  const devices = path.join(dirs.creds, credentialsFileName('devices'));
  const keep = readFileSync(devices);
  rmSync(devices);
  try {
    const bad = await run({});
    assert.is(bad.code, 1, bad.stderr);
    assert.match(line(bad.result, 'pre backup younger than 24 h').detail, /does not exist.*run make backup-prod/);
    assert.match(line(bad.result, 'pre credentials file devices.caddy present').detail, /devices\.caddy does not exist: run make basic-auth ARGS="add <user> --scope devices"/);
    assert.is(line(bad.result, 'pre credentials file developers.caddy present').result, 'pass');
  } finally {
    writeFileSync(devices, keep, { mode: 0o600 });
  }
});

test.run();
