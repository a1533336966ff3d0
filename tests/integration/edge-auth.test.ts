// EB's developer sessions through the real Caddy 2.6 on loopback: a browser-shaped client (a cookie
// jar that keeps only what a browser would, Basic once, then the app's Bearer calls), anonymous
// clients, players on vault-dev, and the catch-all for unknown hosts. Every request any upstream
// receives is recorded, so "EB's upstream never sees a developer's password" is checked on all of them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { freePort } from '../../dev/ports.ts';
import { startCaddy, type Edge } from '../harness/caddy.ts';
import { onExit } from '../../dev/cleanup.ts';
import { renderCredentials, type Credential } from '../../lib/domain/credentials.ts';
import { startEdgeAuth, type EdgeAuthServer } from '../../lib/jobs/edge-auth.ts';
import { ensureSessionKey } from '../../lib/tools/caddy.ts';
import { sessionCookieName } from '../../lib/domain/edge-session.ts';
import { Secret } from '../../lib/core/secret.ts';
import { runCommand } from '../harness/server.ts';
import { send as sendTo, type Answer } from '../harness/http.ts';

const work = mkdtempSync(path.join(tmpdir(), 'edge-auth-test-'));
const credentials = path.join(work, 'credentials');
/** The vault folders Caddy serves itself (the edge mounts /mnt/vault-1 and /mnt/vault-dev). */
const vaults = { ea: path.join(work, 'vault-prod'), eb: path.join(work, 'vault-dev') };
const logs = path.join(work, 'logs');
const hosts = { ea: 'makapix.localhost', eaVault: 'vault.makapix.localhost', eb: 'dev.makapix.localhost', ebVault: 'vault-dev.makapix.localhost' };
const alice = { user: 'alice', password: 'alice-password-123' };
const bob = { user: 'bob', password: 'bob-password-4567' };
const player = { user: 'tv1', password: 'device-password-456' };
const basic = (c: { user: string; password: string }) => `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}`;

let edge: Edge;
let auth: EdgeAuthServer;
let clock = Date.now();
const logLines: string[] = [];
const upstreams: Server[] = [];
onExit(() => {
  for (const s of upstreams) s.close();
  void auth?.close();
  edge?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** Everything EB's and EA's upstreams received: name, method, path, headers, body. */
const seen: { upstream: string; method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];

async function upstream(name: string): Promise<string> {
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      seen.push({ upstream: name, method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      // The app sets its own cookie (the refresh token): it must reach the browser beside the edge's.
      res.writeHead(200, { 'content-type': 'application/json', ...(name === 'eb-api' && { 'set-cookie': 'refresh_token=r1; Path=/; HttpOnly; Secure' }) });
      res.end(JSON.stringify({ upstream: name, method: req.method, path: req.url, authorization: req.headers.authorization ?? null, developer: req.headers['x-makapix-developer'] ?? null, body }));
    });
  });
  upstreams.push(server);
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return `127.0.0.1:${port}`;
}

const hashFor = (c: { password: string }) => bcrypt.hashSync(c.password, 4);
const hashes = { alice: hashFor(alice), bob: hashFor(bob) };
function writeDevelopers(users: { user: string; hash: string }[]): void {
  const list: Credential[] = users.map((u) => ({ ...u, addedAt: '2026-01-01T00:00:00Z' }));
  writeFileSync(path.join(credentials, 'developers.caddy.tmp'), renderCredentials('developers', list, hashFor({ password: 'locked-nobody-knows' })));
  // A rename, as make basic-auth's atomic write does.
  renameSync(path.join(credentials, 'developers.caddy.tmp'), path.join(credentials, 'developers.caddy'));
}

/** One HTTP(S) request to the edge, with a fresh connection. */
const send = (scheme: 'http' | 'https', host: string, urlPath: string, opts: Parameters<typeof sendTo>[3] = {}): Promise<Answer> =>
  sendTo(scheme === 'http' ? { scheme, port: edge.httpPort } : { scheme, port: edge.httpsPort, ca: edge.rootCa }, host, urlPath, opts);

