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
import YAML from 'yaml';
import { JobError, OpsError, SafetyError, UsageError } from '../core/errors.ts';
import { acquireLock, type Lock } from '../core/lock.ts';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { projectName } from '../core/config.ts';
import { compose, composeCommand, detectComposeFlavor, type ComposeFlavor } from '../tools/compose.ts';
import { composeDir } from '../core/paths.ts';
import { renderCommand, renderPlan, run, runPlan, tail, type Command, type PlanRunner, type Step } from '../core/exec.ts';
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
/** The branch EB's checkout tracks unless the operator names another (the app's dev stack tracks develop). */
export const defaultEbBranch = 'develop';
/** Where the app keeps alembic.ini, and where its test runner runs (api/ is /workspace/api in its images). */
export const appApiDir = '/workspace/api';
/** The app's own test command: api/scripts/run_tests.py runs the suite in chunks (its Makefile's `test`). */
export const defaultTestCommand = ['python', 'scripts/run_tests.py'] as const;
/** A chunk needs what the app's dev api gets (768M in deploy/stack/docker-compose.dev.yml); EB's api has less. */
export const defaultTestMemoryMb = 768;
/** EB's whole memory budget (docker-compose.dev.yml): the test container fits inside it, never beside it. */
export const ebBudgetMb = 2048;
/** Stopped in this order until the test container fits the budget: the app tier. db and cache serve the tests; mqtt and vault keep serving EB's players. */
export const testRunStopOrder = ['worker', 'web', 'api'] as const;
/** The app's test database (api/tests/conftest.py), made by its db init script on a new volume. */
export const testDatabase = 'makapix_test';
/** The one-off test container's memory override (lib/jobs/deploy.ts is its only user). */
export const testsComposeFile = path.join(composeDir, 'docker-compose.tests.yml');

/** What the rendered compose config says about a service, as far as the switch cares. */
export interface ServiceFacts {
  name: string;
  /** Built from the app checkout (api, worker, web), as opposed to an upstream image. */
  built: boolean;
  healthcheck: boolean;
  publishesPorts: boolean;
  /** mem_limit in MiB (0: none). */
  memMb: number;
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
  const doc = YAML.parse(yamlText) as { services?: Record<string, { build?: unknown; healthcheck?: { test?: unknown; disable?: boolean }; ports?: unknown[]; mem_limit?: string | number }> };
  return Object.entries(doc.services ?? {}).map(([name, s]) => {
    const test = s.healthcheck?.test;
    const disabled = s.healthcheck?.disable === true || (Array.isArray(test) && test[0] === 'NONE');
    return { name, built: s.build !== undefined, healthcheck: test !== undefined && !disabled, publishesPorts: (s.ports ?? []).length > 0, memMb: parseMemMb(s.mem_limit) };
  });
}

/** A compose memory size ("768M", "1g", or bytes as `docker compose config` renders it) in MiB. */
export function parseMemMb(v: string | number | undefined): number {
  if (v === undefined) return 0;
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(String(v).trim());
  if (!m) throw new UsageError(`mem_limit ${JSON.stringify(v)} is not a size.`);
  const n = Number(m[1]);
  const unit = m[2]!.toLowerCase();
  return Math.ceil(unit === 'g' ? n * 1024 : unit === 'm' ? n : unit === 'k' ? n / 1024 : n / 1024 ** 2);
}

/**
 * Which of EB's services to stop so that the test container (`testMb`) and what keeps running stay
 * within EB's budget at every moment. Stopped, not paused: a paused container keeps its memory.
 */
export function servicesToStop(eb: readonly ServiceFacts[], testMb: number, budgetMb = ebBudgetMb, order: readonly string[] = testRunStopOrder): { stop: string[]; totalMb: number } {
  let total = eb.reduce((sum, x) => sum + x.memMb, 0) + testMb;
  const stop: string[] = [];
  for (const name of order) {
    if (total <= budgetMb) break;
    const svc = eb.find((x) => x.name === name);
    if (!svc) continue;
    stop.push(name);
    total -= svc.memMb;
  }
  if (total > budgetMb) throw new SafetyError(`The tests' ${testMb} MiB do not fit in EB's ${budgetMb} MiB even with ${order.join(', ')} stopped (${total} MiB).`, 'Lower --test-memory, or raise the budget in docker-compose.dev.yml first.');
  return { stop, totalMb: total };
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
  /** The commit EB's checkout is at, its branch and its git tree: the tests run there, so its tree must be the one deployed. */
  ebHead: string;
  ebBranch: string;
  ebTree: string;
  /** The git tree of `target`: main gets merge commits EB never ran, so trees are compared, not commits. */
  targetTree: string;
  /** EB's services as its compose config renders them (memory limits for the test run). */
  ebServices: ServiceFacts[];
  /** Whether EB's database has makapix_test (an existing volume may predate it). */
  testDbExists: boolean;
  flavor: ComposeFlavor;
  devEnvFile: string;
  /** EB's database accounts (names only), for creating makapix_test as the app's db init script does. */
  ebDbAdmin: string;
  ebDbWorker: string;
  envFile: string;
  deployLog: string;
  backupDir: string;
}

