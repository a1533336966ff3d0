import type { Readable } from 'node:stream';
import type pg from 'pg';
import { start } from '../core/exec.ts';
import { composeCommand, detectComposeFlavor, type ComposeFlavor, type Command } from './compose.ts';
import type { EnvConfig } from '../core/config.ts';
import { redact } from '../core/secret.ts';

/** The PostgreSQL client programs the toolkit runs; every command line for them is built here. */
export type PgTool = 'pg_dump' | 'pg_dumpall' | 'pg_restore' | 'psql';

/**
 * Where a tool runs. `container`: the server's own binary inside the environment's db container
 * (production runs PostgreSQL 17, newer than the host's client, which refuses a newer server),
 * over the container's Unix socket. `local`: the host's binary against a TCP address (tests, the sandbox).
 */
export type PgPlace = { kind: 'local'; connection: pg.ClientConfig } | { kind: 'container'; cfg: EnvConfig; user: string };

export interface PgCommand extends Command {
  /** Extra environment for the child: the password travels here (PGPASSWORD), never in argv. */
  env: Record<string, string>;
}

/**
 * Inside the db container the tool takes the password from the container's own environment
 * (POSTGRES_PASSWORD, the admin's, set by the compose file), so it never crosses a command line,
 * and works whether or not the socket is trusted. `$0`/`$@` pass the tool's argv through unquoted by any shell.
 */
export const containerPassword = 'PGPASSWORD="$POSTGRES_PASSWORD" exec "$0" "$@"';

/** Connection flags for a tool; pg_dumpall names its maintenance database differently. */
function connectionArgs(tool: PgTool, place: PgPlace, database: string | undefined): string[] {
  const dbFlag = tool === 'pg_dumpall' ? '--database' : '--dbname';
  const db = database === undefined ? [] : [`${dbFlag}=${database}`];
  if (place.kind === 'container') return [`--username=${place.user}`, ...db];
  const c = place.connection;
  return [`--host=${c.host}`, `--port=${c.port}`, `--username=${c.user}`, ...db];
}

/**
 * The one builder of pg_dump/pg_dumpall/pg_restore/psql command lines. `--no-password` everywhere:
 * under cron a missing password must fail at once, not wait for a prompt nobody answers.
 */
export function pgCommand(tool: PgTool, place: PgPlace, opts: { database?: string; args: readonly string[] }, flavor: ComposeFlavor = 'v2'): PgCommand {
  const argv = [...connectionArgs(tool, place, opts.database), '--no-password', ...opts.args];
  if (place.kind === 'container') return { ...composeCommand(place.cfg, ['exec', '-T', 'db', 'sh', '-c', containerPassword, tool, ...argv], flavor), env: {} };
  const password = place.connection.password;
  return { cmd: tool, argv, env: typeof password === 'string' && password !== '' ? { PGPASSWORD: password } : {} };
}

export type DumpFormat = 'custom' | 'plain';

/** pg_dump's arguments for a whole-database dump written to stdout. */
export const dumpArgs = (format: DumpFormat): string[] => [`--format=${format}`];

/** pg_dumpall's arguments for the roles (and tablespaces) a database dump leaves out. */
export const globalsArgs = (): string[] => ['--globals-only'];

/**
 * pg_restore reading an archive from stdin and writing the SQL to /dev/null: unlike `--list`,
 * which reads only the table of contents, this decompresses every data block.
 */
export const verifyArgs = (): string[] => ['--file=/dev/null'];

/**
 * pg_restore of an archive on stdin into an (empty) database. Objects become the restoring
 * admin's (--no-owner), so a production dump restores into an environment whose admin role has
 * another name; privileges granted to the app's roles are kept.
 */
export const restoreArchiveArgs = (): string[] => ['--exit-on-error', '--no-owner'];

/** psql replaying a plain dump from stdin: stop at the first error, all or nothing. */
export const restoreScriptArgs = (): string[] => ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1', '--single-transaction', '--file=-'];

export interface PgRunOptions {
  /** Fed to the tool's stdin (a backup being verified or restored). */
  stdin?: Readable;
  /** Where the tool's stdout goes: a file descriptor, a stream the caller reads ('pipe'), or nowhere. */
  stdout?: number | 'pipe';
}

export interface PgRunResult {
  exitCode: number | null;
  signal: string | null;
  /** The tool's own messages (the last 64 KiB), secrets redacted. */
  stderr: string;
}

export interface PgProcess {
  /** The tool's stdout when asked for with stdout: 'pipe'. */
  stdout: Readable | null;
  /** Resolves (never rejects) with the tool's OWN exit status: no shell pipeline can mask it. */
  done: Promise<PgRunResult>;
  kill(): void;
}

/**
 * Starts a tool. Started with exec's `start`, not `run`, which keeps all of stdout
 * in memory: a dump is gigabytes, so its data only ever streams (to a file descriptor or a reader).
 */
export async function startPg(tool: PgTool, place: PgPlace, opts: { database?: string; args: readonly string[] }, io: PgRunOptions = {}): Promise<PgProcess> {
  const flavor = place.kind === 'container' ? await detectComposeFlavor() : undefined;
  const { cmd, argv, env } = pgCommand(tool, place, opts, flavor);
  const child = start({ cmd, argv, env }, [io.stdin ? 'pipe' : 'ignore', io.stdout ?? 'ignore', 'pipe']);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-65_536)));
  if (io.stdin) {
    // The tool may stop reading once it has what it needs (or failed); its exit status says which.
    child.stdin!.on('error', () => undefined);
    io.stdin.pipe(child.stdin!);
  }
  const done = new Promise<PgRunResult>((resolve) => {
    child.on('error', (err) => resolve({ exitCode: null, signal: null, stderr: `${cmd} could not be started: ${err.message}` }));
    child.on('close', (code, signal) => resolve({ exitCode: code, signal, stderr: redact(stderr).trim() }));
  });
  return { stdout: child.stdout, done, kill: () => void child.kill('SIGTERM') };
}

/** Runs a tool to its end; see startPg. */
export async function runPg(tool: PgTool, place: PgPlace, opts: { database?: string; args: readonly string[] }, io: PgRunOptions = {}): Promise<PgRunResult> {
  return (await startPg(tool, place, opts, io)).done;
}

/** The last lines of a tool's messages, for a one-sentence error. */
export const stderrTail = (stderr: string, lines = 3) => stderr.split('\n').filter(Boolean).slice(-lines).join(' / ') || 'no message';
