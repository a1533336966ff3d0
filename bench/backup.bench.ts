// backup-prod's overhead: the whole backup (roles, read-back through pg_restore, sha256, fsync,
// checksum, manifest, rotation) against a bare `pg_dump -Fc` of the same database, measured side
// by side in this run (alternating, median of the rounds). Target: overhead <= 10 %.
//
// BENCH_USERS (default 100000) scales the seeded Makapix-like database; BENCH_ROUNDS (default 3).
// Uses the sandbox's EA when `make sandbox-up USERS=<same>` is running; otherwise seeds its own
// cluster once, kept in $TMPDIR/makapix-bench-backup-<users> and reused by later runs.
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import pg from 'pg';
import { startCluster } from '../dev/cluster.ts';
import { connectionFor } from '../lib/tools/database.ts';
import { loadEnvConfig, type EnvConfig } from '../lib/core/config.ts';
import { composeDir } from '../lib/core/paths.ts';
import { adminUser, apiWorkerUser, sandboxStatus } from '../dev/sandbox.ts';
import { createMakapixSchema } from '../lib/tools/schema.ts';
import { seedDatabase } from '../dev/seed.ts';
import { Secret } from '../lib/core/secret.ts';
import { Ui, formatBytes, formatDuration } from '../lib/core/ui.ts';
import { backupDatabase, listBackups } from '../lib/tools/backup-store.ts';
import { pgCommand } from '../lib/tools/pgtools.ts';

const users = Number(process.env.BENCH_USERS ?? 100_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const ui = new Ui({ tty: false, verbose: false });
const quiet = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });

/** The database to dump: the sandbox's EA when `make sandbox-up` made one of this size, else our own. */
async function benchTarget(work: string): Promise<{ cfg: EnvConfig; stop: () => Promise<void> }> {
  const sandbox = await sandboxStatus();
  if (sandbox.up && sandbox.users === users) {
    ui.info(`Using the running sandbox's EA (${sandbox.dir})`);
    return { cfg: loadEnvConfig('prod', path.join(sandbox.envDir, '.env.prod')), stop: async () => undefined };
  }
  // Seeding is slow: the seeded cluster is kept outside the sandbox folder (which the sandbox owns) and reused.
  const dataDir = path.join(tmpdir(), `makapix-bench-backup-${users}`, 'data');
  const seeded = existsSync(path.join(dataDir, 'SEEDED'));
  if (!seeded) {
    await rm(path.dirname(dataDir), { recursive: true, force: true });
    await mkdir(path.dirname(dataDir), { recursive: true });
    await chmod(path.dirname(dataDir), 0o755); // the cluster's OS user must reach its data directory
  }
  const cluster = await startCluster({ dir: dataDir, superuser: adminUser, password: new Secret('bench-owner-password') });
  if (!seeded) {
    const admin = new pg.Client(cluster.connection());
    await admin.connect();
    await admin.query('CREATE DATABASE makapix');
    await admin.end();
    const client = new pg.Client(cluster.connection('makapix'));
    await client.connect();
    try {
      await createMakapixSchema(client, { apiWorker: { user: apiWorkerUser, password: new Secret('bench-worker-password') } });
      await ui.run(`Seed ${users.toLocaleString('en-US')} users (once; kept in ${dataDir})`, () => seedDatabase(client, { users, seed: 42, ui, verify: false }));
      await client.query('VACUUM ANALYZE');
    } finally {
      await client.end();
    }
    await writeFile(path.join(dataDir, 'SEEDED'), `${new Date().toISOString()}\n`);
  } else ui.info(`Reusing the seeded cluster in ${dataDir}`);
  const envText = readFileSync(path.join(composeDir, '.env.prod.example'), 'utf8')
    .replace(/^DB_PUBLISHED_PORT=.*$/m, `DB_PUBLISHED_PORT=${cluster.port}`)
    .replace(/^DB_ADMIN_PASSWORD=.*$/m, `DB_ADMIN_PASSWORD=${cluster.password.reveal()}`);
  writeFileSync(path.join(work, '.env.prod'), envText, { mode: 0o600 });
  return { cfg: loadEnvConfig('prod', path.join(work, '.env.prod')), stop: () => cluster.stop() };
}

const work = await mkdtemp(path.join(tmpdir(), 'backup-bench-'));
const target = await benchTarget(work);
const backups = path.join(work, 'backups');
try {
  const cfg = target.cfg;
  const database = cfg.vars.DB_DATABASE;
  // The baseline writes to stdout redirected to a file (`pg_dump -Fc > file`): on this machine that
  // is faster than `pg_dump -Fc -f file`, so it is the stricter of the two bare dumps to compare with.
  const bare = async (): Promise<number> => {
    const out = path.join(work, 'bare.dump');
    const { cmd, argv, env } = pgCommand('pg_dump', { kind: 'local', connection: connectionFor(cfg) }, { database, args: ['--format=custom'] });
    const fd = openSync(out, 'wx', 0o600);
    const t = performance.now();
    try {
      await $({ quiet: true, env: { ...process.env, ...env }, stdio: ['ignore', fd, 'pipe'] })`${cmd} ${argv}`;
    } finally {
      closeSync(fd);
    }
    const ms = performance.now() - t;
    await rm(out);
    return ms;
  };
  const full = async (): Promise<number> => {
    const t = performance.now();
    await backupDatabase(cfg, { mode: 'direct', ui: quiet, dir: backups });
    return performance.now() - t;
  };

  await bare(); // warm the cache for both
  const times: { bare: number[]; full: number[] } = { bare: [], full: [] };
  for (let i = 0; i < rounds; i++) {
    times.bare.push(await bare());
    times.full.push(await full());
    ui.info(`round ${i + 1}/${rounds}: bare pg_dump -Fc ${formatDuration(times.bare.at(-1)!)}, backup-prod ${formatDuration(times.full.at(-1)!)}`);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const [b, f] = [median(times.bare), median(times.full)];
  const sizes = await listBackups(backups);
  const dbSize = sizes[0]?.manifest.database.sizeBytes ?? 0;
  const ratio = f / b;
  process.stdout.write(
    [
      `database: ${users.toLocaleString('en-US')} users, ${formatBytes(dbSize)}; dump ${formatBytes(sizes[0]?.manifest.bytes ?? 0)}`,
      `bare pg_dump -Fc > file (median of ${rounds}): ${formatDuration(b)}`,
      `backup-prod --direct (median of ${rounds}): ${formatDuration(f)}`,
      `ratio backup-prod / pg_dump: ${ratio.toFixed(3)} (overhead ${((ratio - 1) * 100).toFixed(1)} %, target <= 10 %) ${ratio <= 1.1 ? 'OK' : 'OVER TARGET'}`,
    ].join('\n') + '\n',
  );
} finally {
  await target.stop();
  await rm(work, { recursive: true, force: true });
}
