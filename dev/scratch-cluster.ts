import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCluster, pgBin, asClusterUser, type Cluster, type ClusterOptions } from './cluster.ts';
import { onExit } from './cleanup.ts';
import { spawnSync } from 'node:child_process';

/**
 * A real, throwaway PostgreSQL 15 cluster on a free loopback port, stopped and deleted when the test
 * process ends (even on failure).
 */
export async function startTestCluster(opts: Omit<ClusterOptions, 'dir'> = {}): Promise<Cluster> {
  const parent = mkdtempSync(path.join(tmpdir(), 'makapix-pg-'));
  chmodSync(parent, 0o755); // the cluster's OS user must reach its data directory
  const dir = path.join(parent, 'data');
  onExit(() => {
    const argv = [...asClusterUser(), path.join(pgBin, 'pg_ctl'), '-D', dir, '-m', 'immediate', '-w', 'stop'];
    spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    rmSync(parent, { recursive: true, force: true });
  });
  return startCluster({ dir, ...opts });
}
