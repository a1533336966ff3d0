// Plain `docker` (compose has its own builder, lib/tools/compose.ts): the one place that builds its
// command lines, and the container facts several jobs read (deploy, cutover, monitor, stack).
import { chown, mkdir, stat } from 'node:fs/promises';
import type { EnvConfig } from '../core/config.ts';
import { JobError } from '../core/errors.ts';
import { formatDuration } from '../core/ui.ts';
import { poll, run, tail, type Command, type PollPolicy } from '../core/exec.ts';

/** The external network the shared Caddy and both stacks meet on. */
export const edgeNetwork = 'caddy_net';
/** EB's vault folder belongs to the uid the app's containers run as. */
export const vaultOwnerUid = 1000;

export const dockerCommand = (args: readonly string[], bin = 'docker'): Command => ({ cmd: bin, argv: [...args] });

/** Runs docker; a failure is a JobError naming the command (unless `nothrow`, which reports `ok`). */
export async function docker(args: readonly string[], opts: { nothrow?: boolean; timeoutMs?: number; bin?: string } = {}): Promise<{ ok: boolean; exitCode: number; stdout: string; stderr: string }> {
  const r = await run(dockerCommand(args, opts.bin), { nothrow: true, ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }) });
  if (!opts.nothrow && r.exitCode !== 0) throw new JobError(`docker ${args.join(' ')} failed: ${tail(r.stderr || r.stdout)}`, 'Check the engine (docker ps) and run again.');
  return { ok: r.exitCode === 0, exitCode: r.exitCode, stdout: r.stdout.trim(), stderr: r.stderr };
}

/** The running, non-one-off containers of a service (works with or without container_name). */
export async function serviceContainers(project: string, service: string): Promise<string[]> {
  const { stdout } = await docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`, '--filter', 'label=com.docker.compose.oneoff=False']);
  return stdout.split('\n').filter(Boolean);
}

/** Runs the container's own healthcheck command once (the one compose defines), via docker exec. */
export async function containerHealthy(container: string): Promise<boolean> {
  const inspect = await docker(['inspect', '--format', '{{json .State.Running}} {{json .Config.Healthcheck}}', container], { nothrow: true });
  if (!inspect.ok) return false;
  const [running, ...rest] = inspect.stdout.split(' ');
  if (running !== 'true') return false;
  const hc = JSON.parse(rest.join(' ')) as { Test?: string[] } | null;
  const test = hc?.Test ?? [];
  if (test[0] === 'CMD-SHELL') return (await docker(['exec', container, 'sh', '-c', test[1] ?? 'false'], { nothrow: true })).ok;
  if (test[0] === 'CMD') return (await docker(['exec', container, ...test.slice(1)], { nothrow: true })).ok;
  return true; // no healthcheck: running is all we can know
}

export interface HealthPolicy {
  intervalMs: number;
  timeoutMs: number;
  consecutive: number;
}
export const defaultHealth: HealthPolicy = { intervalMs: 1000, timeoutMs: 120_000, consecutive: 3 };

/** Polls until `consecutive` successes in a row, or throws after the deadline. */
export async function waitHealthy(what: string, probe: () => Promise<boolean>, policy: HealthPolicy): Promise<number> {
  const { met, attempts } = await poll(probe, policy satisfies PollPolicy);
  if (!met) throw new JobError(`${what} was not healthy ${policy.consecutive} times in a row within ${formatDuration(policy.timeoutMs)} (${attempts} checks).`, 'See its logs: make logs-prod SERVICE=api.');
  return attempts;
}

/** Creates the external network when missing; `docker network create` is idempotent only this way. */
export async function ensureNetwork(name: string): Promise<boolean> {
  if ((await docker(['network', 'inspect', name], { nothrow: true })).ok) return false;
  await docker(['network', 'create', name]);
  return true;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/** What has to exist before an environment starts. Returns what it created, for the log. */
export async function prepareEnvironment(cfg: EnvConfig): Promise<string[]> {
  const created: string[] = [];
  if (await ensureNetwork(edgeNetwork)) created.push(`network ${edgeNetwork}`);
  if (cfg.env === 'dev' && !(await exists(cfg.vars.VAULT_HOST_PATH))) {
    await mkdir(cfg.vars.VAULT_HOST_PATH, { recursive: true });
    await chown(cfg.vars.VAULT_HOST_PATH, vaultOwnerUid, vaultOwnerUid);
    created.push(`vault folder ${cfg.vars.VAULT_HOST_PATH} (uid ${vaultOwnerUid})`);
  }
  return created;
}

/** True when a Docker engine answers (the CLI alone is not enough). */
export async function dockerReachable(): Promise<boolean> {
  return (await docker(['version', '--format', '{{.Server.Version}}'], { nothrow: true, timeoutMs: 15_000 })).ok;
}

/** `docker inspect` of one container: the first element of its JSON array. */
export async function inspectContainer(id: string): Promise<unknown> {
  return (JSON.parse((await docker(['inspect', id])).stdout) as unknown[])[0];
}

/**
 * Logs in to PostgreSQL inside its own container, over the container's network address, with a
 * password read from stdin (never argv). Over that address the server asks for the password: the
 * official image trusts only the socket and the loopback.
 */
export function passwordLoginCommand(container: string, address: string, user: string, database: string): Command {
  const script = 'IFS= read -r PGPASSWORD; export PGPASSWORD; exec psql -X -w -h "$1" -U "$2" -d "$3" -tAc "SELECT 1"';
  return dockerCommand(['exec', '-i', container, 'sh', '-c', script, 'sh', address, user, database]);
}

/** A container as `docker inspect` reports it (running or stopped). */
export interface SeenContainer {
  name: string;
  running: boolean;
  image: string;
  labels: Readonly<Record<string, string>>;
  /** Names of the named volumes it mounts. */
  volumes: readonly string[];
}

interface Inspected {
  Name: string;
  State?: { Running?: boolean };
  Config?: { Image?: string; Labels?: Record<string, string> | null };
  Mounts?: { Type?: string; Name?: string }[] | null;
}

/** Reads `docker inspect` output into what the layout decisions need (lib/domain/layout.ts). */
export function parseInspect(json: string): SeenContainer[] {
  return (JSON.parse(json) as Inspected[]).map((c) => ({
    name: c.Name.replace(/^\//, ''),
    running: c.State?.Running === true,
    image: c.Config?.Image ?? '',
    labels: c.Config?.Labels ?? {},
    volumes: (c.Mounts ?? []).filter((m) => m.Type === 'volume' && m.Name).map((m) => m.Name!),
  }));
}

/** Every container on the engine, running or stopped (inspect, not `ps --format`: label values may hold commas). */
export async function listContainers(): Promise<SeenContainer[]> {
  const ids = (await docker(['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean);
  if (!ids.length) return [];
  return parseInspect((await docker(['inspect', ...ids])).stdout);
}

export async function volumeExists(name: string): Promise<boolean> {
  return (await docker(['volume', 'inspect', name], { nothrow: true })).ok;
}

/** Names of the volumes that exist. */
export async function listVolumes(): Promise<string[]> {
  return (await docker(['volume', 'ls', '--format', '{{.Name}}'])).stdout.split('\n').filter(Boolean);
}

/** Creates the named volumes that do not exist yet; returns the ones it created. */
export async function ensureVolumes(names: readonly string[]): Promise<string[]> {
  const created: string[] = [];
  for (const name of names) {
    if (await volumeExists(name)) continue;
    await docker(['volume', 'create', name]);
    created.push(name);
  }
  return created;
}
