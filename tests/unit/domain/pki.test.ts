import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { normalizeSerial, opensslArgv, parseCrlText, parseOpensslDate } from '../../../lib/tools/openssl.ts';
import { connectionsOf, ssSelect } from '../../../lib/tools/mosquitto.ts';
import { appDeviceCert, caState, certsLayout, crlLoadState, currentEntry, defaultDays, deviceExtensions, deviceFiles, indexDate, mergeRevocations, nextCrlNumber, parseIndex, parseIndexDate, renderBundle, renderOpensslConfig, revocationIndex, serverSans, subjects, validatePlayerKey } from '../../../lib/domain/pki.ts';
import { ConfigError, UsageError } from '../../../lib/core/errors.ts';

const layout = certsLayout('/etc/makapix/dev/mqtt');

test('layout: the file names the Mosquitto config mounts, and the CA database beside them', () => {
  assert.equal(
    [layout.caCrt, layout.caKey, layout.serverCrt, layout.serverKey, layout.crl, layout.index, layout.serial, layout.crlnumber],
    ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'crl.pem', 'index.txt', 'serial', 'crlnumber'].map((f) => `/etc/makapix/dev/mqtt/${f}`),
  );
  assert.equal(deviceFiles(layout, 'tv1'), { crt: '/etc/makapix/dev/mqtt/devices/tv1.crt', key: '/etc/makapix/dev/mqtt/devices/tv1.key', bundle: '/etc/makapix/dev/mqtt/devices/tv1.bundle.pem' });
});

const subjectCases: ['prod' | 'dev', string, { ca: string; server: string }][] = [
  ['dev', 'development.makapix.club', { ca: '/O=Makapix Club/OU=makapix-dev mqtt ca/CN=Makapix EB MQTT CA', server: '/O=Makapix Club/OU=makapix-dev mqtt broker/CN=development.makapix.club' }],
  ['prod', 'makapix.club', { ca: '/O=Makapix Club/OU=makapix-prod mqtt ca/CN=Makapix EA MQTT CA', server: '/O=Makapix Club/OU=makapix-prod mqtt broker/CN=makapix.club' }],
];
for (const [env, host, want] of subjectCases) {
  test(`subjects of ${env}: each environment's new CA has its own name`, () => {
    assert.equal(subjects(env, host), want);
  });
}

test("a player certificate as the app's api mints it: RSA-2048, 1095 days, C=US/O=Makapix/CN=<player key>, SAN player-<key> only", () => {
  const key = '3f2b6c1e-8d4a-4e7b-9c1d-2a5e6f708192';
  assert.equal([appDeviceCert.keyBits, appDeviceCert.days, appDeviceCert.subject(key)], [2048, 1095, `/C=US/O=Makapix/CN=${key}`]);
  assert.match(deviceExtensions(key), `[ device_ext ]\nsubjectAltName = DNS:player-${key}\n`);
});

test('server SANs: the public host, the container name and the network alias, no duplicates', () => {
  assert.equal(serverSans('dev', 'development.makapix.club'), ['DNS:development.makapix.club', 'DNS:makapix-dev-mqtt', 'DNS:mqtt']);
  assert.equal(serverSans('prod', 'mqtt'), ['DNS:mqtt', 'DNS:makapix-prod-mqtt']);
});

