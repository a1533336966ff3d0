import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { certsLayout, currentEntry, defaultDays, deviceFiles, parseIndex, parseIndexDate, parseOpensslDate, planInit, renderBundle, renderOpensslConfig, serverSans, subjects, validateDeviceName } from '../../lib/domain/pki.ts';
import { opensslArgv } from '../../lib/tools/openssl.ts';
import { ConfigError, UsageError } from '../../lib/core/errors.ts';

const layout = certsLayout('/etc/makapix/dev/mqtt');

test('layout: the file names the Mosquitto config mounts, and the CA database beside them', () => {
  assert.equal(
    [layout.caCrt, layout.caKey, layout.serverCrt, layout.serverKey, layout.crl, layout.index, layout.serial, layout.crlnumber],
    ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'crl.pem', 'index.txt', 'serial', 'crlnumber'].map((f) => `/etc/makapix/dev/mqtt/${f}`),
  );
  assert.equal(deviceFiles(layout, 'tv1'), { crt: '/etc/makapix/dev/mqtt/devices/tv1.crt', key: '/etc/makapix/dev/mqtt/devices/tv1.key', bundle: '/etc/makapix/dev/mqtt/devices/tv1.bundle.pem' });
});

const subjectCases: ['prod' | 'dev', string, { ca: string; server: string; device: string }][] = [
  ['dev', 'development.makapix.club', { ca: '/O=Makapix Club/OU=makapix-dev mqtt ca/CN=Makapix EB MQTT CA', server: '/O=Makapix Club/OU=makapix-dev mqtt broker/CN=development.makapix.club', device: '/O=Makapix Club/OU=makapix-dev mqtt devices/CN=tv1' }],
  ['prod', 'makapix.club', { ca: '/O=Makapix Club/OU=makapix-prod mqtt ca/CN=Makapix EA MQTT CA', server: '/O=Makapix Club/OU=makapix-prod mqtt broker/CN=makapix.club', device: '/O=Makapix Club/OU=makapix-prod mqtt devices/CN=tv1' }],
];
for (const [env, host, want] of subjectCases) {
  test(`subjects of ${env}: each environment's CA has its own name`, () => {
    const s = subjects(env, host);
    assert.equal({ ca: s.ca, server: s.server, device: s.device('tv1') }, want);
  });
}

test('server SANs: the public host, the container name and the network alias, no duplicates', () => {
  assert.equal(serverSans('dev', 'development.makapix.club'), ['DNS:development.makapix.club', 'DNS:makapix-dev-mqtt', 'DNS:mqtt']);
  assert.equal(serverSans('prod', 'mqtt'), ['DNS:mqtt', 'DNS:makapix-prod-mqtt']);
});

