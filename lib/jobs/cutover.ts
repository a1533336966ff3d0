// The one-time move of production to EA (makapix-prod) on the same database volume, from either
// layout a real VPS can be in (lib/domain/layout.ts): the migration plan's single project `makapix`,
// or the app's own `makapix-prod` with Caddy inside. Order, and why: the old app containers stop
// first, so the backup taken next is of the final data (no write can land between backup and
// switch); the backup runs in EA's own db container on that volume, before any app container of EA
// starts. For the app's layout, EA's images are built and the edge Caddy's container is created
// BEFORE anything stops, and the Caddy handover (the old one stops, the edge one starts on the same
// certificate volumes) is the last step: both gaps are measured and printed.
import { JobError, SafetyError } from '../core/errors.ts';
import { compose, detectComposeFlavor, edgeComposeCommand, edgeProject } from '../tools/compose.ts';
import { run, tail } from '../core/exec.ts';
import { backupDatabase } from '../tools/backup-store.ts';
import { ensureCredentials } from '../tools/caddy.ts';
import { defaultCaddyContainer } from '../core/settings.ts';
import { httpResponds } from '../tools/probe.ts';
import {
  containerHealthy,
  defaultHealth,
  docker,
  ensureVolumes,
  listContainers,
  listVolumes,
  prepareEnvironment,
  serviceContainers,
  waitHealthy,
  type HealthPolicy,
  type SeenContainer,
} from '../tools/docker.ts';
import { classifyLayout, edgeVolumes, projectLabel, serviceLabel, type Layout } from '../domain/layout.ts';
import { formatBytes, formatDuration, type Ui } from '../core/ui.ts';
import { projectName, type EnvConfig } from '../core/config.ts';

export interface CutoverPlan {
  /** The layout found: the plan's single project, or the app's makapix-prod with its Caddy. */
  layout: Layout['kind'];
  oldProject: string;
  oldContainers: string[];
  volume: string;
  steps: string[];
  rollback: string;
}

/** The command that undoes a cutover: EA down (volumes kept), the old containers started again. */
export function cutoverRollbackCommand(oldContainers: readonly string[]): string {
  return `make down-prod && docker start ${oldContainers.length ? oldContainers.join(' ') : '<the old containers>'}`;
}

export function cutoverPlan(cfg: EnvConfig, oldProject: string, oldContainers: string[]): CutoverPlan {
  const volume = cfg.vars.DB_VOLUME_NAME;
  return {
    layout: 'plan-single',
    oldProject,
    oldContainers,
    volume,
    steps: [
      `check that the volume ${volume} exists (never start production on an empty database)`,
      `stop the old stack ${oldProject} (${oldContainers.length} running container(s): ${oldContainers.join(', ') || 'none'}); they are kept for the rollback`,
      `check that no container uses ${volume} any more`,
      `start EA's db (${projectName(cfg.env)}) on ${volume}, wait healthy`,
      `back up EA's database (pinned) to ${cfg.vars.BACKUP_DIR}/pinned/`,
      'start the rest of EA (make up-prod), wait until the api is healthy',
    ],
    rollback: cutoverRollbackCommand(oldContainers),
  };
}

/**
 * How to put the app's own stack back: its compose files and folder, as its containers' labels
 * record them (Compose writes them on every container), after EA and the edge are removed.
 */
export function appRollbackCommand(appContainer: SeenContainer | undefined, project: string, edgeContainer: string): string {
  const l = appContainer?.labels ?? {};
  const dir = l['com.docker.compose.project.working_dir'];
  const files = (l['com.docker.compose.project.config_files'] ?? '').split(',').filter(Boolean);
  const envFile = l['com.docker.compose.project.environment_file'];
  const up = dir && files.length ? `(cd ${dir} && docker compose ${files.map((f) => `-f ${f}`).join(' ')}${envFile ? ` --env-file ${envFile}` : ''} -p ${project} up -d)` : `(the app's own: docker compose -p ${project} up -d in its deploy/stack folder)`;
  return `make down-prod && docker rm -f ${edgeContainer} && ${up}`;
}

