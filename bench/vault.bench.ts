// sync-vault-to-dev against the anchor a person would use: `rsync -a --files-from` given the same
// file list (made for it here, untimed; the tool's own time includes reading EB's database and
// mapping posts to files). Measured side by side in this run, alternating, median of the rounds:
//   1. first copy of a 10 % sample into an empty EB vault: tool vs rsync -a --chown (the same
//      ownership work), and vs rsync followed by one `sync -f` (the same durability as the tool);
//   2. a no-op re-run over the same sample (target: under 1 s for >= 5,000 files).
// Targets: first copy at least as fast as rsync (ratio <= 1); no-op re-run < 1 s.
//
// BENCH_VAULT_USERS (default 7000: about 52,000 vault files) scales the seeded EA; BENCH_ROUNDS
// (default 3). The seeded cluster and vault are kept in $TMPDIR/makapix-bench-vault-<users> and
// reused by later runs (writing 50,000 files is the slow part).
import { existsSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import pg from 'pg';
import { startCluster } from '../dev/cluster.ts';
import { adminUser } from '../dev/sandbox.ts';
import { createMakapixSchema } from '../lib/tools/schema.ts';
import { seedDatabase, seedVault } from '../dev/seed.ts';
import { Secret } from '../lib/core/secret.ts';
import { Ui, formatBytes, formatDuration } from '../lib/core/ui.ts';
import { syncVault, type SyncVaultOptions } from '../lib/jobs/vault-sync.ts';
import { samplePostsBetween } from '../dev/vault-fixture.ts';

const users = Number(process.env.BENCH_VAULT_USERS ?? 7_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const seed = 42;
const ui = new Ui({ tty: false, verbose: false });
const quiet = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });

