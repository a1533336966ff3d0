import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The developer session of EB's edge (the decisions of lib/jobs/edge-auth.ts, no I/O).
 *
 * Why a session at all: the app's pages send `Authorization: Bearer <token>` on their API calls,
 * which replaces the browser's cached Basic credential, so with Basic auth alone every logged-in
 * API call of EB answers 401. A developer proves their password once (Basic), gets a signed
 * cookie, and from then on the cookie opens EB while `Authorization` belongs to the app again.
 *
 * The cookie names the user, its expiry and a fingerprint of the user's bcrypt hash, signed with
 * HMAC-SHA256 under the edge's session key: removing the user (`make basic-auth remove`) or
 * rotating their password changes what the fingerprint must match, so the session ends at the
 * next request; forging one needs the key.
 */

/**
 * `__Host-`: browsers accept it only with Secure, Path=/ and no Domain, so it is bound to EB's own
 * HTTPS origin and never sent over plain HTTP nor to another makapix.club host (EA, the vaults).
 */
export const sessionCookieName = '__Host-makapix-edge';
/** What the check tells Caddy the developer is, for EB's upstream (a client's own copy is removed). */
export const developerHeader = 'X-Makapix-Developer';
/** Twelve hours: a working day; after it the browser's cached Basic credential renews it silently. */
export const defaultSessionSeconds = 12 * 3600;
/** HMAC-SHA256 key: 32 bytes or more of randomness. */
export const minimumKeyBytes = 32;

export interface Session {
  user: string;
  /** Unix seconds. */
  expiresAt: number;
  /** accountFingerprint() of the user's hash when the session began. */
  fingerprint: string;
}

/** Short, one-way: the cookie carries no hash, and a new hash (rotate) ends old sessions. */
export const accountFingerprint = (bcryptHash: string): string => createHash('sha256').update(bcryptHash).digest('base64url').slice(0, 22);

const mac = (key: Buffer, payload: string) => createHmac('sha256', key).update(payload).digest();

/** The cookie value: base64url("v1:user:expiresAt:fingerprint") "." base64url(HMAC). */
export function sealSession(s: Session, key: Buffer): string {
  const payload = `v1:${s.user}:${s.expiresAt}:${s.fingerprint}`;
  return `${Buffer.from(payload).toString('base64url')}.${mac(key, payload).toString('base64url')}`;
}

/** The session a cookie value holds, if its signature is the key's and it has not expired. */
export function openSession(value: string, key: Buffer, nowSeconds: number): Session | undefined {
  const m = /^([A-Za-z0-9_-]{1,200})\.([A-Za-z0-9_-]{43})$/.exec(value);
  if (!m) return undefined;
  const payload = Buffer.from(m[1]!, 'base64url').toString('utf8');
  const expected = mac(key, payload);
  const given = Buffer.from(m[2]!, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  const parts = /^v1:([a-z0-9._-]{1,32}):(\d{1,12}):([A-Za-z0-9_-]{22})$/.exec(payload);
  if (!parts) return undefined;
  const session = { user: parts[1]!, expiresAt: Number(parts[2]), fingerprint: parts[3]! };
  return session.expiresAt > nowSeconds ? session : undefined;
}

/** user and password of an `Authorization: Basic …` header (scheme case-insensitive), else undefined. */
export function parseBasicAuthorization(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Every value a Cookie header gives a name (a browser may send the same name more than once). */
export function cookieValues(header: string | undefined, name: string): string[] {
  return (header ?? '')
    .split(';')
    .map((c) => c.trim())
    .filter((c) => c.startsWith(`${name}=`))
    .map((c) => c.slice(name.length + 1));
}

/** Lax, not Strict: a top-level navigation from elsewhere (the GitHub OAuth callback) must carry it. */
export const sessionCookie = (value: string, maxAgeSeconds: number): string =>
  `${sessionCookieName}=${value}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; Secure; SameSite=Lax`;

/** The account list the check judges against: user -> fingerprint of the current hash. */
export type Accounts = ReadonlyMap<string, { hash: string; fingerprint: string }>;

export type Verdict =
  /** 200: let the request through; setCookie when a new session began. */
  | { status: 200; user: string; setCookie?: string }
  /** 401 with a Basic challenge: the browser asks for (or resends) the password. */
  | { status: 401; reason: 'none' | 'expired-or-revoked' | 'wrong-password' };

export interface CheckInput {
  /** Every session cookie value the request carries. */
  cookies: readonly string[];
  /** A parsed Basic credential and whether its password matched the user's hash (verified by the caller). */
  basic?: { user: string; verified: boolean };
  accounts: Accounts;
  key: Buffer;
  nowSeconds: number;
  sessionSeconds: number;
}

/**
 * One request's verdict. A valid session whose user still has the same hash is enough, whatever
 * `Authorization` holds (the app's Bearer token); otherwise a verified developer password starts
 * a session; otherwise 401. A session of a removed or rotated user counts as none.
 */
export function decide(input: CheckInput): Verdict {
  let stale = false;
  for (const value of input.cookies) {
    const s = openSession(value, input.key, input.nowSeconds);
    if (!s) {
      stale = true;
      continue;
    }
    if (input.accounts.get(s.user)?.fingerprint === s.fingerprint) return { status: 200, user: s.user };
    stale = true;
  }
  const basic = input.basic;
  if (basic?.verified) {
    const account = input.accounts.get(basic.user);
    if (account) {
      const expiresAt = input.nowSeconds + input.sessionSeconds;
      const value = sealSession({ user: basic.user, expiresAt, fingerprint: account.fingerprint }, input.key);
      return { status: 200, user: basic.user, setCookie: sessionCookie(value, input.sessionSeconds) };
    }
  }
  if (basic) return { status: 401, reason: 'wrong-password' };
  return { status: 401, reason: stale ? 'expired-or-revoked' : 'none' };
}
