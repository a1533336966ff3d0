// One e2e "world": the real compose files, env files for EA and EB pointing at the stand-in
// images, free loopback ports and throwaway volumes, and the fixture app as a git repository with an
// origin and two checkouts (EA's and EB's). Everything it creates is removed when the process ends.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { $ } from 'zx';
import { composeDir, projectRoot } from '../../../lib/core/paths.ts';
import { freePort } from '../../../dev/ports.ts';
import { imageTag, withEnvValue } from '../../../lib/jobs/deploy.ts';
import { onExit } from '../../../dev/cleanup.ts';
import { acquireLock } from '../../../lib/core/lock.ts';
import { ensureEngine } from './engine.ts';
import { baseAlias, ensureStandInImages, type StandIn } from './images.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtureApp = path.join(here, '..', 'fixture-app');
const projects = ['makapix-prod', 'makapix-dev', 'makapix-edge'];
const worldLock = path.join(tmpdir(), 'makapix-e2e-world.lock');
/** Volumes the stacks and the edge create under fixed names (never the machine's own: this engine is the test's). */
const fixedVolumes = ['makapix-prod_broker_data', 'makapix-prod_mqtt_passwords', 'makapix-dev_broker_data', 'makapix-dev_mqtt_passwords', 'makapix-edge-caddy-data', 'makapix-edge-caddy-config', 'makapix-stack_caddy_data', 'makapix-stack_caddy_config'];

export interface Change {
  version?: string;
  /** oom: the test chunk takes 1.5 GiB, more than the test container's limit. */
  tests?: 'pass' | 'fail' | 'oom';
  /** fail-in-production: healthy on EB, unhealthy on EA. */
  health?: 'ok' | 'fail-in-production';
  /** A migration file added by the commit (api/alembic/versions/<name>.sql). */
  migration?: { name: string; sql: string };
  /** A broken Dockerfile (the build fails). */
  brokenBuild?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Removes every container, network and image of both projects (leftovers of a crashed run too). */
function purgeProjects(volumes: string[]): void {
  const script = [
    ...projects.map((p) => `docker ps -aq --filter label=com.docker.compose.project=${p} | xargs -r docker rm -f`),
    'docker rm -f makapix-e2e-prober 2>/dev/null',
    // A failed legacy build leaves its intermediate container behind.
    `docker ps -aq --filter status=exited --filter ancestor=${baseAlias} | xargs -r docker rm`,
    ...projects.map((p) => `docker network rm ${p}-internal 2>/dev/null`),
    ...[...volumes, ...fixedVolumes].map((v) => `docker volume rm -f ${v} 2>/dev/null`),
    `docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^makapix-(prod|dev)-' | xargs -r docker rmi -f`,
  ].join('; ');
  spawnSync('sh', ['-c', `${script}; true`], { stdio: 'ignore' });
}

export class World {
  readonly root: string;
  readonly envDir: string;
  readonly origin: string;
  readonly work: string;
  readonly prodApp: string;
  readonly devApp: string;
  readonly volumes: { prod: string; dev: string };
  readonly deployLog: string;
  images!: Record<StandIn, string>;
  ports!: { prodDb: number; devDb: number; prodMqtt: number; devMqtt: number };

  private constructor() {
    this.root = mkdtempSync(path.join(tmpdir(), 'makapix-e2e-'));
    chmodSync(this.root, 0o755);
    this.envDir = path.join(this.root, 'env');
    this.origin = path.join(this.root, 'origin.git');
    this.work = path.join(this.root, 'work');
    this.prodApp = path.join(this.root, 'app-prod');
    this.devApp = path.join(this.root, 'app-dev');
    const id = randomBytes(3).toString('hex');
    this.volumes = { prod: `makapix-e2e-${id}-prod-db`, dev: `makapix-e2e-${id}-dev-db` };
    this.deployLog = path.join(this.root, 'state', 'deploys.jsonl');
  }