/**
 * What a browser does for one origin: keeps cookies as RFC 6265bis says for `__Host-` (only from a
 * secure origin, with Secure and Path=/ and no Domain), sends them back, and once the user typed a
 * password for the realm, sends Basic on every request that has no Authorization of its own.
 */
class Browser {
  jar = new Map<string, string>();
  cachedBasic: string | undefined;
  constructor(readonly host: string) {}
  async fetch(urlPath: string, opts: { method?: string; authorization?: string; body?: string } = {}): Promise<Answer> {
    const headers: Record<string, string> = {};
    const authorization = opts.authorization ?? this.cachedBasic;
    if (authorization) headers.authorization = authorization;
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const a = await send('https', this.host, urlPath, { ...opts, headers });
    for (const line of [a.headers['set-cookie'] ?? []].flat()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const lower = attrs.map((x) => x.toLowerCase());
      if (name.startsWith('__Host-') && (!lower.includes('secure') || !lower.includes('path=/') || lower.some((x) => x.startsWith('domain=')))) continue;
      if (lower.includes('max-age=0')) this.jar.delete(name);
      else this.jar.set(name, pair.slice(eq + 1));
    }
    return a;
  }
  /** The user answers the browser's password prompt after a 401. */
  async login(c: { user: string; password: string }, urlPath = '/'): Promise<Answer> {
    const first = await this.fetch(urlPath);
    assert.is(first.status, 401, 'the first visit is challenged');
    assert.match(String(first.headers['www-authenticate']), /^Basic realm=/);
    this.cachedBasic = basic(c);
    const second = await this.fetch(urlPath);
    assert.is(second.status, 200, `${c.user} could not log in: ${second.body} ${logLines.slice(-3).join(' ')}`);
    return second;
  }
}

const robots = (a: Answer) => a.headers['x-robots-tag'];
const json = (a: Answer) => JSON.parse(a.body) as { upstream: string; method: string; path: string; authorization: string | null; developer: string | null; body: string };

test('setup: Caddy with the edge Caddyfile, edge-auth with a session key, stand-in upstreams', async () => {
  mkdirSync(credentials, { mode: 0o700 });
  mkdirSync(logs);
  for (const [root, rel, content] of [[vaults.ea, 'a.png', 'ea-art'], [vaults.eb, '24/07/abc.png', 'eb-art']] as const) {
    mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    writeFileSync(path.join(root, rel), content);
  }
  writeDevelopers([{ user: alice.user, hash: hashes.alice }, { user: bob.user, hash: hashes.bob }]);
  writeFileSync(path.join(credentials, 'devices.caddy'), renderCredentials('devices', [{ user: player.user, hash: hashFor(player), addedAt: 'x' }], ''));
  const keyFile = await ensureSessionKey(credentials);
  assert.ok(keyFile, 'a session key was written');
  assert.is(await ensureSessionKey(credentials), undefined, 'an existing session key must never be replaced');
  auth = await startEdgeAuth({
    host: '127.0.0.1',
    port: 0,
    credentialsDir: credentials,
    key: new Secret(readFileSync(keyFile!, 'utf8').trim()),
    sessionSeconds: 3600,
    now: () => clock,
    log: (line) => logLines.push(line),
  });
  edge = await startCaddy(
    {
      credentialsDir: credentials,
      eaHost: hosts.ea,
      eaVaultHost: hosts.eaVault,
      ebHost: hosts.eb,
      ebVaultHost: hosts.ebVault,
      eaApiUpstream: await upstream('ea-api'),
      eaWebUpstream: await upstream('ea-web'),
      eaVaultRoot: vaults.ea,
      ebApiUpstream: await upstream('eb-api'),
      ebWebUpstream: await upstream('eb-web'),
      ebVaultRoot: vaults.eb,
      logDir: logs,
      ebAuthUpstream: `127.0.0.1:${auth.port}`,
    },
    Object.values(hosts),
  );
});

