// backup-prod's offsite step against a bare `restic backup` of the same paths, each into its own
// fresh repository (restic deduplicates: a shared one would make the second run nearly free), in
// this run: the first snapshot, then a nightly one with 1 % of the vault's files changed. Target:
// overhead <= 10 %. Memory: the toolkit's own process (peak RSS over its baseline) and restic's
// peak (VmHWM), for both runs, and the toolkit's at a tenth of the files: flat means it adds nothing
// that grows with the file count. Each timed run starts after a sync (no writeback of the last one).
//
// BENCH_FILES (default 50000 small files, 1-6 KiB, in the vault's two-level shards) and
// BENCH_DUMP_MB (default 1024: the dump, incompressible like a pg_dump -Fc) scale it down for a
// quick run: BENCH_FILES=5000 BENCH_DUMP_MB=64 make bench BENCH=offsite. BENCH_ROUNDS (default 3): medians.
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Ui, formatBytes, formatDuration } from '../lib/core/ui.ts';
import { run, runPlan } from '../lib/core/exec.ts';
import { generateSecrets, writeEnvFile } from '../dev/sandbox.ts';
import { planOffsite } from '../lib/jobs/backup.ts';
import { resticArgs, resticCommand, resticHostname, type ResticRepo } from '../lib/tools/restic.ts';
import { offsiteExcludes, offsitePaths } from '../lib/domain/offsite.ts';

const files = Number(process.env.BENCH_FILES ?? 50_000);
const dumpMb = Number(process.env.BENCH_DUMP_MB ?? 1024);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const ui = new Ui({ tty: false, verbose: false });
const quiet = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });

const work = await mkdtemp(path.join(tmpdir(), 'offsite-bench-'));
const vault = path.join(work, 'vault');
const backups = path.join(work, 'backups');
const certs = path.join(work, 'mqtt');
const appDir = path.join(work, 'app');
const shard = (i: number) => path.join(vault, (i % 256).toString(16).padStart(2, '0'), ((i >> 8) % 256).toString(16).padStart(2, '0'), `${i}.png`);

/** Peak RSS of this process and of restic children while fn runs (sampled every 50 ms). */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; nodePeak: number; resticPeak: number }> {
  const base = process.memoryUsage().rss;
  let nodePeak = base;
  let resticPeak = 0;
  const sample = () => {
    nodePeak = Math.max(nodePeak, process.memoryUsage().rss);
    for (const pid of childPids(process.pid)) {
      try {
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        if (hwm) resticPeak = Math.max(resticPeak, Number(hwm[1]) * 1024);
      } catch {
        // gone between the listing and the read
      }
    }
  };
  const timer = setInterval(sample, 50);
  const t = performance.now();
  try {
    const value = await fn();
    return { value, ms: performance.now() - t, nodePeak: nodePeak - base, resticPeak };
  } finally {
    clearInterval(timer);
  }
}

/** The restic processes this process started (walking /proc). */
function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const m = /^(\d+) \((.*)\) \S+ (\d+)/.exec(readFileSync(`/proc/${d}/stat`, 'utf8'));
      if (m && +m[3]! === parent && m[2] === 'restic') out.push(+m[1]!);
    } catch {
      // gone
    }
  }
  return out;
}

async function newRepo(name: string): Promise<ResticRepo> {
  const dir = path.join(work, name);
  await mkdir(dir, { recursive: true });
  const passwordFile = path.join(dir, 'password');
  await writeFile(passwordFile, `bench-${name}\n`, { mode: 0o600 });
  const repo = { repository: path.join(dir, 'repo'), passwordFile, backendEnv: {}, cacheDir: path.join(dir, 'cache') };
  await run(resticCommand(repo, ['init']));
  return repo;
}

