// The offsite copy against real restic (Debian's 0.14): a local repository and an sftp: one served
// by an OpenSSH server on a loopback high port. Fault injection: the repository unreachable, a
// wrong password, restic killed with SIGKILL mid-upload, the vault changing during the snapshot, a
// full disk during the dump.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';
import { Ui } from '../../lib/core/ui.ts';
import type { EnvConfig } from '../../lib/core/config.ts';
import { run, renderPlan } from '../../lib/core/exec.ts';
import { loadEnvConfig } from '../../lib/core/config.ts';
import { planBackup, runBackupPlan, type OffsiteContents, type OffsiteOptions } from '../../lib/jobs/backup.ts';
import { listBackups, type BackupOptions, type BackupResult } from '../../lib/tools/backup-store.ts';
import { offsitePaths } from '../../lib/domain/offsite.ts';
import { parseOffsiteStatus, toolkitTag } from '../../lib/domain/offsite.ts';
import { parseSnapshots, resticCommand, resticHostname, type ResticRepo } from '../../lib/tools/restic.ts';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { localRepo, resticCheck, sftpRepo, startSftpServer, type SftpServer, type TestRepo } from '../harness/restic.ts';
import { onExit } from '../../dev/cleanup.ts';

const lines: string[] = [];
const ui = new Ui({ tty: false, verbose: false, stream: { write: (s: string) => (lines.push(s), true) } as unknown as NodeJS.WritableStream });
let sb: TestSandbox;
let sshd: SftpServer;
let edge: string;

const snapshots = async (repo: ResticRepo) => parseSnapshots((await run(resticCommand(repo, ['snapshots', '--json', '--no-lock']))).stdout);
const lsSnapshot = async (repo: ResticRepo, id: string) =>
  (await run(resticCommand(repo, ['ls', '--json', '--no-lock', id]))).stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { path?: string; type?: string }).filter((e) => e.path).map((e) => e.path!);

/** backup-prod's run: the local backup, then the offsite snapshot. */
const backupDatabase = async (cfg: EnvConfig, opts: BackupOptions & { offsite?: OffsiteOptions }) => runBackupPlan(await planBackup(cfg, opts), opts.ui);
const offsiteFor = (repo: ResticRepo) => ({ repo, host: resticHostname(), devCfg: sb.devCfg, edgeCredentialsDir: edge });

/** The sandbox's .env.prod with the offsite variables for `repo`, in a folder of its own (for the entry script). */
async function envDirFor(repo: TestRepo, extra: string[] = []): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'makapix-offsite-env-'));
  onExit(() => spawnSync('rm', ['-rf', dir]));
  const vars = [`RESTIC_REPOSITORY=${repo.repository}`, `RESTIC_PASSWORD_FILE=${repo.passwordFile}`, ...(repo.sftpCommand ? [`RESTIC_SFTP_COMMAND=${repo.sftpCommand}`] : []), ...extra];
  const keys = new Set(vars.map((v) => v.split('=')[0]));
  const prod = (await readFile(path.join(sb.envDir, '.env.prod'), 'utf8')).split('\n').filter((l) => !keys.has(l.split('=')[0]));
  await writeFile(path.join(dir, '.env.prod'), `${[...prod, ...vars].join('\n')}\n`, { mode: 0o600 });
  await writeFile(path.join(dir, '.env.dev'), await readFile(path.join(sb.envDir, '.env.dev')), { mode: 0o600 });
  return dir;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