export interface DeployOptions {
  skipTests: boolean;
  yes: boolean;
  healthUrl?: string;
  /** The branch EB tracks (default develop). */
  ebBranch?: string;
  /** The app's test command, run in /workspace/api (default python scripts/run_tests.py). */
  testCommand?: readonly string[];
  testMemoryMb?: number;
}

export interface DeployPlan {
  from: { commit: string; tag: string };
  to: { commit: string; tag: string };
  commits: Commit[];
  migrations: string[];
  switches: { service: string; strategy: SwitchStrategy }[];
  /** EB services stopped for the test run, so EB stays within its budget. */
  stopForTests: string[];
}

/** A contradiction in the options alone (exit 2): checked before the lock, git or Docker. */
export function optionsRefusal(o: DeployOptions): OpsError | undefined {
  if (o.skipTests && !o.yes) return new UsageError('--skip-tests deploys code no test has passed on EB; it needs --yes as well.', 'Run again with --skip-tests --yes (the deploy record keeps that tests were skipped).');
  return undefined;
}

/** Every refusal that depends only on the facts: the same answers for --dry-run (which lists them all) and the real run. */
export function deployRefusals(f: DeployFacts, o: DeployOptions): OpsError[] {
  const options = optionsRefusal(o);
  if (options) return [options];
  const out: OpsError[] = [];
  if (!f.clean) out.push(new SafetyError(`The app checkout ${f.appDir} has uncommitted changes.`, 'Commit or remove them; a deploy builds exactly a commit of main.'));
  if (f.branch !== deployedBranch) out.push(new SafetyError(`The app checkout ${f.appDir} is on "${f.branch}", not ${deployedBranch}.`, `git -C ${f.appDir} checkout ${deployedBranch}`));
  if (!f.fastForward) out.push(new SafetyError(`origin/${deployedBranch} (${f.target.slice(0, 12)}) is not a fast-forward of ${f.appDir} (${f.head.slice(0, 12)}).`, 'History was rewritten or the checkout has local commits; sort it out by hand, then deploy.'));
  if (!o.skipTests) {
    const ebBranch = o.ebBranch ?? defaultEbBranch;
    if (f.ebBranch !== ebBranch) out.push(new SafetyError(`EB's checkout is on "${f.ebBranch}", not ${ebBranch}, the branch EB tracks.`, `Put EB back on ${ebBranch}, or name the branch it tracks: --eb-branch ${f.ebBranch}.`));
    if (f.ebTree !== f.targetTree) {
      out.push(new SafetyError(`EB runs ${f.ebHead.slice(0, 12)} (tree ${f.ebTree.slice(0, 12)}), but ${deployedBranch} is at ${f.target.slice(0, 12)} (tree ${f.targetTree.slice(0, 12)}): the trees differ, so EB's tests did not test what would be deployed.`, `Merge what EB tested into ${deployedBranch} (or bring EB to ${deployedBranch}'s tree and let it run), then deploy.`));
    }
  }
  return out;
}

export const deployRefusal = (f: DeployFacts, o: DeployOptions): OpsError | undefined => deployRefusals(f, o)[0];

/** What the deploy moves, from the facts. Pure: the unit tests pin it down. */
export function deployPlan(f: DeployFacts, o: DeployOptions): DeployPlan {
  const toTag = imageTag(f.target);
  const built = f.services.filter((s) => s.built);
  const switches = [...built.filter((s) => switchStrategy(s) === 'overlap'), ...built.filter((s) => switchStrategy(s) === 'recreate')].map((s) => ({ service: s.name, strategy: switchStrategy(s) }));
  const stopForTests = o.skipTests ? [] : servicesToStop(f.ebServices, o.testMemoryMb ?? defaultTestMemoryMb).stop;
  return { from: { commit: f.head, tag: f.currentTag }, to: { commit: f.target, tag: toTag }, commits: f.commits, migrations: f.migrations, switches, stopForTests };
}

