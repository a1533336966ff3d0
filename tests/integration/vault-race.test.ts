// EB's vault as a hostile place (issue 20). The privilege-escalation race: sync-vault-to-dev runs as root while EB's own
// containers (uid 1000) can write EB's vault. A uid-1000 racer swaps files and folders of the vault
// for symlinks to root-only things outside it, between the sync's plan and its writes; whatever it
// does, no file outside the vault may change owner, mode or content, and nothing may appear there.
// And the names --prune must handle, and a link standing where a file should be.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { onExit } from '../../dev/cleanup.ts';
import { expectedVaultFiles, listTree, samplePosts } from '../../dev/vault-fixture.ts';
import { runSyncVault, type SyncVaultSummary } from '../../lib/jobs/vault-sync.ts';
import { OpsError } from '../../lib/core/errors.ts';
import { envFilePath, loadEnvConfig } from '../../lib/core/config.ts';
import { Ui, makeConfirm } from '../../lib/core/ui.ts';

const racer = path.resolve(import.meta.dirname, '../fixtures/vault-racer/racer.mjs');
const seed = 11;
const runs = Number(process.env.VAULT_RACE_RUNS ?? 16);
let sb: TestSandbox;
let expected: string[];

/** A Ui that calls `planned` when the sync starts its copy-and-fix phase: the plan is made, the race is on. */
class RaceUi extends Ui {
  constructor(private readonly planned?: () => void) {
    super({ tty: false, verbose: false, stream: new Writable({ write: (_c, _e, done) => done() }) });
  }
  override progress(...args: Parameters<Ui['progress']>): ReturnType<Ui['progress']> {
    if (args[0].startsWith('Copying')) this.planned?.();
    return super.progress(...args);
  }
}

async function sync(target: string, prune = false, planned?: () => void): Promise<{ code: number; out?: SyncVaultSummary; error?: string }> {
  const config = (env: 'prod' | 'dev') => loadEnvConfig(env, envFilePath(env, sb.envDir));
  try {
    const out = await runSyncVault(config('prod'), config('dev'), { target, owner: '1000:1000', jobs: 8, link: false, checksum: false, prune, strict: false, dryRun: false, ui: new RaceUi(planned), confirm: makeConfirm({ yes: true, tty: false }) });
    return { code: 0, out };
  } catch (err) {
    if (!(err instanceof OpsError)) return { code: -1, error: String((err as Error).stack ?? err) };
    return { code: err.exitCode, error: err.message };
  }
}