test('anonymous: 401 with a Basic challenge and noindex on every EB path, /api/* and /vault/* included', async () => {
  const before = seen.length;
  for (const [method, p] of [['GET', '/'], ['GET', '/robots.txt'], ['GET', '/api/health'], ['GET', '/api/user/me'], ['POST', '/api/post'], ['GET', '/vault/24/07/a.png'], ['GET', '/_next/static/x.js']] as const) {
    const a = await send('https', hosts.eb, p, { method, ...(method === 'POST' && { body: '{}' }) });
    assert.is(a.status, 401, `${method} ${p} answered ${a.status}`);
    assert.is(robots(a), 'noindex, nofollow', p);
    assert.match(String(a.headers['www-authenticate']), /^Basic realm="Makapix development"/);
    assert.is(a.headers['set-cookie'], undefined);
  }
  // A Bearer token alone (the app's credential) opens nothing: the edge wants a developer first.
  assert.is((await send('https', hosts.eb, '/api/user/me', { headers: { authorization: 'Bearer some-app-token' } })).status, 401);
  // Wrong password, unknown user, a device's password: 401.
  for (const c of [{ ...alice, password: 'wrong-password-1' }, { user: 'mallory', password: alice.password }, player]) {
    assert.is((await send('https', hosts.eb, '/', { headers: { authorization: basic(c) } })).status, 401, c.user);
  }
  // A made-up or tampered session cookie: 401.
  const forged = `${Buffer.from(`v1:alice:9999999999:${'A'.repeat(22)}`).toString('base64url')}.${'A'.repeat(43)}`;
  assert.is((await send('https', hosts.eb, '/api/user/me', { headers: { cookie: `${sessionCookieName}=${forged}`, authorization: 'Bearer t' } })).status, 401);
  assert.is(seen.length, before, 'no anonymous request reached an upstream');
});

test('a developer logs in once, then the app works: Bearer API calls pass, the upstream never sees the password', async () => {
  const browser = new Browser(hosts.eb);
  const page = await browser.login(alice, '/posts/1');
  assert.is(page.status, 200);
  assert.equal(json(page), { upstream: 'eb-web', method: 'GET', path: '/posts/1', authorization: null, developer: 'alice', body: '' });
  assert.is(robots(page), 'noindex, nofollow');
  const cookie = [page.headers['set-cookie'] ?? []].flat().find((c) => c.startsWith(`${sessionCookieName}=`));
  assert.ok(cookie, 'the first authenticated answer starts a session');
  for (const attr of ['HttpOnly', 'Secure', 'SameSite=Lax', 'Path=/']) assert.ok(cookie!.split('; ').includes(attr), `${attr} missing in ${cookie}`);
  assert.not.match(cookie!, /Domain=/i);
  assert.ok(browser.jar.has(sessionCookieName), 'a browser keeps it');

  // The app's pages call the api with their own Bearer token, which replaces the browser's Basic.
  const me = await browser.fetch('/api/user/me', { authorization: 'Bearer app-token-1' });
  assert.is(me.status, 200);
  assert.equal(json(me), { upstream: 'eb-api', method: 'GET', path: '/user/me', authorization: 'Bearer app-token-1', developer: 'alice', body: '' });
  assert.ok([me.headers['set-cookie'] ?? []].flat().some((c) => c.startsWith('refresh_token=')), "the app's own cookie reaches the browser");
  const posted = await browser.fetch('/api/post', { method: 'POST', authorization: 'Bearer app-token-1', body: '{"title":"hello"}' });
  assert.equal(json(posted), { upstream: 'eb-api', method: 'POST', path: '/post', authorization: 'Bearer app-token-1', developer: 'alice', body: '{"title":"hello"}' });
  // The session alone (fetch without Authorization, an EventSource, an image) works too.
  const sessionOnly = new Browser(hosts.eb);
  sessionOnly.jar = new Map(browser.jar);
  const plain = await sessionOnly.fetch('/api/health');
  assert.is(plain.status, 200);
  assert.is(json(plain).authorization, null);
  // A lower-case scheme is still the developer's password, and still never forwarded.
  const lower = await sessionOnly.fetch('/x', { authorization: `basic ${basic(alice).slice(6)}` });
  assert.is(json(lower).authorization, null);
  // A client cannot name itself a developer: the check's answer replaces its header.
  const forged = await send('https', hosts.eb, '/x', { headers: { cookie: `${sessionCookieName}=${browser.jar.get(sessionCookieName)}`, 'x-makapix-developer': 'root' } });
  assert.is(json(forged).developer, 'alice');
});

