// The project's compose/mosquitto/mosquitto.conf in the real Mosquitto (Debian's 2.0), on loopback:
// the mTLS listener refuses a client without a certificate, the in-network listener refuses
// anonymous clients and takes the app's account. (The device round trips, a foreign CA and
// revocation are in mqtt-certs.test.ts.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { certFiles, containerDirs, listenerPorts, mosquittoConf, passwordFile, renderForHost } from '../../lib/tools/mosquitto.ts';
import { freePort } from '../../dev/ports.ts';
import { brokerUid, makeCerts } from '../harness/mosquitto.ts';
import { onExit } from '../../dev/cleanup.ts';
import { waitForPort } from '../harness/server.ts';

const work = mkdtempSync(path.join(tmpdir(), 'mosquitto-test-'));
chmodSync(work, 0o755); // the broker drops root for its own user before reading the password file
const certs = path.join(work, 'certs');
const data = path.join(work, 'data');
/** A player key: the CN of a player certificate (and its MQTT user name). */
const tv1 = '7e1e0000-0000-4000-8000-000000000001';
let broker: ChildProcess | undefined;
let log = '';
const stop = (): void => {
  broker?.kill('SIGKILL');
};
onExit(() => {
  stop();
  rmSync(work, { recursive: true, force: true });
});
test.after(stop);

const app = { user: 'svc_backend', password: 'app-mqtt-password-1' };
const ports = { plain: 0, tls: 0 };


/** Connects once (no retries) and reports how it ended: "connected" or the error. */
function attempt(url: string, opts: mqtt.IClientOptions): Promise<string> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    const finish = (outcome: string) => {
      client.end(true);
      resolve(outcome);
    };
    client.once('connect', () => finish('connected'));
    client.once('error', (err) => finish(`error: ${err.message}`));
    client.once('close', () => finish('closed'));
  });
}

test('setup: the project config, rendered for the host, loads in the real broker', async () => {
  mkdirSync(data, { mode: 0o755 });
  await makeCerts('dev', certs, 'localhost', [tv1]);
  // The password file as compose/mosquitto/start.sh writes it: the password on stdin, never in argv.
  const passwords = path.join(data, 'passwords');
  const r = spawnSync('mosquitto_passwd', ['-c', passwords, app.user], { input: `${app.password}\n${app.password}\n`, encoding: 'utf8', timeout: 10_000 });
  assert.is(r.status, 0, r.stderr);
  assert.not.match(readFileSync(passwords, 'utf8'), new RegExp(app.password), 'the password file holds the password in clear');
  if (process.getuid?.() === 0) chownSync(passwords, brokerUid(), 0);
  ports.plain = await freePort();
  ports.tls = await freePort();
  const conf = renderForHost(readFileSync(mosquittoConf, 'utf8'), {
    dirs: { [containerDirs.certs]: certs, [containerDirs.data]: data },
    ports: { [listenerPorts.plain]: ports.plain, [listenerPorts.tls]: ports.tls },
    bind: '127.0.0.1',
  });
  // The contract with mqtt-certs: exactly these files, and the TLS settings the issue asks for.
  for (const must of [
    `listener ${ports.tls} 127.0.0.1`,
    `cafile ${certs}/${certFiles.ca}`,
    `certfile ${certs}/${certFiles.cert}`,
    `keyfile ${certs}/${certFiles.key}`,
    `crlfile ${certs}/${certFiles.crl}`,
    `password_file ${passwords}`,
    'require_certificate true',
    'use_identity_as_username true',
    'tls_version tlsv1.2',
    'allow_anonymous false',
  ]) {
    assert.ok(conf.includes(must), `the rendered config lacks "${must}"`);
  }
  assert.is(passwordFile, `${containerDirs.data}/passwords`);
  const file = path.join(work, 'mosquitto.conf');
  writeFileSync(file, conf, { mode: 0o644 });
  broker = spawn('mosquitto', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d: Buffer) => (log = (log + d).slice(-4000));
  broker.stdout!.on('data', keep);
  broker.stderr!.on('data', keep);
  await waitForPort(ports.tls, broker, () => log);
  await waitForPort(ports.plain, broker, () => log);
});

const tls = () => ({ ca: readFileSync(path.join(certs, certFiles.ca)), servername: 'localhost', rejectUnauthorized: true });

test('the mTLS listener refuses a client without a certificate', async () => {
  const outcome = await attempt(`mqtts://127.0.0.1:${ports.tls}`, { ...tls(), clientId: 'no-cert' });
  assert.is.not(outcome, 'connected');
  // Nor does a user name and password open it: only a certificate does.
  assert.is.not(await attempt(`mqtts://127.0.0.1:${ports.tls}`, { ...tls(), clientId: 'pw-only', username: app.user, password: app.password }), 'connected');
});

test('the mTLS listener accepts a device certificate from its own CA (the control for the refusal)', async () => {
  const outcome = await attempt(`mqtts://127.0.0.1:${ports.tls}`, {
    ...tls(),
    clientId: 'tv1',
    cert: readFileSync(path.join(certs, 'devices', `${tv1}.crt`)),
    key: readFileSync(path.join(certs, 'devices', `${tv1}.key`)),
  });
  assert.is(outcome, 'connected', log);
});

test('the in-network listener refuses anonymous clients and wrong passwords, and takes the app account', async () => {
  const url = `mqtt://127.0.0.1:${ports.plain}`;
  assert.match(await attempt(url, { clientId: 'anon' }), /Not authorized|not authorised|error/i);
  assert.is.not(await attempt(url, { clientId: 'wrong', username: app.user, password: 'not-the-password' }), 'connected');
  assert.is(await attempt(url, { clientId: 'api', username: app.user, password: app.password }), 'connected', log);
});

test.run();
