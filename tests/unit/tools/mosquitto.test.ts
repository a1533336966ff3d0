import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { aclFile, containerDirs, listenerPorts, mosquittoConf, renderForHost } from '../../../lib/tools/mosquitto.ts';
import { ConfigError } from '../../../lib/core/errors.ts';

const conf = readFileSync(mosquittoConf, 'utf8');
const layout = { dirs: { [containerDirs.config]: '/tmp/t/config', [containerDirs.certs]: '/tmp/t/certs/', [containerDirs.data]: '/tmp/t/data' }, ports: { [listenerPorts.plain]: 41883, [listenerPorts.tls]: 48883 }, bind: '127.0.0.1' };

const cases: [string, RegExp][] = [
  ['the plaintext listener moves to its host port on loopback', /^listener 41883 127\.0\.0\.1$/m],
  ['the mTLS listener moves to its host port on loopback', /^listener 48883 127\.0\.0\.1$/m],
  ['the CA comes from the host folder', /^cafile \/tmp\/t\/certs\/ca\.crt$/m],
  ['the server certificate comes from the host folder', /^certfile \/tmp\/t\/certs\/server\.crt$/m],
  ['the server key comes from the host folder', /^keyfile \/tmp\/t\/certs\/server\.key$/m],
  ['the CRL comes from the host folder', /^crlfile \/tmp\/t\/certs\/crl\.pem$/m],
  ['the password file comes from the data folder', /^password_file \/tmp\/t\/data\/passwords$/m],
  ['the topic rights come from the config folder', /^acl_file \/tmp\/t\/config\/acls$/m],
  ['TLS settings stay as they are', /^require_certificate true\nuse_identity_as_username true\ntls_version tlsv1\.2$/m],
];
for (const [name, pattern] of cases) test(name, () => assert.match(renderForHost(conf, layout), pattern));

test('nothing else changes, and no setting keeps a container path', () => {
  const out = renderForHost(conf, layout);
  assert.is(out.split('\n').length, conf.split('\n').length);
  const settings = out.split('\n').filter((l) => !l.startsWith('#'));
  assert.equal(settings.filter((l) => l.includes('/mosquitto/')), []);
});

test('the committed config has no anonymous access and exactly two listeners', () => {
  assert.match(conf, /^allow_anonymous false$/m);
  assert.equal(conf.match(/^listener .*$/gm), ['listener 1883', 'listener 8883']);
});

test('without a config folder, the ACL is the committed compose/mosquitto/acls', () => {
  const out = renderForHost(conf, { dirs: {} });
  assert.ok(out.split('\n').includes(`acl_file ${aclFile}`), out);
});

test('a host folder holding a container path is not rewritten twice', () => {
  const out = renderForHost(conf, { dirs: { [containerDirs.config]: '/srv/x/mosquitto/data/cfg', [containerDirs.data]: '/d' } });
  assert.match(out, /^acl_file \/srv\/x\/mosquitto\/data\/cfg\/acls$/m);
  assert.match(out, /^password_file \/d\/passwords$/m);
});

test('a listener without a host port is a configuration error', () => {
  assert.throws(() => renderForHost(conf, { dirs: {}, ports: { 1883: 1 } }), (err: unknown) => err instanceof ConfigError && /listener 8883/.test(err.message));
});

test('without ports, listeners stay as they are', () => {
  assert.match(renderForHost(conf, { dirs: {} }), /^listener 8883$/m);
});

test.run();
