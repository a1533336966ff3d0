/**
 * The local sandbox: both environments as throwaway PostgreSQL 15 clusters on free loopback ports,
 * with vault folders and env files that pass the config validator, so every script of this
 * toolkit runs against it with MAKAPIX_ENV_DIR=<sandbox>/env instead of the real VPS.
 *
 * Layout of the sandbox folder (lib/core/paths.ts sandboxDir, default <repo>/.sandbox):
 *   .makapix-sandbox        marker: only a folder carrying it is ever deleted by `down`
 *   state.json              ports, folders, seed and vault reports (written last by `up`)
 *   sandbox.lock            held while up/down run
 *   activate                `. .sandbox/activate` points every script at the sandbox (MAKAPIX_ENV_DIR, ...)
 *   clusters/ea, clusters/eb  PostgreSQL data directories (EA: database makapix, EB: makapix_dev)
 *   env/.env.prod, env/.env.dev  the environments' files (secrets differ per environment)
 *   vault-prod/, vault-dev/ the vault folders (EA seeded, EB empty)
 *   mqtt/<env>/, backups/<env>/, app/  MQTT_CERTS_DIR, BACKUP_DIR and APP_DIR of each environment
 *   state/                  files the toolkit keeps by default under /var/lib and /etc (DEPLOY_LOG, RESTIC_PASSWORD_FILE)
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { startCluster, stopCluster, type Cluster } from './cluster.ts';
import { appEnvironmentName, environments, envSchema, loadEnvConfig, parseEnvFile, type EnvConfig, type Environment, type EnvVars } from '../lib/core/config.ts';
import { writeFileAtomic } from '../lib/core/atomic-file.ts';
import { withLock } from '../lib/core/lock.ts';
import { projectRoot } from '../lib/core/paths.ts';

const sandboxDir = process.env.MAKAPIX_SANDBOX_DIR ?? path.join(projectRoot, '.sandbox');
import { Secret } from '../lib/core/secret.ts';
import { createMakapixSchema } from '../lib/tools/schema.ts';
import { seedDatabase, seedVault, type SeedReport, type VaultReport } from './seed.ts';
import { ConfigError, SafetyError } from '../lib/core/errors.ts';
import type { FlagSpec } from '../lib/core/cli.ts';
import { formatBytes, formatDuration, type Ui } from '../lib/core/ui.ts';

/** make sandbox-up's defaults: big enough to make sampling interesting, small enough for a laptop. */
export const defaultSandboxSize = { users: 2000, seed: 42 } as const;

/** --users and --seed of `sandbox up` and `demo`: whole numbers, range-checked by the CLI. */
export const sandboxSizeFlags = {
  users: { type: 'int', min: 1, max: 5_000_000, default: defaultSandboxSize.users, value: 'N', description: 'users to seed EA with' },
  seed: { type: 'int', min: 0, max: 0xffffffff, default: defaultSandboxSize.seed, value: 'S', description: 'the generator seed: the same seed gives the same data' },
} as const satisfies Record<string, FlagSpec>;

/** EA and EB, as the sandbox names their clusters. */
export const clusterNames = { prod: 'ea', dev: 'eb' } as const satisfies Record<Environment, string>;
export const sandboxDatabases = { prod: 'makapix', dev: 'makapix_dev' } as const satisfies Record<Environment, string>;
export const adminUser = 'owner';
export const apiWorkerUser = 'api_worker';
/** Server settings for bulk seeding on a small machine. */
const clusterSettings = { max_wal_size: '1GB', max_connections: '40' };

export interface SandboxPaths {
  dir: string;
  marker: string;
  /** A shell snippet exporting sandboxShellEnv. */
  activate: string;
  stateFile: string;
  lockFile: string;
  envDir: string;
  appDir: string;
  cluster(env: Environment): string;
  vault(env: Environment): string;
  mqttCerts(env: Environment): string;
  backups(env: Environment): string;
}

export function sandboxPaths(dir = sandboxDir): SandboxPaths {
  const root = path.resolve(dir);
  return {
    dir: root,
    marker: path.join(root, '.makapix-sandbox'),
    activate: path.join(root, 'activate'),
    stateFile: path.join(root, 'state.json'),
    lockFile: path.join(root, 'sandbox.lock'),
    envDir: path.join(root, 'env'),
    appDir: path.join(root, 'app'),
    cluster: (env) => path.join(root, 'clusters', clusterNames[env]),
    vault: (env) => path.join(root, `vault-${env}`),
    mqttCerts: (env) => path.join(root, 'mqtt', env),
    backups: (env) => path.join(root, 'backups', env),
  };
}

