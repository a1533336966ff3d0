// The toolkit's own settings that come from the process environment. The entry (scripts/) reads
// the environment once and passes it to `settingsFrom`; nothing in lib/ reads the environment itself,
// so a library call means the same in a test, under cron and from a terminal.
import { userInfo } from 'node:os';
import path from 'node:path';
import { caddyDir, composeDir } from './paths.ts';
import { Secret } from './secret.ts';

export type Environ = Readonly<Record<string, string | undefined>>;

/** The running edge Caddy a credentials change or `reload-edge` reloads. */
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

export interface Settings {
  /** Where .env.prod and .env.dev live (MAKAPIX_ENV_DIR; default compose/; the sandbox sets it). */
  envDir: string;
  /** The credentials files the edge imports (MAKAPIX_CREDENTIALS_DIR; default caddy/credentials, git-ignored). */
  credentialsDir: string;
  caddy: CaddyTarget;
  /** Who runs the tool, for the deploy log: the sudo caller, else the login name. */
  operator: string;
  /** libpq's defaults for a --source-url/--target-url without user or password (PGUSER, PGPASSWORD). */
  pgUser: string | undefined;
  pgPassword: Secret | undefined;
  /** The whole environment, for child processes that read placeholders from it (caddy adapt). */
  environ: Environ;
}

export function settingsFrom(environ: Environ): Settings {
  const container = environ.CADDY_CONTAINER ?? defaultCaddyContainer;
  return {
    envDir: path.resolve(environ.MAKAPIX_ENV_DIR ?? composeDir),
    credentialsDir: path.resolve(environ.MAKAPIX_CREDENTIALS_DIR ?? path.join(caddyDir, 'credentials')),
    caddy: {
      admin: environ.CADDY_ADMIN || 'localhost:2019',
      caddyfile: path.resolve(environ.MAKAPIX_CADDYFILE ?? path.join(caddyDir, 'Caddyfile')),
      bin: environ.CADDY_BIN || 'caddy',
      ...(container && { container }),
    },
    operator: environ.SUDO_USER ?? userInfo().username,
    pgUser: environ.PGUSER || undefined,
    pgPassword: environ.PGPASSWORD ? new Secret(environ.PGPASSWORD) : undefined,
    environ,
  };
}

/** The set variables of an environment, for a child process's `env`. */
export const definedOnly = (environ: Environ): Record<string, string> =>
  Object.fromEntries(Object.entries(environ).filter((e): e is [string, string] => e[1] !== undefined));
