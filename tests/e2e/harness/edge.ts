// The edge Caddy of the e2e tier: the toolkit's own caddy/docker-compose.edge.yml and Caddyfile, on
// free loopback ports, with local certificates (no ACME offline), and HTTPS requests to it as a
// browser would make them (Host and SNI of the real name, connected to loopback).
import https from 'node:https';
import path from 'node:path';
import { freePort } from '../../../dev/ports.ts';

export interface EdgePorts {
  http: number;
  https: number;
}

export async function edgePorts(): Promise<EdgePorts> {
  return { http: await freePort(), https: await freePort() };
}

/**
 * What scripts need to start the edge here (read by caddy/docker-compose.edge.yml and cutover-prod):
 * its ports, images (Caddy, and Node for edge-auth), local certificates, and the world's vault and log folders.
 */
export function edgeEnv(ports: EdgePorts, images: { vault: string; node: string }, root: string): Record<string, string> {
  return {
    EA_VAULT_HOST_PATH: path.join(root, 'vault-prod'),
    EB_VAULT_HOST_PATH: path.join(root, 'vault-dev'),
    CADDY_LOG_HOST_DIR: path.join(root, 'caddy-logs'),
    EDGE_HTTP_BIND: `127.0.0.1:${ports.http}`,
    EDGE_HTTPS_BIND: `127.0.0.1:${ports.https}`,
    CADDY_IMAGE: images.vault,
    EDGE_AUTH_IMAGE: images.node,
    CADDY_EXTRA_GLOBAL_OPTIONS: 'local_certs\nskip_install_trust',
  };
}

export interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  error?: string;
}

/** One HTTPS GET of https://<host><path> through the edge on loopback. */
export function get(port: number, host: string, path: string, auth?: { user: string; password: string }, timeoutMs = 3000): Promise<Answer> {
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        servername: host,
        rejectUnauthorized: false,
        timeout: timeoutMs,
        headers: { Host: host, ...(auth && { Authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}` }) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, body: '', headers: {}, error: err.message }));
    req.end();
  });
}
