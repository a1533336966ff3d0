// Working from the offsite copy, with real restic: retention and the integrity check (with their
// figures, and what monitor makes of them), the drill that restores the dump and a vault sample
// from the repository (and catches a damaged file), and restore --from-offsite into a folder.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';
import { Ui } from '../../lib/core/ui.ts';
import type { EnvConfig } from '../../lib/core/config.ts';
import { run } from '../../lib/core/exec.ts';
import { planBackup, runBackupPlan, type OffsiteOptions } from '../../lib/jobs/backup.ts';
import { sha256File, type BackupOptions } from '../../lib/tools/backup-store.ts';
import { offsitePaths } from '../../lib/domain/offsite.ts';
import { offsiteDrill } from '../../lib/jobs/restore.ts';
import { runMonitor } from '../../lib/jobs/monitor.ts';
import { parseThresholds } from '../../lib/domain/monitoring.ts';
import { parseOffsiteStatus } from '../../lib/domain/offsite.ts';
import { parseSnapshots, resticCommand, resticHostname, type ResticRepo } from '../../lib/tools/restic.ts';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { localRepo, type TestRepo } from '../harness/restic.ts';
import { onExit } from '../../dev/cleanup.ts';

const ui = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });
let sb: TestSandbox;
let edge: string;

const snapshots = async (repo: ResticRepo) => parseSnapshots((await run(resticCommand(repo, ['snapshots', '--json', '--no-lock']))).stdout);
/** backup-prod's run: the local backup, then the offsite snapshot. */
const backupDatabase = async (cfg: EnvConfig, opts: BackupOptions & { offsite?: OffsiteOptions }) => runBackupPlan(await planBackup(cfg, opts), opts.ui);
const offsiteFor = (repo: ResticRepo) => ({ repo, host: resticHostname(), devCfg: sb.devCfg, edgeCredentialsDir: edge });
const withRepo = (repo: TestRepo, backupDir: string) => ({ ...sb.prodCfg, vars: { ...sb.prodCfg.vars, RESTIC_REPOSITORY: repo.repository, RESTIC_PASSWORD_FILE: repo.passwordFile, BACKUP_DIR: backupDir } });

function script(name: string, args: string[], envDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(path.join(projectRoot, 'scripts', `${name}.ts`), args, { cwd: '/', env: { ...process.env, MAKAPIX_ENV_DIR: envDir, MAKAPIX_CREDENTIALS_DIR: edge }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

async function envDirFor(repo: TestRepo, backupDir: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'makapix-offsite-env-'));
  onExit(() => spawnSync('rm', ['-rf', dir]));
  const vars = [`RESTIC_REPOSITORY=${repo.repository}`, `RESTIC_PASSWORD_FILE=${repo.passwordFile}`, `BACKUP_DIR=${backupDir}`];
  const keys = new Set(vars.map((v) => v.split('=')[0]));
  const prod = (await readFile(path.join(sb.envDir, '.env.prod'), 'utf8')).split('\n').filter((l) => !keys.has(l.split('=')[0]));
  await writeFile(path.join(dir, '.env.prod'), `${[...prod, ...vars].join('\n')}\n`, { mode: 0o600 });
  await writeFile(path.join(dir, '.env.dev'), await readFile(path.join(sb.envDir, '.env.dev')), { mode: 0o600 });
  return dir;
}

test.before(async () => {
  sb = await startSandbox({ users: 40, seed: 5, vault: true });
  edge = path.join(sb.dir, 'edge');
  await mkdir(edge, { recursive: true });
  await writeFile(path.join(edge, 'developers.caddy'), 'alice $2b$12$x\n');
  await writeFile(path.join(sb.prodCfg.vars.MQTT_CERTS_DIR, 'ca.key'), 'fake CA key\n', { mode: 0o600 });
});

test.after(async () => {
  await sb?.stop();
});

test('retention keeps daily/weekly/monthly of the toolkit\'s snapshots only, then prunes; the check reports its figures; monitor reads both', async () => {
  const repo = await localRepo();
  const dir = path.join(sb.dir, 'b-upkeep');
  // Four snapshots on one day: keep-daily keeps the newest of them.
  for (let i = 0; i < 4; i++) {
    await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir, offsite: offsiteFor(repo) });
    await new Promise((r) => setTimeout(r, 1100));
  }
  // A snapshot of someone else (the app's own job in the same repository) is never touched.
  await run(resticCommand(repo, ['backup', '--host', 'app-job', edge]));
  assert.is((await snapshots(repo)).length, 5);
  const envDir = await envDirFor(repo, dir);
  const r = await script('backup-prod', ['--retention', '--check', '--check-subset', '100%', '--json'], envDir);
  assert.is(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { forget: { kept: number; removed: number }; check: { ok: boolean; figures: string }; newest: { id: string } };
  assert.equal({ kept: result.forget.kept, removed: result.forget.removed }, { kept: 1, removed: 3 });
  const left = await snapshots(repo);
  assert.is(left.length, 2);
  assert.ok(left.some((s) => s.hostname === 'app-job'), "the app's snapshot was forgotten");
  assert.is(result.check.ok, true);
  assert.match(result.check.figures, /snapshots, read 100(\.0)?% of data packs/);
  const status = parseOffsiteStatus(await readFile(offsitePaths(dir).status, 'utf8'))!;
  assert.is(status.lastCheck?.ok, true);
  assert.is(status.lastSnapshot?.id, result.newest.id);

  const cfg = withRepo(repo, dir);
  const monitor = () => runMonitor({ prod: cfg, dev: sb.devCfg, only: ['offsite'], thresholds: parseThresholds([]), probes: 1, httpsPort: 443, resolve: new Map(), docker: 'docker' });
  assert.is((await monitor()).status, 'OK');
  // A damaged pack: the next check fails, and monitor turns CRITICAL.
  const packs = (await readdir(path.join(repo.files, 'data'), { recursive: true, withFileTypes: true })).filter((e) => e.isFile());
  for (const p of packs) {
    const h = await open(path.join(p.parentPath, p.name), 'r+');
    await h.write(Buffer.from([0xff, 0x00, 0xff]), 0, 3, 100);
    await h.close();
  }
  const bad = await script('backup-prod', ['--check', '--check-subset', '100%'], envDir);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, /restic check of \S+ found errors/);
  const m = await monitor();
  assert.is(m.status, 'CRITICAL');
  assert.match(m.summary, /offsite check failed at/);
});

