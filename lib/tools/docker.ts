// Reading what the Docker engine runs: containers by their Compose labels, `docker inspect`, and a
// database login inside a container. Everything goes through lib/core/exec.ts.
import { run, type Command } from '../core/exec.ts';

const docker = (...argv: string[]): Command => ({ cmd: 'docker', argv });

/** True when a Docker engine answers (the CLI alone is not enough). */
export async function dockerReachable(): Promise<boolean> {
  return (await run(docker('version', '--format', '{{.Server.Version}}'), { nothrow: true, timeoutMs: 15_000 })).exitCode === 0;
}

/** The running containers of one service of a Compose project (by the labels Compose sets). */
export async function composeServiceContainers(project: string, service: string): Promise<string[]> {
  const r = await run(docker('ps', '--quiet', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`));
  return r.stdout.split('\n').filter(Boolean);
}

/** `docker inspect` of one container: the first element of its JSON array. */
export async function inspectContainer(id: string): Promise<unknown> {
  const r = await run(docker('inspect', id));
  return (JSON.parse(r.stdout) as unknown[])[0];
}

/**
 * Logs in to PostgreSQL inside its own container, over the container's network address, with a
 * password read from stdin (never argv). Over that address the server asks for the password: the
 * official image trusts only the socket and the loopback.
 */
export function passwordLoginCommand(container: string, address: string, user: string, database: string): Command {
  const script = 'IFS= read -r PGPASSWORD; export PGPASSWORD; exec psql -X -w -h "$1" -U "$2" -d "$3" -tAc "SELECT 1"';
  return docker('exec', '-i', container, 'sh', '-c', script, 'sh', address, user, database);
}
