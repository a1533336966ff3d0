// Thin probes of live endpoints that verify and monitor share: one HTTP(S) request, the certificate
// a TLS endpoint presents, the certificates in a folder. They measure and report; deciding whether
// a measurement is good is the job of the pure evaluators in lib/jobs/verify.ts and lib/jobs/monitor.ts.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { UsageError } from '../core/errors.ts';
import type { Secret } from '../core/secret.ts';

/**
 * Where to connect for a host name instead of asking DNS, like curl's --resolve: lets the same
 * command run against a sandbox on loopback while Host, SNI and certificate checks use the real name.
 */
export type ResolveMap = ReadonlyMap<string, string>;

/** Parses repeated `host:address` flags (`makapix.club:127.0.0.1`). */
export function parseResolve(values: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const v of values) {
    const i = v.indexOf(':');
    const host = v.slice(0, i).toLowerCase();
    const address = v.slice(i + 1).replace(/^\[(.*)\]$/, '$1');
    if (i <= 0 || !address) throw new UsageError(`--resolve ${JSON.stringify(v)} is not host:address.`, 'Write it like --resolve makapix.club:127.0.0.1.');
    map.set(host, address);
  }
  return map;
}

/** `--ca-file` PEM files; a missing one is a usage error, not a failed check. */
export function readCaFiles(files: readonly string[]): string[] {
  return files.map((file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`--ca-file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`, 'Give the path of a PEM certificate.');
    }
  });
}

export interface HttpProbe {
  url: string;
  /** Connect here instead of resolving the URL's host (see ResolveMap). */
  address?: string;
  /** Extra CA certificates (PEM) to trust besides the system's, e.g. a sandbox proxy's local CA. */
  ca?: string[];
  auth?: { user: string; password: Secret };
  method?: 'GET' | 'HEAD' | 'POST';
  body?: string;
  timeoutMs?: number;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The first 64 KiB of the body: enough for health answers and robots.txt, bounded for anything else. */
  body: string;
  ms: number;
}

const maxBody = 64 * 1024;

/** One HTTP(S) request without following redirects (a redirect is itself something to check). */
export function httpRequest(p: HttpProbe): Promise<HttpAnswer> {
  const u = new URL(p.url);
  const secure = u.protocol === 'https:';
  const headers: Record<string, string> = { host: u.host, 'user-agent': 'makapix-ops' };
  if (p.auth) headers.authorization = `Basic ${Buffer.from(`${p.auth.user}:${p.auth.password.reveal()}`).toString('base64')}`;
  if (p.body !== undefined) headers['content-length'] = String(Buffer.byteLength(p.body));
  const options: https.RequestOptions = {
    host: p.address ?? u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port || (secure ? 443 : 80),
    path: `${u.pathname}${u.search}`,
    method: p.method ?? 'GET',
    headers,
    agent: false,
    ...(secure && { servername: u.hostname, ...(p.ca && { ca: [...tls.rootCertificates, ...p.ca] }) }),
  };
  const timeoutMs = p.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = (secure ? https : http).request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < maxBody) body += chunk.slice(0, maxBody - body.length);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: performance.now() - started }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    // Short, because callers label it with the URL they asked for.
    req.on('error', (err: NodeJS.ErrnoException) => reject(new Error(`${err.code ?? err.message}${p.address ? ` (connecting to ${p.address})` : ''}`)));
    req.end(p.body);
  });
}

export interface CertificateInfo {
  /** Where it came from: `host:port` or a file path. */
  source: string;
  subject: string;
  notAfter: Date;
}

/** The CN, or (for certificates with an empty subject, like Caddy's local ones) the first SAN. */
const subjectOf = (c: X509Certificate): string =>
  c.subject?.split('\n').find((l) => l.startsWith('CN='))?.slice(3) ?? c.subjectAltName?.split(', ')[0]?.replace(/^DNS:/, '') ?? (c.subject?.replace(/\n/g, ', ') || 'no subject');

/** The certificate a TLS endpoint presents for `host` (SNI), whether or not it is trusted here. */
export function peerCertificate(host: string, port: number, opts: { address?: string; timeoutMs?: number } = {}): Promise<CertificateInfo> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    // Trust is verify's question; here only the expiry date matters, so an untrusted chain is read too.
    const socket = tls.connect({ host: opts.address ?? host, port, servername: host, rejectUnauthorized: false });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no TLS handshake within ${timeoutMs} ms`)));
    socket.once('secureConnect', () => {
      try {
        const cert = socket.getPeerX509Certificate();
        if (!cert) throw new Error('presented no certificate');
        resolve({ source: `${host}:${port}`, subject: subjectOf(cert), notAfter: new Date(cert.validTo) });
      } catch (err) {
        reject(err);
      } finally {
        socket.destroy();
      }
    });
    socket.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`${err.code ?? err.message}${opts.address ? ` (connecting to ${opts.address})` : ''}`)));
  });
}

const pemBlock = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in the given PEM files (a chain file counts each of its certificates). */
export async function certificatesIn(files: readonly string[]): Promise<CertificateInfo[]> {
  const found: CertificateInfo[] = [];
  for (const file of files) {
    for (const block of (await readFile(file, 'utf8')).match(pemBlock) ?? []) {
      const cert = new X509Certificate(block);
      found.push({ source: file, subject: subjectOf(cert), notAfter: new Date(cert.validTo) });
    }
  }
  return found;
}

/**
 * Whether an HTTP server answers at host:port within the timeout, with any status (a proxy's port 80
 * answers with a redirect). A bare TCP connect would not do: Docker's proxy accepts connections on a
 * published port before the server inside listens.
 */
export function httpResponds(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host, port, path: '/', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
  });
}
