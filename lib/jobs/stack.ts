// An environment's container set as a whole: up, down, logs, ps, rebuild, and the shared edge Caddy.
// The compose argument lists are decided here (pure, unit-tested); lib/tools/compose.ts turns them into
// the one `docker compose` command line; the runner adds what Compose cannot do (the external
// network and EB's vault folder must exist before `up`).
import { mkdir, chown, stat } from 'node:fs/promises';
import { $ } from 'zx';
import { JobError, UsageError } from '../core/errors.ts';
import { detectComposeFlavor, edgeComposeCommand, runCompose } from '../tools/compose.ts';
import { ensureCredentials, ensureSessionKey } from '../tools/caddy.ts';
import { caddyTarget, reloadCaddy } from './basic-auth.ts';
import type { EnvConfig, Environment } from '../core/config.ts';
import type { Ui } from '../core/ui.ts';

export type StackAction = 'up' | 'down' | 'logs' | 'ps' | 'rebuild';
export const stackActions: readonly StackAction[] = ['up', 'down', 'logs', 'ps', 'rebuild'];

/** The external network the shared Caddy and both environments' public services join. */
export const edgeNetwork = 'caddy_net';
/** EB's vault folder is written by the app's containers, which run as uid 1000 (makapix-facts.md). */
export const vaultOwnerUid = 1000;

export interface StackStep {
  label: string;
  /** Compose arguments after the common `-f … --env-file … -p …`. */
  args: string[];
  /** Output goes to the terminal (logs -f, ps) instead of being captured. */
  stream: boolean;
}

export function parseStackAction(value: string | undefined): StackAction {
  if ((stackActions as readonly string[]).includes(value ?? '')) return value as StackAction;
  throw new UsageError(`The action must be one of ${stackActions.join(', ')}, got ${JSON.stringify(value ?? '')}.`, 'Example: stack.ts up --env dev');
}

/**
 * The compose calls one action makes. `rebuild` builds first and only then runs `up -d`, which
 * recreates just the services whose image or configuration changed: a failed build stops before
 * anything running is touched. `down` never passes `-v`: volumes hold the data.
 */
export function stackPlan(env: Environment, action: StackAction, service?: string): StackStep[] {
  const only = service ? [service] : [];
  switch (action) {
    case 'up':
      return [{ label: `start ${env}`, args: ['up', '-d', '--remove-orphans', ...only], stream: false }];
    case 'down':
      if (service) return [{ label: `stop ${service} (${env})`, args: ['rm', '--stop', '--force', service], stream: false }];
      return [{ label: `stop ${env}`, args: ['down', '--remove-orphans'], stream: false }];
    case 'logs':
      return [{ label: `logs of ${env}`, args: ['logs', '--follow', '--tail', '200', ...only], stream: true }];
    case 'ps':
      return [{ label: `containers of ${env}`, args: ['ps', ...only], stream: true }];
    case 'rebuild':
      if (env !== 'dev') throw new UsageError('rebuild is for the development environment only.', 'Production changes go through make deploy-prod.');
      return [
        { label: 'build dev images', args: ['build', ...only], stream: false },
        { label: 'recreate changed dev services', args: ['up', '-d', '--remove-orphans', ...only], stream: false },
      ];
  }
}

/** The last lines of a failed command's output: what an operator needs, bounded. */
export const tail = (text: string, lines = 5) => text.trim().split('\n').slice(-lines).join(' | ');

/** Runs compose and returns its stdout; a failure is a JobError naming the command and its output. */
export async function compose(cfg: EnvConfig, args: readonly string[], env?: Record<string, string>): Promise<string> {
  const out = await runCompose(cfg, args, { nothrow: true, ...(env && { env }) });
  if (out.exitCode !== 0) {
    throw new JobError(`docker compose ${args.join(' ')} failed for ${cfg.env} (exit ${out.exitCode}): ${tail(out.stderr || out.stdout)}`, `Run make ps-${cfg.env} and make logs-${cfg.env} to see the containers.`);
  }
  return out.stdout;
}

const exists = (p: string) => stat(p).then(() => true, () => false);

/** Creates the external network when missing; `docker network create` is idempotent only this way. */
export async function ensureNetwork(name: string): Promise<boolean> {
  if ((await $({ nothrow: true, quiet: true })`docker network inspect ${name}`).exitCode === 0) return false;
  await $({ quiet: true })`docker network create ${name}`;
  return true;
}

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

export interface StackResult {
  env: Environment;
  action: StackAction;
  steps: string[];
  created: string[];
}

/** Runs an action's plan; `up` and `rebuild` first make sure the network and folders exist. */
export async function runStack(cfg: EnvConfig, action: StackAction, opts: { service?: string; ui: Ui; dryRun?: boolean }): Promise<StackResult> {
  const plan = stackPlan(cfg.env, action, opts.service);
  const result: StackResult = { env: cfg.env, action, steps: plan.map((s) => `docker compose ${s.args.join(' ')}`), created: [] };
  if (opts.dryRun) return result;
  if (action === 'up' || action === 'rebuild') result.created = await prepareEnvironment(cfg);
  for (const c of result.created) opts.ui.info(`created ${c}`);
  for (const step of plan) {
    if (!step.stream) await opts.ui.run(step.label, () => compose(cfg, step.args));
    else if ((await runCompose(cfg, step.args, { stream: true, nothrow: true })).exitCode !== 0) throw new JobError(`docker compose ${step.args[0]} failed for ${cfg.env}.`, 'Its output is above.');
  }
  return result;
}

export type EdgeAction = 'up' | 'reload';
/** The edge compose file names its one container so (caddy/docker-compose.edge.yml). */
export const edgeContainer = 'makapix-edge-caddy';

/** up-edge: network and default credentials first, then the edge project; reload-edge: caddy reload inside it. */
export async function runEdge(action: EdgeAction, ui: Ui, dryRun = false): Promise<{ action: EdgeAction; created: string[]; steps: string[] }> {
  const { cmd, argv } = edgeComposeCommand(['up', '-d'], await detectComposeFlavor());
  if (dryRun) return { action, created: [], steps: [action === 'reload' ? `docker exec ${edgeContainer} caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile` : `${cmd} ${argv.join(' ')}`] };
  if (action === 'reload') {
    await ui.run('Reload the edge Caddy', () => reloadCaddy({ ...caddyTarget(), container: edgeContainer }));
    return { action, created: [], steps: [] };
  }
  const created = [...((await ensureNetwork(edgeNetwork)) ? [`network ${edgeNetwork}`] : []), ...(await ensureCredentials()), ...[await ensureSessionKey()].filter((f): f is string => f !== undefined)];
  for (const c of created) ui.info(`created ${c}`);
  await ui.run('Start the edge Caddy', async () => {
    const out = await $({ quiet: true, nothrow: true })`${cmd} ${argv}`;
    if (out.exitCode !== 0) throw new JobError(`Starting the edge Caddy failed: ${tail(out.stderr)}`, 'Check caddy/Caddyfile (make check) and that ports 80/443 are free.');
  });
  return { action, created, steps: [] };
}