  /** Engine up, images ready, leftovers purged, fixture repo at v1, env files written, certificates made. */
  static async create(): Promise<World> {
    await ensureEngine();
    // One world at a time on the engine: the stacks, the edge, caddy_net and the fixed volumes have
    // fixed names, and create() purges them. A second test process (TEST_JOBS=2) waits here instead
    // of purging a running world; the lock goes with the process (a dead holder's lock is stale).
    await acquireLock(worldLock, 'e2e world', { waitMs: 30 * 60_000 });
    onExit(() => rmSync(worldLock, { force: true }));
    const w = new World();
    purgeProjects([]);
    onExit(() => {
      purgeProjects([w.volumes.prod, w.volumes.dev]);
      spawnSync('rm', ['-rf', w.root]);
    });
    w.images = await ensureStandInImages();
    w.ports = { prodDb: await freePort(), devDb: await freePort(), prodMqtt: await freePort(), devMqtt: await freePort() };
    mkdirSync(w.envDir);
    // The fixture app's history: v1 on main, pushed to a bare origin; EA and EB each clone it.
    cpSync(fixtureApp, w.work, { recursive: true });
    await $({ quiet: true })`git init -q -b main ${w.work}`;
    await w.git('add', '-A');
    await w.git('commit', '-q', '-m', 'v1');
    await $({ quiet: true })`git clone -q --bare ${w.work} ${w.origin}`;
    await w.git('remote', 'add', 'origin', w.origin);
    await w.git('fetch', '-q', 'origin');
    await w.git('branch', '-q', '--set-upstream-to=origin/main', 'main');
    await $({ quiet: true })`git clone -q ${w.origin} ${w.prodApp}`;
    await $({ quiet: true })`git clone -q ${w.origin} ${w.devApp}`;
    const v1 = (await w.git('rev-parse', 'HEAD')).trim();
    w.writeEnv('prod', { IMAGE_TAG: imageTag(v1) });
    w.writeEnv('dev', { IMAGE_TAG: 'dev' });
    // The prod volume exists before EA does, as the old stack's volume does in real life.
    await $({ quiet: true })`docker volume create ${w.volumes.prod}`;
    for (const env of ['prod', 'dev'] as const) {
      const r = await w.script('mqtt-certs.ts', ['init', '--env', env, '--yes']);
      if (r.code !== 0) throw new Error(`mqtt-certs init --env ${env} failed: ${r.stderr}`);
    }
    return w;
  }

  envFile(env: 'prod' | 'dev'): string {
    return path.join(this.envDir, `.env.${env}`);
  }

  /** The example file with every machine-specific value pointed at this world. */
  writeEnv(env: 'prod' | 'dev', overrides: Record<string, string> = {}, file = this.envFile(env)): void {
    let text = readFileSync(path.join(composeDir, `.env.${env}.example`), 'utf8');
    const values: Record<string, string> = {
      APP_DIR: env === 'prod' ? this.prodApp : this.devApp,
      POSTGRES_IMAGE: this.images.postgres,
      REDIS_IMAGE: this.images.redis,
      MOSQUITTO_IMAGE: this.images.mosquitto,
      VAULT_IMAGE: this.images.vault,
      DB_PUBLISHED_PORT: String(env === 'prod' ? this.ports.prodDb : this.ports.devDb),
      MQTT_PUBLIC_PORT: String(env === 'prod' ? this.ports.prodMqtt : this.ports.devMqtt),
      DB_VOLUME_NAME: this.volumes[env],
      VAULT_HOST_PATH: path.join(this.root, `vault-${env}`),
      MQTT_CERTS_DIR: path.join(this.root, `mqtt-${env}`),
      CADDY_LOG_DIR: path.join(this.root, 'caddy-logs'),
      BACKUP_DIR: path.join(this.root, `backups-${env}`),
      ...(env === 'prod' && { DEPLOY_LOG: this.deployLog }),
      ...overrides,
    };
    for (const [k, v] of Object.entries(values)) text = withEnvValue(text, k, v);
    if (env === 'prod') mkdirSync(values.VAULT_HOST_PATH!, { recursive: true });
    writeFileSync(file, text, { mode: 0o600 });
  }

  async git(...args: string[]): Promise<string> {
    return (await $({ quiet: true, cwd: this.work })`git -c user.name=e2e -c user.email=e2e@example.invalid ${args}`).stdout;
  }

  /** Commits a change to the fixture app and pushes it to origin/main; returns the sha. */
  async commit(message: string, c: Change): Promise<string> {
    const api = path.join(this.work, 'api');
    if (c.version) writeFileSync(path.join(api, 'VERSION'), `${c.version}\n`);
    writeFileSync(path.join(api, 'HEALTH'), `${c.health ?? 'ok'}\n`);
    const check = c.tests === 'fail' ? 'echo "1 failed"\nexit 1\n' : c.tests === 'oom' ? `python3 -c "b = b'x' * (1536 << 20); print(len(b))"\n` : 'echo "1 passed"\nexit 0\n';
    writeFileSync(path.join(api, 'tests', 'check.sh'), check);
    if (c.migration) writeFileSync(path.join(api, 'alembic', 'versions', `${c.migration.name}.sql`), c.migration.sql);
    const dockerfile = path.join(this.work, 'worker', 'Dockerfile');
    const text = readFileSync(dockerfile, 'utf8').replace(/^RUN false\n/m, '');
    writeFileSync(dockerfile, c.brokenBuild ? `${text}RUN false\n` : text);
    await this.git('add', '-A');
    await this.git('commit', '-q', '-m', message);
    await this.git('push', '-q', 'origin', 'main');
    return (await this.git('rev-parse', 'HEAD')).trim();
  }

