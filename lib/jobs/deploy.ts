// Moving a tested commit from EB to EA (deploy-to-prod), and back (--rollback). The plan (what will
// run, with which commit, tags and commands) is pure and unit-tested; the runner executes it step by
// step, each logged with its duration, and records every attempt in an append-only JSONL log.
//
// The switch overlaps containers where it can: a service with a healthcheck and no published port
// gets a second container (`<name>-next`, `compose run` on the new image) that receives the
// service's network aliases only once healthy; then the old one is taken out of the network and
// recreated on the new image, and the helper is retired last. Clients that resolve the alias per
// connection (Caddy, the app's services) always find a live container. (container_name in the
// compose files rules out `--scale api=2`, hence the helper.)
import { appendFile, mkdir, open, readFile, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { $ } from 'zx';
import YAML from 'yaml';
import { JobError, OpsError, SafetyError, UsageError } from '../core/errors.ts';
import { acquireLock, type Lock } from '../core/lock.ts';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { projectName } from '../core/config.ts';
import { compose } from '../tools/compose.ts';
import { tail } from '../core/exec.ts';
import { containerHealthy, defaultHealth, docker, serviceContainers, waitHealthy, type HealthPolicy } from '../tools/docker.ts';
import { backupDatabase } from '../tools/backup-store.ts';
import { httpRequest } from '../tools/probe.ts';
import { formatBytes, formatDuration, type Ui } from '../core/ui.ts';
import type { EnvConfig } from '../core/config.ts';

// ---- pure: names, tags, strategies, the plan --------------------------------------------------

/** Images of a deploy are tagged with the commit they were built from. */
export const imageTag = (sha: string) => sha.slice(0, 12);
export const nextContainerName = (project: string, service: string) => `${project}-${service}-next`;
/** Where migrations live in the app's repository (Alembic's versions folder). */
export const migrationsPath = 'api/alembic/versions';
export const deployedBranch = 'main';

/** What the rendered compose config says about a service, as far as the switch cares. */
export interface ServiceFacts {
  name: string;
  /** Built from the app checkout (api, worker, web), as opposed to an upstream image. */
  built: boolean;
  healthcheck: boolean;
  publishesPorts: boolean;
}

export type SwitchStrategy = 'overlap' | 'recreate';

/**
 * Overlap needs a way to tell that the new container is ready (a healthcheck) and must not fight the
 * old one for a host port; everything else is recreated in place (a second Celery worker or beat
 * would duplicate work anyway).
 */
export const switchStrategy = (s: ServiceFacts): SwitchStrategy => (s.healthcheck && !s.publishesPorts ? 'overlap' : 'recreate');

/** Reads `docker compose config` output into the facts the plan needs. */
export function servicesFromConfig(yamlText: string): ServiceFacts[] {
  const doc = YAML.parse(yamlText) as { services?: Record<string, { build?: unknown; healthcheck?: { test?: unknown; disable?: boolean }; ports?: unknown[] }> };
  return Object.entries(doc.services ?? {}).map(([name, s]) => {
    const test = s.healthcheck?.test;
    const disabled = s.healthcheck?.disable === true || (Array.isArray(test) && test[0] === 'NONE');
    return { name, built: s.build !== undefined, healthcheck: test !== undefined && !disabled, publishesPorts: (s.ports ?? []).length > 0 };
  });
}

/** Replaces (or appends) one KEY=value line of an env file, leaving every other line as it was. */
export function withEnvValue(text: string, key: string, value: string): string {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => new RegExp(`^\\s*(?:export\\s+)?${key}\\s*=`).test(l));
  if (i >= 0) lines[i] = `${key}=${value}`;
  else lines.splice(lines.at(-1) === '' ? lines.length - 1 : lines.length, 0, `${key}=${value}`);
  return lines.join('\n');
}

export interface Commit {
  sha: string;
  subject: string;
}

