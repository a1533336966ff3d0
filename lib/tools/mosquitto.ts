import path from 'node:path';
import { composeDir } from '../core/paths.ts';
import { ConfigError } from '../core/errors.ts';

/**
 * The broker configuration compose/mosquitto/mosquitto.conf and its container paths: the contract
 * between the compose files (which mount the folders), scripts/mqtt-certs.ts (which fills the
 * certificate folder) and the tests (which run the same file on the host).
 */

export const mosquittoConf = path.join(composeDir, 'mosquitto', 'mosquitto.conf');

/** Folders mounted into the broker container. */
export const containerDirs = {
  /** ${MQTT_CERTS_DIR}, read-only. */
  certs: '/mosquitto/certs',
  /** The broker's own data folder (the password file start.sh writes). */
  data: '/mosquitto/data',
} as const;

/** Files inside the certificate folder the broker reads (mqtt-certs writes them, plus ca.key and devices/). */
export const certFiles = { ca: 'ca.crt', cert: 'server.crt', key: 'server.key', crl: 'crl.pem' } as const;
export const passwordFile = `${containerDirs.data}/passwords`;
/** The listeners inside the container: in-network plaintext, and mTLS for players. */
export const listenerPorts = { plain: 1883, tls: 8883 } as const;

export interface HostLayout {
  /** Host folder per container folder, e.g. { '/mosquitto/certs': '/tmp/x/certs' }. */
  dirs: Partial<Record<(typeof containerDirs)[keyof typeof containerDirs], string>>;
  /** Host port per container listener port; listeners are then bound to `bind` only. */
  ports?: Partial<Record<number, number>>;
  bind?: string;
}

/**
 * The same configuration for a broker running directly on a host (tests): container folders
 * become host folders and listeners move to the given ports on a loopback address. Nothing else
 * changes, so a test exercises exactly the settings production runs with.
 */
export function renderForHost(conf: string, layout: HostLayout): string {
  return conf
    .split('\n')
    .map((line) => {
      const listener = /^listener\s+(\d+)(\s+\S+)?\s*$/.exec(line);
      if (listener && layout.ports) {
        const port = layout.ports[Number(listener[1])];
        if (port === undefined) throw new ConfigError(`No host port was given for the broker's listener ${listener[1]}.`, [], 'Pass a port for every listener in mosquitto.conf.');
        return `listener ${port}${layout.bind ? ` ${layout.bind}` : (listener[2] ?? '')}`;
      }
      let out = line;
      for (const [inside, host] of Object.entries(layout.dirs)) {
        if (host !== undefined) out = out.split(`${inside}/`).join(`${host.replace(/\/$/, '')}/`);
      }
      return out;
    })
    .join('\n');
}