/** The secret values of one environment's file; fresh random ones per environment. */
export interface EnvSecrets {
  dbAdminPassword: Secret;
  dbApiWorkerPassword: Secret;
  mqttPassword: Secret;
  jwtSecretKey: Secret;
  githubOauthClientSecret: Secret;
  ipHashSalt: Secret;
}

export function generateSecrets(env: Environment): EnvSecrets {
  const fresh = (what: string) => new Secret(`sbx-${env}-${what}-${randomBytes(12).toString('hex')}`);
  return { dbAdminPassword: fresh('db'), dbApiWorkerPassword: fresh('worker'), mqttPassword: fresh('mqtt'), jwtSecretKey: fresh('jwt'), githubOauthClientSecret: fresh('oauth'), ipHashSalt: fresh('salt') };
}

/**
 * The secrets an existing sandbox env file holds, to restart its cluster with the same passwords.
 * Read raw (not validated): a file written before the schema grew must still give its secrets back.
 */
export async function readEnvSecrets(file: string): Promise<EnvSecrets> {
  const { entries } = parseEnvFile(await readFile(file, 'utf8'), file);
  const get = (key: keyof EnvVars) => {
    const v = entries.get(key)?.value;
    if (!v) throw new ConfigError(`${file} has no ${key}; the sandbox cannot be restarted from it.`, [], 'Run sandbox down and sandbox up to make a new one.');
    return new Secret(v);
  };
  return {
    dbAdminPassword: get('DB_ADMIN_PASSWORD'),
    dbApiWorkerPassword: get('DB_API_WORKER_PASSWORD'),
    mqttPassword: get('MQTT_PASSWORD'),
    jwtSecretKey: get('JWT_SECRET_KEY'),
    githubOauthClientSecret: get('GITHUB_OAUTH_CLIENT_SECRET'),
    ipHashSalt: get('MAKAPIX_IP_HASH_SALT'),
  };
}

export interface SandboxEnvInput {
  port: number;
  /** The sandbox's own folder for files the toolkit writes by default outside it (deploy log). */
  stateDir: string;
  vault: string;
  mqttCerts: string;
  backups: string;
  appDir: string;
  secrets: EnvSecrets;
}

/**
 * An environment's file for a sandbox: every variable of the config schema (defaults written out,
 * since Compose reads the file too), in schema order. Domains are under .localhost, which resolves
 * to loopback only, and every path is inside the sandbox: nothing a script does against the
 * sandbox reaches a real host or a real folder.
 */