/** Everything the plan is computed from; the runner gathers it (read-only) in preflight. */
export interface DeployFacts {
  project: string;
  appDir: string;
  branch: string;
  clean: boolean;
  head: string;
  /** origin/main after `git fetch`. */
  target: string;
  /** HEAD is an ancestor of target (a fast-forward is possible). */
  fastForward: boolean;
  commits: Commit[];
  /** Migration files the range adds or changes. */
  migrations: string[];
  /** The image tag EA runs now (IMAGE_TAG of .env.prod). */
  currentTag: string;
  services: ServiceFacts[];
  /** The commit EB's checkout is at: the tests run there, so it must be what gets deployed. */
  ebHead: string;
  envFile: string;
  deployLog: string;
  backupDir: string;
}

export interface DeployOptions {
  skipTests: boolean;
  yes: boolean;
  healthUrl?: string;
}

export type StepId = 'preflight' | 'tests' | 'backup' | 'update' | 'build' | 'migrate' | 'switch' | 'health' | 'record';

export interface PlannedStep {
  n: number;
  id: StepId;
  title: string;
  /** What it will run, with real values, for --dry-run and the log. */
  does: string[];
  skipped?: string;
}

export interface DeployPlan {
  from: { commit: string; tag: string };
  to: { commit: string; tag: string };
  commits: Commit[];
  migrations: string[];
  switches: { service: string; strategy: SwitchStrategy }[];
  steps: PlannedStep[];
}

/** A contradiction in the options alone (exit 2): checked before the lock, git or Docker. */
export function optionsRefusal(o: DeployOptions): OpsError | undefined {
  if (o.skipTests && !o.yes) return new UsageError('--skip-tests deploys code no test has passed on EB; it needs --yes as well.', 'Run again with --skip-tests --yes (the deploy record keeps that tests were skipped).');
  return undefined;
}

/** Refusals that depend only on the facts: the same answer for --dry-run and for the real run. */
export function deployRefusal(f: DeployFacts, o: DeployOptions): OpsError | undefined {
  const options = optionsRefusal(o);
  if (options) return options;
  if (!f.clean) return new SafetyError(`The app checkout ${f.appDir} has uncommitted changes.`, 'Commit or remove them; a deploy builds exactly a commit of main.');
  if (f.branch !== deployedBranch) return new SafetyError(`The app checkout ${f.appDir} is on "${f.branch}", not ${deployedBranch}.`, `git -C ${f.appDir} checkout ${deployedBranch}`);
  if (!f.fastForward) return new SafetyError(`origin/${deployedBranch} (${f.target.slice(0, 12)}) is not a fast-forward of ${f.appDir} (${f.head.slice(0, 12)}).`, 'History was rewritten or the checkout has local commits; sort it out by hand, then deploy.');
  if (!o.skipTests && f.ebHead !== f.target) {
    return new SafetyError(`EB runs ${f.ebHead.slice(0, 12)}, but ${deployedBranch} is at ${f.target.slice(0, 12)}: the tests on EB would not test what gets deployed.`, `Put EB on ${f.target.slice(0, 12)} (git pull in its checkout, make rebuild-dev), then deploy.`);
  }
  return undefined;
}