/**
 * The test command inside the one-off container: the app's runner, then a look at the container's
 * memory cgroup. run_tests.py runs each chunk as a child, so an OOM-killed chunk only shows as a
 * failed chunk; the kernel's oom_kill counter tells the two apart (exit 137 = out of memory).
 */
export function testShell(command: readonly string[], memoryMb: number): string {
  const quoted = command.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  return [
    `${quoted}; rc=$?`,
    'for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do',
    '  k=$(sed -n "s/^oom_kill //p" "$f" 2>/dev/null); if [ "${k:-0}" -gt 0 ]; then',
    `    echo "makapix-ops: the kernel killed $k process(es) of the test run for memory (limit ${memoryMb} MiB)" >&2; exit 137; fi`,
    'done; exit $rc',
  ].join('\n');
}

/** The verdict on the test run's exit code: out of memory and failed tests are different failures. */
export function testVerdict(exitCode: number, memoryMb: number): OpsError | undefined {
  if (exitCode === 0) return undefined;
  if (exitCode === 137) return new JobError(`The app's tests ran out of memory on EB: a test chunk was killed by the kernel at the ${memoryMb} MiB limit; deploy refused, EA was not touched.`, 'Give the run more memory (--test-memory) or smaller chunks (PYTEST_CHUNK_SIZE in EB), then deploy again.');
  return new JobError(`The app's tests failed on EB (exit ${exitCode}); deploy refused, EA was not touched.`, 'Fix them on EB (the output above names the failing chunk), then deploy again.');
}

/** alembic's `current`/`heads` output: the revision ids, one per line ("abc123 (head)"). */
export const parseRevisions = (out: string): string[] => out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((r) => /^[0-9A-Za-z_]+$/.test(r) && r !== 'INFO').sort();

