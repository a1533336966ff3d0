// The project's Caddyfile in the real Caddy (Debian's 2.6), on loopback high ports with local
// certificates and local upstreams: what EA and EB answer, with and without credentials.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort } from '../../dev/ports.ts';
import { caddyfileArgv, edgeCaddyfile, edgeEnvironment, ensureCredentials, ensureSessionKey, type EdgeSettings } from '../../lib/tools/caddy.ts';
import { startEdgeAuth, type EdgeAuthServer } from '../../lib/jobs/edge-auth.ts';
import { Secret } from '../../lib/core/secret.ts';
import { caddyCommand, renderCredentials } from '../../lib/jobs/basic-auth.ts';
import { onExit } from '../harness/cleanup.ts';

const work = mkdtempSync(path.join(tmpdir(), 'caddy-test-'));
const credentials = path.join(work, 'credentials');
let caddy: ChildProcess | undefined;
/** EB's developer check (lib/jobs/edge-auth.ts), which the EB site asks before anything answers. */
let edgeAuth: EdgeAuthServer | undefined;
const upstreams: Server[] = [];
const stop = () => {
  caddy?.kill('SIGKILL');
  void edgeAuth?.close();
  for (const s of upstreams.splice(0)) s.close();
};
let log = '';
onExit(() => {
  stop();
  // A failed run shows what Caddy said: most failures here are its to explain.
  if (process.exitCode) process.stderr.write(`\n--- caddy log (last 4000 characters) ---\n${log}\n`);
  rmSync(work, { recursive: true, force: true });
});
test.after(stop);

const hosts = { ea: 'makapix.localhost', eaVault: 'vault.makapix.localhost', eb: 'dev.makapix.localhost', ebVault: 'vault-dev.makapix.localhost' };
const developer = { user: 'alice', password: 'alice-password-123' };
const device = { user: 'tv1', password: 'device-password-456' };

/** A stand-in upstream that says who it is and what path reached it. */
async function upstream(name: string, headers: Record<string, string> = {}): Promise<string> {
  const port = await freePort();
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ upstream: name, path: req.url }));
  });
  upstreams.push(server);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return `127.0.0.1:${port}`;
}