/** The move from the app's makapix-prod with Caddy inside: what stops, what starts, in order. */
export function appCutoverPlan(cfg: EnvConfig, layout: Layout, edge: { data: string; config: string; reused: boolean }, edgeContainer: string): CutoverPlan {
  const volume = cfg.vars.DB_VOLUME_NAME;
  const project = projectName(cfg.env);
  const caddy = layout.caddy!;
  const appContainers = layout.old.filter((c) => c !== caddy && !layout.foreign.includes(c) && c.running).map((c) => c.name);
  const atHandover = [caddy, ...layout.foreign].filter((c) => c.running).map((c) => c.name);
  return {
    layout: 'app-prod-with-caddy',
    oldProject: project,
    oldContainers: [...appContainers, ...atHandover],
    volume,
    steps: [
      `found the app's own ${project} with Caddy inside: ${layout.found.join('; ')}`,
      `check that the volume ${volume} exists and is the one the app's db uses`,
      `build EA's images (nothing stops yet)`,
      `create the edge Caddy (${edgeProject}) without starting it, on ${edge.reused ? `the app's certificate volumes ${edge.data}, ${edge.config} (no re-issuance)` : `the volumes ${edge.data}, ${edge.config}`}`,
      `stop the app's containers ${appContainers.join(', ') || '(none running)'}; EA's services of the same names replace them (the site is down from here)`,
      `start EA's db on ${volume}, wait healthy; back up EA's database (pinned) to ${cfg.vars.BACKUP_DIR}/pinned/`,
      `start the rest of EA, wait until the api is healthy (the app's Caddy still routes to it by container name)`,
      `Caddy handover: stop ${caddy.name} (kept, not removed: not the toolkit's), start ${edgeContainer}, wait until it answers HTTP; the gap is measured and printed`,
      ...(atHandover.length > 1 ? [`stop ${atHandover.filter((n) => n !== caddy.name).join(', ')} (kept, not removed; they hold no port, so after the handover)`] : []),
    ],
    rollback: appRollbackCommand(layout.old.find((c) => c.labels[projectLabel] === project && c !== caddy) ?? caddy, project, edgeContainer),
  };
}

/** EDGE_HTTP_BIND as the edge compose file publishes it ("80", "127.0.0.1:18080") -> where to connect. */
export function edgeHttpAddress(bind: string | undefined): { host: string; port: number } {
  const m = /^(?:(.+):)?(\d+)$/.exec(bind ?? '80');
  return m ? { host: m[1] && m[1] !== '0.0.0.0' ? m[1] : '127.0.0.1', port: Number(m[2]) } : { host: '127.0.0.1', port: 80 };
}

const lines = (s: string) => s.split('\n').map((l) => l.trim()).filter(Boolean);

export interface CutoverResult {
  plan: CutoverPlan;
  dryRun: boolean;
  backup?: string;
  /** App layout only: how long the site was down, and how long no proxy held ports 80/443. */
  gaps?: { outageMs: number; handoverMs: number };
}

export interface CutoverOptions {
  oldProject: string;
  ui: Ui;
  dryRun: boolean;
  confirm: (q: string) => Promise<void>;
  health?: HealthPolicy;
  /** The edge's credentials folder (settings): filled with the locked defaults before the edge starts. */
  credentialsDir: string;
  /** Where the edge Caddy's HTTP port is reached from the host, to time the handover (default 127.0.0.1:80). */
  edgeHttp?: { host: string; port: number };
}

/** make cutover-prod. */
export async function cutoverProd(cfg: EnvConfig, o: CutoverOptions): Promise<CutoverResult> {
  const volume = cfg.vars.DB_VOLUME_NAME;
  if (!(await docker(['volume', 'inspect', volume], { nothrow: true })).ok) {
    throw new SafetyError(`The production volume ${volume} (DB_VOLUME_NAME in ${cfg.file}) does not exist.`, 'Set DB_VOLUME_NAME to the old stack\'s database volume (docker volume ls); nothing was changed.');
  }
  const services = (await compose(cfg, ['config', '--services'])).split('\n').map((l) => l.trim()).filter(Boolean);
  const layout = classifyLayout(await listContainers(), { project: projectName(cfg.env), planProject: o.oldProject, edgeProject, ourServices: services });
  switch (layout.kind) {
    case 'app-prod-with-caddy':
      return cutoverFromApp(cfg, layout, o);
    case 'toolkit':
      throw new SafetyError(`Production already runs as the toolkit's ${projectName(cfg.env)}; there is nothing to move.`, 'Use make up-prod or make deploy-prod.');
    case 'unknown':
      throw new SafetyError(`Containers of ${projectName(cfg.env)} that no known layout explains are running: ${layout.found.join('; ')}.`, 'Stop the ones you no longer want by name (docker stop <name>) and run again; nothing was changed.');
    default:
      return cutoverFromPlan(cfg, o);
  }
}

