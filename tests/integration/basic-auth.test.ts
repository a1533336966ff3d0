// gen-basic-auth against the real Caddy (Debian's 2.6) running the project's Caddyfile on loopback.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, statSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from '../../dev/ports.ts';
import { projectRoot, caddyDir } from '../../lib/core/paths.ts';
import { caddyAdminAnswers, ensureSessionKey } from '../../lib/tools/caddy.ts';
import { startEdgeAuth, type EdgeAuthServer } from '../../lib/jobs/edge-auth.ts';
import { Secret } from '../../lib/core/secret.ts';
import { onExit } from '../../dev/cleanup.ts';
import { runCommand } from '../harness/server.ts';

const root = mkdtempSync(path.join(tmpdir(), 'makapix-basic-auth-'));
const creds = path.join(root, 'credentials');
const vaultRoot = path.join(root, 'vault');
const script = path.join(projectRoot, 'scripts', 'gen-basic-auth.ts');
let caddy: ChildProcess | undefined;
let upstream: Server | undefined;
/** EB's developer check, which reads developers.caddy as this script writes it. */
let edgeAuth: EdgeAuthServer | undefined;
onExit(() => {
  caddy?.kill('SIGKILL');
  void edgeAuth?.close();
  upstream?.close();
  rmSync(root, { recursive: true, force: true });
});

const ports = { http: 0, https: 0, admin: 0, upstream: 0 };
let env: NodeJS.ProcessEnv = {};

/** Runs the entry script as an operator would, password on stdin only. */
const run = (args: string[], stdin = '', extraEnv: NodeJS.ProcessEnv = {}) => runCommand(script, args, { env: { ...env, ...extraEnv }, stdin });

