// An environment's container set as a whole: up, down, logs, ps, rebuild, and the shared edge Caddy.
// The compose argument lists are decided here (pure, unit-tested); lib/tools/compose.ts turns them into
// the one `docker compose` command line; the runner adds what Compose cannot do (the external
// network and EB's vault folder must exist before `up`).
import { JobError, SafetyError, UsageError } from '../core/errors.ts';
import { composeCommand, detectComposeFlavor, edgeComposeCommand, edgeProject, type ComposeFlavor } from '../tools/compose.ts';
import { classifyLayout, edgeVolumes, planProject, upDecision, type Layout } from '../domain/layout.ts';
import { ensureCredentials, ensureSessionKey } from '../tools/caddy.ts';
import { reloadCaddy } from '../tools/caddy.ts';
import type { Settings } from '../core/settings.ts';
import { ensureNetwork, ensureVolumes, edgeNetwork, listContainers, listVolumes, prepareEnvironment } from '../tools/docker.ts';
import { compose } from '../tools/compose.ts';
import { renderCommand, renderPlan, run, runPlan, tail, type Step } from '../core/exec.ts';
import { projectName, type EnvConfig, type Environment } from '../core/config.ts';
import type { Ui } from '../core/ui.ts';

export type StackAction = 'up' | 'down' | 'logs' | 'ps' | 'rebuild';
export const stackActions: readonly StackAction[] = ['up', 'down', 'logs', 'ps', 'rebuild'];

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
 * anything running is touched. `down` never passes `-v`: volumes hold the data. None passes
 * `--remove-orphans`: the app's own production project is also `makapix-prod`, and its Caddy,
 * `www-redirect` and `redis` would be "orphans" of ours (lib/domain/layout.ts).
 */
export function stackPlan(env: Environment, action: StackAction, service?: string): StackStep[] {
  const only = service ? [service] : [];
  switch (action) {
    case 'up':
      return [{ label: `start ${env}`, args: ['up', '-d', ...only], stream: false }];
    case 'down':
      if (service) return [{ label: `stop ${service} (${env})`, args: ['rm', '--stop', '--force', service], stream: false }];
      return [{ label: `stop ${env}`, args: ['down'], stream: false }];
    case 'logs':
      return [{ label: `logs of ${env}`, args: ['logs', '--follow', '--tail', '200', ...only], stream: true }];
    case 'ps':
      return [{ label: `containers of ${env}`, args: ['ps', ...only], stream: true }];
    case 'rebuild':
      if (env !== 'dev') throw new UsageError('rebuild is for the development environment only.', 'Production changes go through make deploy-prod.');
      return [
        { label: 'build dev images', args: ['build', ...only], stream: false },
        { label: 'recreate changed dev services', args: ['up', '-d', ...only], stream: false },
      ];
  }
}

/** What this host holds for an environment's project (read-only: docker inspect, compose config). */
export async function inspectLayout(cfg: EnvConfig): Promise<Layout> {
  const services = (await compose(cfg, ['config', '--services'])).split('\n').map((l) => l.trim()).filter(Boolean);
  return classifyLayout(await listContainers(), { project: projectName(cfg.env), ...(cfg.env === 'prod' && { planProject }), edgeProject, ourServices: services });
}

/**
 * Before `up`: production refuses (exit 3) a layout it would damage (the app's stack with its Caddy,
 * the old single stack, unknown containers in its project) and lists what it found; EB only notes
 * containers it leaves alone (the app's dev stack is recreated in place, on the same volume name).
 */
export async function guardLayout(cfg: EnvConfig, ui: Ui): Promise<void> {
  const layout = await inspectLayout(cfg);
  const decision = upDecision(layout);
  if (!decision.ok && cfg.env === 'prod') throw new SafetyError(decision.reason, decision.next);
  const notes = decision.ok ? decision.notes : [`not the toolkit's, left alone: ${layout.found.join('; ')}`];
  for (const n of notes) ui.info(n);
}

export interface StackResult {
  env: Environment;
  action: StackAction;
  steps: string[];
  created: string[];
}