/** Owner, mode and content of every entry under dir: what must not change. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, name);
    const s = lstatSync(p);
    out[name] = `${s.uid}:${s.gid} ${(s.mode & 0o7777).toString(8)} ${s.isFile() ? readFileSync(p, 'hex') : 'dir'}`;
  }
  return out;
}

test.before(async () => {
  sb = await startSandbox({ users: 150, seed, vault: true });
  await samplePosts(sb.prod, sb.dev, 'p.id % 3 = 0');
  expected = [...(await expectedVaultFiles(sb.dev, seed))].sort();
});

test(`a uid-1000 racer swapping vault files and folders for symlinks never gets a file outside the vault changed (${runs} runs)`, async () => {
  if (process.getuid?.() !== 0) throw new Error('this test needs root (the sync runs as root in production)');
  // A place uid 1000 can reach, as EB's containers reach EB's vault.
  const base = mkdtempSync('/tmp/vault-race-');
  onExit(() => rmSync(base, { recursive: true, force: true }));
  chmodSync(base, 0o755);
  const target = path.join(base, 'vault');
  mkdirSync(target);
  chownSync(target, 1000, 1000);
  const first = await sync(target);
  assert.is(first.code, 0, first.error);

  // Outside the vault: a root-only file, and a root-only folder holding a root-only twin of every
  // file the racer's folders hold (a redirected path finds a file to change there).
  const outside = path.join(base, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  const secret = path.join(outside, 'secret');
  writeFileSync(secret, 'root only\n', { mode: 0o600 });
  const elsewhere = path.join(outside, 'folder');
  mkdirSync(elsewhere, { mode: 0o755 });
  const byFolder = new Map<string, string[]>();
  for (const rel of expected) byFolder.set(path.dirname(rel), [...(byFolder.get(path.dirname(rel)) ?? []), path.basename(rel)]);
  const folders = [...byFolder.keys()].slice(0, 6);
  for (const f of folders) for (const name of byFolder.get(f)!) writeFileSync(path.join(elsewhere, name), `twin of ${name}\n`, { mode: 0o600 });
  const files = expected.filter((rel) => !folders.includes(path.dirname(rel))).slice(0, 60);
  writeFileSync(path.join(base, 'files.json'), JSON.stringify(files.map((f) => path.join(target, f))));
  writeFileSync(path.join(base, 'folders.json'), JSON.stringify(folders.map((f) => path.join(target, f))));
  const before = snapshot(outside);

  // Every run has owners and modes to fix on exactly the files the racer plays with.
  const spoil = () => {
    for (const rel of [...files, ...folders.flatMap((f) => byFolder.get(f)!.map((n) => `${f}/${n}`))]) {
      const p = path.join(target, rel);
      try {
        if (!lstatSync(p).isFile()) continue;
        chownSync(p, 0, 0);
        chmodSync(p, 0o600);
      } catch {
        // moved aside by the racer's last swap
      }
    }
  };
  let fixed = 0;
  let raced = 0;
  const codes: number[] = [];
  for (let i = 0; i < runs; i++) {
    spoil();
    const child = spawn('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', process.execPath, racer, secret, elsewhere, path.join(base, 'files.json'), path.join(base, 'folders.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise((r) => child.stdout.once('data', r)); // its SIGTERM handler is in place
    let triggered = false;
    const r = await sync(target, false, () => {
      triggered = child.kill('SIGUSR1');
      const until = Date.now() + 15; // the racer's head start: its first swaps are in place
      while (Date.now() < until);
    });
    child.kill('SIGTERM');
    assert.is(await exited, 0, 'the racer failed');
    assert.ok(r.code !== -1, `an unexpected error: ${r.error}`);
    assert.ok(triggered || r.code !== 0, 'the sync finished without reaching its copy-and-fix phase');
    raced += triggered ? 1 : 0;
    codes.push(r.code);
    fixed += r.out?.ownershipFixed ?? 0;
    const now = snapshot(outside);
    const changed = [...new Set([...Object.keys(before), ...Object.keys(now)])].filter((k) => before[k] !== now[k]);
    assert.equal(changed, [], `run ${i + 1}: outside the vault, ${changed.map((k) => `${k}: ${before[k] ?? 'absent'} -> ${now[k] ?? 'absent'}`).join('; ')}`);
  }
  assert.ok(raced >= runs / 2, `only ${raced} of ${runs} runs reached the copy-and-fix phase with the racer on (exit codes: ${codes.join(',')})`);
  assert.ok(fixed > 0 || codes.some((c) => c !== 0), 'the race changed nothing the sync did');
});

test('--prune removes what EA no longer has in a referenced folder, whatever the name: spaces, non-ASCII, not UTF-8', async () => {
  const target = mkdtempSync(path.join(sb.dir, 'names-'));
  assert.is((await sync(target)).code, 0);
  const rel = expected.find((f) => f.endsWith('.png'))!;
  const dir = path.join(target, path.dirname(rel));
  const key = path.basename(rel).replace(/\.png$/, '');
  const strays = [`${key} copy.png`, `${key}é.png`, `${key}_x4 (1).png`, `${key}.png.orig`];
  for (const n of strays) writeFileSync(path.join(dir, n), 'EA removed this');
  const notUtf8 = Buffer.concat([Buffer.from(`${dir}/${key}`), Buffer.from([0xff, 0xfe]), Buffer.from('.png')]);
  writeFileSync(notUtf8, 'EA removed this too');
  const r = await sync(target, true);
  assert.is(r.code, 0, r.error);
  assert.is(r.out!.pruned, strays.length + 1);
  assert.equal(readdirSync(dir, { encoding: 'buffer' }).filter((b) => b.includes(Buffer.from(key)) && !expected.includes(`${path.dirname(rel)}/${b.toString()}`)), []);
  assert.equal(listTree(target), expected);
});

test('a symlink to a folder where a file of a post should be is reported missing, not silently skipped', async () => {
  const rel = expected.find((f) => f.endsWith('.png'))!;
  const variant = path.join(sb.vaultProd, rel.replace(/\.png$/, '_x9.png'));
  symlinkSync(path.dirname(path.join(sb.vaultProd, rel)), variant);
  try {
    const r = await sync(mkdtempSync(path.join(sb.dir, 'variant-')));
    assert.is(r.code, 0, r.error);
    assert.ok(r.out!.missingFirst.includes(rel.replace(/\.png$/, '_x9.png')), JSON.stringify(r.out!.missingFirst));
  } finally {
    rmSync(variant);
  }
});

test.after(async () => {
  await sb?.stop();
});

test.run();
