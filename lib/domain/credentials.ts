// The credentials files the edge Caddy imports: who may open EB, as pure text in and text out.
// lib/jobs/basic-auth.ts edits them; verify and the edge read them.
import { randomBytes } from 'node:crypto';
import { ConfigError, UsageError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';

/**
 * Who may see EB through the shared Caddy. Two separate credential sets, so a device password
 * sniffed on plain-HTTP vault-dev never opens a developer's account:
 *  - developers: the EB site (snippet eb_developers_auth, file developers.caddy)
 *  - devices:    vault-dev only (snippet eb_devices_auth, file devices.caddy)
 */
export type Scope = 'developers' | 'devices';
export const scopes: readonly Scope[] = ['developers', 'devices'];

export const snippetName = (scope: Scope) => `eb_${scope}_auth` as const;
export const credentialsFileName = (scope: Scope) => `${scope}.caddy` as const;

/** Where the Caddyfile imports credentials from (git-ignored); MAKAPIX_CREDENTIALS_DIR overrides it. */
export const minPasswordLength = 12;
/** bcrypt reads at most 72 bytes: anything longer would be silently cut, so it is refused. */
const maxPasswordBytes = 72;

export function validateUsername(user: string | undefined): string {
  if (user !== undefined && /^[a-z0-9._-]{1,32}$/.test(user)) return user;
  throw new UsageError(
    `The user name ${JSON.stringify(user ?? '')} is not allowed: use 1 to 32 characters from a-z, 0-9, ".", "_" and "-".`,
    'For example: alice, bob.smith, player-17.',
  );
}

/**
 * Words that head every list of leaked passwords, and this project's own names: a password that is
 * one of them plus digits or symbols (password1234, Makapix2026!) falls to the first guesses.
 */
const commonWords = new Set([
  'password', 'passwort', 'motdepasse', 'contrasena', 'senha', 'qwerty', 'qwertyuiop', 'azerty', 'asdfgh', 'zxcvbn', 'letmein', 'welcome', 'admin', 'administrator',
  'root', 'login', 'secret', 'changeme', 'default', 'guest', 'test', 'master', 'iloveyou', 'monkey', 'dragon', 'football', 'baseball', 'sunshine', 'princess',
  'shadow', 'superman', 'trustno', 'abc', 'abcd', 'abcdef', 'makapix', 'makapixclub', 'pixel', 'pixelart', 'developer', 'development', 'dev',
]);
/** Look-alike digits and symbols read as the letters they stand for (p@ssw0rd is password). */
const leet: Record<string, string> = { '@': 'a', '4': 'a', '3': 'e', '1': 'i', '!': 'i', '0': 'o', '$': 's', '5': 's', '7': 't' };

/**
 * Why a long enough password is still weak, or undefined: only spaces, few different characters, a
 * short pattern repeated, mostly a run (12345678, abcdefgh), only digits, or a common word with
 * digits or symbols around it. The answer never contains the password.
 */
export function passwordWeakness(value: string): string | undefined {
  const chars = [...value];
  if (value.trim() === '') return 'it is only spaces';
  if (new Set(chars).size < 5) return 'it uses fewer than 5 different characters';
  for (let p = 1; p <= 6; p++) if (chars.length >= 2 * p && chars.every((c, i) => c === chars[i % p])) return 'it repeats a short pattern';
  // The longest run of neighbours one code point apart in one direction ("9" then "0" continues 1234567890).
  const step = (a: string, b: string) => (a === '9' && b === '0' ? 1 : a === '0' && b === '9' ? -1 : b.codePointAt(0)! - a.codePointAt(0)!);
  let run = 1;
  let direction = 0;
  let longest = 1;
  for (let i = 1; i < chars.length; i++) {
    const d = step(chars[i - 1]!, chars[i]!);
    if (Math.abs(d) !== 1) [run, direction] = [1, 0];
    else if (d === direction) run++;
    else [run, direction] = [2, d];
    longest = Math.max(longest, run);
  }
  if (longest >= 8) return 'most of it is a run like 12345678 or abcdefgh';
  if (/^[0-9\s]+$/.test(value)) return 'it is only digits';
  const lower = value.toLowerCase();
  // The word between the digits and symbols added around it, read without its look-alikes.
  const core = [...lower.replace(/^[^a-z@$]+|[^a-z]+$/g, '')].map((c) => leet[c] ?? c).join('');
  if (commonWords.has(lower.replace(/[^a-z]/g, '')) || commonWords.has(core.replace(/[^a-z]/g, ''))) return 'it is a common password with digits or symbols added';
  return undefined;
}

export function validatePassword(password: Secret): Secret {
  const value = password.reveal();
  if ([...value].length < minPasswordLength) throw new UsageError(`The password is shorter than ${minPasswordLength} characters.`, 'Choose a longer one, or pass --generate for a random one.');
  const weakness = passwordWeakness(value);
  if (weakness) throw new UsageError(`The password is too easy to guess: ${weakness}.`, 'Choose another (a few unrelated words work well), or pass --generate for a random one.');
  if (Buffer.byteLength(value, 'utf8') > maxPasswordBytes) throw new UsageError(`The password is longer than ${maxPasswordBytes} bytes, which bcrypt would silently cut.`, 'Choose a shorter one.');
  if (/[\r\n]/.test(value)) throw new UsageError('The password contains a line break.', 'With --password-stdin, send one line.');
  return password;
}

/** A strong random password: 24 characters of base64url, 144 bits. */
export const generatePassword = (): Secret => new Secret(randomBytes(18).toString('base64url'));

export interface Credential {
  user: string;
  hash: string;
  /** ISO time; "unknown" when the file was edited by hand without the metadata line. */
  addedAt: string;
  rotatedAt?: string;
}

/**
 * The account that stands in when there is no user: Caddy's basicauth needs at least one, and an
 * upper-case name can never collide with a real (lower-case) user. Its password was random and
 * thrown away, so nobody can log in with it.
 */
export const lockedAccount = 'LOCKED';

const hashPattern = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** The file the Caddyfile imports: comments carry the metadata `list` shows, the snippet the hashes. */
export function renderCredentials(scope: Scope, users: readonly Credential[], lockedHash: string): string {
  const guards = scope === 'developers' ? 'the EB site' : 'vault-dev (devices only)';
  const sorted = [...users].sort((a, b) => a.user.localeCompare(b.user));
  const accounts = sorted.length ? sorted.map((u) => `\t\t${u.user} ${u.hash}`) : [`\t\t${lockedAccount} ${lockedHash}`];
  return [
    `# Who may open ${guards}. Managed by \`make basic-auth\` (scripts/gen-basic-auth.ts --scope ${scope}); do not edit by hand.`,
    ...(sorted.length ? [] : ['# No users: the locked account below has a random password nobody knows, so every request gets 401.']),
    ...sorted.map((u) => `# user ${u.user} added ${u.addedAt}${u.rotatedAt ? ` rotated ${u.rotatedAt}` : ''}`),
    `(${snippetName(scope)}) {`,
    '\tbasicauth {',
    ...accounts,
    '\t}',
    '}',
    '',
  ].join('\n');
}

/** Reads a credentials file back; anything it did not write is an error (exit 2), not a guess. */
export function parseCredentials(text: string, scope: Scope, file: string): Credential[] {
  const meta = new Map<string, { addedAt: string; rotatedAt?: string }>();
  const users: Credential[] = [];
  let state: 'top' | 'snippet' | 'basicauth' | 'closed' = 'top';
  let closedSnippet = false;
  const fail = (line: number, what: string): never => {
    throw new ConfigError(`${file}:${line}: ${what}.`, [], `Restore it from a backup, or move it away and add the users again with make basic-auth.`);
  };
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const n = i + 1;
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# user (\S+) added (\S+)(?: rotated (\S+))?$/.exec(line);
      if (m) meta.set(m[1]!, { addedAt: m[2]!, ...(m[3] && { rotatedAt: m[3] }) });
      return;
    }
    if (state === 'top' && line === `(${snippetName(scope)}) {`) state = 'snippet';
    else if (state === 'snippet' && line === 'basicauth {') state = 'basicauth';
    else if (state === 'basicauth' && line === '}') state = 'closed';
    else if (state === 'closed' && line === '}' && !closedSnippet) closedSnippet = true;
    else if (state === 'basicauth') {
      const parts = line.split(/\s+/);
      if (parts.length !== 2 || !hashPattern.test(parts[1]!)) fail(n, 'expected "<user> <bcrypt hash>"');
      const [user, hash] = parts as [string, string];
      if (user === lockedAccount) return;
      validateUsername(user);
      if (users.some((u) => u.user === user)) fail(n, `user ${user} appears twice`);
      users.push({ user, hash, addedAt: 'unknown' });
    } else fail(n, state === 'top' ? `expected the snippet (${snippetName(scope)})` : 'unexpected line');
  });
  if (!closedSnippet) fail(text.split('\n').length, `the snippet (${snippetName(scope)}) is not complete`);
  return users.map((u) => ({ ...u, ...meta.get(u.user) }));
}

export type Change =
  | { action: 'add'; user: string; hash: string; force: boolean }
  | { action: 'rotate'; user: string; hash: string }
  | { action: 'remove'; user: string };

/** The new user list after a change; a change that does not fit the current list is a UsageError. */
export function applyChange(current: readonly Credential[], change: Change, now: string, scope: Scope): Credential[] {
  const existing = current.find((u) => u.user === change.user);
  const others = current.filter((u) => u.user !== change.user);
  switch (change.action) {
    case 'add':
      if (existing && !change.force) throw new UsageError(`The ${scope} user ${change.user} already exists.`, `Use rotate to change the password, or add --force to replace the user.`);
      return [...others, { user: change.user, hash: change.hash, addedAt: now }];
    case 'rotate':
      if (!existing) throw new UsageError(`There is no ${scope} user ${change.user} to rotate.`, 'See make basic-auth ARGS="list", or use add.');
      return [...others, { ...existing, hash: change.hash, rotatedAt: now }];
    case 'remove':
      if (!existing) throw new UsageError(`There is no ${scope} user ${change.user} to remove.`, 'See make basic-auth ARGS="list".');
      return others;
  }
}