/**
 * An action as the steps that run: `up` and `rebuild` first check the host's layout and create what
 * Compose cannot (the external network, EB's vault folder), then the compose calls. `--dry-run`
 * prints these very steps.
 */
export function stackSteps(cfg: EnvConfig, action: StackAction, flavor: ComposeFlavor, o: { service?: string; ui: Ui; created: string[] }): Step[] {
  const prepare: Step[] =
    action === 'up' || action === 'rebuild'
      ? [
          { kind: 'task', title: `check what this host holds for ${projectName(cfg.env)}`, detail: 'docker inspect of every container; production refuses a layout it would damage (exit 3)', run: () => guardLayout(cfg, o.ui) },
          { kind: 'task', title: 'create what Compose cannot', detail: `network ${edgeNetwork}${cfg.env === 'dev' ? ` and the vault folder ${cfg.vars.VAULT_HOST_PATH} (uid 1000)` : ''} when missing`, run: async () => void o.created.push(...(await prepareEnvironment(cfg))) },
        ]
      : [];
  const calls: Step[] = stackPlan(cfg.env, action, o.service).map((s) => ({ kind: 'command', title: s.label, command: composeCommand(cfg, s.args, flavor), stream: s.stream }));
  return [...prepare, ...calls];
}

/** Runs an action's steps (see stackSteps). */
export async function runStack(cfg: EnvConfig, action: StackAction, opts: { service?: string; ui: Ui; dryRun?: boolean }): Promise<StackResult> {
  const created: string[] = [];
  const steps = stackSteps(cfg, action, await detectComposeFlavor(), { ...opts, created });
  const result: StackResult = { env: cfg.env, action, steps: renderPlan(steps), created };
  if (opts.dryRun) return result;
  if (action === 'up' || action === 'rebuild') for (const w of cfg.warnings) opts.ui.warn(w);
  await runPlan(steps, opts.ui);
  for (const c of created) opts.ui.info(`created ${c}`);
  return result;
}

export type EdgeAction = 'up' | 'reload';
/** The edge compose file names its one container so (caddy/docker-compose.edge.yml). */
export const edgeContainer = 'makapix-edge-caddy';

/** up-edge: network and default credentials first, then the edge project; reload-edge: caddy reload inside it. */
export async function runEdge(action: EdgeAction, settings: Pick<Settings, 'credentialsDir' | 'caddy'>, ui: Ui, dryRun = false): Promise<{ action: EdgeAction; created: string[]; steps: string[] }> {
  const volumes = action === 'up' ? edgeVolumes(await listVolumes()) : undefined;
  const command = edgeComposeCommand(['up', '-d'], await detectComposeFlavor(), undefined, volumes);
  if (dryRun) return { action, created: [], steps: [action === 'reload' ? `docker exec ${edgeContainer} caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile` : renderCommand(command)] };
  if (action === 'reload') {
    await ui.run('Reload the edge Caddy', () => reloadCaddy({ ...settings.caddy, container: edgeContainer }));
    return { action, created: [], steps: [] };
  }
  const created = [
    ...((await ensureNetwork(edgeNetwork)) ? [`network ${edgeNetwork}`] : []),
    ...(await ensureCredentials(settings.credentialsDir)),
    ...[await ensureSessionKey(settings.credentialsDir)].filter((f): f is string => f !== undefined),
    ...(await ensureVolumes([volumes!.data, volumes!.config])).map((v) => `volume ${v}`),
  ];
  for (const c of created) ui.info(`created ${c}`);
  if (volumes!.reused) ui.info(`certificates: the app's Caddy volumes ${volumes!.data}, ${volumes!.config} (no re-issuance)`);
  await ui.run('Start the edge Caddy', async () => {
    const out = await run(command, { nothrow: true });
    if (out.exitCode !== 0) throw new JobError(`Starting the edge Caddy failed: ${tail(out.stderr)}`, 'Check caddy/Caddyfile (make check) and that ports 80/443 are free.');
  });
  return { action, created, steps: [] };
}