export function sandboxEnvVars(env: Environment, input: SandboxEnvInput): Partial<Record<keyof EnvVars, string>> {
  const chosen = sandboxChoices(env, input);
  const out: Partial<Record<keyof EnvVars, string>> = {};
  for (const [key, field] of Object.entries(envSchema) as [keyof EnvVars, { default?: string; only?: Environment }][]) {
    if (field.only && field.only !== env) continue;
    const value = chosen[key] ?? field.default;
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function sandboxChoices(env: Environment, input: SandboxEnvInput): Partial<Record<keyof EnvVars, string>> {
  const domain = env === 'prod' ? 'makapix.localhost' : 'development.makapix.localhost';
  const s = input.secrets;
  return {
    COMPOSE_PROJECT_NAME: `makapix-${env}`,
    ENVIRONMENT: appEnvironmentName[env],
    ROOT_DOMAIN: domain,
    WEB_DOMAIN: domain,
    BASE_URL: `https://${domain}`,
    NEXT_PUBLIC_API_BASE_URL: `https://${domain}`,
    DB_HOST: 'db',
    DB_DATABASE: sandboxDatabases[env],
    DB_ADMIN_USER: adminUser,
    DB_ADMIN_PASSWORD: s.dbAdminPassword.reveal(),
    DB_API_WORKER_USER: apiWorkerUser,
    DB_API_WORKER_PASSWORD: s.dbApiWorkerPassword.reveal(),
    REDIS_HOST: 'cache',
    VAULT_HOST_PATH: input.vault,
    VAULT_LOCATION: '/vault',
    VAULT_DOMAIN: `vault.${domain}`,
    MQTT_HOST: 'mqtt',
    MQTT_PUBLIC_HOST: domain,
    MQTT_PUBLIC_PORT: env === 'prod' ? '8883' : '8884',
    MQTT_PASSWORD: s.mqttPassword.reveal(),
    JWT_SECRET_KEY: s.jwtSecretKey.reveal(),
    GITHUB_OAUTH_CLIENT_ID: `sandbox-${env}-oauth-client`,
    GITHUB_OAUTH_CLIENT_SECRET: s.githubOauthClientSecret.reveal(),
    GITHUB_REDIRECT_URI: `https://${domain}/api/auth/github/callback`,
    RESEND_FROM_EMAIL: `noreply@${domain}`,
    MAKAPIX_IP_HASH_SALT: s.ipHashSalt.reveal(),
    // The app's own recommended alphabet (deploy/stack/env.example of the app).
    SQIDS_ALPHABET: 'abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789',
    // EB's images come from its own site (caddy/Caddyfile, /vault/ behind the developer session).
    VAULT_PUBLIC_BASE_URL: env === 'dev' ? `https://${domain}/vault` : `https://vault.${domain}`,
    CORS_ORIGINS: `https://${domain}`,
    ...(env === 'dev' && { CERT_RENEWAL_THRESHOLD_DAYS: '3650' }),
    APP_DIR: input.appDir,
    DB_PUBLISHED_HOST: '127.0.0.1',
    DB_PUBLISHED_PORT: String(input.port),
    DB_VOLUME_NAME: `makapix_sandbox_${env}_pg_data`,
    MQTT_CERTS_DIR: input.mqttCerts,
    CADDY_LOG_DIR: path.join(input.stateDir, 'caddy-logs'),
    BACKUP_DIR: input.backups,
    BACKUP_KEEP: '7',
    DEPLOY_LOG: path.join(input.stateDir, 'deploys.jsonl'),
    // No offsite repository in the sandbox (RESTIC_REPOSITORY stays empty); its password file would live here.
    RESTIC_PASSWORD_FILE: path.join(input.stateDir, 'restic-password'),
  };
}

export function renderEnvFile(env: Environment, vars: Partial<Record<keyof EnvVars, string>>): string {
  const lines = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  return [`# ${env === 'prod' ? 'EA' : 'EB'} (${env}) of the local sandbox, written by makapix-ops; throwaway values.`, ...lines, ''].join('\n');
}

/** Writes an environment's file (0600: it holds passwords) and proves it passes the validator. */
export async function writeEnvFile(envDir: string, env: Environment, input: SandboxEnvInput): Promise<EnvConfig> {
  await mkdir(envDir, { recursive: true });
  const file = path.join(envDir, `.env.${env}`);
  await writeFileAtomic(file, renderEnvFile(env, sandboxEnvVars(env, input)));
  return loadEnvConfig(env, file);
}

export interface ProvisionOptions {
  /** Seed this environment's database with that many users (EA); schema only when absent (EB). */
  seed?: { users: number; seed: number };
  /** Write the seeded vault here (needs seed). */
  vault?: string;
  ui?: Ui;
}

export interface ProvisionReport {
  seed?: SeedReport;
  vault?: VaultReport;
}

/**
 * Makes an environment's database on a running cluster: CREATE DATABASE, the Makapix schema, the
 * api_worker role with DML grants, and optionally the seed and its vault.
 */
export async function provisionEnvironment(cluster: Cluster, env: Environment, secrets: EnvSecrets, opts: ProvisionOptions = {}): Promise<ProvisionReport> {
  const database = sandboxDatabases[env];
  const admin = new pg.Client(cluster.connection('postgres'));
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
  const client = new pg.Client(cluster.connection(database));
  await client.connect();
  try {
    await createMakapixSchema(client, { apiWorker: { user: apiWorkerUser, password: secrets.dbApiWorkerPassword } });
    if (!opts.seed) return {};
    const seed = await seedDatabase(client, { ...opts.seed, ...(opts.ui && { ui: opts.ui }) });
    const vault = opts.vault ? await seedVault(client, opts.vault, { seed: opts.seed.seed, ...(opts.ui && { ui: opts.ui }) }) : undefined;
    return { seed, ...(vault && { vault }) };
  } finally {
    await client.end();
  }
}

// ---- the persistent sandbox ---------------------------------------------------------------

export interface SandboxState {
  version: 1;
  createdAt: string;
  users: number;
  seed: number;
  clusters: Record<Environment, { dir: string; port: number; database: string }>;
  seedReport: SeedReport;
  vault: Record<Environment, { path: string; files: number; bytes: number; variants: number; orphans: number }>;
}

export interface SandboxStatus {
  up: boolean;
  dir: string;
  envDir: string;
  /** True when `up` found a sandbox and kept it instead of creating one. */
  reused?: boolean;
  users?: number;
  seed?: number;
  createdAt?: string;
  clusters?: Record<Environment, { dir: string; port: number; database: string; running: boolean; databaseBytes?: number }>;
  vault?: SandboxState['vault'];
  seedReport?: SeedReport;
  /** Wall time of this `up` (creation or restart). */
  durationMs?: number;
  /** How to point the other scripts at the sandbox. */
  usage?: string;
}

async function readState(paths: SandboxPaths): Promise<SandboxState | undefined> {
  if (!existsSync(paths.stateFile)) return undefined;
  return JSON.parse(await readFile(paths.stateFile, 'utf8')) as SandboxState;
}

/** Connects to a port only to check that the server there is this data directory's (or nothing). */
async function ownServerAt(dir: string, port: number, password: Secret): Promise<Cluster | undefined> {
  const connection = (database = 'postgres'): pg.ClientConfig => ({ host: '127.0.0.1', port, user: adminUser, password: password.reveal(), database });
  const client = new pg.Client({ ...connection(), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ data_directory: string }>('SHOW data_directory');
    if (path.resolve(rows[0]!.data_directory) !== path.resolve(dir)) return undefined;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
  return { dir, host: '127.0.0.1', port, superuser: adminUser, password, connection, stop: () => stopCluster(dir) };
}

/** The sandbox folder may be deleted only when it is one (marker) or holds nothing at all. */
async function assertOurs(paths: SandboxPaths): Promise<void> {
  if (!existsSync(paths.dir) || existsSync(paths.marker)) return;
  const entries = (await readdir(paths.dir)).filter((e) => e !== path.basename(paths.lockFile));
  if (entries.length) throw new SafetyError(`${paths.dir} is not a makapix sandbox (no ${path.basename(paths.marker)} marker) and is not empty.`, 'Point MAKAPIX_SANDBOX_DIR at an empty or sandbox folder.');
}

/** Stops the clusters and deletes everything but the lock (held by the caller). */
async function wipe(paths: SandboxPaths): Promise<void> {
  await assertOurs(paths);
  for (const env of environments) await stopCluster(paths.cluster(env));
  if (!existsSync(paths.dir)) return;
  for (const entry of await readdir(paths.dir)) if (path.join(paths.dir, entry) !== paths.lockFile) await rm(path.join(paths.dir, entry), { recursive: true, force: true });
}

/**
 * The variables that point this toolkit at the sandbox: the env files, the edge Caddyfile's host
 * placeholders set to the sandbox's .localhost names, and the edge project's vault and log folders
 * set to the sandbox's (so `check` audits a matching edge).
 */
export function sandboxShellEnv(paths: SandboxPaths): Record<string, string> {
  return {
    MAKAPIX_ENV_DIR: paths.envDir,
    MAKAPIX_SANDBOX_DIR: paths.dir,
    EA_HOST: 'makapix.localhost',
    EA_VAULT_HOST: 'vault.makapix.localhost',
    EB_HOST: 'development.makapix.localhost',
    EB_VAULT_HOST: 'vault.development.makapix.localhost',
    EA_VAULT_HOST_PATH: paths.vault('prod'),
    EB_VAULT_HOST_PATH: paths.vault('dev'),
    CADDY_LOG_HOST_DIR: path.join(paths.dir, 'state', 'caddy-logs'),
  };
}

export const renderActivate = (vars: Record<string, string>): string =>
  ['# Source this file (`. .sandbox/activate`) to run every makapix-ops script against the sandbox.', ...Object.entries(vars).map(([k, v]) => `export ${k}='${v.replace(/'/g, "'\\''")}'`), ''].join('\n');

const usageFor = (paths: SandboxPaths) => `. ${path.join(paths.dir, 'activate')}  then any script or make target, e.g. make check; ./scripts/sample-data-to-dev.ts --help`;

export interface SandboxUpOptions {
  users: number;
  seed: number;
  ui: Ui;
  dir?: string;
}

/**
 * Brings the sandbox up. An existing one is kept (its clusters restarted on free ports and the
 * env files rewritten if they were stopped); a half-made one (no state file) is wiped and redone.
 */
export async function sandboxUp(opts: SandboxUpOptions): Promise<SandboxStatus> {
  const paths = sandboxPaths(opts.dir);
  await assertOurs(paths);
  await mkdir(paths.dir, { recursive: true });
  return withLock(paths.lockFile, 'sandbox up', async () => {
    const started = Date.now();
    const state = await readState(paths);
    if (state) {
      if (state.users !== opts.users || state.seed !== opts.seed) opts.ui.warn(`The sandbox is already up with ${state.users} users and seed ${state.seed}; keeping it (run sandbox down first to reseed).`);
      await resume(paths, state, opts.ui);
      return { ...(await sandboxStatus(opts.dir)), reused: true, durationMs: Date.now() - started };
    }
    await wipe(paths);
    await writeFileAtomic(paths.marker, 'makapix-ops sandbox: `scripts/sandbox.ts down` deletes this folder.\n', 0o644);
    await create(paths, opts);
    return { ...(await sandboxStatus(opts.dir)), reused: false, durationMs: Date.now() - started };
  });
}

async function startSandboxCluster(paths: SandboxPaths, env: Environment, password: Secret): Promise<Cluster> {
  await mkdir(path.dirname(paths.cluster(env)), { recursive: true, mode: 0o755 });
  return startCluster({ dir: paths.cluster(env), superuser: adminUser, password, settings: clusterSettings });
}

/** What an environment's env file is made from: the sandbox's folders, its cluster port and its secrets. */
export const envInput = (paths: SandboxPaths, env: Environment, port: number, secrets: EnvSecrets): SandboxEnvInput => ({
  port,
  stateDir: path.join(paths.dir, 'state'),
  vault: paths.vault(env),
  mqttCerts: paths.mqttCerts(env),
  backups: paths.backups(env),
  appDir: paths.appDir,
  secrets,
});

async function create(paths: SandboxPaths, opts: SandboxUpOptions): Promise<void> {
  const { ui } = opts;
  const secrets = { prod: generateSecrets('prod'), dev: generateSecrets('dev') };
  const clusters = {} as Record<Environment, Cluster>;
  for (const env of environments) {
    clusters[env] = await ui.run(`starting ${clusterNames[env].toUpperCase()} (${env}) PostgreSQL 15`, () => startSandboxCluster(paths, env, secrets[env].dbAdminPassword), (c) => `127.0.0.1:${c.port}`);
  }
  for (const env of environments) {
    for (const d of [paths.vault(env), paths.mqttCerts(env), paths.backups(env)]) await mkdir(d, { recursive: true });
    await writeEnvFile(paths.envDir, env, envInput(paths, env, clusters[env].port, secrets[env]));
  }
  await mkdir(paths.appDir, { recursive: true });
  const prod = await provisionEnvironment(clusters.prod, 'prod', secrets.prod, { seed: { users: opts.users, seed: opts.seed }, vault: paths.vault('prod'), ui });
  await ui.run('creating the EB (dev) schema', () => provisionEnvironment(clusters.dev, 'dev', secrets.dev));
  const vaultEntry = (env: Environment, v?: VaultReport) => ({ path: paths.vault(env), files: v?.files ?? 0, bytes: v?.bytes ?? 0, variants: v?.variants ?? 0, orphans: v?.orphans ?? 0 });
  const state: SandboxState = {
    version: 1,
    createdAt: new Date().toISOString(),
    users: opts.users,
    seed: opts.seed,
    clusters: {
      prod: { dir: paths.cluster('prod'), port: clusters.prod.port, database: sandboxDatabases.prod },
      dev: { dir: paths.cluster('dev'), port: clusters.dev.port, database: sandboxDatabases.dev },
    },
    seedReport: prod.seed!,
    vault: { prod: vaultEntry('prod', prod.vault), dev: vaultEntry('dev') },
  };
  await writeFileAtomic(paths.activate, renderActivate(sandboxShellEnv(paths)), 0o644);
  await writeFileAtomic(paths.stateFile, `${JSON.stringify(state, null, 2)}\n`, 0o644);
}

/**
 * Restarts whatever cluster of an existing sandbox is not running, on a free port, and rewrites
 * both env files (same secrets; picks up variables the config schema gained since).
 */
async function resume(paths: SandboxPaths, state: SandboxState, ui: Ui): Promise<void> {
  for (const env of environments) {
    const secrets = await readEnvSecrets(path.join(paths.envDir, `.env.${env}`));
    const c = state.clusters[env];
    if (!(await ownServerAt(c.dir, c.port, secrets.dbAdminPassword))) {
      // Not answering on its port (or someone else is there): start it again wherever is free.
      await stopCluster(c.dir);
      const cluster = await ui.run(`restarting ${clusterNames[env].toUpperCase()} (${env})`, () => startSandboxCluster(paths, env, secrets.dbAdminPassword), (x) => `127.0.0.1:${x.port}`);
      c.port = cluster.port;
    }
    await writeEnvFile(paths.envDir, env, envInput(paths, env, c.port, secrets));
  }
  await writeFileAtomic(paths.activate, renderActivate(sandboxShellEnv(paths)), 0o644);
  await writeFileAtomic(paths.stateFile, `${JSON.stringify(state, null, 2)}\n`, 0o644);
}

/** What the sandbox is and whether its clusters answer; never starts or changes anything. */
export async function sandboxStatus(dir?: string): Promise<SandboxStatus> {
  const paths = sandboxPaths(dir);
  const state = await readState(paths);
  if (!state) return { up: false, dir: paths.dir, envDir: paths.envDir };
  const clusters = {} as NonNullable<SandboxStatus['clusters']>;
  for (const env of environments) {
    const c = state.clusters[env];
    const file = path.join(paths.envDir, `.env.${env}`);
    const password = existsSync(file) ? (await readEnvSecrets(file)).dbAdminPassword : undefined;
    const server = password && (await ownServerAt(c.dir, c.port, password));
    let databaseBytes: number | undefined;
    if (server) {
      const client = new pg.Client(server.connection(c.database));
      await client.connect();
      try {
        databaseBytes = Number((await client.query<{ s: string }>('SELECT pg_database_size(current_database()) AS s')).rows[0]!.s);
      } finally {
        await client.end();
      }
    }
    clusters[env] = { ...c, running: Boolean(server), ...(databaseBytes !== undefined && { databaseBytes }) };
  }
  return {
    up: clusters.prod.running && clusters.dev.running,
    dir: paths.dir,
    envDir: paths.envDir,
    users: state.users,
    seed: state.seed,
    createdAt: state.createdAt,
    clusters,
    vault: state.vault,
    seedReport: state.seedReport,
    usage: usageFor(paths),
  };
}

/** Stops both clusters and deletes the sandbox folder (only if it is one). */
export async function sandboxDown(opts: { ui: Ui; dir?: string }): Promise<{ removed: boolean; dir: string }> {
  const paths = sandboxPaths(opts.dir);
  if (!existsSync(paths.dir)) return { removed: false, dir: paths.dir };
  await assertOurs(paths);
  await withLock(paths.lockFile, 'sandbox down', () => opts.ui.run('stopping the sandbox clusters and deleting its data', () => wipe(paths)));
  await rm(paths.dir, { recursive: true, force: true });
  return { removed: true, dir: paths.dir };
}

/** The human summary of a sandbox: what runs where, how big, and how to use it. */
export function describeSandbox(s: SandboxStatus): string {
  if (!s.clusters) return `No sandbox in ${s.dir}. Start one with: make sandbox-up (USERS=, SEED=).`;
  const lines = [`Sandbox in ${s.dir} (${s.users?.toLocaleString('en-US')} users, seed ${s.seed}${s.reused ? ', already existed' : ''}${s.durationMs !== undefined ? `, ready in ${formatDuration(s.durationMs)}` : ''})`];
  for (const env of environments) {
    const c = s.clusters[env];
    const size = c.databaseBytes !== undefined ? `, ${formatBytes(c.databaseBytes)}` : '';
    lines.push(`  ${clusterNames[env].toUpperCase()} (${env}): PostgreSQL 15 on 127.0.0.1:${c.port}, database ${c.database}${size}, ${c.running ? 'running' : 'STOPPED (sandbox up restarts it)'}`);
    lines.push(`       data ${c.dir}`);
    const v = s.vault?.[env];
    if (v) lines.push(`       vault ${v.path}: ${v.files.toLocaleString('en-US')} files, ${formatBytes(v.bytes)} (${v.variants} variants, ${v.orphans} orphans)`);
  }
  if (s.seedReport) lines.push(`  seed: ${s.seedReport.totalRows.toLocaleString('en-US')} rows in ${Object.keys(s.seedReport.rows).length} tables, loaded in ${formatDuration(s.seedReport.durationMs)}`);
  lines.push(`  env files: ${s.envDir}/.env.prod, ${s.envDir}/.env.dev`);
  if (s.usage) lines.push(`  use: ${s.usage}`);
  return lines.join('\n');
}
