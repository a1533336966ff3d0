// A real Caddy (Debian package) running the project's edge Caddyfile (or a test's edited copy) on
// loopback high ports with its own local CA: no ACME, no traffic off the machine. Stopped when the
// test process ends, even on failure.
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import { caddyfileArgv, edgeCaddyfile, edgeEnvironment, type EdgeSettings } from '../../lib/tools/caddy.ts';
import { freePort } from '../../dev/ports.ts';
import { peerCertificate } from '../../lib/tools/probe.ts';
import { spawnServer } from './server.ts';

export interface Edge {
  httpPort: number;
  httpsPort: number;
  /** Caddy's local root CA (PEM): trust it to reach the HTTPS hosts. */
  rootCa: string;
  /** Loads another Caddyfile (e.g. an edited copy) into the running Caddy, as `caddy reload` does. */
  reload(caddyfile: string): Promise<void>;
  log(): string;
  stop(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts Caddy with the edge Caddyfile and `settings` (hosts, upstreams, credentials folder). Returns
 * once every host in `hosts` presents a certificate on the HTTPS port.
 */
export async function startCaddy(settings: Omit<EdgeSettings, 'admin' | 'extraGlobalOptions'>, hosts: readonly string[], caddyfile = edgeCaddyfile): Promise<Edge> {
  const dir = mkdtempSync(path.join(tmpdir(), 'makapix-caddy-'));
  chmodSync(dir, 0o755);
  const [httpPort, httpsPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: dir,
    XDG_DATA_HOME: path.join(dir, 'data'),
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    ...edgeEnvironment({ ...settings, admin: `127.0.0.1:${adminPort}`, extraGlobalOptions: ['local_certs', 'skip_install_trust', `http_port ${httpPort}`, `https_port ${httpsPort}`] }),
  };
  const { child, log, stop } = spawnServer('caddy', caddyfileArgv('run', caddyfile), dir, { cwd: path.dirname(caddyfile), env });
  const rootFile = path.join(dir, 'data', 'caddy', 'pki', 'authorities', 'local', 'root.crt');
  const ready = async () => existsSync(rootFile) && (await Promise.all(hosts.map((h) => peerCertificate(h, httpsPort, { address: '127.0.0.1', timeoutMs: 1000 }).then(() => true, () => false)))).every(Boolean);
  for (let i = 0; i < 150 && !(await ready()); i++) {
    if (child.exitCode !== null) throw new Error(`Caddy exited (${child.exitCode}): ${log()}`);
    await sleep(100);
  }
  if (!(await ready())) throw new Error(`Caddy did not serve ${hosts.join(', ')} on 127.0.0.1:${httpsPort}: ${log()}`);
  return {
    httpPort,
    httpsPort,
    rootCa: readFileSync(rootFile, 'utf8'),
    reload: async (file) => {
      await $({ quiet: true, env, cwd: path.dirname(file) })`caddy ${[...caddyfileArgv('reload', file), '--address', `127.0.0.1:${adminPort}`]}`;
    },
    log,
    stop,
  };
}
