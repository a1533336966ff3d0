import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { backupFileList, backupStem, checksumLine, estimateDumpBytes, groupBackupFiles, isVerifiedBackup, parseBackupFileName, parseBackupName, planRotation, spaceCheck, spaceReserveBytes, staleTemporaries, type BackupSet } from '../../../lib/domain/backup-files.ts';
import { OpsError } from '../../../lib/core/errors.ts';

const sha = 'a'.repeat(64);

test('names: UTC stamp, the dump extension per format, companions share the stem', () => {
  const stem = backupStem(new Date('2026-11-25T03:04:05.678Z'));
  assert.is(stem, 'makapix-20261125-030405');
  const table: [string, ReturnType<typeof parseBackupFileName>][] = [
    ['makapix-20261125-030405.dump', { stem, role: 'dump', format: 'custom' }],
    ['makapix-20261125-030405.sql', { stem, role: 'dump', format: 'plain' }],
    ['makapix-20261125-030405.dump.sha256', { stem, role: 'checksum' }],
    ['makapix-20261125-030405.manifest.json', { stem, role: 'manifest' }],
    ['makapix-20261125-030405.globals.sql', { stem, role: 'globals' }],
    ['makapix-20261325-030405.dump', undefined], // month 13
    ['makapix-20261125-030405.dump.bak', undefined],
    ['.makapix-20261125-030405.dump.tmp-123-0a1b2c3d', undefined],
    ['notes.txt', undefined],
  ];
  for (const [name, expected] of table) assert.equal(parseBackupFileName(name), expected, name);
  // The shared contract (monitor) sees only the dumps.
  assert.ok(parseBackupName('makapix-20261125-030405.dump'));
  assert.not.ok(parseBackupName('makapix-20261125-030405.globals.sql'));
});

test('grouping ignores temp and foreign files and sorts newest first', () => {
  const groups = groupBackupFiles([
    'makapix-20260101-000000.dump',
    'makapix-20260101-000000.dump.sha256',
    'makapix-20260101-000000.manifest.json',
    'makapix-20260102-000000.sql',
    '.makapix-20260103-000000.dump.tmp-99-deadbeef',
    'README',
    'makapix-20260101-000000.globals.sql',
  ]);
  assert.equal(groups.map((g) => g.stem), ['makapix-20260102-000000', 'makapix-20260101-000000']);
  assert.equal(backupFileList(groups[1]!).sort(), ['makapix-20260101-000000.dump', 'makapix-20260101-000000.dump.sha256', 'makapix-20260101-000000.globals.sql', 'makapix-20260101-000000.manifest.json']);
  assert.is(groups[0]!.format, 'plain');
});

test('a backup is verified only when dump, checksum and manifest agree', () => {
  const g = groupBackupFiles(['makapix-20260101-000000.dump', 'makapix-20260101-000000.dump.sha256', 'makapix-20260101-000000.manifest.json'])[0]!;
  const manifest = { verified: true, file: 'makapix-20260101-000000.dump', format: 'custom', bytes: 100, sha256: sha };
  const good = { dumpBytes: 100, checksumText: checksumLine(sha, g.dump!), manifest };
  const table: [string, Parameters<typeof isVerifiedBackup>[1], boolean][] = [
    ['complete', good, true],
    ['empty dump', { ...good, dumpBytes: 0 }, false],
    ['size differs from the manifest', { ...good, dumpBytes: 99 }, false],
    ['checksum differs', { ...good, checksumText: checksumLine('b'.repeat(64), g.dump!) }, false],
    ['manifest not verified', { ...good, manifest: { ...manifest, verified: false } }, false],
    ['manifest names another file', { ...good, manifest: { ...manifest, file: 'x.dump' } }, false],
    ['unreadable manifest', { ...good, manifest: undefined }, false],
  ];
  for (const [label, facts, expected] of table) assert.is(isVerifiedBackup(g, facts), expected, label);
  const noChecksum = groupBackupFiles(['makapix-20260101-000000.dump', 'makapix-20260101-000000.manifest.json'])[0]!;
  assert.not.ok(isVerifiedBackup(noChecksum, good), 'without a checksum file');
});

const set = (day: number, verified = true): BackupSet => {
  const stem = `makapix-202601${String(day).padStart(2, '0')}-000000`;
  return { stem, verified, files: [`${stem}.dump`, `${stem}.dump.sha256`, `${stem}.manifest.json`, `${stem}.globals.sql`] };
};
const stems = (days: number[]) => days.map((d) => set(d).stem);