  /** Brings EB's checkout to origin/main (what a developer does before testing on EB). */
  async pullDev(): Promise<void> {
    await $({ quiet: true, cwd: this.devApp })`git pull -q --ff-only origin main`;
  }

  /** Runs one of the toolkit's scripts against this world's env files. */
  async script(name: string, args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
    const r = await $({ quiet: true, nothrow: true, env: { ...process.env, MAKAPIX_ENV_DIR: this.envDir, DOCKER_BUILDKIT: '0', ...extraEnv } })`${path.join(projectRoot, 'scripts', name)} ${args}`;
    return { code: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
  }

  /** One SQL query in an environment's db container, as the admin user (rows as text lines). */
  async psql(env: 'prod' | 'dev', sql: string): Promise<string> {
    return (await $({ quiet: true })`docker exec makapix-${env}-db psql -U owner -d makapix -tAc ${sql}`).stdout.trim();
  }

  /** GET /health inside the network, as Caddy reaches it: the alias api.makapix-<env> on caddy_net. */
  async version(env: 'prod' | 'dev'): Promise<string | undefined> {
    const r = await $({ quiet: true, nothrow: true })`docker run --rm --network caddy_net --entrypoint curl ${this.images.prober} -fsS --max-time 3 ${`http://api.makapix-${env}:8000/health`}`;
    return r.exitCode === 0 ? (JSON.parse(r.stdout) as { version: string }).version : undefined;
  }

  /** The api's version once it answers: a container just (re)created may still be starting (migrations first), up to 30 s. */
  async versionOnceUp(env: 'prod' | 'dev'): Promise<string | undefined> {
    for (const until = Date.now() + 30_000; ; ) {
      const v = await this.version(env);
      if (v !== undefined || Date.now() > until) return v;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  existsBackup(file: string): boolean {
    return existsSync(file) && existsSync(`${file}.sha256`);
  }
}

export interface ProbeEntry {
  t: number;
  ok: boolean;
  version?: string;
  error?: string;
}

/** The longest run of failed probes, measured from its first failure to the next success. */
export function downtime(entries: readonly ProbeEntry[]): { longestMs: number; failures: number; total: number; versions: string[]; errors: Record<string, number> } {
  let longest = 0;
  let failures = 0;
  let since: number | undefined;
  const versions: string[] = [];
  const errors: Record<string, number> = {};
  for (const e of entries) {
    if (e.ok) {
      if (since !== undefined) longest = Math.max(longest, e.t - since);
      since = undefined;
      if (e.version && versions.at(-1) !== e.version) versions.push(e.version);
    } else {
      failures++;
      since ??= e.t;
      const kind = e.error ?? 'not 200';
      errors[kind] = (errors[kind] ?? 0) + 1;
    }
  }
  if (since !== undefined && entries.length) longest = Math.max(longest, entries.at(-1)!.t - since + 100);
  return { longestMs: longest, failures, total: entries.length, versions, errors };
}

/** A container probing EA's api through its caddy_net alias every 100 ms, as a client would. */
export class Prober {
  static readonly name = 'makapix-e2e-prober';
  private constructor() {}
  static async start(image: string, env: 'prod' | 'dev' = 'prod'): Promise<Prober> {
    spawnSync('docker', ['rm', '-f', Prober.name], { stdio: 'ignore' });
    await $({ quiet: true })`docker run -d --name ${Prober.name} --network caddy_net ${image} ${`http://api.makapix-${env}:8000/health`} 0.1`;
    return new Prober();
  }
  async stop(): Promise<ProbeEntry[]> {
    const logs = (await $({ quiet: true, nothrow: true })`docker logs ${Prober.name}`).stdout;
    spawnSync('docker', ['rm', '-f', Prober.name], { stdio: 'ignore' });
    return logs.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as ProbeEntry);
  }
}
