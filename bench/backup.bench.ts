// backup-prod's overhead: the whole backup (roles, read-back through pg_restore, sha256, fsync,
// checksum, manifest, rotation) against a bare `pg_dump -Fc` of the same database, measured side
// by side in this run (alternating, median of the rounds). Target: overhead <= 10 %.
//
// BENCH_USERS (default 100000) scales the seeded Makapix-like database; BENCH_ROUNDS (default 3).
// Seeding is slow, so the seeded cluster is kept in <sandbox dir>/bench-backup-<users> and reused.
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import pg from 'pg';
import { startCluster } from '../lib/cluster.ts';
import { connectionFor } from '../lib/database.ts';
import { loadEnvConfig, type EnvConfig } from '../lib/config.ts';
import { composeDir, sandboxDir } from '../lib/paths.ts';
import { createMakapixSchema } from '../lib/schema.ts';
import { seedDatabase } from '../lib/seed.ts';
import { Secret } from '../lib/secret.ts';
import { Ui, formatBytes, formatDuration } from '../lib/ui.ts';
import { backupDatabase } from '../lib/backup.ts';
import { pgCommand } from '../lib/pgtools.ts';
import { writeFileSync } from 'node:fs';

const users = Number(process.env.BENCH_USERS ?? 100_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const ui = new Ui({ tty: false, verbose: false });
const quiet = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });

const dataDir = path.join(sandboxDir, `bench-backup-${users}`, 'data');
const seeded = existsSync(path.join(dataDir, 'PG_VERSION'));
if (!seeded) {
  // A fresh start (or a seeding that died half-way): the cluster's OS user must reach the folder.
  await rm(path.dirname(dataDir), { recursive: true, force: true });
  for (const d of [sandboxDir, path.dirname(dataDir)]) {
    await mkdir(d, { recursive: true });
    await chmod(d, 0o755);
  }
}
const cluster = await startCluster({ dir: dataDir, password: new Secret('bench-owner-password') });
const work = await mkdtemp(path.join(tmpdir(), 'backup-bench-'));
try {
  if (!seeded) {
    const admin = new pg.Client(cluster.connection());
    await admin.connect();
    await admin.query('CREATE DATABASE makapix');
    await admin.end();
    const client = new pg.Client(cluster.connection('makapix'));
    await client.connect();
    try {
      await createMakapixSchema(client, { apiWorker: { user: 'api_worker', password: new Secret('bench-worker-password') } });
      await ui.run(`Seed ${users.toLocaleString('en-US')} users (once; kept in ${dataDir})`, () => seedDatabase(client, { users, seed: 42, ui, verify: false }));
      await client.query('VACUUM ANALYZE');
    } finally {
      await client.end();
    }
  } else ui.info(`Reusing the seeded cluster in ${dataDir}`);

  const envText = (await import('node:fs')).readFileSync(path.join(composeDir, '.env.prod.example'), 'utf8')
    .replace(/^DB_PUBLISHED_PORT=.*$/m, `DB_PUBLISHED_PORT=${cluster.port}`)
    .replace(/^DB_ADMIN_PASSWORD=.*$/m, `DB_ADMIN_PASSWORD=${cluster.password.reveal()}`)
    .replace(/^BACKUP_DIR=.*$/m, `BACKUP_DIR=${path.join(work, 'backups')}`);
  writeFileSync(path.join(work, '.env.prod'), envText, { mode: 0o600 });
  const cfg: EnvConfig = loadEnvConfig('prod', path.join(work, '.env.prod'));

  const bare = async (): Promise<number> => {
    const out = path.join(work, 'bare.dump');
    const { cmd, argv, env } = pgCommand('pg_dump', { kind: 'local', connection: connectionFor(cfg) }, { database: 'makapix', args: ['--format=custom', `--file=${out}`] });
    const t = performance.now();
    await $({ quiet: true, env: { ...process.env, ...env } })`${cmd} ${argv}`;
    const ms = performance.now() - t;
    await rm(out);
    return ms;
  };
  const full = async (): Promise<number> => {
    const t = performance.now();
    await backupDatabase(cfg, { mode: 'direct', ui: quiet });
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
  const sizes = await stat(path.join(work, 'backups')).then(async () => (await import('../lib/backup.ts')).listBackups(path.join(work, 'backups')));
  const dbSize = sizes[0]?.manifest.database.sizeBytes ?? 0;
  const ratio = f / b;
  process.stdout.write(
    [
      `database: ${users.toLocaleString('en-US')} users, ${formatBytes(dbSize)}; dump ${formatBytes(sizes[0]?.manifest.bytes ?? 0)}`,
      `bare pg_dump -Fc (median of ${rounds}):  ${formatDuration(b)}`,
      `backup-prod --direct (median of ${rounds}): ${formatDuration(f)}`,
      `ratio backup-prod / pg_dump: ${ratio.toFixed(3)} (overhead ${((ratio - 1) * 100).toFixed(1)} %, target <= 10 %) ${ratio <= 1.1 ? 'OK' : 'OVER TARGET'}`,
    ].join('\n') + '\n',
  );
} finally {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
