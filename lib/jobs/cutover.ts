// The one-time move of production from the old single-environment stack to EA (makapix-prod),
// reusing the old database volume. Order, and why: the old stack stops first, so the backup taken
// next is of the final data (no write can land between backup and switch); the backup runs in EA's
// own db container on that volume, before any app container of EA starts.
import { JobError, SafetyError } from '../core/errors.ts';
import { compose } from '../tools/compose.ts';
import { tail } from '../core/exec.ts';
import { backupDatabase } from '../tools/backup-store.ts';
import { containerHealthy, defaultHealth, docker, prepareEnvironment, serviceContainers, waitHealthy, type HealthPolicy } from '../tools/docker.ts';
import { formatBytes, type Ui } from '../core/ui.ts';
import { projectName, type EnvConfig } from '../core/config.ts';

export interface CutoverPlan {
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

const lines = (s: string) => s.split('\n').map((l) => l.trim()).filter(Boolean);

export interface CutoverResult {
  plan: CutoverPlan;
  dryRun: boolean;
  backup?: string;
}

/** make cutover-prod. */
export async function cutoverProd(cfg: EnvConfig, o: { oldProject: string; ui: Ui; dryRun: boolean; confirm: (q: string) => Promise<void>; health?: HealthPolicy }): Promise<CutoverResult> {
  const { ui } = o;
  const health = o.health ?? defaultHealth;
  const volume = cfg.vars.DB_VOLUME_NAME;
  if (!(await docker(['volume', 'inspect', volume], { nothrow: true })).ok) {
    throw new SafetyError(`The production volume ${volume} (DB_VOLUME_NAME in ${cfg.file}) does not exist.`, 'Set DB_VOLUME_NAME to the old stack\'s database volume (docker volume ls); nothing was changed.');
  }
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
    await ui.run('Start the rest of EA', () => compose(cfg, ['up', '-d', '--remove-orphans']));
    await ui.run("Wait for EA's api to be healthy", () =>
      waitHealthy("EA's api", async () => {
        const [api] = await serviceContainers(projectName(cfg.env), 'api');
        return api ? containerHealthy(api) : false;
      }, health),
    );
    ui.info(`Production runs as ${projectName(cfg.env)}. To go back: ${plan.rollback}`);
    return { plan, dryRun: false, backup: backup.file };
  } catch (err) {
    ui.error(`The cutover stopped. To go back to the old stack: ${plan.rollback}`);
    throw err;
  }
}
