import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { credentialsFileName, parseCredentials } from '../domain/credentials.ts';
import { verifyPassword } from '../core/password.ts';
import { ConfigError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import { accountFingerprint, cookieValues, decide, developerHeader, minimumKeyBytes, parseBasicAuthorization, sessionCookieName, type Accounts } from '../domain/edge-session.ts';

export { defaultSessionSeconds } from '../domain/edge-session.ts';

/**
 * EB's developer check, the upstream of Caddy's `forward_auth`-style block (caddy/Caddyfile,
 * `eb_developer_session`). Caddy sends it every protected EB request's headers as `GET /check`;
 * a 2xx lets the request through (with Set-Cookie when a session began), anything else is the
 * answer the client gets (401 with a Basic challenge). It reads the same credentials file
 * `make basic-auth` maintains (developers.caddy) and re-reads it whenever it changed, so a removed
 * developer is refused from the next request on, session or not.
 */

export interface EdgeAuthOptions {
  host: string;
  port: number;
  /** The folder of developers.caddy (the `developers` scope of make basic-auth), caddy/credentials. */
  credentialsDir: string;
  key: Secret;
  sessionSeconds: number;
  /** ms since the epoch; tests move it. */
  now?: () => number;
  log?: (line: string) => void;
}

export interface EdgeAuthServer {
  port: number;
  close(): Promise<void>;
}

/** The session key file holds at least 32 random bytes as hex (tools/caddy.ts ensureSessionKey writes one). */
export function parseSessionKey(text: string, file: string): Secret {
  const hex = text.trim();
  if (!/^([0-9a-f]{2})+$/i.test(hex) || hex.length < minimumKeyBytes * 2) {
    throw new ConfigError(`${file} does not hold a session key (at least ${minimumKeyBytes} bytes as hex).`, [], 'Delete it and run make up-edge, which writes a new one (every developer session then ends).');
  }
  return new Secret(hex);
}

const realm = 'Makapix development';

/** The developers' file, re-read only when it changed (a rename by make basic-auth changes the inode). */
function accountsReader(file: string, log: (line: string) => void): () => Promise<Accounts> {
  let seen = '';
  let accounts: Accounts = new Map();
  return async () => {
    const st = await stat(file).catch(() => undefined);
    const id = st ? `${st.ino}:${st.size}:${st.mtimeMs}` : 'missing';
    if (id === seen) return accounts;
    seen = id;
    try {
      if (!st) throw new Error('the file is missing');
      const users = parseCredentials(await readFile(file, 'utf8'), 'developers', file);
      accounts = new Map(users.map((u) => [u.user, { hash: u.hash, fingerprint: accountFingerprint(u.hash) }]));
      log(JSON.stringify({ event: 'credentials', file, developers: users.length }));
    } catch (err) {
      // Fail closed: nobody gets in until the file is readable again.
      accounts = new Map();
      log(JSON.stringify({ event: 'credentials-unreadable', file, error: (err as Error).message }));
    }
    return accounts;
  };
}

/**
 * Passwords that matched, for the length of a session, so a developer pays bcrypt's second once
 * and not on every request a browser sends with its cached Basic credential. Keyed by a digest of
 * user, password and hash: a new hash (rotate) never matches an old entry.
 */
function verifiedCache(ttlMs: number, now: () => number) {
  const seen = new Map<string, number>();
  const keyOf = (user: string, password: string, hash: string) => createHash('sha256').update(`${user}\0${password}\0${hash}`).digest('base64');
  return {
    async verify(user: string, password: string, hash: string): Promise<boolean> {
      const k = keyOf(user, password, hash);
      if ((seen.get(k) ?? 0) > now()) return true;
      if (!(await verifyPassword(password, hash))) return false;
      if (seen.size >= 1000) seen.clear();
      seen.set(k, now() + ttlMs);
      return true;
    },
  };
}

export async function startEdgeAuth(o: EdgeAuthOptions): Promise<EdgeAuthServer> {
  const now = o.now ?? Date.now;
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const key = Buffer.from(o.key.reveal(), 'hex');
  const accounts = accountsReader(path.join(o.credentialsDir, credentialsFileName('developers')), log);
  const cache = verifiedCache(o.sessionSeconds * 1000, now);

  const check = async (req: IncomingMessage, res: ServerResponse) => {
    const current = await accounts();
    const parsed = parseBasicAuthorization(req.headers.authorization);
    const account = parsed && current.get(parsed.user);
    const verified = Boolean(parsed && account && (await cache.verify(parsed.user, parsed.password, account.hash)));
    const verdict = decide({
      cookies: cookieValues(req.headers.cookie, sessionCookieName),
      ...(parsed && { basic: { user: parsed.user, verified } }),
      accounts: current,
      key,
      nowSeconds: Math.floor(now() / 1000),
      sessionSeconds: o.sessionSeconds,
    });
    const from = String(req.headers['x-forwarded-for'] ?? req.socket.remoteAddress ?? '');
    if (verdict.status === 200) {
      if (verdict.setCookie) log(JSON.stringify({ event: 'session-started', user: verdict.user, from }));
      res.writeHead(200, { [developerHeader]: verdict.user, 'Cache-Control': 'no-store', ...(verdict.setCookie && { 'Set-Cookie': verdict.setCookie }) });
      res.end();
      return;
    }
    // Who tried a wrong password is worth a line; anonymous requests (every first visit) are not.
    if (verdict.reason === 'wrong-password') log(JSON.stringify({ event: 'refused', user: parsed?.user.slice(0, 64), from }));
    res.writeHead(401, { 'WWW-Authenticate': `Basic realm="${realm}", charset="UTF-8"`, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end('This is the development site of Makapix Club: a developer account is needed.\n');
  };

  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/check') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Only GET /check is served here.\n');
      return;
    }
    check(req, res).catch((err: Error) => {
      log(JSON.stringify({ event: 'error', error: err.message }));
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end('The developer check failed.\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
