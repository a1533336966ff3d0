// A real Mosquitto (Debian package) running the project's compose/mosquitto/mosquitto.conf on
// loopback, with an environment's MQTT_CERTS_DIR made by lib/jobs/mqtt-certs.ts. Stopped when the test
// process ends, even on failure.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { containerDirs, listenerPorts, mosquittoConf, renderForHost } from '../../lib/tools/mosquitto.ts';
import { initCa, issueDevice, type CertsSettings } from '../../lib/jobs/mqtt-certs.ts';
import type { Environment } from '../../lib/core/config.ts';
import { freePort } from '../../dev/ports.ts';
import { spawnServer, waitForPort } from './server.ts';

/** Mosquitto started as root drops to its own user before reading files: server.key goes to that uid. */
export const brokerUid = (): number => (process.getuid?.() === 0 ? Number(spawnSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).stdout.trim()) : process.getuid!());

/** An environment's PKI (CA, server certificate for `publicHost`, CRL) plus the named devices, by lib/jobs/mqtt-certs.ts. */
export async function makeCerts(env: Environment, dir: string, publicHost: string, devices: readonly string[], publicPort = 8883): Promise<CertsSettings> {
  const settings: CertsSettings = { env, dir, publicHost, publicPort, brokerUid: brokerUid() };
  const opts = { dryRun: false, force: false, days: undefined, crlDays: 3650, confirm: async () => undefined };
  await initCa(settings, opts);
  for (const d of devices) await issueDevice(settings, d, opts);
  return settings;
}

export interface Broker {
  /** The mTLS listener (8883 in the container). */
  port: number;
  /** The in-network listener (1883 in the container): password accounts. */
  plainPort: number;
  log(): string;
  stop(): void;
}

/**
 * Starts the broker with the project's config (its ACL included): certificate folder `certsDir`,
 * listeners on free loopback ports, and `accounts` in the password file as start.sh writes it.
 */
export async function startMosquitto(certsDir: string, tlsPort?: number, accounts: readonly { user: string; password: string }[] = []): Promise<Broker> {
  const dir = mkdtempSync(path.join(tmpdir(), 'makapix-mqtt-'));
  chmodSync(dir, 0o755); // the broker's own user reads the password file after dropping root
  const data = path.join(dir, 'data');
  mkdirSync(data, { mode: 0o755 });
  const passwords = path.join(data, 'passwords');
  writeFileSync(passwords, '', { mode: 0o644 });
  for (const a of accounts) {
    // The password on stdin, never in argv, as compose/mosquitto/start.sh does.
    const r = spawnSync('mosquitto_passwd', [passwords, a.user], { input: `${a.password}\n${a.password}\n`, encoding: 'utf8', timeout: 10_000 });
    if (r.status !== 0) throw new Error(`mosquitto_passwd failed for ${a.user}: ${r.stderr}`);
  }
  chmodSync(passwords, 0o644);
  const port = tlsPort ?? (await freePort());
  const plainPort = await freePort();
  const conf = renderForHost(readFileSync(mosquittoConf, 'utf8'), {
    dirs: { [containerDirs.certs]: certsDir, [containerDirs.data]: data },
    ports: { [listenerPorts.plain]: plainPort, [listenerPorts.tls]: port },
    bind: '127.0.0.1',
  });
  const file = path.join(dir, 'mosquitto.conf');
  writeFileSync(file, conf, { mode: 0o644 });
  const { child, log, stop } = spawnServer('mosquitto', ['-c', file], dir, {}, 4000);
  await waitForPort(port, child, log);
  await waitForPort(plainPort, child, log);
  return { port, plainPort, log, stop };
}