/** The nine steps with their real values. Pure: the unit tests pin it down. */
export function deployPlan(f: DeployFacts, o: DeployOptions): DeployPlan {
  const toTag = imageTag(f.target);
  const built = f.services.filter((s) => s.built);
  const switches = [...built.filter((s) => switchStrategy(s) === 'overlap'), ...built.filter((s) => switchStrategy(s) === 'recreate')].map((s) => ({ service: s.name, strategy: switchStrategy(s) }));
  const names = switches.map((s) => s.service);
  const envTag = `IMAGE_TAG=${toTag}`;
  const steps: PlannedStep[] = [
    { n: 1, id: 'preflight', title: 'Preflight', does: [`lock ${path.join(path.dirname(f.deployLog), 'deploy.lock')}`, `${f.appDir}: clean, on ${deployedBranch}; git fetch: ${f.commits.length} commit(s) ${f.head.slice(0, 12)}..${f.target.slice(0, 12)}, ${f.migrations.length} migration file(s)`, 'EB api healthy', `free disk for images and a backup (${f.backupDir})`] },
    { n: 2, id: 'tests', title: "Run the app's tests on EB", does: ['docker compose -p makapix-dev exec -T api pytest'], ...(o.skipTests && { skipped: '--skip-tests --yes' }) },
    { n: 3, id: 'backup', title: "Back up EA's database (pinned)", does: [`backup to ${path.join(f.backupDir, 'pinned')}/`] },
    { n: 4, id: 'update', title: 'Update the code (fast-forward only)', does: [`git -C ${f.appDir} merge --ff-only ${f.target}`] },
    { n: 5, id: 'build', title: `Build EA's images for ${toTag}`, does: [`${envTag} docker compose -p ${f.project} build ${names.join(' ')}`] },
    { n: 6, id: 'migrate', title: 'Apply migrations', does: [`${envTag} docker compose -p ${f.project} run --rm --no-deps -T api alembic upgrade head`] },
    {
      n: 7,
      id: 'switch',
      title: `Switch EA to ${toTag}`,
      does: switches.map((s) =>
        s.strategy === 'overlap'
          ? `${s.service}: start ${nextContainerName(f.project, s.service)} (no aliases), wait healthy, give it ${s.service}'s aliases, recreate ${s.service}, wait healthy, retire the helper`
          : `${s.service}: recreate on the new image (${envTag} docker compose up -d --no-deps ${s.service})`,
      ),
    },
    { n: 8, id: 'health', title: 'Health check', does: [o.healthUrl ? `GET ${o.healthUrl}` : "the api container's own healthcheck, run with docker exec"] },
    { n: 9, id: 'record', title: 'Record the deploy', does: [`${f.envFile}: IMAGE_TAG=${toTag}`, `append to ${f.deployLog}`] },
  ];
  return { from: { commit: f.head, tag: f.currentTag }, to: { commit: f.target, tag: toTag }, commits: f.commits, migrations: f.migrations, switches, steps };
}

/** One line of the deploy log. */
export interface DeployRecord {
  at: string;
  kind: 'deploy' | 'rollback';
  user: string;
  from: { commit: string | null; tag: string };
  to: { commit: string | null; tag: string };
  images: string[];
  backup: string | null;
  skipTests: boolean;
  migrations: string[];
  steps: { id: string; title: string; ms: number; ok: boolean }[];
  result: 'succeeded' | 'failed' | 'rolled-back';
  error?: string;
  downtimeNote?: string;
}

/**
 * What --rollback returns to: the tag EA ran before the deploy that put the current tag in place.
 * Undefined when the log has no successful deploy of the current tag.
 */
export function rollbackTarget(records: readonly DeployRecord[], currentTag: string): { tag: string; commit: string | null } | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i]!;
    if (r.result === 'succeeded' && r.to.tag === currentTag && r.from.tag !== currentTag) return { tag: r.from.tag, commit: r.from.commit };
  }
  return undefined;
}

export function parseDeployLog(text: string): DeployRecord[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as DeployRecord];
      } catch {
        return []; // a line cut by a crash: the rest of the log stays readable
      }
    });
}

// ---- runners ------------------------------------------------------------------------------------


const git = (dir: string) => $({ quiet: true, cwd: dir });

/** One `docker` call; failures name the command and its output. */
async function urlHealthy(url: string): Promise<boolean> {
  try {
    return (await httpRequest({ url, timeoutMs: 5000 })).status === 200;
  } catch {
    return false;
  }
}

/** Takes a container out of every network (Docker's DNS stops answering with it), then waits briefly for in-flight requests. */
async function drain(container: string, drainMs: number): Promise<void> {
  const { stdout } = await docker(['inspect', '--format', '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}', container]);
  for (const net of stdout.split(' ').filter(Boolean)) await docker(['network', 'disconnect', net, container], { nothrow: true });
  await new Promise((r) => setTimeout(r, drainMs));
}

async function removeContainer(name: string): Promise<void> {
  if (!(await docker(['inspect', name], { nothrow: true })).ok) return;
  await docker(['stop', '--time', '10', name], { nothrow: true });
  await docker(['rm', '--force', name], { nothrow: true });
}

export interface SwitchOptions {
  health: HealthPolicy;
  ui: Ui;
  /** Pause between taking a container out of DNS and stopping it. */
  drainMs?: number;
}

