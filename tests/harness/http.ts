// One HTTP(S) request to a server the test started on loopback, the way a browser reaches the edge.
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface Target {
  scheme: 'http' | 'https';
  port: number;
  /** The CA that signed the server's certificate (https). */
  ca?: string | Buffer;
}

/** Sends one request to 127.0.0.1 on a fresh connection: a Caddy reload closes idle keep-alive ones. */
export function send(to: Target, host: string, urlPath: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { host, ...opts.headers };
  if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
  const common = { host: '127.0.0.1', port: to.port, path: urlPath, method: opts.method ?? 'GET', headers, timeout: 20_000, agent: false };
  return new Promise((resolve, reject) => {
    const done = (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const req = to.scheme === 'http' ? httpRequest(common, done) : httpsRequest({ ...common, servername: host, ...(to.ca && { ca: to.ca }) }, done);
    req.on('timeout', () => req.destroy(new Error(`${to.scheme}://${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