const home = path.join(tmpdir(), `makapix-bench-vault-${users}`);
const dataDir = path.join(home, 'data');
const source = path.join(home, 'vault-prod');
const marker = path.join(home, 'SEEDED');
const seeded = existsSync(marker);
if (!seeded) {
  await rm(home, { recursive: true, force: true });
  await mkdir(home, { recursive: true });
  await chmod(home, 0o755); // the cluster's OS user must reach its data directory
}
const cluster = await startCluster({ dir: dataDir, superuser: adminUser, password: new Secret('bench-owner-password') });
const work = await mkdtemp(path.join(tmpdir(), 'vault-bench-'));
try {
  if (!seeded) {
    const admin = new pg.Client(cluster.connection());
    await admin.connect();
    for (const db of ['makapix', 'makapix_dev']) await admin.query(`CREATE DATABASE ${db}`);
    await admin.end();
    for (const db of ['makapix', 'makapix_dev']) {
      const client = new pg.Client(cluster.connection(db));
      await client.connect();
      try {
        await createMakapixSchema(client);
        if (db === 'makapix') {
          await ui.run(`Seed ${users.toLocaleString('en-US')} users (once; kept in ${home})`, () => seedDatabase(client, { users, seed, ui, verify: false }));
          await ui.run('Write EA\'s vault (once)', () => seedVault(client, source, { seed, ui }), (r) => `${r.files.toLocaleString('en-US')} files, ${formatBytes(r.bytes)}`);
        }
      } finally {
        await client.end();
      }
    }
    // EB's sample: every tenth post, as sample-data-to-dev would leave about 10 % of them.
    await samplePostsBetween(cluster.connection('makapix'), cluster.connection('makapix_dev'), 'p.id % 10 = 0');
    await writeFile(marker, `${new Date().toISOString()}\n`);
  } else ui.info(`Reusing the seeded cluster and vault in ${home}`);

  const vaultFiles = Number((await $({ quiet: true })`find ${source} -type f -printf x`).stdout.length);
  const base: SyncVaultOptions = {
    source,
    target: '',
    production: source,
    db: cluster.connection('makapix_dev'),
    owner: { uid: 1000, gid: 1000 },
    link: false,
    checksum: false,
    prune: false,
    strict: false,
    dryRun: false,
    jobs: 8,
    ui: quiet,
    confirm: async () => undefined,
  };
  const fresh = async (name: string) => {
    const d = path.join(work, name);
    await rm(d, { recursive: true, force: true });
    await mkdir(d);
    return d;
  };

  // rsync's list: exactly the files the tool would copy (from a dry run, untimed).
  const plan = await syncVault({ ...base, target: await fresh('plan'), dryRun: true });
  const list = path.join(work, 'files-from');
  writeFileSync(list, plan.wouldTransfer!.map((f) => f.path).join('\n') + '\n');
  const files = plan.wouldTransfer!.length;

  const rsyncArgv = (dst: string) => ['-a', '--chown=1000:1000', `--files-from=${list}`, `${source}/`, `${dst}/`];
  const rsync = (dst: string) => $({ quiet: true })`rsync ${rsyncArgv(dst)}`;
  // Wall time on a shared 2-core box swings with the neighbours' load; CPU time (user + system,
  // of rsync's processes through bash's \`times\`, of this process for the tool) is steadier.
  const rsyncCpu = async (dst: string): Promise<number> => {
    const out = await $({ quiet: true })`bash -c ${'rsync "$@" && times'} bash ${rsyncArgv(dst)}`;
    const children = out.stdout.trim().split('\n').at(-1)!.split(' ');
    return children.reduce((ms, v) => {
      const m = /^(\d+)m([\d.]+)s$/.exec(v);
      return ms + (m ? (Number(m[1]) * 60 + Number(m[2])) * 1000 : 0);
    }, 0);
  };
  const time = async (fn: () => Promise<unknown>) => {
    const t = performance.now();
    await fn();
    return performance.now() - t;
  };
  await rsync(await fresh('warm')); // the source's pages in cache for everyone alike

  const t = { tool: [] as number[], rsync: [] as number[], rsyncSync: [] as number[], toolNoop: [] as number[], rsyncNoop: [] as number[], toolCpu: [] as number[], rsyncCpu: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    const [a, b, c] = [await fresh('tool'), await fresh('rsync'), await fresh('rsync-sync')];
    await $({ quiet: true })`sync`; // start each round with nothing dirty
    // Alternate who goes first, so neither always meets the other's writeback.
    const order = i % 2 === 0 ? ['tool', 'rsync', 'rsyncSync'] : ['rsyncSync', 'rsync', 'tool'];
    for (const who of order) {
      if (who === 'tool') {
        const cpu = process.cpuUsage();
        t.tool.push(
          await time(async () => {
            const r = await syncVault({ ...base, target: a });
            if (r.copied !== files) throw new Error(`the tool copied ${r.copied} of ${files} files`);
          }),
        );
        const used = process.cpuUsage(cpu);
        t.toolCpu.push((used.user + used.system) / 1000);
      } else if (who === 'rsync') {
        let cpu = 0;
        t.rsync.push(await time(async () => (cpu = await rsyncCpu(b))));
        t.rsyncCpu.push(cpu);
      }
      else t.rsyncSync.push(await time(async () => (await rsync(c), await $({ quiet: true })`sync -f ${c}`)));
    }
    t.toolNoop.push(
      await time(async () => {
        const r = await syncVault({ ...base, target: a });
        if (r.copied !== 0 || r.skipped !== files) throw new Error(`the no-op re-run copied ${r.copied} files`);
      }),
    );
    t.rsyncNoop.push(await time(() => rsync(b)));
    ui.info(
      `round ${i + 1}/${rounds}: tool ${formatDuration(t.tool.at(-1)!)} (cpu ${formatDuration(t.toolCpu.at(-1)!)}), rsync ${formatDuration(t.rsync.at(-1)!)} (cpu ${formatDuration(t.rsyncCpu.at(-1)!)}), rsync+sync ${formatDuration(t.rsyncSync.at(-1)!)}; ` +
        `no-op: tool ${formatDuration(t.toolNoop.at(-1)!)}, rsync ${formatDuration(t.rsyncNoop.at(-1)!)}`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)])) as Record<keyof typeof t, number>;
  process.stdout.write(
    [
      `EA's vault: ${vaultFiles.toLocaleString('en-US')} files${vaultFiles < 50_000 ? ' (fewer than the 50,000 the benchmark asks for: raise BENCH_VAULT_USERS)' : ''}; EB's sample: ${files.toLocaleString('en-US')} files, ${formatBytes(plan.plannedBytes)}`,
      `first copy (median of ${rounds}): tool ${formatDuration(m.tool)}, rsync -a --files-from ${formatDuration(m.rsync)}, rsync + sync -f ${formatDuration(m.rsyncSync)}`,
      `ratio tool / rsync: ${(m.tool / m.rsync).toFixed(2)} (target <= 1) ${m.tool <= m.rsync ? 'OK' : 'OVER TARGET'}; tool / (rsync + sync -f): ${(m.tool / m.rsyncSync).toFixed(2)}`,
      `CPU time of the first copy (median): tool ${formatDuration(m.toolCpu)} (this process; EB's PostgreSQL not counted), rsync ${formatDuration(m.rsyncCpu)}; ratio ${(m.toolCpu / m.rsyncCpu).toFixed(2)}`,
      `load average at the end: ${loadavg().map((l) => l.toFixed(1)).join(' ')} on ${cpus().length} cores (wall times above are only comparable within this run)`,
      `no-op re-run of ${files.toLocaleString('en-US')} files (median): tool ${formatDuration(m.toolNoop)} (target < 1s) ${m.toolNoop < 1000 && files >= 5000 ? 'OK' : files < 5000 ? 'TOO FEW FILES' : 'OVER TARGET'}, rsync ${formatDuration(m.rsyncNoop)}; ratio tool / rsync ${(m.toolNoop / m.rsyncNoop).toFixed(2)}`,
    ].join('\n') + '\n',
  );
} finally {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
}