/**
 * The network aliases a container answers to, per network, without the container-id alias Docker
 * adds by itself: what a helper container must get to serve in its place.
 */
export function aliasesFromInspect(networksJson: string, containerId: string): Map<string, string[]> {
  const nets = JSON.parse(networksJson) as Record<string, { Aliases?: string[] | null }> | null;
  const out = new Map<string, string[]>();
  for (const [net, v] of Object.entries(nets ?? {})) out.set(net, (v.Aliases ?? []).filter((a) => !containerId.startsWith(a)));
  return out;
}

async function networksOf(container: string): Promise<Map<string, string[]>> {
  const { stdout } = await docker(['inspect', '--format', '{{.Id}} {{json .NetworkSettings.Networks}}', container]);
  const i = stdout.indexOf(' ');
  return aliasesFromInspect(stdout.slice(i + 1), stdout.slice(0, i));
}

/**
 * Switches the app services to `tag` without building anything. For an overlap service the helper
 * starts WITHOUT the service's aliases (so no request reaches it while it boots or if it is broken),
 * gets the old container's aliases only once healthy, and then the old container is taken out of
 * DNS, recreated on the new image, and the helper retired once the recreated one is healthy.
 * A helper that never gets healthy is removed and the old container keeps serving.
 */
export async function switchServices(cfg: EnvConfig, switches: DeployPlan['switches'], tag: string, opts: SwitchOptions): Promise<void> {
  const project = projectName(cfg.env);
  const env = { IMAGE_TAG: tag };
  const drainMs = opts.drainMs ?? 1000;
  const inPlace: string[] = [];
  // Whether an earlier service already runs the new tag: a later failure must then roll back.
  let changed = false;
  for (const { service, strategy } of switches) {
    const [old] = await serviceContainers(project, service);
    if (strategy === 'recreate' || !old) {
      inPlace.push(service);
      continue;
    }
    const helper = nextContainerName(project, service);
    await removeContainer(helper);
    await compose(cfg, ['run', '-d', '--no-deps', '--name', helper, service], env);
    try {
      await waitHealthy(`The new ${service} container (${helper}, ${tag})`, () => containerHealthy(helper), opts.health);
    } catch (err) {
      await removeContainer(helper);
      throw new HealthFailure(`${(err as Error).message} It never received traffic; the old ${service} container kept serving and was not touched.`, changed);
    }
    for (const [net, aliases] of await networksOf(old)) {
      await docker(['network', 'disconnect', net, helper], { nothrow: true });
      await docker(['network', 'connect', ...aliases.flatMap((a) => ['--alias', a]), net, helper]);
    }
    opts.ui.info(`${helper} is healthy and serves beside the old ${service}; recreating ${service} on ${tag}`);
    await drain(old, drainMs);
    changed = true;
    await compose(cfg, ['up', '-d', '--no-deps', service], env);
    const [fresh] = await serviceContainers(project, service);
    try {
      await waitHealthy(`The recreated ${service} container (${tag})`, () => (fresh ? containerHealthy(fresh) : Promise.resolve(false)), opts.health);
    } catch (err) {
      // The helper still answers on the aliases: the caller's rollback recreates the service on the old tag.
      throw new HealthFailure((err as Error).message, true, helper);
    }
    await drain(helper, drainMs);
    await removeContainer(helper);
  }
  // One compose call for all of them: Compose recreates them in parallel.
  if (inPlace.length) await compose(cfg, ['up', '-d', '--no-deps', ...inPlace], env);
}

/** A health failure during or after the switch; `switched` says whether EA's containers changed. */
export class HealthFailure extends JobError {
  readonly switched: boolean;
  readonly helper: string | undefined;
  constructor(message: string, switched: boolean, helper?: string) {
    super(message, 'The deploy was rolled back; see make logs-prod SERVICE=api for why the new version was unhealthy.');
    this.switched = switched;
    this.helper = helper;
  }
}

// ---- gathering facts ----------------------------------------------------------------------------

