import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Cluster } from '../../dev/cluster.ts';
import type { EnvConfig, Environment } from '../../lib/core/config.ts';
import { adminUser, generateSecrets, provisionEnvironment, writeEnvFile, type EnvSecrets } from '../../dev/sandbox.ts';
import type { SeedReport, VaultReport } from '../../dev/seed.ts';
import { startTestCluster } from '../../dev/scratch-cluster.ts';
import { onExit } from '../../dev/cleanup.ts';

export interface TestSandbox {
  /** EA: database makapix, schema and seeded data. */
  prod: Cluster;
  /** EB: database makapix_dev, schema only. */
  dev: Cluster;
  /** Holds .env.prod and .env.dev: pass it as MAKAPIX_ENV_DIR, or load the files with loadEnvConfig. */
  envDir: string;
  prodCfg: EnvConfig;
  devCfg: EnvConfig;
  /** EA's vault (seeded when vault: true, else empty) and EB's (always empty). */
  vaultProd: string;
  vaultDev: string;
  /** The temporary folder holding all of it; deleted when the test process ends. */
  dir: string;
  seedReport: SeedReport;
  vaultReport?: VaultReport;
  /**
   * Stops both clusters and deletes everything now (the exit cleanup would too, but synchronously
   * while the process ends; calling this in test.after keeps that short).
   */
  stop(): Promise<void>;
}

export interface TestSandboxOptions {
  users: number;
  seed: number;
  /** Write EA's vault files too (a few per post; keep users small). */
  vault?: boolean;
}

/**
 * Both environments for a test, like the sandbox of `make sandbox-up` but throwaway: two real
 * PostgreSQL 15 clusters on free loopback ports, the Makapix schema on both, EA seeded, env files
 * that pass the validator, all removed when the process ends (even on failure).
 */
export async function startSandbox(opts: TestSandboxOptions): Promise<TestSandbox> {
  const dir = mkdtempSync(path.join(tmpdir(), 'makapix-sandbox-'));
  chmodSync(dir, 0o755);
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  const secrets: Record<Environment, EnvSecrets> = { prod: generateSecrets('prod'), dev: generateSecrets('dev') };
  const [prod, dev] = await Promise.all([
    startTestCluster({ superuser: adminUser, password: secrets.prod.dbAdminPassword }),
    startTestCluster({ superuser: adminUser, password: secrets.dev.dbAdminPassword }),
  ]);
  const envDir = path.join(dir, 'env');
  const vaultOf = (env: Environment) => path.join(dir, `vault-${env}`);
  const cfgs = {} as Record<Environment, EnvConfig>;
  for (const [env, cluster] of [['prod', prod], ['dev', dev]] as const) {
    const input = { port: cluster.port, stateDir: path.join(dir, 'state'), vault: vaultOf(env), mqttCerts: path.join(dir, 'mqtt', env), backups: path.join(dir, 'backups', env), appDir: path.join(dir, 'app'), secrets: secrets[env] };
    for (const d of [input.vault, input.mqttCerts, input.backups]) await mkdir(d, { recursive: true });
    cfgs[env] = await writeEnvFile(envDir, env, input);
  }
  const [ea] = await Promise.all([
    provisionEnvironment(prod, 'prod', secrets.prod, { seed: { users: opts.users, seed: opts.seed }, ...(opts.vault && { vault: vaultOf('prod') }) }),
    provisionEnvironment(dev, 'dev', secrets.dev),
  ]);
  const stop = async () => {
    await Promise.all([prod.stop(), dev.stop()]);
    // startTestCluster puts each data directory in a temporary folder of its own.
    await Promise.all([dir, path.dirname(prod.dir), path.dirname(dev.dir)].map((d) => rm(d, { recursive: true, force: true })));
  };
  return { prod, dev, envDir, prodCfg: cfgs.prod, devCfg: cfgs.dev, vaultProd: vaultOf('prod'), vaultDev: vaultOf('dev'), dir, seedReport: ea.seed!, ...(ea.vault && { vaultReport: ea.vault }), stop };
}
