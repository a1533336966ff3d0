import { readFile, stat, chown, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { hashPassword } from '../core/password.ts';
import { UsageError } from '../core/errors.ts';
import { applyChange, generatePassword, parseCredentials, renderCredentials, validatePassword, validateUsername, type Change, type Credential } from '../domain/credentials.ts';
import { Secret } from '../core/secret.ts';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { reloadCaddy, runningCaddy } from '../tools/caddy.ts';
import type { CaddyTarget, Settings } from '../core/settings.ts';
import { credentialsFileName, type Scope } from '../domain/credentials.ts';
import { withLock } from '../core/lock.ts';
import type { Environment } from '../core/config.ts';
import type { Confirm } from '../core/ui.ts';

/** The cost Caddy's own `hash-password` uses; a guess then takes ~1 s of CPU per try. */
export const defaultCost = 14;

/** Reads a whole secret from a stream (stdin), without the final line break. */
export async function readSecret(stream: NodeJS.ReadableStream): Promise<Secret> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return new Secret(Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, ''));
}

const otherScope = (scope: Scope): Scope => (scope === 'developers' ? 'devices' : 'developers');

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
    // A dry run validates the password too (the same refusal as the real run); it only skips the hash.
    const password = change.action === 'remove' ? undefined : validatePassword(await job.password());
    const hash = password === undefined || job.dryRun ? '' : await hashPassword(password, job.cost);
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
    // Developers are checked by EB's session check (lib/jobs/edge-auth.ts), which re-reads the file
    // before every request it judges: their change is live without a reload.
    if (!job.reload) note = job.scope === 'developers' ? "not reloaded (--no-reload): EB's session check applies it at once, Caddy reads the file on its next reload" : 'not reloaded (--no-reload): Caddy reads the change on its next reload';
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
  scope: Scope;
  cost: number;
  force: boolean;
  reload: boolean;
  dryRun: boolean;
  confirm: Confirm;
  password: Omit<PasswordSources, 'tty'> & { tty: boolean };
  settings: Pick<Settings, 'credentialsDir' | 'caddy'>;
}

export type BasicAuthResult = CredentialsResult & { command: BasicAuthCommand; user?: string; generatedPassword?: string };

/** What `make basic-auth` does, from parsed flags: checks the words, then runs the job. */
export async function runBasicAuth(o: BasicAuthOptions): Promise<BasicAuthResult> {
  if (o.env === 'prod') throw new UsageError('Basic auth guards EB only; EA (prod) is public.', 'Leave out --env, or pass --env dev.');
  const [command, user, ...extra] = o.positionals;
  if (!['add', 'remove', 'rotate', 'list'].includes(command ?? '')) throw new UsageError(`Unknown command ${JSON.stringify(command ?? '')}.`, 'Use add <user>, remove <user>, rotate <user> or list.');
  const cmd = command as BasicAuthCommand;
  if (extra.length || (cmd === 'list' && user !== undefined)) throw new UsageError(`Too many arguments for ${cmd}.`, cmd === 'list' ? 'list takes no user.' : `${cmd} takes one user name.`);
  const { scope, cost } = o;
  const base = { scope, dir: o.settings.credentialsDir, cost, dryRun: o.dryRun, reload: o.reload, target: o.settings.caddy };
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
