// mqtt-certs against the real Mosquitto (Debian's 2.0) running the project's config on loopback,
// with certificates made by the script itself; the client is mqtt.js, as a player's would be.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, statSync, chmodSync, rmSync, copyFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { freePort } from '../../dev/ports.ts';
import { projectRoot, composeDir } from '../../lib/core/paths.ts';
import { onExit } from '../../dev/cleanup.ts';
import { runCommand, waitForPort } from '../harness/server.ts';
import { probeTopic } from '../../lib/tools/mosquitto.ts';

const root = mkdtempSync(path.join(tmpdir(), 'makapix-mqtt-'));
chmodSync(root, 0o755); // the broker drops root and must still reach the certificates
const envDir = path.join(root, 'env');
const certs = { dev: path.join(root, 'eb-certs'), prod: path.join(root, 'ea-certs') };
const script = path.join(projectRoot, 'scripts', 'mqtt-certs.ts');
let broker: ChildProcess | undefined;
onExit(() => {
  broker?.kill('SIGKILL');
  rmSync(root, { recursive: true, force: true });
});

// Mosquitto started as root switches to its own user before reading any file: hand it server.key.
const brokerUid = process.getuid?.() === 0 ? Number(spawnSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).stdout.trim()) : process.getuid!();
const EB_HOST = 'mqtt.eb.test';

function writeEnv(env: 'dev' | 'prod'): void {
  const example = readFileSync(path.join(composeDir, `.env.${env}.example`), 'utf8');
  const overrides: Record<string, string> = { MQTT_CERTS_DIR: certs[env], MQTT_BROKER_UID: String(brokerUid), ...(env === 'dev' && { MQTT_PUBLIC_HOST: EB_HOST }) };
  const lines = example.split('\n').filter((l) => !Object.keys(overrides).some((k) => l.startsWith(`${k}=`)));
  writeFileSync(path.join(envDir, `.env.${env}`), `${lines.join('\n')}\n${Object.entries(overrides).map(([k, v]) => `${k}=${v}`).join('\n')}\n`);
}

const run = (args: string[]) => runCommand(script, args, { env: { ...process.env, MAKAPIX_ENV_DIR: envDir } });

const ports = { plain: 0, tls: 0 };

/** The project's mosquitto.conf with loopback ports and the test's folders in place of the container's. */
function renderBrokerConfig(): string {
  const conf = readFileSync(path.join(composeDir, 'mosquitto', 'mosquitto.conf'), 'utf8');
  const passwords = path.join(root, 'passwords');
  writeFileSync(passwords, '', { mode: 0o644 });
  const rendered = conf
    .replaceAll('/mosquitto/certs/', `${certs.dev}/`)
    .replaceAll('/mosquitto/config/', `${path.join(composeDir, 'mosquitto')}/`)
    .replace(/^password_file .*$/m, `password_file ${passwords}`)
    .replace(/^listener 1883$/m, `listener ${ports.plain} 127.0.0.1`)
    .replace(/^listener 8883$/m, `listener ${ports.tls} 127.0.0.1`);
  for (const must of [`listener ${ports.tls} 127.0.0.1`, `cafile ${certs.dev}/ca.crt`, `crlfile ${certs.dev}/crl.pem`, 'require_certificate true', 'use_identity_as_username true']) assert.ok(rendered.includes(must), `the project config no longer has "${must}"`);
  return rendered;
}


interface Client {
  name?: string;
  cert?: string;
  key?: string;
}
const device = (dir: string, name: string): Client => ({ name, cert: path.join(dir, 'devices', `${name}.crt`), key: path.join(dir, 'devices', `${name}.key`) });

/** Connects over mTLS (verifying the broker against the EB CA and its public name); 'connected' or the refusal. */
async function tryConnect(c: Client, roundTrip = false): Promise<string> {
  const client = mqtt.connect({
    host: '127.0.0.1',
    port: ports.tls,
    protocol: 'mqtts',
    servername: EB_HOST,
    ca: readFileSync(path.join(certs.dev, 'ca.crt')),
    ...(c.cert && { cert: readFileSync(c.cert), key: readFileSync(c.key!) }),
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  try {
    return await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 10_000);
      client.on('error', (e) => (clearTimeout(timer), resolve(`refused: ${e.message}`)));
      client.on('close', () => (clearTimeout(timer), resolve('refused: closed')));
      client.on('connect', () => {
        if (!roundTrip) return (clearTimeout(timer), resolve('connected'));
        client.on('message', (topic, payload) => (clearTimeout(timer), resolve(`connected, got ${topic}=${payload}`)));
        // The broker's ACL lets a device round-trip only on its own probe topic (its CN is the user name).
        const topic = probeTopic(c.name!, 'ping');
        client.subscribe(topic, { qos: 1 }, () => client.publish(topic, 'pong', { qos: 1 }));
      });
    });
  } finally {
    client.end(true);
  }
}