test('a check that cannot start (wrong password) fails the run without calling the repository damaged', async () => {
  const repo = await localRepo();
  const dir = path.join(sb.dir, 'b-check-password');
  await mkdir(dir, { recursive: true });
  const wrong = path.join(repo.dir, 'wrong');
  await writeFile(wrong, 'nope\n', { mode: 0o600 });
  const r = await script('backup-prod', ['--check'], await envDirFor({ ...repo, passwordFile: wrong }, dir));
  assert.is(r.code, 1);
  assert.match(r.stderr, /does not open the repository/);
  assert.not.match(r.stderr, /found errors/);
  const status = await readFile(offsitePaths(dir).status, 'utf8').catch(() => '');
  assert.not.ok(parseOffsiteStatus(status)?.lastCheck, 'a check that never ran was recorded');
});

test('the drill from offsite: the dump from the repository into a scratch database, a vault sample by sha256, the snapshot age; a damaged file is caught', async () => {
  const repo = await localRepo();
  const dir = path.join(sb.dir, 'b-drill');
  const backup = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir, offsite: offsiteFor(repo) });
  // The drill must use the repository's copy, not the local file.
  await writeFile(backup.file, 'not a dump any more');
  const cfg = withRepo(repo, dir);
  const drill = await offsiteDrill(cfg, { mode: 'direct', ui, repo, sample: 5 });
  assert.ok(drill.ok, drill.problems.join('; '));
  assert.is(drill.offsite.snapshot, backup.offsite!.snapshotId);
  assert.ok(drill.offsite.ageHours < 1);
  assert.is(drill.offsite.vault.sampled.length, 5);
  assert.ok(drill.offsite.vault.filesInSnapshot > 20);
  for (const f of drill.offsite.vault.sampled) assert.is(f.restored, f.live);
  assert.ok(drill.tables.some((t) => t.table === 'public.users' && t.restored > 0));
  assert.equal(await readdir(path.join(dir, 'offsite')), ['contents.json', 'status.json'], 'the drill left its scratch folder');

  // A vault file whose bytes differ from the snapshot's: the sha256 comparison fails the drill, naming it.
  const victim = drill.offsite.vault.sampled[0]!.path;
  const original = await sha256File(victim);
  const h = await open(victim, 'r+');
  const [b] = [Buffer.alloc(1)];
  await h.read(b, 0, 1, 0);
  await h.write(Buffer.from([b[0]! ^ 0xff]), 0, 1, 0);
  await h.close();
  try {
    // Every file sampled, so the damaged one is among them.
    const damaged = await offsiteDrill(cfg, { mode: 'direct', ui, repo, sample: 100_000 });
    assert.is(damaged.ok, false);
    assert.is(damaged.offsite.vault.problems.length, 1, damaged.offsite.vault.problems.join('; '));
    assert.ok(damaged.offsite.vault.problems[0]!.startsWith(`${victim} differs: sha256`), damaged.offsite.vault.problems[0]);
  } finally {
    const h2 = await open(victim, 'r+');
    const c = Buffer.alloc(1);
    await h2.read(c, 0, 1, 0);
    await h2.write(Buffer.from([c[0]! ^ 0xff]), 0, 1, 0);
    await h2.close();
    assert.equal(await sha256File(victim), original);
  }
});

test('restore --from-offsite: refused without the typed confirmation; with it, everything lands in the target folder, the dump verified', async () => {
  const repo = await localRepo();
  const dir = path.join(sb.dir, 'b-restore');
  const backup = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir, offsite: offsiteFor(repo) });
  const envDir = await envDirFor(repo, dir);
  const target = path.join(sb.dir, 'recovered');
  const refused = await script('restore', ['--env', 'prod', '--from-offsite', '--target', target, '--yes'], envDir);
  assert.is(refused.code, 3, refused.stderr);
  assert.equal(await readdir(target).catch(() => []), []);
  const r = await script('restore', ['--env', 'prod', '--from-offsite', backup.offsite!.snapshotId, '--target', target, '--yes', '--i-know-this-is-production', '--json'], envDir);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { parts: { role: string; restored: string }[]; dump: { sha256: string } };
  assert.is(out.dump.sha256, backup.sha256);
  const roles = new Set(out.parts.map((p) => p.role));
  for (const role of ['dump', 'vault', 'mqtt-certs', 'toolkit-env', 'edge-credentials']) assert.ok(roles.has(role), role);
  assert.is(await readFile(path.join(target, sb.prodCfg.vars.MQTT_CERTS_DIR, 'ca.key'), 'utf8'), 'fake CA key\n');
  assert.is((await readdir(path.join(target, sb.vaultProd), { recursive: true })).length, (await readdir(sb.vaultProd, { recursive: true })).length);
  // A second time into the same, now full, folder: refused, nothing overwritten.
  const again = await script('restore', ['--env', 'prod', '--from-offsite', '--target', target, '--yes', '--i-know-this-is-production'], envDir);
  assert.is(again.code, 3);
  assert.match(again.stderr, /is not empty/);
});

test.run();
