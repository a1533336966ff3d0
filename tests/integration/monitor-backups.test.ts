// monitor's backup check against backups written by backup-prod from a real PostgreSQL: a file
// name never reads OK on its own (issue 20: an empty dump named for 2099 read "OK ... -640576.8 h
// old"; an empty, truncated or damaged newest dump read OK).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync, closeSync, statSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { Ui } from '../../lib/core/ui.ts';
import { backupDatabase, probeBackup, type BackupResult } from '../../lib/tools/backup-store.ts';
import { defaultThresholds, evaluateBackup } from '../../lib/domain/monitoring.ts';
import { startSandbox, type TestSandbox } from '../harness/sandbox.ts';

const ui = new Ui({ tty: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WritableStream });
let sb: TestSandbox;
let dir: string;
let older: BackupResult;
let newest: BackupResult;

const check = async () => evaluateBackup(await probeBackup(dir), new Date(), defaultThresholds);

test.before(async () => {
  sb = await startSandbox({ users: 40, seed: 5 });
  dir = mkdtempSync(path.join(sb.dir, 'backups-'));
  older = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir });
  await new Promise((r) => setTimeout(r, 1100)); // a backup's name has the second
  newest = await backupDatabase(sb.prodCfg, { mode: 'direct', ui, dir });
});

test('two good backups read OK, judged by the newest', async () => {
  const r = await check();
  assert.is(r.status, 'OK', r.summary);
  assert.match(r.summary, `newest ${path.basename(newest.file)} is 0.0 h old`);
});

/** Damages the newest dump for one case, then puts it back. */
async function withNewest(damage: (file: string) => void, expect: RegExp) {
  const saved = `${newest.file}.saved`;
  copyFileSync(newest.file, saved);
  try {
    damage(newest.file);
    const r = await check();
    assert.is.not(r.status, 'OK', r.summary);
    assert.match(r.summary, `newest ${path.basename(older.file)} is`);
    assert.match(r.summary, `${path.basename(newest.file)} does not count`);
    assert.match(r.summary, expect);
  } finally {
    copyFileSync(saved, newest.file);
    unlinkSync(saved);
  }
}

test('an empty newest dump does not read OK', () => withNewest((f) => truncateSync(f, 0), /its dump is empty/));
test('a truncated newest dump does not read OK', () => withNewest((f) => truncateSync(f, Math.floor(statSync(f).size / 2)), /truncated/));
test('a newest dump damaged in place (same size) does not read OK', () =>
  withNewest((f) => {
    const fd = openSync(f, 'r+');
    writeSync(fd, Buffer.from('garbage!'), 0, 8, Math.floor(statSync(f).size / 2));
    closeSync(fd);
  }, /damaged/));

test('an empty dump named for 2099, with or without a copied manifest, does not read OK', async () => {
  const fake = path.join(dir, 'makapix-20991231-235959.dump');
  writeFileSync(fake, '');
  try {
    const r = await check();
    assert.is.not(r.status, 'OK', r.summary);
    assert.match(r.summary, `newest ${path.basename(newest.file)} is 0.0 h old`);
    // A full copy of a real backup under a 2099 name: manifest, checksum and bytes agree, still not OK.
    copyFileSync(newest.file, fake);
    const manifest = JSON.parse(readFileSync(newest.manifestFile, 'utf8'));
    writeFileSync(path.join(dir, 'makapix-20991231-235959.manifest.json'), JSON.stringify({ ...manifest, file: path.basename(fake) }));
    writeFileSync(`${fake}.sha256`, readFileSync(newest.checksumFile, 'utf8').replace(path.basename(newest.file), path.basename(fake)));
    const r2 = await check();
    assert.is.not(r2.status, 'OK', r2.summary);
    assert.match(r2.summary, /dated in the future/);
  } finally {
    for (const f of [fake, `${fake}.sha256`, path.join(dir, 'makapix-20991231-235959.manifest.json')]) {
      try {
        unlinkSync(f);
      } catch {
        // not written in this case
      }
    }
  }
  assert.is((await check()).status, 'OK');
});

test.after(async () => {
  await sb?.stop();
});

test.run();