async function gitFacts(appDir: string): Promise<Pick<DeployFacts, 'branch' | 'clean' | 'head' | 'target' | 'fastForward' | 'commits' | 'migrations'>> {
  if (!(await stat(path.join(appDir, '.git')).then(() => true, () => false))) {
    throw new SafetyError(`APP_DIR ${appDir} is not a git checkout.`, 'Set APP_DIR in compose/.env.prod to the app repository (e.g. /opt/makapix).');
  }
  const g = git(appDir);
  const branch = (await g`git rev-parse --abbrev-ref HEAD`).stdout.trim();
  const clean = (await g`git status --porcelain --untracked-files=no`).stdout.trim() === '';
  const fetched = await $({ quiet: true, cwd: appDir, nothrow: true, timeout: '120s' })`git fetch --quiet origin ${deployedBranch}`;
  if (fetched.exitCode !== 0) throw new JobError(`git fetch in ${appDir} failed: ${tail(fetched.stderr)}`, 'Check that origin is reachable and credentials work.');
  const head = (await g`git rev-parse HEAD`).stdout.trim();
  const target = (await g`git rev-parse ${`origin/${deployedBranch}`}`).stdout.trim();
  const fastForward = (await $({ quiet: true, cwd: appDir, nothrow: true })`git merge-base --is-ancestor ${head} ${target}`).exitCode === 0;
  const log = fastForward ? (await g`git log --format=%H%x09%s ${`${head}..${target}`}`).stdout.trim() : '';
  const commits = log ? log.split('\n').map((l) => ({ sha: l.split('\t')[0]!, subject: l.split('\t').slice(1).join('\t') })) : [];
  const migrations = fastForward ? (await g`git diff --name-only ${head} ${target} -- ${migrationsPath}`).stdout.split('\n').filter(Boolean) : [];
  return { branch, clean, head, target, fastForward, commits, migrations };
}

/** Everything the plan needs, read without changing anything (git fetch only updates remote refs). */
export async function gatherFacts(prod: EnvConfig, dev: EnvConfig): Promise<DeployFacts> {
  const appDir = prod.vars.APP_DIR;
  const services = servicesFromConfig(await compose(prod, ['config']));
  const ebHead = (await $({ quiet: true, cwd: dev.vars.APP_DIR, nothrow: true })`git rev-parse HEAD`).stdout.trim() || 'unknown';
  return {
    project: projectName(prod.env),
    appDir,
    ...(await gitFacts(appDir)),
    currentTag: prod.vars.IMAGE_TAG,
    services,
    ebHead,
    envFile: prod.file,
    deployLog: prod.vars.DEPLOY_LOG,
    backupDir: prod.vars.BACKUP_DIR,
  };
}

// ---- the deploy ---------------------------------------------------------------------------------

export interface DeployRunOptions extends DeployOptions {
  ui: Ui;
  dryRun: boolean;
  /** Who deploys, for the log (Settings.operator). */
  operator: string;
  health?: HealthPolicy;
  /** Free bytes required where images and backups go. */
  minFreeBytes?: number;
}

export interface DeployResult {
  plan: DeployPlan;
  dryRun: boolean;
  nothingToDo: boolean;
  record?: DeployRecord;
  /** What an operator still has to do by hand (after a rollback with migrations). */
  manual: string[];
}

export const lockPathFor = (deployLog: string) => path.join(path.dirname(deployLog), 'deploy.lock');

