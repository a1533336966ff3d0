import { writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { backupName, checksumFileName, checksumLine, manifestFileName, type BackupManifest } from '../../lib/domain/backup-files.ts';

/**
 * A backup set as backup-prod leaves it (dump, its .sha256, a verified manifest) without a database:
 * for tests of what reads backup folders (monitor, verify). Returns the dump's path.
 */
export function writeBackupSet(dir: string, at: Date, content = 'PGDMP fake dump'): string {
  const dump = backupName(at, 'dump');
  const stem = dump.slice(0, -'.dump'.length);
  const sha256 = createHash('sha256').update(content).digest('hex');
  writeFileSync(path.join(dir, dump), content);
  writeFileSync(path.join(dir, checksumFileName(dump)), checksumLine(sha256, dump));
  const manifest: Partial<BackupManifest> = { version: 1, file: dump, format: 'custom', bytes: Buffer.byteLength(content), sha256, verified: true, verifiedWith: 'test fixture', startedAt: at.toISOString(), finishedAt: at.toISOString() };
  writeFileSync(path.join(dir, manifestFileName(stem)), JSON.stringify(manifest));
  return path.join(dir, dump);
}