test('the openssl config: extensions per kind; SANs on the server; any subject with a CN (the app sets C and O, no OU)', () => {
  const cnf = renderOpensslConfig(layout, 'dev', 'development.makapix.club');
  assert.match(cnf, /^dir = \/etc\/makapix\/dev\/mqtt$/m);
  assert.match(cnf, /^unique_subject = no$/m);
  assert.match(cnf, /^default_md = sha256$/m);
  assert.match(cnf, /\[ policy_makapix \]\ncountryName = optional\norganizationName = optional\norganizationalUnitName = optional\ncommonName = supplied\n/);
  assert.match(cnf, /\[ ca_ext \]\nbasicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign/);
  assert.match(cnf, /\[ server_ext \][^[]*extendedKeyUsage = serverAuth[^[]*subjectAltName = DNS:development\.makapix\.club, DNS:makapix-dev-mqtt, DNS:mqtt\n/);
  assert.not.match(cnf, /device_ext/, 'player extensions are written per player');
});

test('openssl argv: keys are generated to stdout and otherwise only named by path; random serials; never a passphrase argument', () => {
  assert.equal(opensslArgv.genRsa(2048), ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']);
  assert.equal(opensslArgv.selfSignCa('/c/openssl.cnf', '/c/ca.key', '/O=X/CN=Y', 3650), ['req', '-new', '-x509', '-config', '/c/openssl.cnf', '-extensions', 'ca_ext', '-key', '/c/ca.key', '-subj', '/O=X/CN=Y', '-days', '3650', '-sha256']);
  assert.equal(opensslArgv.csr('/c/openssl.cnf', '/c/devices/tv1.key', '/CN=tv1'), ['req', '-new', '-config', '/c/openssl.cnf', '-key', '/c/devices/tv1.key', '-subj', '/CN=tv1', '-sha256']);
  assert.equal(opensslArgv.sign('/c/openssl.cnf', '/c/x.csr', 'device_ext', 1095, '/c/out'), ['ca', '-batch', '-config', '/c/openssl.cnf', '-rand_serial', '-extensions', 'device_ext', '-days', '1095', '-notext', '-in', '/c/x.csr', '-out', '/c/out']);
  assert.equal(opensslArgv.genCrl('/c/openssl.cnf', 30, '/c/crl'), ['ca', '-batch', '-config', '/c/openssl.cnf', '-gencrl', '-crldays', '30', '-out', '/c/crl']);
  assert.equal(opensslArgv.revoke('/c/openssl.cnf', '/c/newcerts/AB.pem').slice(0, 6), ['ca', '-batch', '-config', '/c/openssl.cnf', '-revoke', '/c/newcerts/AB.pem']);
  const all = Object.values(opensslArgv).flatMap((f) => (f as (...a: unknown[]) => string[])('/c/openssl.cnf', '/c/k', '/CN=x', 1, '/c/o'));
  for (const a of all) assert.not.match(String(a), /^-pass(in|out)$|^pass:|BEGIN/);
});

test("validity defaults: the app's (CA 10 years, players 1095 days, CRL 30 days)", () => {
  assert.equal([defaultDays.ca, defaultDays.device, defaultDays.crl], [3650, 1095, 30]);
});

const playerKeys: [string | undefined, boolean | RegExp][] = [
  ['3f2b6c1e-8d4a-4e7b-9c1d-2a5e6f708192', true],
  ['00000000-0000-4000-8000-000000000000', true],
  ['svc_backend', /MQTT account of a service/],
  ['player_client', /MQTT account of a service/],
  ['3F2B6C1E-8D4A-4E7B-9C1D-2A5E6F708192', /not a player key/],
  ['player-1', /not a player key/], [undefined, /not a player key/], ['', /not a player key/], ['../evil', /not a player key/],
  ['3f2b6c1e-8d4a-4e7b-9c1d-2a5e6f70819', /not a player key/], ['3f2b6c1e8d4a4e7b9c1d2a5e6f708192', /not a player key/],
];
for (const [name, ok] of playerKeys) {
  test(`player key ${JSON.stringify(name)} is ${ok === true ? 'accepted' : 'refused'}`, () => {
    if (ok === true) assert.is(validatePlayerKey(name), name);
    else assert.throws(() => validatePlayerKey(name), (e: unknown) => e instanceof UsageError && e.exitCode === 2 && (ok as RegExp).test(e.message));
  });
}

test("a service user from the environment's config is refused too", () => {
  assert.throws(() => validatePlayerKey('svc_ops', ['svc_ops']), (e: unknown) => e instanceof UsageError && /svc_ops/.test(e.message));
});

test('CA state: none, partial (one of the pair: refuse, as the app does), unregistered (adopt), registered', () => {
  assert.is(caState({ caKey: false, caCrt: false, registration: false }), 'none');
  assert.is(caState({ caKey: true, caCrt: false, registration: false }), 'partial');
  assert.is(caState({ caKey: false, caCrt: true, registration: true }), 'partial');
  assert.is(caState({ caKey: true, caCrt: true, registration: false }), 'unregistered');
  assert.is(caState({ caKey: true, caCrt: true, registration: true }), 'registered');
});

const tv1 = '7e1e0000-0000-4000-8000-000000000001';
const old = '01d00000-0000-4000-8000-000000000001';

test('CA database: dates in both ASN.1 forms, statuses, kinds (server by OU, players by a player-key CN)', () => {
  assert.is(parseIndexDate('291125201053Z'), '2029-11-25T20:10:53Z');
  assert.is(parseIndexDate('20551125201053Z'), '2055-11-25T20:10:53Z');
  assert.is(parseIndexDate('991231235959Z'), '1999-12-31T23:59:59Z');
  const index = [
    'V\t290227201053Z\t\t7764BF298818D290\tunknown\t/O=Makapix Club/OU=makapix-dev mqtt broker/CN=development.makapix.club',
    `R\t361122201100Z\t261125201103Z,cessationOfOperation\t7764BF298818D292\tunknown\t/C=US/O=Makapix/CN=${tv1}`,
    `V\t361122201200Z\t\t7764BF298818D293\tunknown\t/C=US/O=Makapix/CN=${tv1}`,
    `V\t200101000000Z\t\t7764BF298818D294\tunknown\t/C=US/O=Makapix/CN=${old}`,
    'V\t200101000000Z\t\t7764BF298818D295\tunknown\t/CN=not-a-player',
    '',
  ].join('\n');
  const entries = parseIndex(index);
  assert.equal(entries.map((e) => [e.kind, e.name, e.status]), [['server', 'development.makapix.club', 'valid'], ['device', tv1, 'revoked'], ['device', tv1, 'valid'], ['device', old, 'valid'], ['other', 'not-a-player', 'valid']]);
  assert.is(entries[1]!.revokedAt, '2026-11-25T20:11:03Z');
  const now = new Date('2026-12-01T00:00:00Z');
  assert.is(currentEntry(entries, 'device', tv1, now)?.serial, '7764BF298818D293');
  assert.is(currentEntry(entries, 'device', old, now), undefined, 'an expired certificate is not in force');
  assert.is(currentEntry(entries, 'server', undefined, now)?.serial, '7764BF298818D290');
  assert.throws(() => parseIndex('X\tbroken'), (e: unknown) => e instanceof ConfigError);
});

test("openssl's printed dates", () => {
  assert.is(parseOpensslDate('Nov 25 20:06:15 2036 GMT').toISOString(), '2036-11-25T20:06:15.000Z');
  assert.is(parseOpensslDate('Feb  3 01:02:03 2030 GMT\n').toISOString(), '2030-02-03T01:02:03.000Z');
});

test('serials: the app stores them in decimal; openssl writes hex; both become one form', () => {
  assert.is(normalizeSerial('123456789012345678901234567890'), '018EE90FF6C373E0EE4E3F0AD2');
  assert.is(normalizeSerial('0x18ee90ff6c373e0ee4e3f0ad2'), '018EE90FF6C373E0EE4E3F0AD2');
  assert.is(normalizeSerial('10'), '0A');
  assert.throws(() => normalizeSerial('12x'), (e: unknown) => e instanceof UsageError);
});

// What `openssl crl -noout -text` prints for a CRL the app signed (no extensions, no reason) after the toolkit added one.
const crlText = `Certificate Revocation List (CRL):
        Version 2 (0x1)
        Signature Algorithm: sha256WithRSAEncryption
        Issuer: CN = Makapix Dev CA
        Last Update: Dec  3 08:09:58 2026 GMT
        Next Update: Jan  2 08:09:58 2027 GMT
        CRL extensions:
            X509v3 Authority Key Identifier:
                99:B2:AC:B9:4C:36:77:35:FE:AD:65:C9:05:2E:73:69:7C:F2:88:B4
            X509v3 CRL Number:
                1A
Revoked Certificates:
    Serial Number: 0A
        Revocation Date: Dec  3 09:10:00 2026 GMT
        CRL entry extensions:
            X509v3 CRL Reason Code:
                Cessation Of Operation
    Serial Number: 018EE90FF6C373E0EE4E3F0AD2
        Revocation Date: Dec  3 08:09:54 2026 GMT
    Signature Algorithm: sha256WithRSAEncryption
    Signature Value:
        9a:47:7b:b1
`;

test('a CRL read back: dates, number, every serial with its date and reason', () => {
  const c = parseCrlText(crlText);
  assert.is(c.issuer, 'CN = Makapix Dev CA');
  assert.is(c.nextUpdate.toISOString(), '2027-01-02T08:09:58.000Z');
  assert.is(c.number, 0x1an);
  assert.equal(c.revoked.map((r) => [r.serial, r.revokedAt.toISOString(), r.reason]), [['0A', '2026-12-03T09:10:00.000Z', 'cessationOfOperation'], ['018EE90FF6C373E0EE4E3F0AD2', '2026-12-03T08:09:54.000Z', undefined]]);
  assert.equal(parseCrlText(crlText.replace(/Revoked Certificates:[\s\S]*?(\n {4}Signature Algorithm)/, 'No Revoked Certificates.$1')).revoked, []);
  assert.throws(() => parseCrlText('garbage'), (e: unknown) => e instanceof ConfigError);
});

test("revocations are only ever added: the app's entries stay, a serial already there keeps its first date", () => {
  const app = { serial: '018EE90FF6C373E0EE4E3F0AD2', revokedAt: new Date('2026-12-03T08:09:54Z') };
  const merged = mergeRevocations([app], [{ serial: '0A', revokedAt: new Date('2026-12-04T00:00:00Z') }, { ...app, revokedAt: new Date('2027-01-01T00:00:00Z') }]);
  assert.equal(merged.map((r) => [r.serial, r.revokedAt.toISOString()]), [['018EE90FF6C373E0EE4E3F0AD2', '2026-12-03T08:09:54.000Z'], ['0A', '2026-12-04T00:00:00.000Z']]);
  assert.is(revocationIndex([app, { serial: '0A', revokedAt: new Date('2051-01-01T00:00:00Z'), reason: 'keyCompromise' }]), 'R\t20991231235959Z\t261203080954Z\t018EE90FF6C373E0EE4E3F0AD2\tunknown\t/CN=unknown\nR\t20991231235959Z\t20510101000000Z,keyCompromise\t0A\tunknown\t/CN=unknown\n');
  assert.is(indexDate(new Date('2049-12-31T23:59:59Z')), '491231235959Z');
  assert.is(nextCrlNumber(undefined), '01');
  assert.is(nextCrlNumber(parseCrlText(crlText)), '1B');
});

test("the broker's log: the addresses a player (its CN as user name) connected from", () => {
  const log = [
    '1733212345: New connection from 172.18.0.1:50412 on port 8883.',
    `1733212345: New client connected from 172.18.0.1:50412 as mqttjs_1 (p2, c1, k60, u'${tv1}').`,
    `1733212346: New client connected from 172.18.0.1:50414 as mqttjs_2 (p2, c1, k60, u'${old}').`,
    `1733212347: New client connected from ::ffff:10.0.0.5:40000 as tv (p4, c0, k30, u'${tv1}').`,
    `1733212348: New client connected from 172.18.0.1:50412 as mqttjs_1 (p2, c1, k60, u'${tv1}').`,
    "1733212349: New client connected from 127.0.0.1:1234 as api (p2, c1, k60, u'svc_backend').",
  ].join('\n');
  assert.equal(connectionsOf(log, tv1), [{ host: '172.18.0.1', port: 50412 }, { host: '::ffff:10.0.0.5', port: 40000 }]);
  assert.equal(connectionsOf(log, 'nobody'), []);
  assert.equal(ssSelect({ host: '172.18.0.1', port: 50412 }, 8883), ['-Htn', 'state', 'established', 'dst', '172.18.0.1:50412', 'sport', '=', ':8883']);
  assert.equal(ssSelect({ host: '::ffff:10.0.0.5', port: 40000 }, 8883).slice(3, 5), ['dst', '[::ffff:10.0.0.5]:40000']);
});

test('is the CRL on disk the one the broker loaded? a new file gets a grace; no marker: unknown', () => {
  const o = { fileSha: 'aa', graceMs: 60_000 };
  assert.is(crlLoadState({ ...o, loadedSha: 'aa', fileAgeMs: 9e9 }), 'loaded');
  assert.is(crlLoadState({ ...o, loadedSha: 'bb', fileAgeMs: 5_000 }), 'pending');
  assert.is(crlLoadState({ ...o, loadedSha: 'bb', fileAgeMs: 60_000 }), 'not-loaded');
  assert.is(crlLoadState({ ...o, loadedSha: undefined, fileAgeMs: 0 }), 'unknown');
});

test('the bundle: key, certificate, CA, and a header naming the broker', () => {
  const b = renderBundle({ device: tv1, env: 'dev', host: 'development.makapix.club', port: 8884, key: 'KEY\n', crt: 'CRT\n', ca: 'CA\n' });
  assert.is(b, `# Makapix EB (dev) MQTT client bundle for player ${tv1}: broker development.makapix.club:8884, mutual TLS.\n# Contains the PRIVATE KEY of this player: keep it secret. Order: player key, player certificate, CA certificate.\nKEY\nCRT\nCA\n`);
});

test.run();