/** Appends one record as one line, fsynced: the log is never rewritten. */
export async function appendRecord(logFile: string, record: DeployRecord): Promise<void> {
  await mkdir(path.dirname(logFile), { recursive: true });
  await appendFile(logFile, `${JSON.stringify(record)}\n`, { mode: 0o640 });
  const h = await open(logFile, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function readDeployLog(logFile: string): Promise<DeployRecord[]> {
  return parseDeployLog(await readFile(logFile, 'utf8').catch(() => ''));
}

/** The deploy lock; a live holder is a refusal (exit 3), not a failure. */
async function takeDeployLock(deployLog: string): Promise<Lock> {
  try {
    return await acquireLock(lockPathFor(deployLog), 'deploy-to-prod');
  } catch (err) {
    if (err instanceof OpsError) throw new SafetyError(err.message, err.hint);
    throw err;
  }
}

/** Records the deployed tag in .env.prod, so `make up-prod` keeps running what was deployed. */
async function recordTag(envFile: string, tag: string): Promise<void> {
  const mode = (await stat(envFile)).mode & 0o777;
  await writeFileAtomic(envFile, withEnvValue(await readFile(envFile, 'utf8'), 'IMAGE_TAG', tag), mode);
}

async function freeBytes(dir: string): Promise<number> {
  await mkdir(dir, { recursive: true });
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

const imagesOf = (f: DeployFacts, tag: string) => f.services.filter((s) => s.built).map((s) => `${f.project}-${s.name}:${tag}`);

/** make deploy-prod: the nine steps; see docs/deploy.md. */
export async function deployToProd(prod: EnvConfig, dev: EnvConfig, o: DeployRunOptions): Promise<DeployResult> {
  const { ui } = o;
  const health = o.health ?? defaultHealth;
  const usage = optionsRefusal(o);
  if (usage) throw usage;
  const lock = o.dryRun ? undefined : await takeDeployLock(prod.vars.DEPLOY_LOG);
  const steps: DeployRecord['steps'] = [];
  const timed = async <T>(s: PlannedStep, fn: () => Promise<T>, detail?: (r: T) => string | undefined): Promise<T> => {
    const started = Date.now();
    try {
      const r = await ui.run(`${s.n}/9 ${s.title}`, fn, detail);
      steps.push({ id: s.id, title: s.title, ms: Date.now() - started, ok: true });
      return r;
    } catch (err) {
      steps.push({ id: s.id, title: s.title, ms: Date.now() - started, ok: false });
      throw err;
    }
  };
  try {
    const facts = await gatherFacts(prod, dev);
    const plan = deployPlan(facts, o);
    const step = (id: StepId) => plan.steps.find((s) => s.id === id)!;
    const refusal = deployRefusal(facts, o);
    if (refusal) throw refusal;
    const nothingToDo = plan.to.tag === plan.from.tag;
    if (o.dryRun || nothingToDo) {
      if (nothingToDo) ui.info(`EA already runs ${plan.to.tag} (${deployedBranch} at ${facts.target.slice(0, 12)}); nothing to deploy.`);
      return { plan, dryRun: o.dryRun, nothingToDo, manual: [] };
    }
    ui.info(`Deploying ${plan.from.tag} -> ${plan.to.tag}: ${plan.commits.length} commit(s), ${plan.migrations.length} migration file(s)${o.skipTests ? ', TESTS SKIPPED (--skip-tests --yes)' : ''}`);

    const record: DeployRecord = {
      at: new Date().toISOString(),
      kind: 'deploy',
      user: o.operator,
      from: plan.from,
      to: plan.to,
      images: imagesOf(facts, plan.to.tag),
      backup: null,
      skipTests: o.skipTests,
      migrations: plan.migrations,
      steps,
      result: 'failed',
    };
    const manual: string[] = [];
    let migrated = false;
    let recordFrom = Date.now();
    try {
      await timed(step('preflight'), async () => {
        const [eb] = await serviceContainers(projectName(dev.env), 'api');
        if (!eb || !(await containerHealthy(eb))) throw new SafetyError("EB's api is not up and healthy.", 'Start it (make up-dev) and check it (make logs-dev SERVICE=api) first.');
        const need = o.minFreeBytes ?? 5 * 1024 ** 3;
        const dockerRoot = (await docker(['info', '--format', '{{.DockerRootDir}}'])).stdout || '/var/lib/docker';
        for (const dir of [dockerRoot, prod.vars.BACKUP_DIR]) {
          const free = await freeBytes(dir);
          if (free < need) throw new JobError(`Only ${formatBytes(free)} is free in ${dir}; a deploy needs ${formatBytes(need)} for images and a backup.`, 'Free some space (docker image prune, old backups) and run again.');
        }
        return `${plan.commits.length} commit(s): ${plan.commits.map((c) => `${c.sha.slice(0, 8)} ${c.subject}`).join('; ')}`;
      }, (d) => d);

      if (!o.skipTests) {
        await timed(step('tests'), async () => {
          const out = await compose(dev, ['exec', '-T', 'api', 'pytest']).catch((err: Error) => {
            throw new JobError(`The app's tests failed on EB: ${err.message.replace(/^docker compose .*? failed for dev /, '')}`, 'Fix them on EB; EA was not touched.');
          });
          return tail(out, 1);
        }, (d) => d);
      }

      const backup = await timed(step('backup'), () => backupDatabase(prod, { mode: 'compose', pinned: true, reason: `before deploy of ${plan.to.tag}`, ui }), (b) => `${b.file} (${formatBytes(b.bytes)})`);
      record.backup = backup.file;

      await timed(step('update'), async () => {
        const r = await $({ quiet: true, cwd: facts.appDir, nothrow: true })`git merge --ff-only ${facts.target}`;
        if (r.exitCode !== 0) throw new SafetyError(`${facts.appDir} cannot be fast-forwarded to ${facts.target.slice(0, 12)}: ${tail(r.stderr)}`, 'Resolve it by hand; EA was not touched.');
        return facts.target.slice(0, 12);
      }, (d) => `at ${d}`);

      const names = plan.switches.map((s) => s.service);
      await timed(step('build'), () => compose(prod, ['build', ...names], { IMAGE_TAG: plan.to.tag }), () => record.images.join(', '));

      await timed(step('migrate'), async () => {
        migrated = true;
        return tail(await compose(prod, ['run', '--rm', '--no-deps', '-T', 'api', 'alembic', 'upgrade', 'head'], { IMAGE_TAG: plan.to.tag }), 3);
      }, (d) => d || 'up to date');

      try {
        await timed(step('switch'), () => switchServices(prod, plan.switches, plan.to.tag, { health, ui }));
        await timed(step('health'), async () => {
          const probe = o.healthUrl ? () => urlHealthy(o.healthUrl!) : async () => {
            const [api] = await serviceContainers(facts.project, 'api');
            return api ? containerHealthy(api) : false;
          };
          return waitHealthy(o.healthUrl ?? "EA's api", probe, health);
        }, (n) => `${health.consecutive} consecutive successes (${n} checks)`);
      } catch (err) {
        const failure = err instanceof HealthFailure ? err : new HealthFailure((err as Error).message, true);
        ui.warn(`Rolling EA back to ${plan.from.tag}: ${failure.message}`);
        if (failure.switched) {
          await switchServices(prod, plan.switches.map((s) => ({ ...s, strategy: 'recreate' as const })), plan.from.tag, { health, ui });
          if (failure.helper) await removeContainer(failure.helper);
          const probeOld = async () => {
            const [api] = await serviceContainers(facts.project, 'api');
            return api ? containerHealthy(api) : false;
          };
          await waitHealthy(`EA's api after the rollback to ${plan.from.tag}`, probeOld, health).catch((e: Error) => manual.push(`EA is NOT healthy after the rollback: ${e.message}`));
        }
        record.result = 'rolled-back';
        record.error = failure.message;
        if (migrated) {
          manual.push(
            `Migrations ran against EA's database (${plan.migrations.length ? plan.migrations.join(', ') : 'alembic upgrade head'}); ${plan.from.tag} now runs on the new schema.`,
            `If it misbehaves, restore the backup taken before the deploy: ./scripts/restore.ts --env prod --file ${backup.file}`,
          );
        }
        throw failure;
      }

      recordFrom = Date.now();
      await recordTag(prod.file, plan.to.tag);
      record.result = 'succeeded';
      return { plan, dryRun: false, nothingToDo: false, record, manual };
    } catch (err) {
      recordFrom = Date.now();
      if (record.result === 'failed') record.error = (err as Error).message;
      throw err;
    } finally {
      steps.push({ id: 'record', title: step('record').title, ms: Date.now() - recordFrom, ok: true });
      await appendRecord(prod.vars.DEPLOY_LOG, record);
      ui.info(`9/9 Record the deploy: ${record.result}, appended to ${prod.vars.DEPLOY_LOG}`);
      for (const m of manual) ui.warn(`MANUAL: ${m}`);
    }
  } finally {
    await lock?.release();
  }
}

/** --rollback: back to the tag EA ran before the last successful deploy (no build, no migrations). */
export async function rollbackProd(prod: EnvConfig, o: { ui: Ui; dryRun: boolean; operator: string; health?: HealthPolicy }): Promise<DeployRecord | { dryRun: true; from: string; to: string }> {
  const health = o.health ?? defaultHealth;
  const lock = o.dryRun ? undefined : await takeDeployLock(prod.vars.DEPLOY_LOG);
  try {
    const current = prod.vars.IMAGE_TAG;
    const target = rollbackTarget(await readDeployLog(prod.vars.DEPLOY_LOG), current);
    if (!target) throw new SafetyError(`${prod.vars.DEPLOY_LOG} has no successful deploy of ${current} to roll back from.`, 'Nothing was changed; deploy a fixed commit instead.');
    const project = projectName(prod.env);
    const services = servicesFromConfig(await compose(prod, ['config'])).filter((s) => s.built);
    const images = services.map((s) => `${project}-${s.name}:${target.tag}`);
    for (const image of images) {
      if (!(await docker(['image', 'inspect', image], { nothrow: true })).ok) throw new SafetyError(`The image ${image} to roll back to is gone.`, 'Nothing was changed; rebuild that commit with a deploy instead.');
    }
    if (o.dryRun) return { dryRun: true, from: current, to: target.tag };
    const switches = [...services.filter((s) => switchStrategy(s) === 'overlap'), ...services.filter((s) => switchStrategy(s) === 'recreate')].map((s) => ({ service: s.name, strategy: switchStrategy(s) }));
    const steps: DeployRecord['steps'] = [];
    const record: DeployRecord = { at: new Date().toISOString(), kind: 'rollback', user: o.operator, from: { commit: null, tag: current }, to: target, images, backup: null, skipTests: false, migrations: [], steps, result: 'failed' };
    try {
      const started = Date.now();
      await o.ui.run(`Switch EA back to ${target.tag}`, () => switchServices(prod, switches, target.tag, { health, ui: o.ui }));
      steps.push({ id: 'switch', title: `Switch EA back to ${target.tag}`, ms: Date.now() - started, ok: true });
      await recordTag(prod.file, target.tag);
      record.result = 'succeeded';
      return record;
    } catch (err) {
      record.error = (err as Error).message;
      throw err;
    } finally {
      await appendRecord(prod.vars.DEPLOY_LOG, record);
    }
  } finally {
    await lock?.release();
  }
}

/** The human summary: the plan for --dry-run, the outcome otherwise. */
export function renderDeploy(r: DeployResult | DeployRecord | { dryRun: true; from: string; to: string }): string {
  if ('kind' in r) return `${r.kind} ${r.from.tag} -> ${r.to.tag}: ${r.result}\n`;
  if (!('plan' in r)) return `--dry-run: would switch EA from ${r.from} back to ${r.to} (no build, no migrations)\n`;
  const { plan } = r;
  const lines = [`${r.dryRun ? 'Plan' : 'Deploy'}: ${plan.from.tag} (${plan.from.commit.slice(0, 12)}) -> ${plan.to.tag} (${plan.to.commit.slice(0, 12)})`];
  for (const c of plan.commits) lines.push(`  ${c.sha.slice(0, 8)} ${c.subject}`);
  lines.push(`  migrations: ${plan.migrations.length ? plan.migrations.join(', ') : 'none in this range'}`);
  if (r.nothingToDo) lines.push('Nothing to deploy.');
  else if (r.dryRun) for (const s of plan.steps) lines.push(`${s.n}. ${s.title}${s.skipped ? ` (skipped: ${s.skipped})` : ''}`, ...s.does.map((d) => `     ${d}`));
  else if (r.record) lines.push(`Result: ${r.record.result}; steps: ${r.record.steps.map((s) => `${s.id} ${formatDuration(s.ms)}`).join(', ')}`);
  return `${lines.join('\n')}\n`;
}