try {
  // ---- the data: a vault of small files, a dump, the certificates and env files ----
  const smallFiles = Math.max(1, Math.round(files / 10));
  const writeVault = (from: number, to: number) =>
    ui.run(`Write ${(to - from).toLocaleString('en-US')} small vault files`, async () => {
      for (let i = from; i < to; i++) {
        if (i < 65536) await mkdir(path.dirname(shard(i)), { recursive: true });
        await writeFile(shard(i), randomBytes(1024 + ((i * 2654435761) % 5120)));
      }
    });
  await writeVault(0, smallFiles);
  await mkdir(backups, { recursive: true });
  await mkdir(certs, { recursive: true });
  await writeFile(path.join(certs, 'ca.key'), randomBytes(256));
  const stem = 'makapix-20261125-033000';
  const dump = path.join(backups, `${stem}.dump`);
  await ui.run(`Write a ${dumpMb} MiB dump`, async () => {
    const out = createWriteStream(dump);
    for (let i = 0; i < dumpMb; i++) if (!out.write(randomBytes(1 << 20))) await once(out, 'drain');
    out.end();
    await once(out, 'finish');
  });
  const companions = [`${dump}.sha256`, path.join(backups, `${stem}.manifest.json`), path.join(backups, `${stem}.globals.sql`)];
  for (const f of companions) await writeFile(f, 'bench\n');
  const cfg = await writeEnvFile(path.join(work, 'env'), 'prod', { port: 5432, stateDir: path.join(work, 'state'), vault, mqttCerts: certs, backups, appDir, secrets: generateSecrets('prod') });
  const edge = path.join(work, 'edge');
  await mkdir(edge, { recursive: true });
  await writeFile(path.join(edge, 'developers.caddy'), 'x\n');
  // Both runs read from the page cache: one pass first.
  await ui.run('Warm the page cache', () => run({ cmd: 'sh', argv: ['-c', `cat ${dump} >/dev/null; find ${vault} -type f -exec cat {} + >/dev/null`] }));

  const host = resticHostname();
  // Every timed run starts with the page cache clean: the last run's writes are not charged to the next.
  const settle = () => run({ cmd: 'sync', argv: [] });
  const toolkit = (repo: ResticRepo) => async () => {
    const plan = await planOffsite(cfg, { repo, host, edgeCredentialsDir: edge }, { root: backups, stem, files: [dump, ...companions], ui: quiet });
    try {
      await runPlan(plan.steps, quiet);
      return plan.result()!;
    } finally {
      await plan.cleanup();
    }
  };
  // The same paths the toolkit's snapshot holds (its contents.json included), as one plain command.
  const paths = [dump, ...companions, offsitePaths(backups).contents, vault, certs, cfg.file, edge];
  const bare = (repo: ResticRepo) => async () => {
    const c = resticCommand(repo, resticArgs.backup({ paths, tags: ['bare'], host, excludes: offsiteExcludes }));
    const child = spawn(c.cmd, [...c.argv], { env: { ...process.env, ...c.env }, stdio: 'ignore' });
    const [code] = (await once(child, 'close')) as [number];
    if (code !== 0) throw new Error(`bare restic backup exited ${code}`);
  };
  type M = Awaited<ReturnType<typeof measured>>;
  // Memory against size: the toolkit's first snapshot at a tenth of the files, then the rest written.
  await settle();
  const atSmall = await measured(toolkit(await newRepo('small')));
  await rm(path.join(work, 'small'), { recursive: true, force: true });
  await writeVault(smallFiles, files);
  await ui.run('Warm the page cache again', () => run({ cmd: 'sh', argv: ['-c', `find ${vault} -type f -exec cat {} + >/dev/null`] }));
  const results = { firstBare: [] as M[], firstToolkit: [] as M[], nightlyBare: [] as M[], nightlyToolkit: [] as M[] };
  const changed = Math.max(1, Math.round(files / 100));
  let seen = 0;
  for (let round = 0; round < rounds; round++) {
    // Fresh repositories each round; who goes first alternates (the first of two runs pays for a cold restic).
    const [toolkitRepo, bareRepo] = [await newRepo(`toolkit-${round}`), await newRepo(`bare-${round}`)];
    const pair = async (a: 'bare' | 'toolkit') => {
      const t = () => settle().then(() => measured(toolkit(toolkitRepo)));
      const b = () => settle().then(() => measured(bare(bareRepo)));
      if (a === 'bare') {
        const bm = await b();
        return { b: bm, t: await t() };
      }
      const tm = await t();
      return { t: tm, b: await b() };
    };
    const first = await pair(round % 2 ? 'bare' : 'toolkit');
    results.firstBare.push(first.b);
    results.firstToolkit.push(first.t);
    // The nightly: 1 % of the vault's files rewritten. The dump stays: a new one is new data for both alike.
    for (let i = 0; i < changed; i++) await writeFile(shard((Math.floor((i * files) / changed) + round) % files), randomBytes(2048));
    const nightly = await pair(round % 2 ? 'toolkit' : 'bare');
    results.nightlyBare.push(nightly.b);
    results.nightlyToolkit.push(nightly.t);
    seen = ((nightly.t.value as { filesChanged?: number } | undefined)?.filesChanged) ?? 0;
    ui.info(`round ${round + 1}/${rounds}: first ${formatDuration(first.b.ms)} bare, ${formatDuration(first.t.ms)} toolkit; nightly ${formatDuration(nightly.b.ms)} bare, ${formatDuration(nightly.t.ms)} toolkit`);
    await rm(path.join(work, `toolkit-${round}`), { recursive: true, force: true });
    await rm(path.join(work, `bare-${round}`), { recursive: true, force: true });
  }
  const median = (xs: M[], k: 'ms' | 'nodePeak' | 'resticPeak') => xs.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const report = (what: string, t: M[], b: M[]) => {
    const ratio = median(t, 'ms') / median(b, 'ms');
    return [
      `${what} (median of ${rounds}): bare restic backup ${formatDuration(median(b, 'ms'))} (restic peak ${formatBytes(median(b, 'resticPeak'))}), backup-prod's offsite step ${formatDuration(median(t, 'ms'))} (restic peak ${formatBytes(median(t, 'resticPeak'))}, toolkit process +${formatBytes(median(t, 'nodePeak'))})`,
      `  ratio ${ratio.toFixed(3)} (overhead ${((ratio - 1) * 100).toFixed(1)} %, target <= 10 %) ${ratio <= 1.1 ? 'OK' : 'OVER TARGET'}`,
    ];
  };
  const contents = JSON.parse(await readFile(offsitePaths(backups).contents, 'utf8')) as { includes: unknown[] };
  process.stdout.write(
    [
      `data: ${files.toLocaleString('en-US')} vault files, a ${dumpMb} MiB dump, ${contents.includes.length} paths in each snapshot; restic 0.14, local repositories`,
      ...report('first snapshot', results.firstToolkit, results.firstBare),
      ...report(`nightly, ${changed} files changed`, results.nightlyToolkit, results.nightlyBare),
      `  the last nightly snapshot saw ${seen} changed files`,
      `memory against size (first snapshot): toolkit process +${formatBytes(atSmall.nodePeak)} at ${smallFiles.toLocaleString('en-US')} files, +${formatBytes(median(results.firstToolkit, 'nodePeak'))} at ${files.toLocaleString('en-US')}; ` +
        `restic ${formatBytes(atSmall.resticPeak)} and ${formatBytes(median(results.firstToolkit, 'resticPeak'))} (flat: the toolkit holds no file list)`,
    ].join('\n') + '\n',
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