test("a developer's browser shows EB's images: /vault/ on the EB site is vault-dev, same origin, behind the session", async () => {
  const browser = new Browser(hosts.eb);
  await browser.login(bob);
  const img = await browser.fetch('/vault/24/07/abc.png');
  assert.is(img.status, 200);
  assert.is(img.body, 'eb-art');
  assert.is(img.headers['cache-control'], 'public, max-age=31536000, immutable', "vault-dev's rules apply on this path too");
  assert.is((await browser.fetch('/vault/mkpx/x.mkpx')).status, 404, 'restricted .mkpx files stay with the api');
  assert.is(robots(img), 'noindex, nofollow');
  assert.is((await send('https', hosts.eb, '/vault/24/07/abc.png')).status, 401);
});

test('players fetch artwork from vault-dev with device credentials, over plain HTTP and HTTPS; a developer password or session opens nothing there', async () => {
  const browser = new Browser(hosts.eb);
  await browser.login(alice);
  const session = `${sessionCookieName}=${browser.jar.get(sessionCookieName)}`;
  for (const scheme of ['http', 'https'] as const) {
    const ok = await send(scheme, hosts.ebVault, '/24/07/abc.png', { headers: { authorization: basic(player) } });
    assert.is(ok.status, 200, scheme);
    assert.is(ok.body, 'eb-art');
    assert.is(robots(ok), 'noindex, nofollow');
    assert.is((await send(scheme, hosts.ebVault, '/24/07/abc.png')).status, 401);
    assert.is((await send(scheme, hosts.ebVault, '/24/07/abc.png', { headers: { authorization: basic(alice) } })).status, 401, `a developer password opened ${scheme} vault-dev`);
    assert.is((await send(scheme, hosts.ebVault, '/24/07/abc.png', { headers: { cookie: session } })).status, 401, `a developer session opened ${scheme} vault-dev`);
  }
  // The EB site itself never answers over plain HTTP (a password typed there would travel in clear).
  const plain = await send('http', hosts.eb, '/vault/24/07/abc.png');
  assert.ok([301, 302, 307, 308].includes(plain.status), `plain HTTP answered ${plain.status}`);
});

test('removing a developer ends their session at the next request; rotating a password ends the old sessions', async () => {
  const a = new Browser(hosts.eb);
  await a.login(alice);
  const b = new Browser(hosts.eb);
  await b.login(bob);
  a.cachedBasic = undefined;
  b.cachedBasic = undefined;
  writeDevelopers([{ user: bob.user, hash: hashes.bob }]);
  assert.is((await a.fetch('/api/user/me', { authorization: 'Bearer t' })).status, 401, 'a removed developer kept access');
  assert.is((await send('https', hosts.eb, '/', { headers: { authorization: basic(alice) } })).status, 401);
  assert.is((await b.fetch('/api/user/me', { authorization: 'Bearer t' })).status, 200, 'another developer lost access');
  // rotate: same user, new hash (even of the same password) -> the old cookie is worthless.
  hashes.bob = hashFor(bob);
  writeDevelopers([{ user: bob.user, hash: hashes.bob }, { user: alice.user, hash: hashes.alice }]);
  assert.is((await b.fetch('/api/user/me', { authorization: 'Bearer t' })).status, 401, 'a session outlived its password');
  await b.login(bob);
  assert.is((await b.fetch('/api/user/me', { authorization: 'Bearer t' })).status, 200);
});