test('rotation, table-driven', () => {
  const table: { label: string; sets: BackupSet[]; keep: number; justMade: number; removed: number[] }[] = [
    { label: '9 old + the new one, keep 7', sets: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((d) => set(d)), keep: 7, justMade: 10, removed: [1, 2, 3] },
    { label: 'fewer than keep: nothing goes', sets: [1, 2, 3].map((d) => set(d)), keep: 7, justMade: 3, removed: [] },
    { label: 'keep 1 keeps only the new one', sets: [1, 2].map((d) => set(d)), keep: 1, justMade: 2, removed: [1] },
    {
      label: 'failed newer dumps do not count and are not deleted',
      sets: [...[1, 2, 3, 4, 5, 6, 7].map((d) => set(d)), set(8, false), set(9, false), set(10)],
      keep: 7,
      justMade: 10,
      removed: [1],
    },
    { label: 'the new one survives even if "newer" ones exist (clock skew)', sets: [set(1), set(5), set(6)], keep: 2, justMade: 1, removed: [5] },
  ];
  // Leftovers no dump owns (a run killed after its checksum's rename): removed, and nothing else of theirs.
  const orphan = (day: number, files: ('.dump.sha256' | '.manifest.json' | '.globals.sql')[]): BackupSet => ({ stem: set(day).stem, verified: false, files: files.map((f) => `${set(day).stem}${f}`) });
  const withOrphans = planRotation([set(1), set(2), orphan(3, ['.dump.sha256']), orphan(4, ['.dump.sha256', '.manifest.json', '.globals.sql']), set(5, false)], 7, set(2).stem);
  assert.equal(withOrphans.remove.sort(), [...orphan(3, ['.dump.sha256']).files, ...orphan(4, ['.dump.sha256', '.manifest.json', '.globals.sql']).files].sort());
  assert.equal(withOrphans.removedStems, []);
  for (const t of table) {
    const plan = planRotation(t.sets, t.keep, set(t.justMade).stem);
    assert.equal(plan.removedStems.sort(), stems(t.removed), t.label);
    assert.equal(plan.remove.sort(), t.removed.flatMap((d) => set(d).files).sort(), t.label);
    assert.ok(plan.kept.includes(set(t.justMade).stem), `${t.label}: the new backup must stay`);
    for (const s of t.sets.filter((x) => !x.verified)) assert.not.ok(plan.remove.some((f) => s.files.includes(f)), `${t.label}: an unverified backup was deleted`);
  }
});

test('rotation refuses when the new backup is not verified, and a keep below 1', () => {
  const threw = (fn: () => unknown) => {
    try {
      fn();
      return undefined;
    } catch (err) {
      return err as OpsError;
    }
  };
  assert.is(threw(() => planRotation([set(1), set(2, false)], 7, set(2).stem))?.exitCode, 1);
  assert.is(threw(() => planRotation([set(1)], 0, set(1).stem))?.exitCode, 2);
});

test('space: estimate from the previous ratio when there is one; refuse when it will not fit', () => {
  const gib = 1024 ** 3;
  assert.is(estimateDumpBytes(2 * gib, 'plain'), 2 * gib);
  assert.is(estimateDumpBytes(2 * gib, 'custom'), gib);
  assert.is(estimateDumpBytes(2 * gib, 'custom', { bytes: 100, dbSizeBytes: 1000, format: 'custom' }), Math.ceil(2 * gib * 0.1 * 1.25));
  assert.is(estimateDumpBytes(2 * gib, 'plain', { bytes: 100, dbSizeBytes: 1000, format: 'custom' }), 2 * gib, 'another format says nothing');
  assert.ok(spaceCheck(gib, 2 * gib).fits);
  assert.not.ok(spaceCheck(gib, gib).fits, 'no room left to spare');
  assert.not.ok(spaceCheck(gib, gib + spaceReserveBytes - 1).fits);
  assert.ok(spaceCheck(gib, gib + spaceReserveBytes).fits);
});

test('stale temporaries: only backup temp files whose writer is dead', () => {
  const alive = (pid: number) => pid === 100;
  const names = [
    '.makapix-20260101-000000.dump.tmp-100-0a1b2c3d', // its writer runs
    '.makapix-20260101-000000.dump.tmp-200-0a1b2c3d', // dead writer: stale
    '.makapix-20260101-000000.globals.sql.tmp-200-deadbeef', // dead writer: stale
    '.notes.txt.tmp-200-0a1b2c3d', // not a backup file of ours
    'makapix-20260101-000000.dump', // not temporary
  ];
  assert.equal(staleTemporaries(names, alive), [names[1], names[2]]);
});

test.run();
