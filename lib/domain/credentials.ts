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

export function validatePassword(password: Secret): Secret {
  const value = password.reveal();
  if ([...value].length < minPasswordLength) throw new UsageError(`The password is shorter than ${minPasswordLength} characters.`, 'Choose a longer one, or pass --generate for a random one.');
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


