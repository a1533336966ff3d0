import path from 'node:path';
import { composeDir } from '../core/paths.ts';
import { JobError } from '../core/errors.ts';
import { projectName, type EnvConfig, type Environment } from '../core/config.ts';

/** Compose v2 is a docker CLI plugin; Debian 12 ships only v1 as its own binary. */
export type ComposeFlavor = 'v2' | 'v1';

export type { Command } from '../core/exec.ts';
import { run, tail, type Command, type RunResult } from '../core/exec.ts';


/** The compose files of an environment: the shared base, then its override. */
export function composeFiles(env: Environment, dir = composeDir): string[] {
  return [path.join(dir, 'docker-compose.yml'), path.join(dir, `docker-compose.${env}.yml`)];
}

/** The one place that builds a `docker compose` command line for an environment. */
export function composeCommand(cfg: Pick<EnvConfig, 'env' | 'file'>, args: readonly string[], flavor: ComposeFlavor, dir = composeDir): Command {
  const common = [...composeFiles(cfg.env, dir).flatMap((f) => ['-f', f]), '--env-file', cfg.file, '-p', projectName(cfg.env), ...args];
  return flavor === 'v2' ? { cmd: 'docker', argv: ['compose', ...common] } : { cmd: 'docker-compose', argv: common };
}

/** The shared edge Caddy: its own project and file, no env file (caddy/docker-compose.edge.yml). */
export const edgeProject = 'makapix-edge';
export function edgeComposeCommand(args: readonly string[], flavor: ComposeFlavor, dir = path.join(composeDir, '..', 'caddy'), volumes?: { data: string; config: string }): Command {
  const common = ['-f', path.join(dir, 'docker-compose.edge.yml'), '-p', edgeProject, ...args];
  // The certificate volumes the edge uses (lib/domain/layout.ts, edgeVolumes), as the file's variables.
  const env = volumes && { env: { EDGE_CADDY_DATA_VOLUME: volumes.data, EDGE_CADDY_CONFIG_VOLUME: volumes.config } };
  return flavor === 'v2' ? { cmd: 'docker', argv: ['compose', ...common], ...env } : { cmd: 'docker-compose', argv: common, ...env };
}

let detected: Promise<ComposeFlavor> | undefined;

/** Prefers Compose v2 and falls back to v1; detected once per process. */
export function detectComposeFlavor(): Promise<ComposeFlavor> {
  detected ??= (async () => {
    if ((await run({ cmd: 'docker', argv: ['compose', 'version'] }, { nothrow: true })).exitCode === 0) return 'v2';
    if ((await run({ cmd: 'docker-compose', argv: ['version'] }, { nothrow: true })).exitCode === 0) return 'v1';
    throw new JobError('Neither `docker compose` (v2) nor `docker-compose` (v1) is installed.', 'Install docker-compose (make setup-e2e) or the Compose v2 plugin.');
  })();
  return detected;
}

/** Runs docker compose for an environment; output is captured unless `stream` is set. */
export async function runCompose(cfg: EnvConfig, args: readonly string[], opts: { stream?: boolean; nothrow?: boolean; env?: Record<string, string> } = {}): Promise<RunResult> {
  const c = composeCommand(cfg, args, await detectComposeFlavor());
  // `env` overrides the env file for this call (Compose gives the process environment precedence),
  // e.g. the IMAGE_TAG of a deploy before the file records it.
  return run({ ...c, ...(opts.env && { env: opts.env }) }, { stream: opts.stream ?? false, nothrow: opts.nothrow ?? false });
}

/** Runs compose and returns its stdout; a failure is a JobError naming the command and its output. */
export async function compose(cfg: EnvConfig, args: readonly string[], env?: Record<string, string>): Promise<string> {
  const out = await runCompose(cfg, args, { nothrow: true, ...(env && { env }) });
  if (out.exitCode !== 0) {
    throw new JobError(`docker compose ${args.join(' ')} failed for ${cfg.env} (exit ${out.exitCode}): ${tail(out.stderr || out.stdout)}`, `Run make ps-${cfg.env} and make logs-${cfg.env} to see the containers.`);
  }
  return out.stdout;
}