/** The migration plan's single project (`--old-project`, default makapix). */
async function cutoverFromPlan(cfg: EnvConfig, o: CutoverOptions): Promise<CutoverResult> {
  const { ui } = o;
  const health = o.health ?? defaultHealth;
  const volume = cfg.vars.DB_VOLUME_NAME;
  const oldContainers = lines((await docker(['ps', '--format', '{{.Names}}', '--filter', `label=com.docker.compose.project=${o.oldProject}`], { nothrow: true })).stdout);
  const plan = cutoverPlan(cfg, o.oldProject, oldContainers);
  if (o.dryRun) return { plan, dryRun: true };
  await o.confirm(`Stop ${o.oldProject} and start production as ${projectName(cfg.env)} on ${volume}?`);
  try {
    if (oldContainers.length) await ui.run(`Stop the old stack ${o.oldProject}`, async () => {
      const r = await docker(['stop', '--time', '30', ...oldContainers], { nothrow: true });
      if (!r.ok) throw new JobError(`docker stop failed: ${tail(r.stderr)}`);
    });
    const users = lines((await docker(['ps', '--format', '{{.Names}}', '--filter', `volume=${volume}`], { nothrow: true })).stdout);
    if (users.length) throw new SafetyError(`${users.join(', ')} still use${users.length === 1 ? 's' : ''} ${volume}; two servers on one database folder would corrupt it.`, `Stop ${users.join(' ')} (or set --old-project to its project) and run again.`);
    await prepareEnvironment(cfg);
    await ui.run(`Start EA's db on ${volume}`, async () => {
      await compose(cfg, ['up', '-d', 'db']);
      await waitHealthy("EA's db", async () => {
        const [db] = await serviceContainers(projectName(cfg.env), 'db');
        return db ? containerHealthy(db) : false;
      }, health);
    });
    const backup = await ui.run("Back up EA's database", () => backupDatabase(cfg, { mode: 'compose', pinned: true, reason: `cutover from ${o.oldProject}`, ui }), (b) => `${b.file} (${formatBytes(b.bytes)})`);
    await ui.run('Start the rest of EA', () => compose(cfg, ['up', '-d']));
    await ui.run("Wait for EA's api to be healthy", () => waitForApi(cfg, health));
    ui.info(`Production runs as ${projectName(cfg.env)}. To go back: ${plan.rollback}`);
    return { plan, dryRun: false, backup: backup.file };
  } catch (err) {
    ui.error(`The cutover stopped. To go back to the old stack: ${plan.rollback}`);
    throw err;
  }
}

const waitForApi = (cfg: EnvConfig, health: HealthPolicy) =>
  waitHealthy("EA's api", async () => {
    const [api] = await serviceContainers(projectName(cfg.env), 'api');
    return api ? containerHealthy(api) : false;
  }, health);

async function stopContainers(names: readonly string[]): Promise<void> {
  if (!names.length) return;
  const r = await docker(['stop', '--time', '30', ...names], { nothrow: true });
  if (!r.ok) throw new JobError(`docker stop ${names.join(' ')} failed: ${tail(r.stderr)}`, 'Look at docker ps -a and run again.');
}

