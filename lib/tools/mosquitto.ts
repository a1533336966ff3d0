import path from 'node:path';
import { composeDir } from '../core/paths.ts';
import { ConfigError, JobError } from '../core/errors.ts';
import { run, type Command } from '../core/exec.ts';

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

// ---- reaching a running broker ----------------------------------------------------------------

/** How the toolkit reaches one running broker: in production its container, in tests a host process. */
export interface BrokerAccess {
  name: string;
  /** SIGHUP: Mosquitto 2.0 re-reads its certificates and CRL; connected clients stay connected. */
  reload(): Promise<void>;
  /** Its log so far (Mosquitto logs to stdout at notice level and above). */
  log(): Promise<string>;
  /** `ss` run in the broker's network namespace. */
  ss(argv: readonly string[]): Promise<Command>;
  /** The mTLS listener's port inside that namespace. */
  tlsPort: number;
}

export function containerBroker(container: string): BrokerAccess {
  const docker = (...argv: string[]): Command => ({ cmd: 'docker', argv });
  return {
    name: container,
    reload: async () => void (await run(docker('kill', '--signal', 'HUP', container))),
    log: async () => {
      const r = await run(docker('logs', container));
      return r.stdout + r.stderr;
    },
    // The host's ss, entered into the container's network namespace: the broker image has no ss.
    ss: async (argv) => {
      const pid = (await run(docker('inspect', '--format', '{{.State.Pid}}', container))).stdout.trim();
      return { cmd: 'nsenter', argv: ['--target', pid, '--net', 'ss', ...argv] };
    },
    tlsPort: listenerPorts.tls,
  };
}

export interface ClientAddress {
  host: string;
  port: number;
}

/**
 * The addresses a user connected from, in the broker's log (Mosquitto 2.0, notice level):
 * "New client connected from 172.18.0.1:50412 as <client id> (p2, c1, k60, u'<user>')."
 * With use_identity_as_username, the user is the certificate's CN.
 */
export function connectionsOf(log: string, user: string): ClientAddress[] {
  const out = new Map<string, ClientAddress>();
  for (const m of log.matchAll(/New client connected from (\S+):(\d+) as \S+ \([^)]*\bu'([^']*)'\)/g)) {
    if (m[3] !== user) continue;
    const host = m[1]!.replace(/^\[|\]$/g, '');
    out.set(`${host}:${m[2]}`, { host, port: Number(m[2]) });
  }
  return [...out.values()];
}

/** `ss` arguments selecting the broker's side of one client's established connection. */
export const ssSelect = (c: ClientAddress, listenerPort: number): string[] => ['-Htn', 'state', 'established', 'dst', c.host.includes(':') ? `[${c.host}]:${c.port}` : `${c.host}:${c.port}`, 'sport', '=', `:${listenerPort}`];

/**
 * Ends every live session of `user` on the mTLS listener: Mosquitto 2.0 never re-checks a TLS
 * session against a new CRL, and has no kick without its dynamic-security plugin, so the broker's
 * side of each of that user's sockets is destroyed from outside (`ss -K`, SOCK_DESTROY). Call it
 * after the broker has been told to re-read the CRL, so a reconnection is refused at the handshake.
 * Returns once none has been seen live twice in a row; throws if one survives the deadline (a
 * kernel built without CONFIG_INET_DIAG_DESTROY).
 */
export async function disconnectUser(broker: BrokerAccess, user: string, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<{ closed: ClientAddress[]; ms: number }> {
  const started = Date.now();
  const closed = new Map<string, ClientAddress>();
  let quiet = 0;
  let live: ClientAddress[] = [];
  while (Date.now() - started < (opts.timeoutMs ?? 10_000)) {
    live = [];
    for (const c of connectionsOf(await broker.log(), user)) {
      if ((await run(await broker.ss(ssSelect(c, broker.tlsPort)))).stdout.trim()) live.push(c);
    }
    if (live.length === 0 && ++quiet >= 2) return { closed: [...closed.values()], ms: Date.now() - started };
    if (live.length) quiet = 0;
    for (const c of live) {
      await run(await broker.ss(['-K', ...ssSelect(c, broker.tlsPort)]), { nothrow: true });
      closed.set(`${c.host}:${c.port}`, c);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 300));
  }
  throw new JobError(
    `${user} is still connected to ${broker.name} from ${live.map((c) => `${c.host}:${c.port}`).join(', ')}: the kernel did not close its socket (ss -K needs CONFIG_INET_DIAG_DESTROY).`,
    `Restart the broker to cut it off (every player reconnects within seconds): docker restart ${broker.name}`,
  );
}
