import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { accountFingerprint, cookieValues, decide, openSession, parseBasicAuthorization, sealSession, sessionCookie, sessionCookieName, type Accounts, type CheckInput } from '../../../lib/domain/edge-session.ts';

const key = Buffer.alloc(32, 7);
const otherKey = Buffer.alloc(32, 8);
const now = 1_800_000_000;
const accounts: Accounts = new Map([
  ['alice', { hash: '$2b$04$alice', fingerprint: accountFingerprint('$2b$04$alice') }],
  ['bob', { hash: '$2b$04$bob', fingerprint: accountFingerprint('$2b$04$bob') }],
]);
const aliceSession = (expiresAt = now + 60, fingerprint = accounts.get('alice')!.fingerprint) => sealSession({ user: 'alice', expiresAt, fingerprint }, key);
const input = (over: Partial<CheckInput>): CheckInput => ({ cookies: [], accounts, key, nowSeconds: now, sessionSeconds: 3600, ...over });

test('a sealed session opens with its key only, and not once expired', () => {
  const value = aliceSession();
  assert.equal(openSession(value, key, now), { user: 'alice', expiresAt: now + 60, fingerprint: accounts.get('alice')!.fingerprint });
  assert.is(openSession(value, otherKey, now), undefined);
  assert.is(openSession(value, key, now + 60), undefined, 'expired at expiresAt');
  assert.match(value, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/, 'cookie-safe');
});

test('a changed byte anywhere, a swapped payload or garbage: no session', () => {
  const value = aliceSession();
  const [payload, mac] = value.split('.') as [string, string];
  const bobPayload = Buffer.from(`v1:bob:${now + 60}:${accounts.get('bob')!.fingerprint}`).toString('base64url');
  for (const bad of [`${bobPayload}.${mac}`, `${payload}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`, `${payload}.`, '', 'x', `${payload}.${mac}.x`, value.toUpperCase()]) {
    assert.is(openSession(bad, key, now), undefined, bad);
  }
});

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
const basicCases: [string | undefined, { user: string; password: string } | undefined][] = [
  [basic('alice:pw:with:colons'), { user: 'alice', password: 'pw:with:colons' }],
  [`basic ${Buffer.from('alice:x').toString('base64')}`, { user: 'alice', password: 'x' }],
  [`  BASIC   ${Buffer.from('a:').toString('base64')}  `, { user: 'a', password: '' }],
  [basic('no-colon'), undefined],
  ['Bearer abc.def', undefined],
  ['Basic', undefined],
  [undefined, undefined],
];
for (const [header, want] of basicCases) test(`Basic header ${JSON.stringify(header)}`, () => assert.equal(parseBasicAuthorization(header), want));

test('cookie values: every one of the name, no other name', () => {
  assert.equal(cookieValues(`a=1; ${sessionCookieName}=x; ${sessionCookieName}x=y; b=${sessionCookieName}=z; ${sessionCookieName}=w`, sessionCookieName), ['x', 'w']);
  assert.equal(cookieValues(undefined, sessionCookieName), []);
});

test('the cookie: __Host-, HttpOnly, Secure, SameSite=Lax, Path=/, no Domain, Max-Age', () => {
  const c = sessionCookie('v', 3600);
  assert.is(c, `${sessionCookieName}=v; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax`);
  assert.ok(sessionCookieName.startsWith('__Host-'));
});

const verdicts: [string, Partial<CheckInput>, { status: number; user?: string; reason?: string; cookie?: boolean }][] = [
  ['a valid session, whatever Authorization holds', { cookies: [aliceSession()] }, { status: 200, user: 'alice', cookie: false }],
  ['a stale cookie next to a valid one', { cookies: ['junk', aliceSession()] }, { status: 200, user: 'alice', cookie: false }],
  ['a verified password without a session starts one', { basic: { user: 'bob', verified: true } }, { status: 200, user: 'bob', cookie: true }],
  ['a verified password with an expired session starts a new one', { cookies: [aliceSession(now - 1)], basic: { user: 'alice', verified: true } }, { status: 200, user: 'alice', cookie: true }],
  ['nothing', {}, { status: 401, reason: 'none' }],
  ['a wrong password', { basic: { user: 'alice', verified: false } }, { status: 401, reason: 'wrong-password' }],
  ['an expired session', { cookies: [aliceSession(now - 1)] }, { status: 401, reason: 'expired-or-revoked' }],
  ['a session of a removed developer', { cookies: [aliceSession()], accounts: new Map([['bob', accounts.get('bob')!]]) }, { status: 401, reason: 'expired-or-revoked' }],
  ['a session from before a password rotation', { cookies: [aliceSession(now + 60, accountFingerprint('$2b$04$old'))] }, { status: 401, reason: 'expired-or-revoked' }],
  ['a verified password of a user no longer listed', { basic: { user: 'carol', verified: true } }, { status: 401, reason: 'wrong-password' }],
];
for (const [name, over, want] of verdicts) {
  test(`verdict: ${name}`, () => {
    const v = decide(input(over));
    assert.is(v.status, want.status);
    if (v.status === 200) {
      assert.is(v.user, want.user);
      assert.is(Boolean(v.setCookie), want.cookie);
      if (v.setCookie) {
        const value = /^__Host-makapix-edge=([^;]+);/.exec(v.setCookie)![1]!;
        assert.equal(openSession(value, key, now), { user: want.user!, expiresAt: now + 3600, fingerprint: accounts.get(want.user!)!.fingerprint });
      }
    } else assert.is(v.reason, want.reason);
  });
}

test.run();