/** A GET through Caddy's plain-HTTP port with a chosen Host, optionally with basic credentials. */
function get(host: string, user?: string, password?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host };
    if (user) headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const req = request({ host: '127.0.0.1', port: ports.http, path: '/', headers, timeout: 30_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const EB = 'eb.localhost';
const VAULT_DEV = 'vault-dev.localhost';
const alicePw = 'alice-correct-horse-14';
const bobPw = 'bob-battery-staple-99';
const devicePw = 'tv-device-password-1';
const developers = () => path.join(creds, 'developers.caddy');

test('setup: credentials written before Caddy starts, then the real Caddy runs the project Caddyfile', async () => {
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  env = {
    PATH: process.env.PATH,
    HOME: root,
    XDG_DATA_HOME: path.join(root, 'data'),
    XDG_CONFIG_HOME: path.join(root, 'config'),
    MAKAPIX_CREDENTIALS_DIR: creds,
    CADDY_ADMIN: `127.0.0.1:${ports.admin}`,
    // This test's Caddy runs on the host: never reload a real edge container that may exist here.
    CADDY_CONTAINER: '',
    CADDY_EXTRA_GLOBAL_OPTIONS: `local_certs\nskip_install_trust\nhttp_port ${ports.http}\nhttps_port ${ports.https}`,
    // EB on plain HTTP here so the test needs no TLS client; the auth routes are the file's own.
    EB_HOST: `http://${EB}`,
    EB_VAULT_HOST: VAULT_DEV,
    EA_HOST: 'http://ea.localhost',
    EA_VAULT_HOST: 'vault.localhost',
    ...Object.fromEntries(['EA_API', 'EA_WEB', 'EA_VAULT', 'EB_API', 'EB_WEB', 'EB_VAULT'].map((u) => [`${u}_UPSTREAM`, `127.0.0.1:${ports.upstream}`])),
    // The edge serves the vaults from their folders: one page at the root is enough to see who gets in.
    EA_VAULT_ROOT: vaultRoot,
    EB_VAULT_ROOT: vaultRoot,
  };
  mkdirSync(vaultRoot, { recursive: true });
  writeFileSync(path.join(vaultRoot, 'index.html'), 'vault');
  upstream = createServer((_req, res) => res.end('upstream')).listen(ports.upstream, '127.0.0.1');

  // The one cost-14 hash (Caddy's own default cost): it must open the site below.
  const a = await run(['add', 'alice', '--password-stdin'], `${alicePw}\n`);
  assert.is(a.code, 0, a.err);
  assert.match(readFileSync(developers(), 'utf8'), /^\t\talice \$2[ab]\$14\$/m);
  assert.match(a.out, /Caddy is not running/);
  const d = await run(['add', 'tv1', '--scope', 'devices', '--password-stdin', '--cost', '4'], devicePw);
  assert.is(d.code, 0, d.err);
  for (const f of ['developers.caddy', 'devices.caddy']) assert.is(statSync(path.join(creds, f)).mode & 0o777, 0o600, `${f} mode`);

  const keyFile = (await ensureSessionKey(creds))!;
  edgeAuth = await startEdgeAuth({ host: '127.0.0.1', port: 0, credentialsDir: creds, key: new Secret(readFileSync(keyFile, 'utf8').trim()), sessionSeconds: 3600, log: () => {} });
  env.EB_AUTH_UPSTREAM = `127.0.0.1:${edgeAuth.port}`;
  caddy = spawn('caddy', ['run', '--config', path.join(caddyDir, 'Caddyfile'), '--adapter', 'caddyfile'], { cwd: caddyDir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  caddy.stderr!.on('data', (c) => (log = (log + c).slice(-4000)));
  for (let i = 0; i < 100 && !(await caddyAdminAnswers(env.CADDY_ADMIN!)); i++) {
    if (caddy.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.ok(await caddyAdminAnswers(env.CADDY_ADMIN!), `Caddy did not start: ${log}`);
});

test('the right password gives 200, a wrong one or none 401', async () => {
  assert.is(await get(EB, 'alice', alicePw), 200);
  assert.is(await get(EB, 'alice', `${alicePw}x`), 401);
  assert.is(await get(EB), 401);
  assert.is(await get(EB, 'LOCKED', alicePw), 401);
});

test('a device credential opens vault-dev but not the EB site; a developer password does not open vault-dev', async () => {
  assert.is(await get(VAULT_DEV, 'tv1', devicePw), 200);
  assert.is(await get(EB, 'tv1', devicePw), 401);
  assert.is(await get(VAULT_DEV, 'alice', alicePw), 401);
});

test('add while Caddy runs: reloaded through the admin API, the new user gets in at once', async () => {
  const b = await run(['add', 'bob', '--password-stdin', '--cost', '4', '--json'], bobPw);
  assert.is(b.code, 0, b.err);
  const result = JSON.parse(b.out);
  assert.is(result.reloaded, true);
  assert.equal(result.users.map((u: { user: string }) => u.user), ['alice', 'bob']);
  assert.not.match(b.out + b.err, bobPw);
  assert.is(await get(EB, 'bob', bobPw), 200);
});

test('rotate and remove take effect after the reload; list shows users, never hashes', async () => {
  const r = await run(['rotate', 'bob', '--password-stdin', '--cost', '4'], 'bob-new-password-2026');
  assert.is(r.code, 0, r.err);
  assert.is(await get(EB, 'bob', bobPw), 401);
  assert.is(await get(EB, 'bob', 'bob-new-password-2026'), 200);
  const rm = await run(['remove', 'alice', '--yes']);
  assert.is(rm.code, 0, rm.err);
  assert.is(await get(EB, 'alice', alicePw), 401);
  const list = await run(['list']);
  assert.is(list.code, 0);
  assert.match(list.out, /^bob\s+added \S+, rotated \S+$/m);
  assert.not.match(list.out, /alice|\$2/);
});

test('removing the last user locks everyone out, and Caddy still loads the file', async () => {
  const rm = await run(['remove', 'bob', '--yes', '--json']);
  assert.is(rm.code, 0, rm.err);
  assert.is(JSON.parse(rm.out).reloaded, true);
  assert.is(await get(EB, 'bob', 'bob-new-password-2026'), 401);
  assert.is(await get(EB), 401);
  assert.is(await get(VAULT_DEV, 'tv1', devicePw), 200);
});

test('--generate shows the password once, and it works', async () => {
  const g = await run(['add', 'carol', '--generate', '--cost', '4']);
  assert.is(g.code, 0, g.err);
  const pw = /Generated password \(shown only this once\): (\S+)/.exec(g.out)?.[1];
  assert.ok(pw && pw.length >= 12, g.out);
  assert.not.match(g.err, pw!);
  assert.is(await get(EB, 'carol', pw), 200);
});

const badInputs: [string, string[], string][] = [
  ['a user name outside [a-z0-9._-]{1,32}', ['add', 'Bad User', '--password-stdin', '--cost', '4'], 'long-enough-password'],
  ['a password shorter than 12 characters', ['add', 'dave', '--password-stdin', '--cost', '4'], 'short-pw'],
  ['a known-weak password (password1234)', ['add', 'dave', '--password-stdin', '--cost', '4'], 'password1234'],
  ['a low-variety password (aaaaaaaaaaaa)', ['add', 'dave', '--password-stdin', '--cost', '4'], 'aaaaaaaaaaaa'],
  ['twelve spaces', ['add', 'dave', '--password-stdin', '--cost', '4'], ' '.repeat(12)],
  ['a weak password with --dry-run (validated there too)', ['add', 'dave', '--password-stdin', '--dry-run'], 'password1234'],
  ['add of an existing user without --force', ['add', 'carol', '--password-stdin', '--cost', '4'], 'long-enough-password'],
  ['remove of an unknown user', ['remove', 'nobody', '--yes'], ''],
  ['rotate of an unknown user', ['rotate', 'nobody', '--password-stdin'], 'long-enough-password'],
  ['no password source without a terminal', ['add', 'dave'], ''],
  ['an unknown scope', ['add', 'dave', '--scope', 'admins', '--generate'], ''],
];
for (const [what, args, stdin] of badInputs) {
  test(`bad input: ${what} → exit 2, the file untouched`, async () => {
    const before = readFileSync(developers());
    const r = await run(args, stdin);
    assert.is(r.code, 2, r.err);
    assert.match(r.err, /error /);
    if (stdin) assert.not.match(r.err + r.out, stdin);
    assert.equal(readFileSync(developers()), before);
  });
}

test('a reload Caddy refuses puts the previous file back (exit 1)', async () => {
  const broken = path.join(root, 'Broken.Caddyfile');
  writeFileSync(broken, `{\n\tadmin ${env.CADDY_ADMIN}\n}\nimport ${creds}/developers.caddy\nhttp://x.localhost {\n\timport eb_developers_auth\n\tno_such_directive\n}\n`);
  const before = readFileSync(developers());
  const r = await run(['add', 'erin', '--password-stdin', '--cost', '4'], 'erin-long-password', { MAKAPIX_CADDYFILE: broken });
  assert.is(r.code, 1, r.err);
  assert.match(r.err, /refused the new configuration.*previous credentials file was put back/);
  assert.equal(readFileSync(developers()), before);
  assert.is(await get(EB, 'carol', 'x'.repeat(12)), 401); // Caddy still serves the old config
  assert.ok(!existsSync(path.join(creds, '.gen-basic-auth.lock')));
});

test("--no-reload writes the file but leaves Caddy's running config alone (devices); EB's session check reads developers at once", async () => {
  const r = await run(['add', 'tv2', '--scope', 'devices', '--password-stdin', '--cost', '4', '--no-reload'], 'tv2-long-password');
  assert.is(r.code, 0, r.err);
  assert.match(readFileSync(path.join(creds, 'devices.caddy'), 'utf8'), /\t\ttv2 \$2/);
  assert.is(await get(VAULT_DEV, 'tv2', 'tv2-long-password'), 401);
  const f = await run(['add', 'frank', '--password-stdin', '--cost', '4', '--no-reload'], 'frank-long-password');
  assert.is(f.code, 0, f.err);
  assert.match(f.out, /session check applies it at once/);
  assert.is(await get(EB, 'frank', 'frank-long-password'), 200);
});

test.after(() => {
  caddy?.kill('SIGTERM');
  upstream?.close();
  upstream?.closeAllConnections();
});

test.run();
