import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { caddyfileArgv, defaultCredentialsDir, edgeCaddyfile, edgeEnvironment, ensureCredentials, readableCredentialsDir } from '../../../lib/tools/caddy.ts';
import { parseCredentials } from '../../../lib/domain/credentials.ts';

test('no settings: no variables, so every placeholder takes its production default', () => {
  assert.equal(edgeEnvironment({}), {});
});

test('settings become the Caddyfile placeholders', () => {
  assert.equal(
    edgeEnvironment({ admin: '127.0.0.1:9', ebHost: 'eb.localhost', ebWebUpstream: '127.0.0.1:3', extraGlobalOptions: ['local_certs', 'http_port 8'], ebAuthExemptPaths: ['/a', '/b/*'] }),
    { CADDY_ADMIN: '127.0.0.1:9', EB_HOST: 'eb.localhost', EB_WEB_UPSTREAM: '127.0.0.1:3', CADDY_EXTRA_GLOBAL_OPTIONS: 'local_certs\nhttp_port 8', EB_AUTH_EXEMPT_PATHS: '/a /b/*' },
  );
});

test('every placeholder edgeEnvironment sets is one the Caddyfile reads', () => {
  const caddyfile = readFileSync(edgeCaddyfile, 'utf8');
  const all = edgeEnvironment({ admin: 'a', credentialsDir: 'b', eaHost: 'c', eaVaultHost: 'd', eaWwwHost: 'd1', eaAppHost: 'd2', ebAppHost: 'd3', ebHost: 'e', ebVaultHost: 'f', eaApiUpstream: 'g', eaWebUpstream: 'h', eaVaultRoot: 'i', ebApiUpstream: 'j', ebWebUpstream: 'k', ebVaultRoot: 'l', logDir: 'l1', extraGlobalOptions: ['m'], ebAuthExemptPaths: ['/n'] });
  assert.is(Object.keys(all).length, 18);
  for (const name of Object.keys(all)) assert.ok(caddyfile.includes(`{$${name}`), `the Caddyfile never reads ${name}`);
});

test('caddy argv for the Caddyfile', () => {
  assert.equal(caddyfileArgv('validate', '/x/Caddyfile'), ['validate', '--config', '/x/Caddyfile', '--adapter', 'caddyfile']);
  assert.equal(caddyfileArgv('run', '/x/Caddyfile'), ['run', '--config', '/x/Caddyfile', '--adapter', 'caddyfile']);
});

test('the committed defaults are valid credentials files with no usable account', () => {
  for (const scope of ['developers', 'devices'] as const) {
    const file = path.join(defaultCredentialsDir, `${scope}.caddy`);
    assert.equal(parseCredentials(readFileSync(file, 'utf8'), scope, file), []);
    assert.match(readFileSync(file, 'utf8'), /^\t\tLOCKED \$2[aby]\$\d\d\$/m);
  }
});

test('ensureCredentials fills in missing files only, and readableCredentialsDir falls back to the defaults', async () => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), 'edge-')), 'credentials');
  assert.is(await readableCredentialsDir(dir), defaultCredentialsDir);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'developers.caddy'), 'mine');
  assert.equal(await ensureCredentials(dir), [path.join(dir, 'devices.caddy')]);
  assert.is(readFileSync(path.join(dir, 'developers.caddy'), 'utf8'), 'mine');
  assert.equal(readdirSync(dir).sort(), ['developers.caddy', 'devices.caddy']);
  assert.is(await readableCredentialsDir(dir), dir);
  assert.equal(await ensureCredentials(dir), []);
});

test.run();
