import { readFile, stat, chown, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { hashPassword } from '../core/password.ts';
import { $ } from 'zx';
import { caddyDir } from '../core/paths.ts';
import { ConfigError, JobError, UsageError } from '../core/errors.ts';
import { Secret, redact } from '../core/secret.ts';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { caddyfileArgv } from '../tools/caddy.ts';
import { withLock } from '../core/lock.ts';
import type { Environment } from '../core/config.ts';
import type { Confirm } from '../core/ui.ts';

/**
 * Who may see EB through the shared Caddy. Two separate credential sets, so a device password
 * sniffed on plain-HTTP vault-dev never opens a developer's account:
 *  - developers: the EB site (snippet eb_developers_auth, file developers.caddy)
 *  - devices:    vault-dev only (snippet eb_devices_auth, file devices.caddy)
 */
export type Scope = 'developers' | 'devices';
export const scopes: readonly Scope[] = ['developers', 'devices'];

const otherScope = (scope: Scope): Scope => (scope === 'developers' ? 'devices' : 'developers');
export const snippetName = (scope: Scope) => `eb_${scope}_auth` as const;
export const credentialsFileName = (scope: Scope) => `${scope}.caddy` as const;

/** Where the Caddyfile imports credentials from (git-ignored); MAKAPIX_CREDENTIALS_DIR overrides it. */
export const credentialsDir = (): string => path.resolve(process.env.MAKAPIX_CREDENTIALS_DIR ?? path.join(caddyDir, 'credentials'));

/** The cost Caddy's own `hash-password` uses; a guess then takes ~1 s of CPU per try. */
export const defaultCost = 14;
export const minPasswordLength = 12;
/** bcrypt reads at most 72 bytes: anything longer would be silently cut, so it is refused. */
const maxPasswordBytes = 72;

export function parseScope(value: string | undefined): Scope {
  const v = value ?? 'developers';
  if ((scopes as readonly string[]).includes(v)) return v as Scope;
  throw new UsageError(`--scope must be "developers" or "devices", got ${JSON.stringify(v)}.`, 'developers guards the EB site, devices guards vault-dev.');
}

export function parseCost(value: string | undefined): number {
  const v = value ?? String(defaultCost);
  if (/^\d+$/.test(v) && +v >= 4 && +v <= 31) return +v;
  throw new UsageError(`--cost must be a whole number from 4 to 31, got ${JSON.stringify(v)}.`, `The default, ${defaultCost}, is what Caddy's hash-password uses.`);
}

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


/** Reads a whole secret from a stream (stdin), without the final line break. */
export async function readSecret(stream: NodeJS.ReadableStream): Promise<Secret> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return new Secret(Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, ''));
}

// ---- the running Caddy ---------------------------------------------------------------------

export interface CaddyTarget {
  /** Admin API address, host:port (CADDY_ADMIN, as the Caddyfile's `admin {$CADDY_ADMIN:localhost:2019}`). */
  admin: string;
  /** The Caddyfile the running Caddy was started with (MAKAPIX_CADDYFILE; default caddy/Caddyfile). */
  caddyfile: string;
  /** The caddy binary (CADDY_BIN). */
  bin: string;
  /**
   * The Docker container of the shared Caddy (CADDY_CONTAINER, default makapix-edge-caddy from
   * caddy/docker-compose.edge.yml; empty for a Caddy on the host). When it runs, the reload happens
   * inside it, where its own Caddyfile (/etc/caddy/Caddyfile) and environment are, so the
   * placeholders adapt the same; its admin API is never published on the host.
   */
  container?: string;
}

export const defaultCaddyContainer = 'makapix-edge-caddy';

export const caddyTarget = (): CaddyTarget => {
  const container = process.env.CADDY_CONTAINER ?? defaultCaddyContainer;
  return {
    admin: process.env.CADDY_ADMIN || 'localhost:2019',
    caddyfile: path.resolve(process.env.MAKAPIX_CADDYFILE ?? path.join(caddyDir, 'Caddyfile')),
    bin: process.env.CADDY_BIN || 'caddy',
    ...(container && { container }),
  };
};

/**
 * The one caddy argv builder. `caddy reload` adapts the Caddyfile where it runs (so the environment
 * placeholders take that process's values) and loads the result through the admin API.
 */
export function caddyCommand(target: CaddyTarget, action: 'reload' | 'validate'): { cmd: string; argv: string[] } {
  if (target.container) return { cmd: 'docker', argv: ['exec', target.container, 'caddy', ...caddyfileArgv(action, '/etc/caddy/Caddyfile')] };
  const argv = caddyfileArgv(action, target.caddyfile);
  return { cmd: target.bin, argv: action === 'reload' ? [...argv, '--address', target.admin] : argv };
}

