import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import bcrypt from 'bcryptjs';
import { applyChange, lockedAccount, parseCredentials, renderCredentials, validatePassword, validateUsername, generatePassword, type Credential } from '../../../lib/domain/credentials.ts';
import { caddyCommand } from '../../../lib/tools/caddy.ts';
import { settingsFrom } from '../../../lib/core/settings.ts';
import { passwordSource, readSecret } from '../../../lib/jobs/basic-auth.ts';
import { ConfigError, UsageError } from '../../../lib/core/errors.ts';
import { Secret } from '../../../lib/core/secret.ts';

const h = (c: string) => `$2b$04$${c.repeat(53).slice(0, 53)}`;
const alice: Credential = { user: 'alice', hash: h('a'), addedAt: '2026-11-25T20:00:00Z' };
const bob: Credential = { user: 'bob', hash: h('b'), addedAt: '2026-11-25T21:00:00Z', rotatedAt: '2026-11-26T08:00:00Z' };

test('rendering: the snippet Caddy imports, metadata as comments, users sorted', () => {
  const text = renderCredentials('developers', [bob, alice], h('x'));
  assert.match(text, /^# user alice added 2026-11-25T20:00:00Z$/m);
  assert.match(text, /^# user bob added 2026-11-25T21:00:00Z rotated 2026-11-26T08:00:00Z$/m);
  assert.match(text, `(eb_developers_auth) {\n\tbasicauth {\n\t\talice ${alice.hash}\n\t\tbob ${bob.hash}\n\t}\n}\n`);
  assert.not.match(text, lockedAccount);
  assert.match(renderCredentials('devices', [alice], h('x')), /^\(eb_devices_auth\) \{$/m);
});

test('rendering with no user: still a complete snippet, holding only the locked account', () => {
  const text = renderCredentials('devices', [], h('z'));
  assert.match(text, `(eb_devices_auth) {\n\tbasicauth {\n\t\t${lockedAccount} ${h('z')}\n\t}\n}\n`);
  assert.equal(parseCredentials(text, 'devices', 'f'), []);
});

test('parsing gives back what rendering wrote; a user without metadata is "unknown"', () => {
  assert.equal(parseCredentials(renderCredentials('developers', [alice, bob], h('x')), 'developers', 'f'), [alice, bob]);
  const bare = `(eb_developers_auth) {\n\tbasicauth {\n\t\tcarol ${h('c')}\n\t}\n}\n`;
  assert.equal(parseCredentials(bare, 'developers', 'f'), [{ user: 'carol', hash: h('c'), addedAt: 'unknown' }]);
});

const malformed: [string, string, RegExp][] = [
  ['the other scope', renderCredentials('devices', [alice], h('x')), /expected the snippet \(eb_developers_auth\)/],
  ['a plain-text password', `(eb_developers_auth) {\n\tbasicauth {\n\t\talice hunter2hunter2\n\t}\n}\n`, /f:3: expected "<user> <bcrypt hash>"/],
  ['a user twice', `(eb_developers_auth) {\n\tbasicauth {\n\t\talice ${h('a')}\n\t\talice ${h('b')}\n\t}\n}\n`, /user alice appears twice/],
  ['a cut-off file', `(eb_developers_auth) {\n\tbasicauth {\n\t\talice ${h('a')}\n`, /not complete/],
  ['trailing junk', `${renderCredentials('developers', [alice], h('x'))}respond 200\n`, /unexpected line/],
  ['a bad user name', `(eb_developers_auth) {\n\tbasicauth {\n\t\tAlice ${h('a')}\n\t}\n}\n`, /not allowed/],
];
for (const [what, text, message] of malformed) {
  test(`parsing refuses ${what}`, () => {
    try {
      parseCredentials(text, 'developers', 'f');
      assert.unreachable('parsed');
    } catch (err) {
      assert.instance(err, what === 'a bad user name' ? UsageError : ConfigError);
      assert.match((err as Error).message, message);
    }
  });
}

const names: [string | undefined, boolean][] = [
  ['alice', true], ['bob.smith', true], ['player_1-2', true], ['a'.repeat(32), true],
  ['', false], [undefined, false], ['a'.repeat(33), false], ['Alice', false], ['al ice', false], ['al:ice', false], ['élise', false], [lockedAccount, false],
];
for (const [name, ok] of names) {
  test(`user name ${JSON.stringify(name)} is ${ok ? 'accepted' : 'refused (exit 2)'}`, () => {
    if (ok) assert.is(validateUsername(name), name);
    else assert.throws(() => validateUsername(name), (e: unknown) => e instanceof UsageError && e.exitCode === 2);
  });
}

/** n characters with variety and no pattern: the length rules alone decide. */
const varied = (n: number) => 'Zq3xR8mTb1Lw7Kp2Vn6Hj4Yc9Fg5Ds0AeUiOy'.repeat(3).slice(0, n);
const umlauts = 'üöäéèàçñßøåæ';
const passwords: [string, boolean][] = [
  [varied(11), false], [varied(12), true], [umlauts, true], [varied(72), true], [varied(73), false], [umlauts.repeat(4).slice(0, 37), false], ['twelve chars\nmore', false],
  // Long enough but weak (issue 20): refused.
  ['aaaaaaaaaaaa', false], ['x'.repeat(72), false], ['ü'.repeat(12), false], [' '.repeat(12), false], ['password1234', false], ['Password2026!', false], ['p@ssw0rd2026', false],
  ['Makapix12345', false], ['123456789012', false], ['abcdefghijkl', false], ['qwertyuiop12', false], ['abcabcabcabc', false], ['837261940556', false], ['zyxwvutsrq12', false],
  // Long enough and varied: accepted.
  ['alice-correct-horse-14', true], ['long-enough-password', true], ['tv-device-password-1', true], ['bob-new-password-2026', true], ['gravel mango 7 tulip', true],
];
for (const [pw, ok] of passwords) {
  test(`password of ${[...pw].length} characters / ${Buffer.byteLength(pw)} bytes is ${ok ? 'accepted' : 'refused'}, and never echoed`, () => {
    if (ok) return void validatePassword(new Secret(pw));
    try {
      validatePassword(new Secret(pw));
      assert.unreachable('accepted');
    } catch (err) {
      assert.instance(err, UsageError);
      assert.not.match(`${(err as UsageError).message} ${(err as UsageError).hint}`, pw);
    }
  });
}


test('changes: add, add --force, rotate, remove, and the refusals', () => {
  const now = '2026-12-01T00:00:00Z';
  assert.equal(applyChange([alice], { action: 'add', user: 'bob', hash: h('n'), force: false }, now, 'developers'), [alice, { user: 'bob', hash: h('n'), addedAt: now }]);
  assert.throws(() => applyChange([alice], { action: 'add', user: 'alice', hash: h('n'), force: false }, now, 'developers'), /already exists/);
  assert.equal(applyChange([alice], { action: 'add', user: 'alice', hash: h('n'), force: true }, now, 'developers'), [{ user: 'alice', hash: h('n'), addedAt: now }]);
  assert.equal(applyChange([alice, bob], { action: 'rotate', user: 'alice', hash: h('n') }, now, 'developers'), [bob, { ...alice, hash: h('n'), rotatedAt: now }]);
  assert.throws(() => applyChange([alice], { action: 'rotate', user: 'zed', hash: h('n') }, now, 'developers'), /no developers user zed to rotate/);
  assert.equal(applyChange([alice, bob], { action: 'remove', user: 'alice' }, now, 'developers'), [bob]);
  assert.throws(() => applyChange([alice], { action: 'remove', user: 'zed' }, now, 'devices'), (e: unknown) => e instanceof UsageError && /no devices user zed/.test(e.message));
});

test('password sources: exactly one; no terminal and no flag is exit 2; stdin loses one line break', async () => {
  const input = new PassThrough();
  const base = { stdin: false, generate: false, tty: false, input, ask: async () => new Secret('typed-password') };
  assert.throws(() => passwordSource(base), /No password source/);
  assert.throws(() => passwordSource({ ...base, stdin: true, generate: true }), /exclude each other/);
  assert.is((await passwordSource({ ...base, tty: true }).get()).reveal(), 'typed-password');
  const gen = passwordSource({ ...base, generate: true });
  assert.ok(gen.generated);
  assert.match((await gen.get()).reveal(), /^[A-Za-z0-9_-]{24}$/);
  input.end('correct horse battery\n');
  assert.is((await passwordSource({ ...base, stdin: true }).get()).reveal(), 'correct horse battery');
  assert.is((await readSecret(PassThrough.from(['two\r\n']))).reveal(), 'two');
});

test('generated passwords differ and pass validation; their bcrypt hash is in the form Caddy reads', async () => {
  const a = generatePassword();
  assert.is.not(a.reveal(), generatePassword().reveal());
  validatePassword(a);
  assert.match(await bcrypt.hash(a.reveal(), 4), /^\$2[ab]\$04\$[./A-Za-z0-9]{53}$/);
});

test('the caddy argv: reload goes to the admin address; no credentials on the command line', () => {
  const target = { admin: '127.0.0.1:2999', caddyfile: '/srv/caddy/Caddyfile', bin: 'caddy' };
  assert.equal(caddyCommand(target, 'reload'), { cmd: 'caddy', argv: ['reload', '--config', '/srv/caddy/Caddyfile', '--adapter', 'caddyfile', '--address', '127.0.0.1:2999'] });
  assert.equal(caddyCommand(target, 'validate').argv, ['validate', '--config', '/srv/caddy/Caddyfile', '--adapter', 'caddyfile']);
  // Inside the edge container: its own Caddyfile and environment, its admin API never on the host.
  assert.equal(caddyCommand({ ...target, container: 'makapix-edge-caddy' }, 'reload'), { cmd: 'docker', argv: ['exec', 'makapix-edge-caddy', 'caddy', 'reload', '--config', '/etc/caddy/Caddyfile', '--adapter', 'caddyfile'] });
});

test('the Caddy target: the edge container by default, CADDY_CONTAINER="" for a Caddy on the host', () => {
  assert.is(settingsFrom({}).caddy.container, 'makapix-edge-caddy');
  assert.is(settingsFrom({}).caddy.admin, 'localhost:2019');
  const host = settingsFrom({ CADDY_CONTAINER: '', CADDY_ADMIN: '127.0.0.1:3019' }).caddy;
  assert.is(host.container, undefined);
  assert.is(host.admin, '127.0.0.1:3019');
});

test.run();
