import type { Readable } from 'node:stream';
import type pg from 'pg';
import { $ } from 'zx';
import { composeCommand, detectComposeFlavor, type ComposeFlavor, type Command } from './compose.ts';
import type { EnvConfig } from './config.ts';
import { redact } from './secret.ts';

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
  /** A file descriptor the tool's stdout goes to directly (a dump being written), never through memory. */
  stdoutFd?: number;
}

export interface PgRunResult {
  exitCode: number | null;
  signal: string | null;
  /** The tool's own messages, secrets redacted. */
  stderr: string;
}

/**
 * Runs a tool and reports its OWN exit status (no shell pipeline that could mask it). Large data
 * never passes through this process's memory: stdout goes to a file descriptor, stdin is streamed.
 */
export async function runPg(tool: PgTool, place: PgPlace, opts: { database?: string; args: readonly string[] }, io: PgRunOptions = {}): Promise<PgRunResult> {
  const flavor = place.kind === 'container' ? await detectComposeFlavor() : undefined;
  const { cmd, argv, env } = pgCommand(tool, place, opts, flavor);
  const p = $({
    quiet: true,
    nothrow: true,
    env: { ...process.env, ...env },
    stdio: [io.stdin ? 'pipe' : 'ignore', io.stdoutFd ?? 'pipe', 'pipe'],
  })`${cmd} ${argv}`;
  if (io.stdin) {
    const stdin = p.stdin;
    // The tool may stop reading once it has what it needs; that is its verdict to give, not an EPIPE.
    stdin.on('error', () => undefined);
    io.stdin.pipe(stdin);
  }
  const out = await p;
  return { exitCode: out.exitCode, signal: out.signal, stderr: redact(out.stderr).trim() };
}

/** The last lines of a tool's messages, for a one-sentence error. */
export const stderrTail = (stderr: string, lines = 3) => stderr.split('\n').filter(Boolean).slice(-lines).join(' / ') || 'no message';