function script(name: string, args: string[], envDir: string, env: Record<string, string> = {}): Promise<Run> & { pid: number } {
  const child = spawn(path.join(projectRoot, 'scripts', `${name}.ts`), args, {
    cwd: '/', env: { ...process.env, MAKAPIX_ENV_DIR: envDir, MAKAPIX_CREDENTIALS_DIR: edge, RESTIC_CACHE_DIR: path.join(envDir, 'cache'), ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const done = new Promise<Run>((resolve) => child.on('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr }))));
  return Object.assign(done, { pid: child.pid! });
}

/** Descendants of a process (walking /proc), to find the restic a run started. */
function descendants(pid: number): { pid: number; comm: string }[] {
  const all = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      const m = /^(\d+) \((.*)\) \S+ (\d+)/.exec(s)!;
      return [{ pid: +m[1]!, comm: m[2]!, ppid: +m[3]! }];
    } catch {
      return [];
    }
  });
  const out: { pid: number; comm: string }[] = [];
  const walk = (p: number) => {
    for (const c of all.filter((x) => x.ppid === p)) {
      out.push(c);
      walk(c.pid);
    }
  };
  walk(pid);
  return out;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test.before(async () => {
  sb = await startSandbox({ users: 40, seed: 11, vault: true });
  sshd = await startSftpServer();
  edge = path.join(sb.dir, 'edge-credentials');
  await mkdir(edge, { recursive: true });
  await writeFile(path.join(edge, 'developers.caddy'), 'alice $2b$12$notarealhash\n');
  await writeFile(path.join(sb.prodCfg.vars.MQTT_CERTS_DIR, 'ca.key'), 'fake CA key\n', { mode: 0o600 });
  await writeFile(path.join(sb.prodCfg.vars.MQTT_CERTS_DIR, 'server.crt'), 'fake server certificate\n');
  const stack = path.join(sb.prodCfg.vars.APP_DIR, 'deploy', 'stack');
  await mkdir(stack, { recursive: true });
  await writeFile(path.join(stack, '.env.prod'), 'APP_SECRET=x\n', { mode: 0o600 });
  await writeFile(path.join(stack, '.env.dev'), 'APP_SECRET=y\n', { mode: 0o600 });
});

test.after(async () => {
  sshd?.stop();
  await sb?.stop();
});

test('one snapshot holds the verified dump, its manifest, roles, the vault, the MQTT CA, every env file and the edge credentials; tagged host, env, dump', async () => {
  const repo = await localRepo();
  const r = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir: path.join(sb.dir, 'b1'), offsite: offsiteFor(repo) });
  assert.ok(r.offsite, 'no offsite result');
  const snaps = await snapshots(repo);
  assert.is(snaps.length, 1);
  const stem = path.basename(r.file).replace(/\.dump$/, '');
  assert.equal(snaps[0]!.tags, [toolkitTag, `host=${resticHostname()}`, 'env=prod', `dump=${stem}`]);
  assert.is(snaps[0]!.shortId, r.offsite.snapshotId);
  const files = new Set(await lsSnapshot(repo, snaps[0]!.id));
  for (const f of [r.file, r.checksumFile, r.manifestFile, r.globalsFile, sb.prodCfg.file, sb.devCfg.file, path.join(edge, 'developers.caddy'), path.join(sb.prodCfg.vars.MQTT_CERTS_DIR, 'ca.key'), path.join(sb.prodCfg.vars.APP_DIR, 'deploy', 'stack', '.env.prod'), offsitePaths(path.join(sb.dir, 'b1')).contents]) {
    assert.ok(files.has(f), `${f} is not in the snapshot`);
  }
  const vaultFiles = (await readdir(sb.vaultProd, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
  assert.ok(vaultFiles.length > 20, 'the seeded vault is too small to prove anything');
  for (const f of vaultFiles) assert.ok(files.has(f), `vault file ${f} is not in the snapshot`);
  // EB's vault is a sample of EA's: recreatable, left out.
  assert.not.ok([...files].some((f) => f.startsWith(sb.vaultDev)), "EB's vault went offsite");
  // The password never reaches argv or the log lines.
  const password = (await readFile(repo.passwordFile, 'utf8')).trim();
  assert.not.ok(lines.join('').includes(password), 'the password was logged');
  const status = parseOffsiteStatus(await readFile(offsitePaths(path.join(sb.dir, 'b1')).status, 'utf8'))!;
  assert.is(status.lastSnapshot?.id, r.offsite.snapshotId);
  assert.is(status.lastBackup?.ok, true);
  const contents = JSON.parse(await readFile(offsitePaths(path.join(sb.dir, 'b1')).contents, 'utf8')) as OffsiteContents;
  assert.is(contents.dump, r.file);
  assert.ok((await resticCheck(repo, true)).ok);
});

test("the nightly: the last clean run's snapshot is the parent; a forgotten parent or a stale exclusive lock costs one retry, not the copy", async () => {
  const repo = await localRepo();
  const dir = path.join(sb.dir, 'b-nightly');
  const nightly = async () => {
    lines.length = 0;
    const r = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir, offsite: offsiteFor(repo) });
    assert.ok(r.offsite, 'no offsite result');
    return r.offsite;
  };
  const vaultFiles = (await readdir(sb.vaultProd, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
  const first = await nightly();
  assert.is(first.filesUnmodified, 0);
  // Without a parent restic would read every vault file again: unmodified counts them only with one.
  const second = await nightly();
  assert.ok(second.filesUnmodified >= vaultFiles, `the second run read the vault again (${second.filesUnmodified} unmodified of ${vaultFiles})`);

  await run(resticCommand(repo, ['forget', second.snapshotId]));
  const third = await nightly();
  assert.ok(third.filesUnmodified >= vaultFiles, 'the run did not fall back to the newest snapshot still there as its parent');

  // A check killed while it held the repository: an exclusive lock whose process is gone.
  const check = spawn('restic', ['check', '--read-data'], { env: { ...process.env, ...resticCommand(repo, []).env }, stdio: 'ignore' });
  await waitFor('the check to take its lock', async () => ((await readdir(path.join(repo.files, 'locks')).catch(() => [])).length ? true : undefined), 30_000);
  check.kill('SIGKILL');
  await once(check, 'close');
  assert.ok((await readdir(path.join(repo.files, 'locks'))).length > 0, 'the killed check left no lock (the test proves nothing)');
  const fourth = await nightly();
  assert.equal(fourth.locksCleared.length, 1);
  assert.match(lines.join(''), /Cleared the stale restic exclusive lock \w+ of pid \d+/);
  assert.equal(await readdir(path.join(repo.files, 'locks')), []);
  assert.is((await snapshots(repo)).length, 3);
  const status = parseOffsiteStatus(await readFile(offsitePaths(dir).status, 'utf8'))!;
  assert.is(status.lastSnapshot?.id, fourth.snapshotId);
  assert.is(status.running, undefined);
});

test('--dry-run prints the very steps a run executes, the restic command with its variables named, never their values', async () => {
  const repo = await localRepo();
  const envDir = await envDirFor(repo);
  const dry = await script('backup-prod', ['--direct', '--dry-run', '--dir', path.join(sb.dir, 'b-dry')], envDir);
  assert.is(dry.code, 0, dry.stderr);
  const cfg = loadEnvConfig('prod', path.join(envDir, '.env.prod'));
  const plan = await planBackup(cfg, { mode: 'direct', dir: path.join(sb.dir, 'b-dry'), offsite: offsiteFor(repo) });
  const titles = plan.steps.map((s) => s.title);
  const printed = dry.stdout.trim().split('\n');
  assert.is(printed.length, titles.length);
  titles.forEach((t, i) => assert.ok(printed[i]!.startsWith(`${i + 1}. ${t}: `), `${printed[i]} is not step ${t}`));
  assert.match(dry.stdout, /RESTIC_REPOSITORY=… RESTIC_PASSWORD_FILE=… .*restic backup --json --quiet --host \S+ --parent '<that parent>' --tag makapix-ops --tag host=\S+ --tag env=prod --tag dump=makapix-\d{8}-\d{6}/);
  assert.not.ok(dry.stdout.includes((await readFile(repo.passwordFile, 'utf8')).trim()));
  assert.is((await snapshots(repo)).length, 0, 'a dry run wrote a snapshot');
  assert.equal(renderPlan(plan.steps).length, titles.length);
});

test('sftp: repository on an OpenSSH server; unreachable → the local backup and rotation still happen, exit 1 in one sentence; the next run catches up', async () => {
  const repo = await sftpRepo(sshd, 'unreachable');
  const envDir = await envDirFor(repo);
  const dir = path.join(sb.dir, 'b-sftp');
  const first = await script('backup-prod', ['--direct', '--json', '--dir', dir, '--keep', '1'], envDir);
  assert.is(first.code, 0, first.stderr);
  const firstResult = JSON.parse(first.stdout) as BackupResult;
  assert.ok(firstResult.offsite?.snapshotId);
  assert.is((await snapshots(repo)).length, 1);

  sshd.stop();
  try {
    await new Promise((r) => setTimeout(r, 1100)); // a new stem
    const down = await script('backup-prod', ['--direct', '--json', '--dir', dir, '--keep', '1'], envDir);
    assert.is(down.code, 1, down.stderr);
    const error = JSON.parse(down.stdout.trim().split('\n').at(-1)!) as { error: string };
    assert.match(error.error, /^The local backup makapix-\d{8}-\d{6} is made and rotated, but its offsite copy to sftp:root@127\.0\.0\.1:\S+ is missing: restic (backup|list locks): the repository .* cannot be reached/, error.error);
    assert.not.match(error.error, /\n/);
    // The local backup is there and the rotation ran (keep 1: the first one is gone).
    const local = await listBackups(dir);
    assert.is(local.length, 1);
    assert.is.not(local[0]!.file, firstResult.file);
    const status = parseOffsiteStatus(await readFile(offsitePaths(dir).status, 'utf8'))!;
    assert.is(status.lastBackup?.ok, false);
    assert.is(status.lastSnapshot?.id, firstResult.offsite!.snapshotId);
  } finally {
    await sshd.restart();
  }
  const again = await script('backup-prod', ['--direct', '--json', '--dir', dir, '--keep', '1'], envDir);
  assert.is(again.code, 0, again.stderr);
  assert.is((await snapshots(repo)).length, 2);
  // The dump's name changed, so restic 0.14 would find no parent by itself and read every vault
  // file again; with --parent the vault's files are seen unmodified.
  const caughtUp = JSON.parse(again.stdout) as BackupResult;
  assert.ok(caughtUp.offsite!.filesUnmodified >= 20, `only ${caughtUp.offsite!.filesUnmodified} files unmodified: no parent snapshot was used`);
  assert.ok((await resticCheck(repo)).ok);
});

test('a wrong password: a clear error, exit 1, nothing written to the repository', async () => {
  const repo = await localRepo();
  const wrong = { ...repo, passwordFile: path.join(repo.dir, 'wrong-password') };
  await writeFile(wrong.passwordFile, 'not the password\n', { mode: 0o600 });
  const before = await readdir(path.join(repo.files, 'snapshots'));
  const envDir = await envDirFor(wrong);
  const r = await script('backup-prod', ['--direct', '--dir', path.join(sb.dir, 'b-wrong')], envDir);
  assert.is(r.code, 1);
  assert.match(r.stderr, /the password in \S+wrong-password does not open the repository/);
  assert.equal(await readdir(path.join(repo.files, 'snapshots')), before);
  assert.equal(await readdir(path.join(repo.files, 'locks')), []);
  // A password file others can read is refused before restic runs (exit 2)...
  const loose = path.join(repo.dir, 'loose-password');
  await writeFile(loose, 'x\n', { mode: 0o644 });
  // It does not cost the night's local backup: that is made first.
  const before2 = (await listBackups(path.join(sb.dir, 'b-wrong'))).length;
  const looseRun = await script('backup-prod', ['--direct', '--dir', path.join(sb.dir, 'b-wrong'), '--keep', '5'], await envDirFor({ ...repo, passwordFile: loose }));
  assert.is(looseRun.code, 2);
  assert.match(looseRun.stderr, /The local backup makapix-\d{8}-\d{6}\.dump is made and rotated, but there is no offsite copy: .*has mode 644; it must be 0600/);
  assert.is((await listBackups(path.join(sb.dir, 'b-wrong'))).length, before2 + 1);
});

test('restic killed with SIGKILL mid-upload: the repository stays consistent (restic check --read-data), the stale lock is cleared by the next run', async () => {
  const repo = await sftpRepo(sshd, 'killed');
  const envDir = await envDirFor(repo);
  // Enough fresh data that the upload takes a while: 40 MB of random files in the vault.
  const bulk = path.join(sb.vaultProd, 'zz-bulk');
  await mkdir(bulk, { recursive: true });
  for (let i = 0; i < 40; i++) await writeFile(path.join(bulk, `blob-${i}.bin`), randomBytes(1 << 20));
  try {
    const job = script('backup-prod', ['--direct', '--dir', path.join(sb.dir, 'b-kill')], envDir);
    const restic = await waitFor('restic backup to start uploading', async () => {
      const p = descendants(job.pid).find((d) => d.comm === 'restic');
      if (!p) return undefined;
      const packs = (await readdir(path.join(repo.files, 'data'), { recursive: true, withFileTypes: true }).catch(() => [])).filter((e) => e.isFile());
      return packs.length >= 2 ? p : undefined; // some packs are up, most are not: mid-upload
    });
    process.kill(restic.pid, 'SIGKILL');
    const killed = await job;
    assert.is(killed.code, 1);
    assert.match(killed.stderr, /offsite copy .* is missing/);
    assert.is((await snapshots(repo)).length, 0, 'a snapshot appeared although restic was killed');
    assert.ok((await readdir(path.join(repo.files, 'locks'))).length > 0, 'the killed run left no lock (the test proves nothing)');
    // The stale lock makes a locking check refuse; read-only, restic checks every pack as it is.
    const check = await resticCheck(repo, true, true);
    assert.ok(check.ok, check.out);
    assert.not.ok((await resticCheck(repo)).ok, 'a check with a lock should refuse while the stale lock is there');

    const next = await script('backup-prod', ['--direct', '--json', '--dir', path.join(sb.dir, 'b-kill')], envDir);
    assert.is(next.code, 0, next.stderr);
    assert.match(next.stderr, /Cleared the stale restic shared lock \w+ of pid \d+/);
    assert.equal(await readdir(path.join(repo.files, 'locks')), []);
    assert.is((await snapshots(repo)).length, 1);
    assert.ok((await resticCheck(repo)).ok, 'the lock was not cleared for the exclusive check');
    assert.ok((await resticCheck(repo, true)).ok);
  } finally {
    await rm(bulk, { recursive: true, force: true });
  }
});

test('a live lock is never cleared: upkeep refuses while another restic holds the repository', async () => {
  const repo = await localRepo();
  const envDir = await envDirFor(repo);
  // A live holder: restic mount would be overkill; a lock file written for this very test process is the same to restic.
  const { stdout } = await run(resticCommand(repo, ['list', 'keys', '--no-lock']));
  assert.ok(stdout.trim());
  const holder = spawn('restic', ['backup', '--limit-upload', '1', sb.vaultProd], { env: { ...process.env, ...resticCommand(repo, []).env }, stdio: 'ignore' });
  try {
    await waitFor('the live lock', async () => ((await readdir(path.join(repo.files, 'locks')).catch(() => [])).length ? true : undefined));
    const r = await script('backup-prod', ['--retention', '--dir', path.join(sb.dir, 'b-live')], envDir);
    assert.is(r.code, 1);
    assert.match(r.stderr, /is in use: shared lock \w+ of pid \d+/);
    assert.ok((await readdir(path.join(repo.files, 'locks'))).length > 0, 'the live lock was removed');
  } finally {
    holder.kill('SIGKILL');
  }
});

test('the vault changing during the snapshot is reported, not fatal', async () => {
  const repo = await localRepo();
  const dir = path.join(sb.dir, 'b-change');
  const bulk = path.join(sb.vaultProd, 'zz-change');
  await mkdir(bulk, { recursive: true });
  for (let i = 0; i < 30; i++) await writeFile(path.join(bulk, `blob-${i}.bin`), randomBytes(1 << 20));
  // The check allows a second of timestamp slack: the bulk (there only to make the snapshot last) must
  // be older than that when the snapshot starts, or a fast local dump makes it count as changed too.
  await new Promise((r) => setTimeout(r, 1500));
  try {
    const plan = await planBackup(sb.prodCfg, { mode: 'direct', ui, dir, offsite: offsiteFor(repo) });
    const me = process.pid;
    let touched = false;
    const backingUp = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('backup');
      } catch {
        return false; // gone meanwhile
      }
    };
    const watcher = waitFor('restic backup to run', () => (descendants(me).some((d) => d.comm === 'restic' && !touched && backingUp(d.pid)) ? true : undefined)).then(async () => {
      touched = true;
      await writeFile(path.join(bulk, 'new-upload.png'), 'arrived during the snapshot');
    });
    const r = await runBackupPlan(plan, ui);
    await watcher;
    assert.ok(r.offsite);
    assert.ok(r.offsite.warnings.some((w) => /vault file\(s\) changed while the snapshot ran .*new-upload\.png/.test(w)), r.offsite.warnings.join('; '));
  } finally {
    await rm(bulk, { recursive: true, force: true });
  }
});

test('a full local disk during the dump: exit 1, no file under a final name, no offsite snapshot, the previous backup intact', async () => {
  const repo = await localRepo();
  const mnt = await mkdtemp(path.join(tmpdir(), 'makapix-full-'));
  // The space check wants the estimate plus 256 MiB; the filler takes the room once the check passed.
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=300m', 'tmpfs', mnt]);
  assert.is(mount.status, 0, String(mount.stderr));
  onExit(() => spawnSync('umount', ['-l', mnt]));
  try {
    const previous = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir: mnt });
    const before = (await readdir(mnt)).sort();
    const plan = await planBackup(sb.prodCfg, { mode: 'direct', ui, dir: mnt, offsite: offsiteFor(repo) });
    // Fill the disk right after the space check, before the dump starts writing.
    const spaceIndex = plan.steps.findIndex((s) => s.title === 'Check the free space');
    const space = plan.steps[spaceIndex]!;
    if (space.kind !== 'task') throw new Error('unexpected step');
    plan.steps[spaceIndex] = { ...space, run: async () => {
      await space.run();
      spawnSync('dd', ['if=/dev/zero', `of=${path.join(mnt, 'filler')}`, 'bs=1M', 'count=400'], { stdio: 'ignore' });
    } };
    const err = await runBackupPlan(plan, ui).then(() => undefined, (e: Error) => e);
    assert.ok(err, 'the backup succeeded on a full disk');
    assert.match(err.message, /filled up during the dump|No space left on device|ENOSPC/i);
    await rm(path.join(mnt, 'filler'));
    assert.equal((await readdir(mnt)).sort(), before, 'the failed run left files behind');
    assert.is((await listBackups(mnt))[0]!.file, previous.file);
    assert.is((await snapshots(repo)).length, 0);
  } finally {
    spawnSync('umount', ['-l', mnt]);
  }
});

test.run();
