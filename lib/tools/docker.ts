// Read-only questions to the Docker engine that several jobs ask (what runs, which volumes exist).
import { run, type Command } from '../core/exec.ts';

/** A container as `docker inspect` reports it (running or stopped). */
export interface SeenContainer {
  name: string;
  running: boolean;
  image: string;
  labels: Readonly<Record<string, string>>;
  /** Names of the named volumes it mounts. */
  volumes: readonly string[];
}

const docker = (...argv: string[]): Command => ({ cmd: 'docker', argv });

interface Inspected {
  Name: string;
  State?: { Running?: boolean };
  Config?: { Image?: string; Labels?: Record<string, string> | null };
  Mounts?: { Type?: string; Name?: string }[] | null;
}

/** Reads `docker inspect` output into what the layout decisions need. */
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
  const ids = (await run(docker('ps', '-aq', '--no-trunc'))).stdout.split('\n').filter(Boolean);
  if (!ids.length) return [];
  return parseInspect((await run(docker('inspect', ...ids))).stdout);
}

/** Names of the volumes that exist. */
export async function listVolumes(): Promise<string[]> {
  return (await run(docker('volume', 'ls', '--format', '{{.Name}}'))).stdout.split('\n').filter(Boolean);
}

export async function volumeExists(name: string): Promise<boolean> {
  return (await run(docker('volume', 'inspect', name), { nothrow: true })).exitCode === 0;
}
