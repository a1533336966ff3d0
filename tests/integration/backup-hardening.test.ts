// backup-prod on a bad night (issue 20): a disk that is full, fills up, or is read-only (tmpfs
// mounts) is named in one sentence, never "Check that the database is up" or "Unexpected error";
// a killed run's leftovers are cleaned by the next one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, watch, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';
import { Ui } from '../../lib/core/ui.ts';
import { backupDatabase } from '../../lib/tools/backup-store.ts';
import { isTemporaryName } from '../../lib/core/atomic-file.ts';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';
import { onExit } from '../../dev/cleanup.ts';

const ui = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });
let sb: TestSandbox;

function tmpfs(size: string, options = ''): string {
  const dir = mkdtempSync(path.join(sb.dir, 'disk-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${options ? `,${options}` : ''}`, 'tmpfs', dir]);
  assert.is(r.status, 0, `mount tmpfs: ${r.stderr}`);
  onExit(() => void spawnSync('umount', ['-l', dir]));
  return dir;
}
const fill = (dir: string) => spawnSync('sh', ['-c', `cat /dev/zero > ${path.join(dir, 'filler')} 2>/dev/null; true`]);
const backupScript = (args: string[]) =>
  spawnSync(path.join(projectRoot, 'scripts/backup-prod.ts'), ['--direct', ...args], { env: { ...process.env, MAKAPIX_ENV_DIR: sb.envDir }, encoding: 'utf8', timeout: 120_000 });

test.before(async () => {
  sb = await startSandbox({ users: 300, seed: 7 });
});

test('a disk that fills during the dump: says the disk is full, where, and about how much the dump needs', async () => {
  // Room for the pre-check (the estimate plus its 256 MB reserve); filled the moment the dump's file appears.
  const dir = tmpfs('300m');
  const watcher = watch(dir, (_event, name) => {
    if (name && isTemporaryName(name) && name.includes('.dump.')) {
      watcher.close();
      fill(dir); // synchronous: the dump's writes wait, then find the disk full
    }
  });
  try {
    await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir }).then(
      () => assert.unreachable('the backup succeeded on a full disk'),
      (err: Error & { hint?: string }) => {
        assert.match(err.message, new RegExp(`^The disk holding ${dir} filled up during the dump of makapix, after .*; the dump needs about \\d.* \\(estimated from the database's \\d`));
        assert.not.match(err.message, /database is up/);
        assert.match(err.hint ?? '', /free at least/);
      },
    );
  } finally {
    watcher.close();
  }
  assert.equal(readdirSync(dir).filter((n) => n !== 'filler' && !n.startsWith('.makapix-backup.lock')), [], 'nothing kept');
  spawnSync('umount', [dir]);
});

test('a disk already full at start, and a read-only one: one sentence naming the folder (exit 1), not "Unexpected error"', async () => {
  const full = tmpfs('1m');
  fill(full);
  const r = backupScript(['--dir', full]);
  assert.is(r.status, 1, r.stderr);
  assert.not.match(r.stderr, /Unexpected error/);
  assert.match(r.stderr, new RegExp(`the disk holding ${full} is full`));
  // Progress lines come first (the backup's steps, the offsite warning); the error itself is one
  // sentence on the last line, and nothing but timestamped lines (no stack trace).
  const lines = r.stderr.trim().split('\n');
  assert.ok(lines.every((l) => /^\d{4}-\d\d-\d\dT\S+ (info|warn|error) /.test(l)), r.stderr);
  assert.match(lines.at(-1)!, new RegExp(`^\\S+ error Writing the lock \\S+ failed: the disk holding ${full} is full\\. Free space`));
  spawnSync('umount', [full]);

  const ro = tmpfs('1m', 'ro');
  const r2 = backupScript(['--dir', ro]);
  assert.is(r2.status, 1, r2.stderr);
  assert.not.match(r2.stderr, /Unexpected error/);
  assert.match(r2.stderr, new RegExp(`${ro} is on a read-only filesystem`));
  spawnSync('umount', [ro]);
});

test('a checksum, manifest or roles file that no dump owns (a run killed after its rename) is removed by the next run', async () => {
  const dir = mkdtempSync(path.join(sb.dir, 'orphans-'));
  const leftovers = ['makapix-20200101-000000.dump.sha256', 'makapix-20200102-000000.dump.sha256', 'makapix-20200102-000000.manifest.json', 'makapix-20200102-000000.globals.sql'];
  for (const f of leftovers) writeFileSync(path.join(dir, f), 'left by a killed run\n');
  writeFileSync(path.join(dir, 'notes.txt'), 'not ours');
  const r = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir });
  const stem = path.basename(r.file, '.dump');
  assert.equal(readdirSync(dir).sort(), [`${stem}.dump`, `${stem}.dump.sha256`, `${stem}.globals.sql`, `${stem}.manifest.json`, 'notes.txt'].sort());
});

test.after(async () => {
  await sb?.stop();
});

test.run();