test('init makes the CA, broker certificate and CRL; again changes nothing; keys are 0600', async () => {
  mkdirSync(envDir);
  writeEnv('dev');
  writeEnv('prod');
  const first = await run(['init', '--env', 'dev']);
  assert.is(first.code, 0, first.err);
  const files = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'crl.pem', 'index.txt', 'serial', 'crlnumber', 'openssl.cnf'];
  const snapshot = () => Object.fromEntries(files.map((f) => [f, readFileSync(path.join(certs.dev, f)).toString('base64')]));
  const before = snapshot();
  const again = await run(['init', '--env', 'dev']);
  assert.is(again.code, 0, again.err);
  assert.match(again.out, /nothing/);
  assert.equal(snapshot(), before, 'a second init changed a file');
  for (const key of ['ca.key', 'server.key']) assert.is(statSync(path.join(certs.dev, key)).mode & 0o777, 0o600, key);
  assert.is(statSync(path.join(certs.dev, 'server.key')).uid, brokerUid);
  assert.is(statSync(path.join(certs.dev, 'ca.key')).uid, process.getuid!());
  const text = spawnSync('openssl', ['x509', '-in', path.join(certs.dev, 'server.crt'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
  assert.match(text, /ASN1 OID: prime256v1/);
  assert.match(text, new RegExp(`DNS:${EB_HOST.replaceAll('.', '\\.')}, DNS:makapix-dev-mqtt, DNS:mqtt`));
  const ea = await run(['init', '--env', 'prod']);
  assert.is(ea.code, 0, ea.err);
});

test('issue: a device certificate, key and bundle; the key and bundle are 0600', async () => {
  for (const [env, name] of [['dev', 'player-1'], ['dev', 'player-2'], ['prod', 'player-1']] as const) {
    const r = await run(['issue', name, '--env', env, '--json']);
    assert.is(r.code, 0, r.err);
    assert.match(JSON.parse(r.out).serial, /^[0-9A-F]+$/);
  }
  const bundle = readFileSync(path.join(certs.dev, 'devices', 'player-1.bundle.pem'), 'utf8');
  assert.is(bundle.match(/-----BEGIN CERTIFICATE-----/g)?.length, 2);
  assert.match(bundle, /-----BEGIN PRIVATE KEY-----/);
  for (const f of ['player-1.key', 'player-1.bundle.pem']) assert.is(statSync(path.join(certs.dev, 'devices', f)).mode & 0o777, 0o600, f);
  const verify = spawnSync('openssl', ['verify', '-CAfile', path.join(certs.dev, 'ca.crt'), path.join(certs.dev, 'devices', 'player-1.crt')], { encoding: 'utf8' });
  assert.is(verify.status, 0, verify.stderr);
});

test('the real Mosquitto with the project config: an EB device connects and round-trips a message', async () => {
  ports.plain = await freePort();
  ports.tls = await freePort();
  const conf = path.join(root, 'mosquitto.conf');
  writeFileSync(conf, renderBrokerConfig(), { mode: 0o644 });
  broker = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  broker.stdout!.on('data', (d) => (log += d));
  broker.stderr!.on('data', (d) => (log += d));
  await waitForPort(ports.tls, broker, () => log).catch((e) => assert.unreachable(e.message));
  assert.is(await tryConnect(device(certs.dev, 'player-1'), true), 'connected, got makapix-ops/verify/player-1/ping=pong');
});

test('refused: a certificate from the EA CA, and no certificate at all', async () => {
  assert.match(await tryConnect(device(certs.prod, 'player-1')), /^refused/);
  assert.match(await tryConnect({}), /^refused/);
});

test('revoke: once the broker has read the new CRL, the revoked device is refused and the others are not', async () => {
  const kept = path.join(root, 'kept');
  mkdirSync(kept);
  for (const ext of ['crt', 'key']) copyFileSync(path.join(certs.dev, 'devices', `player-2.${ext}`), path.join(kept, `player-2.${ext}`));
  const stolen = { cert: path.join(kept, 'player-2.crt'), key: path.join(kept, 'player-2.key') };
  assert.is(await tryConnect(stolen), 'connected');
  const r = await run(['revoke', 'player-2', '--env', 'dev', '--yes']);
  assert.is(r.code, 0, r.err);
  assert.ok(!existsSync(path.join(certs.dev, 'devices', 'player-2.key')), 'the revoked key was left behind');
  broker!.kill('SIGHUP'); // what `docker kill --signal HUP` does: Mosquitto re-reads its CRL
  // The reload is asynchronous: give it a bounded while (a loaded machine), then it must refuse.
  let outcome = '';
  for (let i = 0; i < 20 && !outcome.startsWith('refused'); i++) {
    await new Promise((res) => setTimeout(res, 250));
    outcome = await tryConnect(stolen);
  }
  assert.match(outcome, /^refused/);
  assert.is(await tryConnect(device(certs.dev, 'player-1')), 'connected');
});

test('list: subjects, serials, expiry, revocations and the CRL next update', async () => {
  const r = await run(['list', '--env', 'dev', '--json']);
  assert.is(r.code, 0, r.err);
  const l = JSON.parse(r.out);
  assert.match(l.ca.subject, /CN=Makapix EB MQTT CA/);
  assert.ok(Date.parse(l.crl.nextUpdate) - Date.now() > 3000 * 86_400_000, `CRL next update ${l.crl.nextUpdate} is not far away`);
  assert.is(l.crl.revoked, 1);
  const byName = Object.fromEntries(l.certificates.map((c: { kind: string; name: string; status: string }) => [`${c.kind}:${c.name}`, c.status]));
  assert.equal(byName, { [`server:${EB_HOST}`]: 'valid', 'device:player-1': 'valid', 'device:player-2': 'revoked' });
  assert.equal(l.warnings, []);
});

test('renew: a new broker certificate (after HUP the devices still connect) and a fresh CRL', async () => {
  const crlBefore = readFileSync(path.join(certs.dev, 'crl.pem'));
  const serverBefore = readFileSync(path.join(certs.dev, 'server.crt'));
  const r = await run(['renew', '--env', 'dev']);
  assert.is(r.code, 0, r.err);
  assert.not.equal(readFileSync(path.join(certs.dev, 'server.crt')), serverBefore);
  assert.not.equal(readFileSync(path.join(certs.dev, 'crl.pem')), crlBefore);
  assert.is(statSync(path.join(certs.dev, 'server.key')).mode & 0o777, 0o600);
  broker!.kill('SIGHUP');
  await new Promise((res) => setTimeout(res, 500));
  assert.is(await tryConnect(device(certs.dev, 'player-1'), true), 'connected, got makapix-ops/verify/player-1/ping=pong');
});

const badInputs: [string, string[]][] = [
  ['a device name with a slash', ['issue', '../evil', '--env', 'dev']],
  ['a device that already has a certificate', ['issue', 'player-1', '--env', 'dev']],
  ['revoke of an unknown device', ['revoke', 'nobody', '--env', 'dev', '--yes']],
  ['an unknown command', ['sign', '--env', 'dev']],
  ['no --env', ['list']],
  ['a bad --days', ['issue', 'player-9', '--env', 'dev', '--days', '0']],
];
for (const [what, args] of badInputs) {
  test(`bad input: ${what} → exit 2, the folder untouched`, async () => {
    const list = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? list(path.join(dir, e.name)) : [path.join(dir, e.name)]));
    const snap = () => list(certs.dev).sort().map((f) => `${f}:${readFileSync(f).toString('base64')}`);
    const before = snap();
    const r = await run(args);
    assert.is(r.code, 2, r.err);
    assert.equal(snap(), before);
  });
}

test('init --force without a terminal or --yes is refused (exit 3) and the CA stays', async () => {
  const ca = readFileSync(path.join(certs.dev, 'ca.key'));
  const r = await run(['init', '--env', 'dev', '--force']);
  assert.is(r.code, 3, r.err);
  assert.equal(readFileSync(path.join(certs.dev, 'ca.key')), ca);
});

test('no private key on a command line or in the output', async () => {
  const keys = [path.join(certs.dev, 'ca.key'), path.join(certs.dev, 'server.key')].map((f) => readFileSync(f, 'utf8').split('\n')[1]!);
  const r = await run(['issue', 'player-3', '--env', 'dev', '--verbose']);
  assert.is(r.code, 0, r.err);
  const issued = readFileSync(path.join(certs.dev, 'devices', 'player-3.key'), 'utf8').split('\n')[1]!;
  for (const k of [...keys, issued]) assert.not.ok((r.out + r.err).includes(k));
});

test.after(() => {
  broker?.kill('SIGTERM');
});

test.run();