/** The app's makapix-prod with Caddy inside, moved to EA plus the edge project. */
async function cutoverFromApp(cfg: EnvConfig, layout: Layout, o: CutoverOptions): Promise<CutoverResult> {
  const { ui } = o;
  const health = o.health ?? defaultHealth;
  const volume = cfg.vars.DB_VOLUME_NAME;
  const project = projectName(cfg.env);
  const appDb = layout.old.find((c) => c.labels[projectLabel] === project && c.labels[serviceLabel] === 'db');
  if (appDb && !appDb.volumes.includes(volume)) {
    throw new SafetyError(`The app's database container ${appDb.name} uses ${appDb.volumes.join(', ') || 'no named volume'}, not DB_VOLUME_NAME=${volume} (${cfg.file}).`, `Set DB_VOLUME_NAME to the volume production's data is on; nothing was changed.`);
  }
  const edge = edgeVolumes(await listVolumes());
  const edgeContainer = defaultCaddyContainer;
  const plan = appCutoverPlan(cfg, layout, edge, edgeContainer);
  if (o.dryRun) return { plan, dryRun: true };
  await o.confirm(`Move production from the app's ${project} (with its Caddy) to EA and the edge project on ${volume}?`);
  const caddy = layout.caddy!;
  const appContainers = layout.old.filter((c) => c !== caddy && !layout.foreign.includes(c) && c.running).map((c) => c.name);
  const atHandover = [caddy, ...layout.foreign].filter((c) => c.running).map((c) => c.name);
  const flavor = await detectComposeFlavor();
  let outageStart: number | undefined;
  try {
    await ui.run("Build EA's images", () => compose(cfg, ['build']));
    await prepareEnvironment(cfg);
    await ensureCredentials(o.credentialsDir);
    await ensureVolumes([edge.data, edge.config]);
    await ui.run(`Create ${edgeContainer} (not started)`, () => run(edgeComposeCommand(['up', '--no-start'], flavor, undefined, edge)));
    outageStart = Date.now();
    await ui.run(`Stop the app's containers (${appContainers.length})`, () => stopContainers(appContainers));
    const users = lines((await docker(['ps', '--format', '{{.Names}}', '--filter', `volume=${volume}`], { nothrow: true })).stdout);
    if (users.length) throw new SafetyError(`${users.join(', ')} still use${users.length === 1 ? 's' : ''} ${volume}; two servers on one database folder would corrupt it.`, `Stop ${users.join(' ')} and run again.`);
    await ui.run(`Start EA's db on ${volume}`, async () => {
      await compose(cfg, ['up', '-d', 'db']);
      await waitHealthy("EA's db", async () => {
        const [db] = await serviceContainers(project, 'db');
        return db ? containerHealthy(db) : false;
      }, health);
    });
    const backup = await ui.run("Back up EA's database", () => backupDatabase(cfg, { mode: 'compose', pinned: true, reason: `cutover from the app's ${project}`, ui }), (b) => `${b.file} (${formatBytes(b.bytes)})`);
    await ui.run('Start the rest of EA', () => compose(cfg, ['up', '-d']));
    await ui.run("Wait for EA's api to be healthy", () => waitForApi(cfg, health));
    const at = o.edgeHttp ?? { host: '127.0.0.1', port: 80 };
    const handoverStart = Date.now();
    // Only the Caddy holds the ports: it alone stops inside the gap. The app's other leftovers
    // (www-redirect, redis: `sleep infinity` ignores SIGTERM and takes the whole stop timeout) stop after.
    await ui.run(`Caddy handover: stop ${caddy.name}, start ${edgeContainer}`, async () => {
      if (caddy.running) await stopContainers([caddy.name]);
      await docker(['start', edgeContainer]);
      await waitHealthy(`${edgeContainer} on ${at.host}:${at.port}`, () => httpResponds(at.host, at.port), { intervalMs: 50, timeoutMs: 60_000, consecutive: 1 });
    });
    const end = Date.now();
    const gaps = { outageMs: end - outageStart, handoverMs: end - handoverStart };
    const rest = atHandover.filter((n) => n !== caddy.name);
    if (rest.length) await ui.run(`Stop the app's ${rest.join(', ')} (kept, not removed)`, () => stopContainers(rest));
    ui.info(`Caddy handover: no proxy on the ports for ${formatDuration(gaps.handoverMs)}; the site was down ${formatDuration(gaps.outageMs)} in all (from stopping the app's containers to the edge answering).`);
    ui.info(`Production runs as ${project} behind ${edgeContainer}. Left stopped, not removed: ${atHandover.join(', ')}. To go back: ${plan.rollback}`);
    return { plan, dryRun: false, backup: backup.file, gaps };
  } catch (err) {
    ui.error(`The cutover stopped${outageStart ? '' : ' before anything was stopped'}. To go back to the app's stack: ${plan.rollback}`);
    throw err;
  }
}
