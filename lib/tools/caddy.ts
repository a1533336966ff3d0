import { copyFile, link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { temporaryName } from '../core/atomic-file.ts';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import path from 'node:path';
import { caddyDir } from '../core/paths.ts';
import { redact } from '../core/secret.ts';
import type { CaddyTarget } from '../core/settings.ts';
import { credentialsFileName, scopes } from '../domain/credentials.ts';
import { JobError } from '../core/errors.ts';
import { run } from '../core/exec.ts';

/**
 * The shared edge proxy (caddy/): its Caddyfile, the credentials it imports, and the environment
 * a Caddy process reads the Caddyfile's `{$VAR:default}` placeholders from.
 */


export const edgeCaddyfile = path.join(caddyDir, 'Caddyfile');
/** Committed, valid credentials that lock everyone out (one account, random thrown-away password). */
export const defaultCredentialsDir = path.join(caddyDir, 'credentials.default');

/**
 * Puts the committed lock-everyone-out files in place for every credentials file that is missing,
 * so Caddy can start before anyone ran `make basic-auth`. An existing file is never touched
 * (COPYFILE_EXCL makes that race-free). Returns the files it created.
 */
export async function ensureCredentials(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const created: string[] = [];
  for (const scope of scopes) {
    const target = path.join(dir, credentialsFileName(scope));
    try {
      await copyFile(path.join(defaultCredentialsDir, credentialsFileName(scope)), target, constants.COPYFILE_EXCL);
      created.push(target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  return created;
}

/** The key that signs EB's developer sessions (lib/jobs/edge-auth.ts), next to the credentials. */
export const sessionKeyFileName = 'session.key';

/**
 * Writes a random session key (32 bytes, hex, mode 0600) when there is none. It appears complete or
 * not at all (written under a temporary name, then hard-linked to its final name), and an existing
 * one is never replaced (link fails on an existing name): replacing it ends every developer's
 * session. Returns the file when it created it.
 */
export async function ensureSessionKey(dir: string): Promise<string | undefined> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, sessionKeyFileName);
  const tmp = temporaryName(file);
  await writeFile(tmp, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600, flush: true });
  try {
    await link(tmp, file);
    return file;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw err;
  } finally {
    await rm(tmp, { force: true });
  }
}

/** The credentials folder a read-only reader (caddy adapt in `make check`) should use: the real one once complete, else the defaults. */
export async function readableCredentialsDir(dir: string): Promise<string> {
  const complete = await Promise.all(scopes.map((s) => readFile(path.join(dir, credentialsFileName(s))).then(() => true, () => false)));
  return complete.every(Boolean) ? dir : defaultCredentialsDir;
}

/**
 * The placeholders the Caddyfile reads. Unset ones take the Caddyfile's production defaults;
 * tests set hosts to loopback names, upstreams to local servers and ports to free high ones.
 */
export interface EdgeSettings {
  admin?: string;
  credentialsDir?: string;
  /** Global options appended to the Caddyfile's global block (tests: local_certs, ports). */
  extraGlobalOptions?: string[];
  eaHost?: string;
  eaVaultHost?: string;
  /** www.<EA host>: redirects to EA. */
  eaWwwHost?: string;
  /** The native app's App Link hosts (app., app-dev.). */
  eaAppHost?: string;
  ebAppHost?: string;
  ebHost?: string;
  ebVaultHost?: string;
  eaApiUpstream?: string;
  eaWebUpstream?: string;
  ebApiUpstream?: string;
  ebWebUpstream?: string;
  /** EB's developer check (scripts/edge-auth.ts), host:port. */
  ebAuthUpstream?: string;
  /** The vault folders Caddy serves itself (the edge container mounts them read-only). */
  eaVaultRoot?: string;
  ebVaultRoot?: string;
  /** Where the JSON access logs go (vault-access.log, vault-dev-access.log, app-links-access.log). */
  logDir?: string;
  /** Paths of EB open without credentials (Caddy path patterns); empty by default. */
  ebAuthExemptPaths?: string[];
}

const placeholders: Record<Exclude<keyof EdgeSettings, 'extraGlobalOptions' | 'ebAuthExemptPaths'>, string> = {
  admin: 'CADDY_ADMIN',
  credentialsDir: 'MAKAPIX_CREDENTIALS_DIR',
  eaHost: 'EA_HOST',
  eaVaultHost: 'EA_VAULT_HOST',
  eaWwwHost: 'EA_WWW_HOST',
  eaAppHost: 'EA_APP_HOST',
  ebAppHost: 'EB_APP_HOST',
  ebHost: 'EB_HOST',
  ebVaultHost: 'EB_VAULT_HOST',
  eaApiUpstream: 'EA_API_UPSTREAM',
  eaWebUpstream: 'EA_WEB_UPSTREAM',
  ebApiUpstream: 'EB_API_UPSTREAM',
  ebWebUpstream: 'EB_WEB_UPSTREAM',
  ebAuthUpstream: 'EB_AUTH_UPSTREAM',
  eaVaultRoot: 'EA_VAULT_ROOT',
  ebVaultRoot: 'EB_VAULT_ROOT',
  logDir: 'CADDY_LOG_DIR',
};

/** The environment variables for a Caddy process running the edge Caddyfile with these settings. */
export function edgeEnvironment(s: EdgeSettings): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, name] of Object.entries(placeholders) as [keyof typeof placeholders, string][]) {
    const value = s[key];
    if (value !== undefined) env[name] = value;
  }
  if (s.extraGlobalOptions?.length) env.CADDY_EXTRA_GLOBAL_OPTIONS = s.extraGlobalOptions.join('\n');
  if (s.ebAuthExemptPaths?.length) env.EB_AUTH_EXEMPT_PATHS = s.ebAuthExemptPaths.join(' ');
  return env;
}

/** argv for the caddy subcommands the edge uses to read a Caddyfile (validate, adapt, run). */
export function caddyfileArgv(action: 'validate' | 'adapt' | 'run' | 'reload', caddyfile = edgeCaddyfile): string[] {
  return [action, '--config', caddyfile, '--adapter', 'caddyfile'];
}

// ---- the running Caddy ----------------------------------------------------------------------

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
    const r = await run({ cmd: 'docker', argv: ['inspect', '-f', '{{.State.Running}}', target.container] }, { nothrow: true });
    if (r.exitCode === 0 && `${r.stdout}`.trim() === 'true') return target;
  }
  const { container: _ignored, ...host } = target;
  return (await caddyAdminAnswers(target.admin)) ? host : undefined;
}

export async function reloadCaddy(target: CaddyTarget): Promise<void> {
  const { cmd, argv } = caddyCommand(target, 'reload');
  const r = await run({ cmd, argv }, { nothrow: true });
  if (r.exitCode !== 0) {
    const why = redact(`${r.stderr}`.trim().split('\n').slice(-2).join(' / ')).slice(0, 500);
    throw new JobError(`Caddy (${target.container ?? target.admin}) refused the new configuration (${why}).`, `The previous credentials file was put back; check ${target.caddyfile} with caddy validate.`);
  }
}