test('sessions expire: after the session length the cookie opens nothing, and the cached Basic credential starts a new one', async () => {
  const browser = new Browser(hosts.eb);
  await browser.login(alice);
  const old = browser.jar.get(sessionCookieName);
  clock += 3600 * 1000 + 1000;
  try {
    assert.is((await send('https', hosts.eb, '/api/x', { headers: { cookie: `${sessionCookieName}=${old}`, authorization: 'Bearer t' } })).status, 401);
    const again = await browser.fetch('/');
    assert.is(again.status, 200);
    assert.is.not(browser.jar.get(sessionCookieName), old);
  } finally {
    clock = Date.now();
  }
});

test('EB fails closed when the developer check is down', async () => {
  const browser = new Browser(hosts.eb);
  await browser.login(alice);
  await auth.close();
  const before = seen.length;
  try {
    for (const p of ['/', '/api/user/me', '/vault/a.png']) {
      const a = await browser.fetch(p, { authorization: 'Bearer t' });
      assert.ok(a.status >= 500, `${p} answered ${a.status} with the check down`);
    }
    assert.is(seen.length, before);
  } finally {
    auth = await startEdgeAuth({ host: '127.0.0.1', port: auth.port, credentialsDir: credentials, key: new Secret(readFileSync(path.join(credentials, 'session.key'), 'utf8').trim()), sessionSeconds: 3600, now: () => clock, log: () => {} });
  }
  assert.is((await browser.fetch('/')).status, 200, 'the same key keeps sessions across a restart');
});

/** A raw HTTP/1.x request, so the Host header can be odd or missing. */
function raw(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(edge.httpPort, '127.0.0.1', () => s.end(request));
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

test('unknown hosts over plain HTTP (trailing dot, bare IP, no Host, another name) get a refusal with noindex, not an empty 200', async () => {
  const answers = {
    'trailing dot': await raw(`GET / HTTP/1.1\r\nHost: ${hosts.eb}.\r\nConnection: close\r\n\r\n`),
    'bare IP': await raw('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    'no Host (HTTP/1.0)': await raw('GET / HTTP/1.0\r\n\r\n'),
    'another name': await raw('GET /api/health HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n'),
  };
  for (const [what, a] of Object.entries(answers)) {
    assert.match(a, /^HTTP\/1\.[01] 421 /, `${what}: ${a.split('\r\n')[0]}`);
    assert.match(a, /\r\nX-Robots-Tag: noindex, nofollow\r\n/i, what);
    assert.not.match(a, /eb-|ea-/, what);
  }
  // Known hosts keep their plain-HTTP behaviour: the vaults serve, the sites redirect.
  assert.is((await send('http', hosts.eaVault, '/a.png')).body, 'ea-art');
  assert.ok([301, 302, 307, 308].includes((await send('http', hosts.ea, '/')).status));
});

test("no upstream of EB ever received a Basic credential or the edge's session value", () => {
  const eb = seen.filter((s) => s.upstream.startsWith('eb-'));
  assert.ok(eb.length >= 10, `only ${eb.length} EB requests were recorded`);
  for (const s of eb) {
    assert.not.match(String(s.headers.authorization ?? ''), /basic/i, `${s.upstream} ${s.url} saw ${s.headers.authorization}`);
    const session = /__Host-makapix-edge=([^;]*)/.exec(String(s.headers.cookie ?? ''));
    assert.ok(!session || session[1] === '', `${s.upstream} ${s.url} saw the session value`);
  }
});

test('the entry script serves the check and refuses a bad key (exit 2)', async () => {
  const bad = path.join(work, 'bad.key');
  writeFileSync(bad, 'short\n');
  const r = await runCommand(path.join(process.cwd(), 'scripts/edge-auth.ts'), ['--credentials-dir', credentials, '--key-file', bad, '--listen', '127.0.0.1:0']);
  assert.is(r.code, 2, r.err);
  assert.match(r.err, /does not hold a session key/);
});

test.run();
