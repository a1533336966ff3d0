// backup-prod: a verified dump of EA's database (lib/tools/backup-store.ts), then rotation.
import path from 'node:path';
import type { EnvConfig } from '../core/config.ts';
import { dumpArgs, globalsArgs, pgCommand, verifyArgs } from '../tools/pgtools.ts';
import { renderCommand, type Command } from '../core/exec.ts';
import type { ComposeFlavor } from '../tools/compose.ts';
import { formatBytes, formatDuration } from '../core/ui.ts';
import { backupStem, dumpFileName, type DumpFormat, globalsFileName, lockFileName, pinnedDirName } from '../domain/backup-files.ts';
import { placeFor, type BackupOptions, type BackupResult } from '../tools/backup-store.ts';

// ---- the entry's side ----------------------------------------------------------------------

/** backup-prod's flags as backup options (validated: a bad value is a usage error, exit 2). */
export function parseBackupOptions(flags: { format: DumpFormat; direct: boolean; pin: boolean; reason?: string | undefined; dir?: string | undefined; keep?: number | undefined }): Omit<BackupOptions, 'ui'> {
  return {
    mode: flags.direct ? 'direct' : 'compose',
    format: flags.format,
    pinned: flags.pin,
    ...(flags.reason !== undefined && { reason: flags.reason }),
    ...(flags.dir !== undefined && { dir: flags.dir }),
    ...(flags.keep !== undefined && { keep: flags.keep }),
  };
}

/** What a backup would do, with real values (--dry-run). */
export function describeBackupPlan(cfg: EnvConfig, opts: Omit<BackupOptions, 'ui'>, flavor: ComposeFlavor): string[] {
  const format = opts.format ?? 'custom';
  const root = opts.dir ?? cfg.vars.BACKUP_DIR;
  const dir = opts.pinned ? path.join(root, pinnedDirName) : root;
  const place = placeFor(cfg, opts.mode);
  const line = (c: Command) => renderCommand(c);
  return [
    `lock ${path.join(root, lockFileName)}`,
    `check free space in ${dir} against pg_database_size(${cfg.vars.DB_DATABASE})`,
    `${line(pgCommand('pg_dump', place, { database: cfg.vars.DB_DATABASE, args: dumpArgs(format) }, flavor))} > ${path.join(dir, dumpFileName(backupStem(new Date()), format))} (temporary name first)`,
    `${line(pgCommand('pg_dumpall', place, { args: globalsArgs() }, flavor))} > ${path.join(dir, globalsFileName(backupStem(new Date())))}`,
    format === 'custom' ? `${line(pgCommand('pg_restore', place, { args: verifyArgs() }, flavor))} < the dump, hashing it (sha256)` : 'read the dump through, hashing it (sha256), header and trailer checked',
    'fsync, write .sha256 and .manifest.json, rename to the final name',
    opts.pinned ? 'no rotation (pinned)' : `rotate: keep the newest ${opts.keep ?? cfg.vars.BACKUP_KEEP} verified backups in ${dir}`,
  ];
}

export function renderBackup(r: BackupResult): void {
  const lines = [
    `backup   ${r.file}${r.pinned ? ' (pinned)' : ''}`,
    `size     ${formatBytes(r.bytes)} (${r.format}), database ${r.database.name} ${formatBytes(r.database.sizeBytes)}`,
    `sha256   ${r.sha256}`,
    `took     ${formatDuration(r.durationMs)}`,
    `rotated  ${r.rotated.length ? r.rotated.join(', ') : 'nothing'}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}
