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
  /** compose/mosquitto/ itself, read-only: mosquitto.conf, acls, start.sh. */
  config: '/mosquitto/config',
  /** ${MQTT_CERTS_DIR}, read-only. */
  certs: '/mosquitto/certs',
  /** The broker's own data folder (the password file start.sh writes). */
  data: '/mosquitto/data',
} as const;

/** Files inside the certificate folder the broker reads (mqtt-certs writes them, plus ca.key and devices/). */
export const certFiles = { ca: 'ca.crt', cert: 'server.crt', key: 'server.key', crl: 'crl.pem' } as const;
export const passwordFile = `${containerDirs.data}/passwords`;
/** The topic rights (compose/mosquitto/acls, following the app's mqtt/config/acls). */
export const aclFile = path.join(path.dirname(mosquittoConf), 'acls');
/** The accounts an ACL file grants by name (`user <name>` lines); everyone else gets only the `pattern` rules. */
export function aclUsers(acl: string): string[] {
  return [...acl.matchAll(/^\s*user\s+(\S+)\s*$/gm)].map((m) => m[1]!);
}

/**
 * The one topic a certificate's identity may both write and read (compose/mosquitto/acls grants
 * `makapix-ops/verify/%u/+`): what `make verify` round-trips through. `user` is the certificate CN.
 */
export const probeTopic = (user: string, nonce: string): string => `makapix-ops/verify/${user}/${nonce}`;
/** The listeners inside the container: in-network plaintext, and mTLS for players. */
export const listenerPorts = { plain: 1883, tls: 8883 } as const;

export interface HostLayout {
  /** Host folder per container folder, e.g. { '/mosquitto/certs': '/tmp/x/certs' }; the config folder defaults to compose/mosquitto. */
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
  const dirs: Record<string, string | undefined> = { [containerDirs.config]: path.dirname(mosquittoConf), ...layout.dirs };
  const given = Object.keys(dirs).filter((d) => dirs[d] !== undefined);
  // Container folders are plain /mosquitto/<word> paths: nothing to escape.
  const inside = new RegExp(`(?:${given.join('|')})/`, 'g');
  return conf
    .split('\n')
    .map((line) => {
      const listener = /^listener\s+(\d+)(\s+\S+)?\s*$/.exec(line);
      if (listener && layout.ports) {
        const port = layout.ports[Number(listener[1])];
        if (port === undefined) throw new ConfigError(`No host port was given for the broker's listener ${listener[1]}.`, [], 'Pass a port for every listener in mosquitto.conf.');
        return `listener ${port}${layout.bind ? ` ${layout.bind}` : (listener[2] ?? '')}`;
      }
      // One pass, so a host folder that happens to contain a container path is not rewritten again.
      return line.replace(inside, (found) => `${dirs[found.slice(0, -1)]!.replace(/\/$/, '')}/`);
    })
    .join('\n');
}