test('the openssl config: P-256 needs no parameters here; extensions per kind; SANs only on the server', () => {
  const cnf = renderOpensslConfig(layout, 'dev', 'development.makapix.club');
  assert.match(cnf, /^dir = \/etc\/makapix\/dev\/mqtt$/m);
  assert.match(cnf, /^unique_subject = no$/m);
  assert.match(cnf, /^default_md = sha256$/m);
  assert.match(cnf, /\[ ca_ext \]\nbasicConstraints = critical, CA:true, pathlen:0\nkeyUsage = critical, keyCertSign, cRLSign/);
  assert.match(cnf, /\[ server_ext \][^[]*extendedKeyUsage = serverAuth[^[]*subjectAltName = DNS:development\.makapix\.club, DNS:makapix-dev-mqtt, DNS:mqtt\n/);
  assert.match(cnf, /\[ device_ext \][^[]*extendedKeyUsage = clientAuth/);
  assert.not.match(/\[ device_ext \]([^[]*)/.exec(cnf)![1]!, /subjectAltName/);
});

test('openssl argv: keys are generated to stdout and otherwise only named by path; never a passphrase argument', () => {
  assert.equal(opensslArgv.genKey(), ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-pkeyopt', 'ec_param_enc:named_curve']);
  assert.equal(opensslArgv.selfSignCa('/c/openssl.cnf', '/c/ca.key', '/O=X/CN=Y', 7300), ['req', '-new', '-x509', '-config', '/c/openssl.cnf', '-extensions', 'ca_ext', '-key', '/c/ca.key', '-subj', '/O=X/CN=Y', '-days', '7300', '-sha256']);
  assert.equal(opensslArgv.csr('/c/openssl.cnf', '/c/devices/tv1.key', '/CN=tv1'), ['req', '-new', '-config', '/c/openssl.cnf', '-key', '/c/devices/tv1.key', '-subj', '/CN=tv1', '-sha256']);
  assert.equal(opensslArgv.sign('/c/openssl.cnf', '/c/x.csr', 'device', 3650, '/c/out'), ['ca', '-batch', '-config', '/c/openssl.cnf', '-extensions', 'device_ext', '-days', '3650', '-notext', '-in', '/c/x.csr', '-out', '/c/out']);
  assert.equal(opensslArgv.genCrl('/c/openssl.cnf', 3650, '/c/crl'), ['ca', '-batch', '-config', '/c/openssl.cnf', '-gencrl', '-crldays', '3650', '-out', '/c/crl']);
  assert.equal(opensslArgv.revoke('/c/openssl.cnf', '/c/newcerts/AB.pem').slice(0, 6), ['ca', '-batch', '-config', '/c/openssl.cnf', '-revoke', '/c/newcerts/AB.pem']);
  const all = Object.values(opensslArgv).flatMap((f) => (f as (...a: unknown[]) => string[])('/c/openssl.cnf', '/c/k', '/CN=x', 1, '/c/o'));
  for (const a of all) assert.not.match(String(a), /^-pass(in|out)$|^pass:|BEGIN/);
});

test('validity defaults: the CA outlives devices, the CRL next update is years away', () => {
  assert.ok(defaultDays.ca > defaultDays.device && defaultDays.device > defaultDays.server);
  assert.ok(defaultDays.crl >= 3650);
});

const deviceNames: [string | undefined, boolean][] = [
  ['player-1', true], ['TV.Living_Room', true], ['a', true], ['0'.repeat(64), true],
  [undefined, false], ['', false], ['-lead', false], ['../evil', false], ['a/b', false], ['a b', false], ['CN=x', false], ['0'.repeat(65), false],
];
for (const [name, ok] of deviceNames) {
  test(`device name ${JSON.stringify(name)} is ${ok ? 'accepted' : 'refused'}`, () => {
    if (ok) assert.is(validateDeviceName(name), name);
    else assert.throws(() => validateDeviceName(name), (e: unknown) => e instanceof UsageError && e.exitCode === 2);
  });
}

test('init plan: only what is missing, in order; a CA certificate without its key is refused', () => {
  const none = { database: false, caKey: false, caCrt: false, server: false, crl: false };
  assert.equal(planInit(none), ['database', 'ca-key', 'ca-cert', 'server', 'crl']);
  assert.equal(planInit({ database: true, caKey: true, caCrt: true, server: true, crl: true }), []);
  assert.equal(planInit({ database: true, caKey: true, caCrt: true, server: false, crl: true }), ['server']);
  assert.equal(planInit({ database: true, caKey: true, caCrt: true, server: true, crl: false }), ['crl']);
  // A new CA certificate invalidates the old server certificate and CRL: both are made again.
  assert.equal(planInit({ database: true, caKey: true, caCrt: false, server: true, crl: true }), ['ca-cert', 'server', 'crl']);
  assert.throws(() => planInit({ ...none, caCrt: true }), (e: unknown) => e instanceof ConfigError && /key ca\.key is missing/.test(e.message));
});

test('CA database: dates in both ASN.1 forms, statuses, kinds from the OU', () => {
  assert.is(parseIndexDate('291125201053Z'), '2029-11-25T20:10:53Z');
  assert.is(parseIndexDate('20551125201053Z'), '2055-11-25T20:10:53Z');
  assert.is(parseIndexDate('991231235959Z'), '1999-12-31T23:59:59Z');
  const index = [
    'V\t290227201053Z\t\t7764BF298818D290\tunknown\t/O=Makapix Club/OU=makapix-dev mqtt broker/CN=development.makapix.club',
    'R\t361122201100Z\t261125201103Z,cessationOfOperation\t7764BF298818D292\tunknown\t/O=Makapix Club/OU=makapix-dev mqtt devices/CN=tv1',
    'V\t361122201200Z\t\t7764BF298818D293\tunknown\t/O=Makapix Club/OU=makapix-dev mqtt devices/CN=tv1',
    'V\t200101000000Z\t\t7764BF298818D294\tunknown\t/O=Makapix Club/OU=makapix-dev mqtt devices/CN=old',
    '',
  ].join('\n');
  const entries = parseIndex(index);
  assert.equal(entries.map((e) => [e.kind, e.name, e.status]), [['server', 'development.makapix.club', 'valid'], ['device', 'tv1', 'revoked'], ['device', 'tv1', 'valid'], ['device', 'old', 'valid']]);
  assert.is(entries[1]!.revokedAt, '2026-11-25T20:11:03Z');
  const now = new Date('2026-12-01T00:00:00Z');
  assert.is(currentEntry(entries, 'device', 'tv1', now)?.serial, '7764BF298818D293');
  assert.is(currentEntry(entries, 'device', 'old', now), undefined, 'an expired certificate is not in force');
  assert.is(currentEntry(entries, 'server', undefined, now)?.serial, '7764BF298818D290');
  assert.throws(() => parseIndex('X\tbroken'), (e: unknown) => e instanceof ConfigError);
});

test("openssl's printed dates", () => {
  assert.is(parseOpensslDate('Nov 25 20:06:15 2036 GMT'), '2036-11-25T20:06:15Z');
  assert.is(parseOpensslDate('Feb  3 01:02:03 2030 GMT\n'), '2030-02-03T01:02:03Z');
});

test('the bundle: key, certificate, CA, and a header naming the broker', () => {
  const b = renderBundle({ device: 'tv1', env: 'dev', host: 'development.makapix.club', port: 8884, key: 'KEY\n', crt: 'CRT\n', ca: 'CA\n' });
  assert.is(b, '# Makapix EB (dev) MQTT client bundle for tv1: broker development.makapix.club:8884, mutual TLS.\n# Contains the PRIVATE KEY of this device: keep it secret. Order: device key, device certificate, CA certificate.\nKEY\nCRT\nCA\n');
});

test.run();