/** True when something answers as a Caddy admin API there; a refused connection means no Caddy. */
export async function caddyAdminAnswers(admin: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${admin}/config/`, { signal: AbortSignal.timeout(3000) });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

/** The Caddy to reload: its container when that runs, else one answering on the admin address, else none. */
export async function runningCaddy(target: CaddyTarget): Promise<CaddyTarget | undefined> {
  if (target.container) {
    const r = await $({ quiet: true, nothrow: true })`docker inspect -f ${'{{.State.Running}}'} ${target.container}`;
    if (r.exitCode === 0 && `${r.stdout}`.trim() === 'true') return target;
  }
  const { container: _ignored, ...host } = target;
  return (await caddyAdminAnswers(target.admin)) ? host : undefined;
}

export async function reloadCaddy(target: CaddyTarget): Promise<void> {
  const { cmd, argv } = caddyCommand(target, 'reload');
  const r = await $({ quiet: true, nothrow: true })`${cmd} ${argv}`;
  if (r.exitCode !== 0) {
    const why = redact(`${r.stderr}`.trim().split('\n').slice(-2).join(' / ')).slice(0, 500);
    throw new JobError(`Caddy (${target.container ?? target.admin}) refused the new configuration (${why}).`, `The previous credentials file was put back; check ${target.caddyfile} with caddy validate.`);
  }
}

// ---- the job -------------------------------------------------------------------------------

export interface CredentialsJob {
  scope: Scope;
  dir: string;
  /** undefined for list. */
  change?: { action: Change['action']; user: string; force: boolean };
  /** Asked only once the change is known to fit the file (add/rotate). */
  password: () => Promise<Secret>;
  cost: number;
  dryRun: boolean;
  reload: boolean;
  target: CaddyTarget;
  now?: () => Date;
}

export interface CredentialsResult {
  scope: Scope;
  file: string;
  users: { user: string; addedAt: string; rotatedAt?: string }[];
  changed: boolean;
  reloaded: boolean;
  note?: string;
}

async function readCurrent(file: string, scope: Scope): Promise<{ text: string | undefined; users: Credential[] }> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  return { text, users: text === undefined ? [] : parseCredentials(text, scope, file) };
}

const publicView = (users: readonly Credential[]) =>
  [...users].sort((a, b) => a.user.localeCompare(b.user)).map(({ user, addedAt, rotatedAt }) => ({ user, addedAt, ...(rotatedAt && { rotatedAt }) }));

const asChange = (c: NonNullable<CredentialsJob['change']>, hash: string): Change =>
  c.action === 'add' ? { action: 'add', user: c.user, hash, force: c.force } : c.action === 'rotate' ? { action: 'rotate', user: c.user, hash } : { action: 'remove', user: c.user };

/**
 * Lists, or applies one change: parse the current file (a malformed one stops everything), check
 * the change fits before asking for a password, write the new file atomically keeping its owner and
 * never world-readable, then reload Caddy if it runs. If Caddy refuses it, the previous file is put back.
 */
export async function runCredentialsJob(job: CredentialsJob): Promise<CredentialsResult> {
  const file = path.join(job.dir, credentialsFileName(job.scope));
  if (!job.change) {
    const { users } = await readCurrent(file, job.scope);
    return { scope: job.scope, file, users: publicView(users), changed: false, reloaded: false };
  }
  const change = job.change;
  const apply = async (): Promise<CredentialsResult> => {
    const before = await readCurrent(file, job.scope);
    const now = (job.now?.() ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    applyChange(before.users, asChange(change, ''), now, job.scope); // refuses before any prompt
    const hash = change.action === 'remove' || job.dryRun ? '' : await hashPassword(validatePassword(await job.password()), job.cost);
    const users = applyChange(before.users, asChange(change, hash), now, job.scope);
    if (job.dryRun) return { scope: job.scope, file, users: publicView(users), changed: false, reloaded: false, note: 'dry run: nothing written' };
    const lockedHash = users.length ? '' : await hashPassword(generatePassword(), 10);
    const previous = before.text === undefined ? undefined : await stat(file);
    // Keep the operator's group-read (e.g. for a caddy group) but never any bit for others.
    const mode = previous ? previous.mode & 0o660 : 0o600;
    await writeFileAtomic(file, renderCredentials(job.scope, users, lockedHash), mode);
    if (previous && process.getuid?.() === 0) await chown(file, previous.uid, previous.gid);
    // The Caddyfile imports both files: the other scope's must exist too, or Caddy cannot load.
    const companion = path.join(job.dir, credentialsFileName(otherScope(job.scope)));
    if (!existsSync(companion)) await writeFileAtomic(companion, renderCredentials(otherScope(job.scope), [], await hashPassword(generatePassword(), 10)), 0o600);
    let reloaded = false;
    let note: string | undefined;
    if (!job.reload) note = 'not reloaded (--no-reload): Caddy reads the change on its next reload';
    else {
      const running = await runningCaddy(job.target);
      if (!running) note = `Caddy is not running (no container ${job.target.container ?? '-'}, nothing at ${job.target.admin}): it reads the file when it starts`;
      else {
        try {
          await reloadCaddy(running);
          reloaded = true;
        } catch (err) {
          const previous = before.text ?? renderCredentials(job.scope, [], await hashPassword(generatePassword(), 10));
          await writeFileAtomic(file, previous, mode);
          throw err;
        }
      }
    }
    return { scope: job.scope, file, users: publicView(users), changed: true, reloaded, ...(note && { note }) };
  };
  if (job.dryRun) return apply();
  await mkdir(job.dir, { recursive: true, mode: 0o700 });
  // Two developers adding themselves at once: the second waits for the first instead of failing.
  return withLock(path.join(job.dir, '.gen-basic-auth.lock'), 'gen-basic-auth', apply, { waitMs: 5000 });
}

export interface PasswordSources {
  stdin: boolean;
  generate: boolean;
  tty: boolean;
  input: NodeJS.ReadableStream;
  ask: (label: string) => Promise<Secret>;
}

/** Exactly one source: stdin, a generated one, or (on a terminal only) typed twice without echo. */
export function passwordSource(s: PasswordSources): { generated: boolean; get: () => Promise<Secret> } {
  if (s.stdin && s.generate) throw new UsageError('--password-stdin and --generate exclude each other.', 'Pick one.');
  if (s.stdin) return { generated: false, get: () => readSecret(s.input) };
  if (s.generate) return { generated: true, get: async () => generatePassword() };
  if (!s.tty) throw new UsageError('No password source: there is no terminal to type it in.', 'Pass --password-stdin (and pipe it in) or --generate.');
  return { generated: false, get: () => s.ask('password') };
}

export type BasicAuthCommand = 'add' | 'remove' | 'rotate' | 'list';

export interface BasicAuthOptions {
  positionals: readonly string[];
  env: Environment | undefined;
  scope: string | undefined;
  cost: string | undefined;
  force: boolean;
  reload: boolean;
  dryRun: boolean;
  confirm: Confirm;
  password: Omit<PasswordSources, 'tty'> & { tty: boolean };
}

export type BasicAuthResult = CredentialsResult & { command: BasicAuthCommand; user?: string; generatedPassword?: string };

/** What `make basic-auth` does, from parsed flags: checks the words, then runs the job. */
export async function runBasicAuth(o: BasicAuthOptions): Promise<BasicAuthResult> {
  if (o.env === 'prod') throw new UsageError('Basic auth guards EB only; EA (prod) is public.', 'Leave out --env, or pass --env dev.');
  const [command, user, ...extra] = o.positionals;
  if (!['add', 'remove', 'rotate', 'list'].includes(command ?? '')) throw new UsageError(`Unknown command ${JSON.stringify(command ?? '')}.`, 'Use add <user>, remove <user>, rotate <user> or list.');
  const cmd = command as BasicAuthCommand;
  if (extra.length || (cmd === 'list' && user !== undefined)) throw new UsageError(`Too many arguments for ${cmd}.`, cmd === 'list' ? 'list takes no user.' : `${cmd} takes one user name.`);
  const scope = parseScope(o.scope);
  const cost = parseCost(o.cost);
  const base = { scope, dir: credentialsDir(), cost, dryRun: o.dryRun, reload: o.reload, target: caddyTarget() };
  if (cmd === 'list') return { command: cmd, ...(await runCredentialsJob({ ...base, password: async () => new Secret('') })) };
  const name = validateUsername(user);
  const source = cmd === 'remove' ? undefined : passwordSource(o.password);
  if (cmd === 'remove' && !o.dryRun) await o.confirm(`Remove the ${scope} user ${name}? Their password stops working at once.`);
  let generated: Secret | undefined;
  const result = await runCredentialsJob({
    ...base,
    change: { action: cmd, user: name, force: o.force },
    password: async () => {
      const p = await source!.get();
      if (source!.generated) generated = p;
      return p;
    },
  });
  return { command: cmd, user: name, ...result, ...(generated && { generatedPassword: generated.reveal() }) };
}

export function renderBasicAuth(r: BasicAuthResult, out: NodeJS.WritableStream = process.stdout): void {
  if (r.command === 'list') {
    if (!r.users.length) out.write(`No ${r.scope} users in ${r.file}: nobody can log in.\n`);
    for (const u of r.users) out.write(`${u.user.padEnd(32)}  added ${u.addedAt}${u.rotatedAt ? `, rotated ${u.rotatedAt}` : ''}\n`);
    return;
  }
  const did = { add: 'added', remove: 'removed', rotate: 'rotated' }[r.command];
  out.write(`${r.changed ? `The ${r.scope} user ${r.user} was ${did}` : `Would have ${did} the ${r.scope} user ${r.user}`} (${r.file}, ${r.users.length} user${r.users.length === 1 ? '' : 's'}).\n`);
  out.write(r.reloaded ? 'Caddy reloaded: the change is live.\n' : `${r.note ?? ''}\n`);
  if (r.generatedPassword) out.write(`Generated password (shown only this once): ${r.generatedPassword}\n`);
}