const stepIds: [RegExp, string][] = [
  [/^Preflight/, 'preflight'],
  [/^(Create|Grant) .*makapix_test|^Grant .* the use of/, 'test-db'],
  [/^Stop EB's/, 'tests-stop'],
  [/^Run the app's tests/, 'tests'],
  [/^Start EB's|^start EB's/, 'tests-start'],
  [/^Back up/, 'backup'],
  [/^Update the code/, 'update'],
  [/^Build/, 'build'],
  [/^Read EA's schema/, 'revision'],
  [/^Apply migrations/, 'migrate'],
  [/^Check the schema/, 'head'],
  [/^Switch EA/, 'switch'],
];
/** A step's short name in the deploy log (titles carry values; ids stay put). */
export const deployStepId = (title: string) => stepIds.find(([re]) => re.test(title))?.[1] ?? title;

export interface DeployTasks {
  preflight(): Promise<void>;
  /** Runs the test command (streaming) and throws testVerdict's error. */
  runTests(c: Command): Promise<void>;
  backup(): Promise<void>;
  /** Reads EA's schema revision before migrating (`alembic current`). */
  revisionBefore(current: Command): Promise<void>;
  /** Compares `alembic current` with `alembic heads` after migrating; throws when the head is not reached. */
  checkHead(current: Command, heads: Command): Promise<void>;
  switchAndHealth(): Promise<void>;
}

/**
 * The deploy as the steps that run: --dry-run prints renderPlan() of this very list and the runner
 * hands the same list to runPlan, so the commands shown are the argv objects executed.
 */
export function deploySteps(f: DeployFacts, o: DeployOptions, plan: DeployPlan, tasks: DeployTasks): Step[] {
  const prodCfg = { env: 'prod' as const, file: f.envFile };
  const devCfg = { env: 'dev' as const, file: f.devEnvFile };
  const tag = { IMAGE_TAG: plan.to.tag };
  const inApi = (...args: string[]): Command => ({ ...composeCommand(prodCfg, ['run', '--rm', '--no-deps', '-T', '-w', appApiDir, 'api', ...args], f.flavor), env: tag });
  const memoryMb = o.testMemoryMb ?? defaultTestMemoryMb;
  const psql = (db: string, sql: string): Command => composeCommand(devCfg, ['exec', '-T', 'db', 'psql', '-v', 'ON_ERROR_STOP=1', '-U', f.ebDbAdmin, '-d', db, '-c', sql], f.flavor);
  const steps: Step[] = [{ kind: 'task', title: 'Preflight', detail: `lock ${lockPathFor(f.deployLog)}; ${f.appDir} clean on ${deployedBranch}, ${f.commits.length} commit(s) ${f.head.slice(0, 12)}..${f.target.slice(0, 12)}; EB's api healthy; free disk for images and a backup (${f.backupDir})`, run: tasks.preflight }];
  if (!o.skipTests) {
    if (!f.testDbExists) {
      // As the app's db/init-users.sh does on a new volume (an older volume lacks the database).
      steps.push(
        { kind: 'command', title: `Create ${testDatabase} in EB's database (its volume predates it)`, command: psql('postgres', `CREATE DATABASE ${testDatabase}`) },
        { kind: 'command', title: `Grant ${f.ebDbWorker} the use of ${testDatabase}`, command: psql(testDatabase, `CREATE EXTENSION IF NOT EXISTS pgcrypto; CREATE EXTENSION IF NOT EXISTS pg_trgm; GRANT CONNECT ON DATABASE ${testDatabase} TO "${f.ebDbWorker}"; GRANT USAGE, CREATE ON SCHEMA public TO "${f.ebDbWorker}"; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO "${f.ebDbWorker}"; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO "${f.ebDbWorker}"`) },
      );
    }
    const stop = plan.stopForTests;
    if (stop.length) {
      steps.push(
        { kind: 'command', title: `Stop EB's ${stop.join(', ')} so the test run stays within EB's ${ebBudgetMb} MiB`, command: composeCommand(devCfg, ['stop', ...stop], f.flavor) },
        { kind: 'rollback', title: `start EB's ${stop.join(', ')} again`, command: composeCommand(devCfg, ['start', ...stop], f.flavor) },
      );
    }
    const run: Command = { ...composeCommand(devCfg, ['-f', testsComposeFile, 'run', '--rm', '--no-deps', '-T', '-w', appApiDir, 'api', 'sh', '-c', testShell(o.testCommand ?? defaultTestCommand, memoryMb)], f.flavor), env: { MAKAPIX_TEST_MEMORY: `${memoryMb}M` } };
    steps.push({ kind: 'task', title: `Run the app's tests in a one-off container of EB's api image (${memoryMb} MiB, against ${testDatabase})`, detail: renderCommand(run), run: () => tasks.runTests(run) });
    if (stop.length) steps.push({ kind: 'command', title: `Start EB's ${stop.join(', ')} again`, command: composeCommand(devCfg, ['start', ...stop], f.flavor) });
  }
  const current = inApi('alembic', 'current');
  const heads = inApi('alembic', 'heads');
  steps.push(
    { kind: 'task', title: "Back up EA's database (pinned)", detail: `a pinned backup in ${path.join(f.backupDir, 'pinned')}/`, run: tasks.backup },
    { kind: 'command', title: 'Update the code (fast-forward only)', command: { cmd: 'git', argv: ['-C', f.appDir, 'merge', '--ff-only', f.target] } },
    { kind: 'command', title: `Build EA's images for ${plan.to.tag}`, command: { ...composeCommand(prodCfg, ['build', ...plan.switches.map((x) => x.service)], f.flavor), env: tag }, stream: true },
    { kind: 'task', title: "Read EA's schema revision", detail: renderCommand(current), run: () => tasks.revisionBefore(current) },
    { kind: 'command', title: `Apply migrations where the app keeps alembic.ini (${appApiDir})`, command: inApi('alembic', 'upgrade', 'head') },
    { kind: 'task', title: 'Check the schema reached the new head (refuse to switch otherwise)', detail: `${renderCommand(current)} must equal ${renderCommand(heads)}`, run: () => tasks.checkHead(current, heads) },
    {
      kind: 'task',
      title: `Switch EA to ${plan.to.tag} and check its health`,
      detail: `${plan.switches.map((x) => (x.strategy === 'overlap' ? `${x.service}: ${nextContainerName(f.project, x.service)} serves beside it once healthy, then ${x.service} is recreated` : `${x.service}: recreated`)).join('; ')}; then ${o.healthUrl ? `GET ${o.healthUrl}` : "the api's own healthcheck"} ${defaultHealth.consecutive} times in a row; unhealthy: back to ${plan.from.tag}`,
      run: tasks.switchAndHealth,
    },
  );
  return steps;
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
  /** `does`: the step's command as --dry-run prints it (absent in records older than the step plan). */
  steps: { id: string; title: string; does?: string; ms: number; ok: boolean }[];
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

const git = (dir: string, ...argv: string[]): Command => ({ cmd: 'git', argv: ['-C', dir, ...argv] });
const gitOut = async (dir: string, ...argv: string[]) => (await run(git(dir, ...argv))).stdout.trim();

async function gitFacts(appDir: string): Promise<Pick<DeployFacts, 'branch' | 'clean' | 'head' | 'target' | 'targetTree' | 'fastForward' | 'commits' | 'migrations'>> {
  if (!(await stat(path.join(appDir, '.git')).then(() => true, () => false))) {
    throw new SafetyError(`APP_DIR ${appDir} is not a git checkout.`, 'Set APP_DIR in compose/.env.prod to the app repository (e.g. /opt/makapix).');
  }
  const branch = await gitOut(appDir, 'rev-parse', '--abbrev-ref', 'HEAD');
  const clean = (await gitOut(appDir, 'status', '--porcelain', '--untracked-files=no')) === '';
  const fetched = await run(git(appDir, 'fetch', '--quiet', 'origin', deployedBranch), { nothrow: true, timeoutMs: 120_000 });
  if (fetched.exitCode !== 0) throw new JobError(`git fetch in ${appDir} failed: ${tail(fetched.stderr)}`, 'Check that origin is reachable and credentials work.');
  const head = await gitOut(appDir, 'rev-parse', 'HEAD');
  const target = await gitOut(appDir, 'rev-parse', `origin/${deployedBranch}`);
  const targetTree = await gitOut(appDir, 'rev-parse', `${target}^{tree}`);
  const fastForward = (await run(git(appDir, 'merge-base', '--is-ancestor', head, target), { nothrow: true })).exitCode === 0;
  const log = fastForward ? await gitOut(appDir, 'log', '--format=%H%x09%s', `${head}..${target}`) : '';
  const commits = log ? log.split('\n').map((l) => ({ sha: l.split('\t')[0]!, subject: l.split('\t').slice(1).join('\t') })) : [];
  const migrations = fastForward ? (await gitOut(appDir, 'diff', '--name-only', head, target, '--', migrationsPath)).split('\n').filter(Boolean) : [];
  return { branch, clean, head, target, targetTree, fastForward, commits, migrations };
}

/** Whether EB's database has the app's test database (read-only). */
async function testDbExists(dev: EnvConfig, flavor: ComposeFlavor): Promise<boolean> {
  const q = composeCommand(dev, ['exec', '-T', 'db', 'psql', '-U', dev.vars.DB_ADMIN_USER, '-d', 'postgres', '-tAc', `SELECT 1 FROM pg_database WHERE datname = '${testDatabase}'`], flavor);
  const r = await run(q, { nothrow: true });
  if (r.exitCode !== 0) throw new JobError(`Cannot ask EB's database whether ${testDatabase} exists: ${tail(r.stderr || r.stdout)}.`, 'Start EB (make up-dev) and run again.');
  return r.stdout.trim() === '1';
}

/** Everything the plan needs, read without changing anything (git fetch only updates remote refs). */
export async function gatherFacts(prod: EnvConfig, dev: EnvConfig, o: DeployOptions): Promise<DeployFacts> {
  const appDir = prod.vars.APP_DIR;
  const flavor = await detectComposeFlavor();
  const services = servicesFromConfig(await compose(prod, ['config']));
  const ebServices = servicesFromConfig(await compose(dev, ['config']));
  const ebDir = dev.vars.APP_DIR;
  const ebHead = (await run(git(ebDir, 'rev-parse', 'HEAD'), { nothrow: true })).stdout.trim() || 'unknown';
  const ebBranch = (await run(git(ebDir, 'rev-parse', '--abbrev-ref', 'HEAD'), { nothrow: true })).stdout.trim() || 'unknown';
  const ebTree = (await run(git(ebDir, 'rev-parse', 'HEAD^{tree}'), { nothrow: true })).stdout.trim() || 'unknown';
  return {
    project: projectName(prod.env),
    appDir,
    ...(await gitFacts(appDir)),
    currentTag: prod.vars.IMAGE_TAG,
    services,
    ebHead,
    ebBranch,
    ebTree,
    ebServices,
    testDbExists: o.skipTests ? true : await testDbExists(dev, flavor),
    flavor,
    devEnvFile: dev.file,
    ebDbAdmin: dev.vars.DB_ADMIN_USER,
    ebDbWorker: dev.vars.DB_API_WORKER_USER,
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
  /** --dry-run: renderPlan() of the steps that would run. */
  lines: string[];
  /** --dry-run: why each failing precondition would refuse the deploy. */
  refusals: string[];
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

/** make deploy-prod: the steps of deploySteps(), run by runPlan; see docs/deploy.md. */
export async function deployToProd(prod: EnvConfig, dev: EnvConfig, o: DeployRunOptions): Promise<DeployResult> {
  const { ui } = o;
  const health = o.health ?? defaultHealth;
  const usage = optionsRefusal(o);
  if (usage) throw usage;
  const lock = o.dryRun ? undefined : await takeDeployLock(prod.vars.DEPLOY_LOG);
  try {
    const facts = await gatherFacts(prod, dev, o);
    const plan = deployPlan(facts, o);
    const manual: string[] = [];
    const record: DeployRecord = { at: new Date().toISOString(), kind: 'deploy', user: o.operator, from: plan.from, to: plan.to, images: imagesOf(facts, plan.to.tag), backup: null, skipTests: o.skipTests, migrations: plan.migrations, steps: [], result: 'failed' };
    let migratedFrom: string[] | undefined;
    const apiHealthy = async () => {
      const [api] = await serviceContainers(facts.project, 'api');
      return api ? containerHealthy(api) : false;
    };
    const tasks: DeployTasks = {
      preflight: async () => {
        const [eb] = await serviceContainers(projectName(dev.env), 'api');
        if (!eb || !(await containerHealthy(eb))) throw new SafetyError("EB's api is not up and healthy.", 'Start it (make up-dev) and check it (make logs-dev SERVICE=api) first.');
        const need = o.minFreeBytes ?? 5 * 1024 ** 3;
        const dockerRoot = (await docker(['info', '--format', '{{.DockerRootDir}}'])).stdout || '/var/lib/docker';
        for (const dir of [dockerRoot, prod.vars.BACKUP_DIR]) {
          const free = await freeBytes(dir);
          if (free < need) throw new JobError(`Only ${formatBytes(free)} is free in ${dir}; a deploy needs ${formatBytes(need)} for images and a backup.`, 'Free some space (docker image prune, old backups) and run again.');
        }
      },
      runTests: async (c) => {
        const verdict = testVerdict((await run(c, { stream: true, nothrow: true })).exitCode, o.testMemoryMb ?? defaultTestMemoryMb);
        if (verdict) throw verdict;
      },
      backup: async () => {
        record.backup = (await backupDatabase(prod, { mode: 'compose', pinned: true, reason: `before deploy of ${plan.to.tag}`, ui })).file;
      },
      revisionBefore: async (current) => {
        migratedFrom = parseRevisions((await run(current)).stdout);
      },
      checkHead: async (current, heads) => {
        const [now, want] = [parseRevisions((await run(current)).stdout), parseRevisions((await run(heads)).stdout)];
        if (now.join(',') !== want.join(',')) throw new JobError(`EA's schema is at ${now.join(', ') || 'no revision'}, not the new head ${want.join(', ')}: the switch is refused (EA still runs ${plan.from.tag}).`, `Look at the migration's output above; restore ${record.backup ?? 'the pinned backup'} if it left the schema half-way.`);
        record.migrations = migratedFrom?.join(',') === want.join(',') ? [`none ran: EA was already at ${want.join(', ')} (the app migrates on start-up too)`] : [`ran by this deploy: ${migratedFrom?.join(', ') || 'no revision'} -> ${want.join(', ')}`, ...plan.migrations];
        ui.info(`Migrations: ${record.migrations[0]}`);
      },
      switchAndHealth: async () => {
        try {
          await switchServices(prod, plan.switches, plan.to.tag, { health, ui });
          await waitHealthy(o.healthUrl ?? "EA's api", o.healthUrl ? () => urlHealthy(o.healthUrl!) : apiHealthy, health);
        } catch (err) {
          const failure = err instanceof HealthFailure ? err : new HealthFailure((err as Error).message, true);
          ui.warn(`Rolling EA back to ${plan.from.tag}: ${failure.message}`);
          if (failure.switched) {
            await switchServices(prod, plan.switches.map((x) => ({ ...x, strategy: 'recreate' as const })), plan.from.tag, { health, ui });
            if (failure.helper) await removeContainer(failure.helper);
            await waitHealthy(`EA's api after the rollback to ${plan.from.tag}`, apiHealthy, health).catch((e: Error) => manual.push(`EA is NOT healthy after the rollback: ${e.message}`));
          }
          record.result = 'rolled-back';
          manual.push(`Migrations ran against EA's database (${record.migrations.join('; ') || 'alembic upgrade head'}); ${plan.from.tag} now runs on the new schema.`, `If it misbehaves, restore the backup taken before the deploy: ./scripts/restore.ts --env prod --file ${record.backup}`);
          throw failure;
        }
      },
    };
    const steps = deploySteps(facts, o, plan, tasks);
    const refusals = deployRefusals(facts, o);
    const nothingToDo = plan.to.tag === plan.from.tag;
    if (o.dryRun) return { plan, dryRun: true, nothingToDo, lines: renderPlan(steps), refusals: refusals.map((r) => `${r.message} ${r.hint ?? ''}`.trim()), manual: [] };
    if (refusals.length) throw refusals[0]!;
    if (nothingToDo) {
      ui.info(`EA already runs ${plan.to.tag} (${deployedBranch} at ${facts.target.slice(0, 12)}); nothing to deploy.`);
      return { plan, dryRun: false, nothingToDo, lines: [], refusals: [], manual: [] };
    }
    ui.info(`Deploying ${plan.from.tag} -> ${plan.to.tag}: ${plan.commits.length} commit(s), ${plan.migrations.length} migration file(s)${o.skipTests ? ', TESTS SKIPPED (--skip-tests --yes)' : ''}`);
    // The log keeps what each step ran, as --dry-run printed it.
    const does = new Map(steps.map((st) => [st.title, st.kind === 'task' ? st.detail : st.kind === 'wait' ? renderCommand(st.probe) : renderCommand(st.command)]));
    const timing: PlanRunner = {
      run: async (title, fn) => {
        const started = Date.now();
        const entry = (ok: boolean) => ({ id: deployStepId(title), title, does: does.get(title) ?? '', ms: Date.now() - started, ok });
        try {
          const r = await ui.run(title, fn);
          record.steps.push(entry(true));
          return r;
        } catch (err) {
          record.steps.push(entry(false));
          throw err;
        }
      },
    };
    try {
      await runPlan(steps, timing);
      await recordTag(prod.file, plan.to.tag);
      record.result = 'succeeded';
      return { plan, dryRun: false, nothingToDo: false, lines: [], refusals: [], record, manual };
    } catch (err) {
      record.error = (err as Error).message;
      throw err;
    } finally {
      await appendRecord(prod.vars.DEPLOY_LOG, record);
      ui.info(`Recorded the deploy: ${record.result}, appended to ${prod.vars.DEPLOY_LOG}`);
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

/** The human summary: the plan for --dry-run (the exact commit and the steps that would run, and every refusal), the outcome otherwise. */
export function renderDeploy(r: DeployResult | DeployRecord | { dryRun: true; from: string; to: string }): string {
  if ('kind' in r) return `${r.kind} ${r.from.tag} -> ${r.to.tag}: ${r.result}\n`;
  if (!('plan' in r)) return `--dry-run: would switch EA from ${r.from} back to ${r.to} (no build, no migrations)\n`;
  const { plan } = r;
  const lines = [`${r.dryRun ? 'Plan' : 'Deploy'}: ${plan.from.tag} (${plan.from.commit}) -> ${plan.to.tag} (${plan.to.commit})`];
  for (const c of plan.commits) lines.push(`  ${c.sha.slice(0, 8)} ${c.subject}`);
  lines.push(`  migration files: ${plan.migrations.length ? plan.migrations.join(', ') : 'none in this range'}`);
  if (r.nothingToDo) lines.push('Nothing to deploy.');
  if (r.dryRun) lines.push(...r.lines);
  for (const why of r.refusals) lines.push(`REFUSED: ${why}`);
  if (r.record) lines.push(`Result: ${r.record.result}; steps: ${r.record.steps.map((s) => `${s.title} ${formatDuration(s.ms)}`).join(', ')}`);
  return `${lines.join('\n')}\n`;
}