let ports: { http: number; https: number; admin: number };
let settings: EdgeSettings;
const env = (s: EdgeSettings) => ({ ...process.env, HOME: work, XDG_DATA_HOME: path.join(work, 'data'), XDG_CONFIG_HOME: path.join(work, 'config'), ...edgeEnvironment(s) });

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(scheme: 'http' | 'https', host: string, urlPath: string, creds?: { user: string; password: string }): Promise<Answer> {
  const headers: Record<string, string> = { host };
  if (creds) headers.authorization = `Basic ${Buffer.from(`${creds.user}:${creds.password}`).toString('base64')}`;
  // A fresh connection per request: a reload closes Caddy's idle keep-alive connections.
  const common = { host: '127.0.0.1', path: urlPath, headers, timeout: 20_000, agent: false };
  return new Promise((resolve, reject) => {
    const done = (res: import('node:http').IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const req =
      scheme === 'http'
        ? httpRequest({ ...common, port: ports.http }, done)
        : httpsRequest({ ...common, port: ports.https, servername: host, ca: readFileSync(path.join(work, 'data/caddy/pki/authorities/local/root.crt')) }, done);
    req.on('timeout', () => req.destroy(new Error(`${scheme}://${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not happen within ${ms / 1000}s (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function writeCredentials(): void {
  const now = new Date().toISOString();
  writeFileSync(path.join(credentials, 'developers.caddy'), renderCredentials('developers', [{ user: developer.user, hash: bcrypt.hashSync(developer.password, 4), addedAt: now }], ''));
  writeFileSync(path.join(credentials, 'devices.caddy'), renderCredentials('devices', [{ user: device.user, hash: bcrypt.hashSync(device.password, 4), addedAt: now }], ''));
}

function reload(s: EdgeSettings): void {
  const { cmd, argv } = caddyCommand({ admin: `127.0.0.1:${ports.admin}`, caddyfile: edgeCaddyfile, bin: 'caddy' }, 'reload');
  const r = spawnSync(cmd, argv, { env: env(s), encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, r.stderr);
}

const robots = (a: Answer) => a.headers['x-robots-tag'];

test('setup: Caddy starts with the committed lock-everyone-out credentials', async () => {
  ports = { http: await freePort(), https: await freePort(), admin: await freePort() };
  settings = {
    admin: `127.0.0.1:${ports.admin}`,
    credentialsDir: credentials,
    extraGlobalOptions: ['local_certs', 'skip_install_trust', `http_port ${ports.http}`, `https_port ${ports.https}`],
    eaHost: hosts.ea,
    eaVaultHost: hosts.eaVault,
    ebHost: hosts.eb,
    ebVaultHost: hosts.ebVault,
    eaApiUpstream: await upstream('ea-api'),
    eaWebUpstream: await upstream('ea-web'),
    eaVaultUpstream: await upstream('ea-vault'),
    ebApiUpstream: await upstream('eb-api'),
    // An upstream that asks to be indexed: EB must still answer noindex, once.
    ebWebUpstream: await upstream('eb-web', { 'X-Robots-Tag': 'all' }),
    ebVaultUpstream: await upstream('eb-vault'),
  };
  assert.is((await ensureCredentials(credentials)).length, 2);
  assert.is((await ensureCredentials(credentials)).length, 0, 'ensureCredentials replaced an existing file');
  const keyFile = (await ensureSessionKey(credentials))!;
  edgeAuth = await startEdgeAuth({ host: '127.0.0.1', port: 0, credentialsFile: path.join(credentials, 'developers.caddy'), key: new Secret(readFileSync(keyFile, 'utf8').trim()), sessionSeconds: 3600, log: () => {} });
  settings.ebAuthUpstream = `127.0.0.1:${edgeAuth.port}`;
  caddy = spawn('caddy', caddyfileArgv('run'), { env: env(settings), stdio: ['ignore', 'ignore', 'pipe'] });
  caddy.stderr!.on('data', (d: Buffer) => (log = (log + d).slice(-4000)));
  caddy.on('exit', (code) => (log += `\n[caddy exited with ${code}]`));
  await eventually('the EA site answering over HTTPS', () => get('https', hosts.ea, '/'), (a) => a.status === 200).catch((err: Error) => {
    throw new Error(`${err.message}\n${log}`);
  });
  // Nobody gets in with the defaults, not even with a plausible account.
  const locked = await get('https', hosts.eb, '/', { user: 'LOCKED', password: 'anything-at-all' });
  assert.is(locked.status, 401);
  assert.is((await get('http', hosts.ebVault, '/a.png', device)).status, 401);
  // Credentials appear; the running Caddy takes them on reload (what make basic-auth does).
  writeCredentials();
  reload(settings);
});

test('EB: every path answers 401 without credentials, with noindex and a challenge', async () => {
  for (const p of ['/', '/api/health', '/robots.txt', '/some/page', '/api/auth/github/callback']) {
    const a = await get('https', hosts.eb, p);
    assert.is(a.status, 401, `${p} answered ${a.status}`);
    assert.is(robots(a), 'noindex, nofollow', p);
    assert.match(String(a.headers['www-authenticate']), /^Basic/);
    assert.not.match(a.body, /eb-web|eb-api/);
  }
  assert.is((await get('https', hosts.eb, '/', { ...developer, password: 'wrong-password-1' })).status, 401);
  assert.is((await get('https', hosts.eb, '/', device)).status, 401, 'a device credential opened the EB site');
});

test('EB: a developer gets the web and the api (prefix stripped), noindex once, and robots.txt disallows all', async () => {
  const web = await get('https', hosts.eb, '/posts/1', developer);
  assert.is(web.status, 200);
  assert.equal(JSON.parse(web.body), { upstream: 'eb-web', path: '/posts/1' });
  assert.is(robots(web), 'noindex, nofollow', 'the upstream header must be replaced, not added to');
  const api = await get('https', hosts.eb, '/api/health', developer);
  assert.equal(JSON.parse(api.body), { upstream: 'eb-api', path: '/health' });
  assert.is(robots(api), 'noindex, nofollow');
  const txt = await get('https', hosts.eb, '/robots.txt', developer);
  assert.is(txt.status, 200);
  assert.is(txt.body, 'User-agent: *\nDisallow: /\n');
  assert.is(robots(txt), 'noindex, nofollow');
  // Plain HTTP never serves EB itself: it only redirects, so no developer password is asked there.
  const plain = await get('http', hosts.eb, '/posts/1');
  assert.ok([301, 302, 307, 308].includes(plain.status), `plain HTTP answered ${plain.status}`);
  assert.match(String(plain.headers.location), /^https:\/\/dev\.makapix\.localhost/);
});

test('vault-dev: plain HTTP without redirect, device credentials only, noindex', async () => {
  for (const scheme of ['http', 'https'] as const) {
    const none = await get(scheme, hosts.ebVault, '/24/07/abc.png');
    assert.is(none.status, 401, scheme);
    assert.is(robots(none), 'noindex, nofollow');
    assert.is((await get(scheme, hosts.ebVault, '/24/07/abc.png', developer)).status, 401, `a developer password worked on ${scheme} vault-dev`);
    const ok = await get(scheme, hosts.ebVault, '/24/07/abc.png', device);
    assert.is(ok.status, 200, scheme);
    assert.equal(JSON.parse(ok.body), { upstream: 'eb-vault', path: '/24/07/abc.png' });
    assert.is(robots(ok), 'noindex, nofollow');
  }
});

test('EA: public, no noindex; the api under /api with the prefix stripped', async () => {
  const web = await get('https', hosts.ea, '/');
  assert.is(web.status, 200);
  assert.equal(JSON.parse(web.body), { upstream: 'ea-web', path: '/' });
  assert.is(robots(web), undefined);
  assert.is(web.headers['www-authenticate'], undefined);
  const api = await get('https', hosts.ea, '/api/health');
  assert.equal(JSON.parse(api.body), { upstream: 'ea-api', path: '/health' });
  assert.is(robots(api), undefined);
});

test('EA vault: plain HTTP without redirect, and HTTPS', async () => {
  for (const scheme of ['http', 'https'] as const) {
    const a = await get(scheme, hosts.eaVault, '/a4/47/ee/key.webp');
    assert.is(a.status, 200, `${scheme} answered ${a.status} ${a.headers.location ?? ''}`);
    assert.equal(JSON.parse(a.body), { upstream: 'ea-vault', path: '/a4/47/ee/key.webp' });
    assert.is(robots(a), undefined);
  }
});

test('an exempt EB path (EB_AUTH_EXEMPT_PATHS) opens only that path', async () => {
  reload({ ...settings, ebAuthExemptPaths: ['/api/provision/*'] });
  try {
    const open = await get('https', hosts.eb, '/api/provision/abc');
    assert.is(open.status, 200);
    assert.equal(JSON.parse(open.body), { upstream: 'eb-api', path: '/provision/abc' });
    assert.is(robots(open), 'noindex, nofollow');
    for (const p of ['/api/provisionx', '/api/health', '/', '/robots.txt']) assert.is((await get('https', hosts.eb, p)).status, 401, p);
  } finally {
    reload(settings);
  }
  assert.is((await get('https', hosts.eb, '/api/provision/abc')).status, 401);
});

test('caddy validate accepts the Caddyfile with the test settings and with the production defaults', () => {
  const testRun = spawnSync('caddy', caddyfileArgv('validate'), { env: env(settings), encoding: 'utf8', timeout: 30_000 });
  assert.is(testRun.status, 0, testRun.stderr);
  // Production: every placeholder at its default; only the credentials come from the committed defaults.
  const prodEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: work, XDG_DATA_HOME: path.join(work, 'data'), XDG_CONFIG_HOME: path.join(work, 'config'), ...edgeEnvironment({ credentialsDir: path.join(path.dirname(edgeCaddyfile), 'credentials.default') }) };
  const prod = spawnSync('caddy', caddyfileArgv('validate'), { env: prodEnv, encoding: 'utf8', timeout: 30_000 });
  assert.is(prod.status, 0, prod.stderr);
  assert.ok(existsSync(path.join(credentials, 'developers.caddy')));
});

test.run();
