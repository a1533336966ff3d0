// The backup file-name contract shared by the writer (backup-prod) and its readers (monitor's age
// check, verify --pre, restore), with the pure decisions about them: rotation, space, verification.
import type { DumpFormat } from '../tools/pgtools.ts';
import type { Environment } from '../core/config.ts';
import { isTemporaryName } from '../core/atomic-file.ts';
import { JobError, UsageError } from '../core/errors.ts';

export type { DumpFormat } from '../tools/pgtools.ts';

/** compose: the server's own pg_dump inside the db container; direct: the host's pg_dump over TCP. */
export type BackupMode = 'compose' | 'direct';

// ---- names -------------------------------------------------------------------------------
/** A finished backup's dump file is `makapix-YYYYMMDD-HHMMSS.<ext>`, the time in UTC. */
export const backupExtensions = ['dump', 'sql'] as const;
export type BackupExtension = (typeof backupExtensions)[number];

export interface BackupName {
  /** When the backup started (UTC, second precision). */
  takenAt: Date;
  ext: BackupExtension;
}

const pattern = /^makapix-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})\.([a-z]+)$/;

/**
 * The backup a file name stands for, or undefined for anything else in the folder: checksums,
 * manifests, temporary files and foreign files never count as a backup.
 */
export function parseBackupName(name: string): BackupName | undefined {
  const m = pattern.exec(name);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, ext] = m as unknown as string[];
  if (!(backupExtensions as readonly string[]).includes(ext!)) return undefined;
  const takenAt = new Date(Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!));
  // Rejects impossible dates (20261332-256199) that Date.UTC would silently roll over.
  if (takenAt.toISOString().slice(0, 19) !== `${y}-${mo}-${d}T${h}:${mi}:${s}`) return undefined;
  return { takenAt, ext: ext as BackupExtension };
}

/** The file name of a backup taken at `at`. */
export function backupName(at: Date, ext: BackupExtension): string {
  const iso = at.toISOString();
  return `makapix-${iso.slice(0, 10).replaceAll('-', '')}-${iso.slice(11, 19).replaceAll(':', '')}.${ext}`;
}

const filePattern = /^(makapix-\d{8}-\d{6})(\.dump|\.sql|\.dump\.sha256|\.sql\.sha256|\.manifest\.json|\.globals\.sql)$/;

/** Backups a deploy takes live here, out of the rotation's reach. */
export const pinnedDirName = 'pinned';
export const lockFileName = '.makapix-backup.lock';

/** `makapix-YYYYMMDD-HHMMSS` in UTC: what a backup's files share; sorts by name in time order. */
export const backupStem = (at: Date): string => backupName(at, 'dump').slice(0, -'.dump'.length);
export const stemTime = (stem: string): Date | undefined => parseBackupName(`${stem}.dump`)?.takenAt;

export const dumpExtension = { custom: '.dump', plain: '.sql' } as const satisfies Record<DumpFormat, string>;
export const dumpFileName = (stem: string, format: DumpFormat) => `${stem}${dumpExtension[format]}`;
export const checksumFileName = (dumpFile: string) => `${dumpFile}.sha256`;
export const manifestFileName = (stem: string) => `${stem}.manifest.json`;
export const globalsFileName = (stem: string) => `${stem}.globals.sql`;

export type BackupFileRole = 'dump' | 'checksum' | 'manifest' | 'globals';

/** What a file name is, if it is one this toolkit writes; foreign and temporary names are undefined. */
export function parseBackupFileName(name: string): { stem: string; role: BackupFileRole; format?: DumpFormat } | undefined {
  const m = filePattern.exec(name);
  if (!m || !stemTime(m[1]!)) return undefined;
  const stem = m[1]!;
  switch (m[2]) {
    case '.dump':
      return { stem, role: 'dump', format: 'custom' };
    case '.sql':
      return { stem, role: 'dump', format: 'plain' };
    case '.manifest.json':
      return { stem, role: 'manifest' };
    case '.globals.sql':
      return { stem, role: 'globals' };
    default:
      return { stem, role: 'checksum' };
  }
}

/** The files of one backup as found in a folder; any of them may be missing. */
export interface BackupFiles {
  stem: string;
  dump?: string;
  format?: DumpFormat;
  checksum?: string;
  manifest?: string;
  globals?: string;
}

/** Groups a folder's names into backups; temporary files and foreign files are left out. */
export function groupBackupFiles(names: readonly string[]): BackupFiles[] {
  const groups = new Map<string, BackupFiles>();
  for (const name of names) {
    if (isTemporaryName(name)) continue;
    const parsed = parseBackupFileName(name);
    if (!parsed) continue;
    const g = groups.get(parsed.stem) ?? { stem: parsed.stem };
    if (parsed.role === 'dump') {
      // Two dumps under one stem is not something this toolkit writes: trust neither.
      if (g.dump) g.format = undefined;
      else g.format = parsed.format;
      g.dump = name;
    } else g[parsed.role] = name;
    groups.set(parsed.stem, g);
  }
  return [...groups.values()].sort((a, b) => b.stem.localeCompare(a.stem));
}

export const backupFileList = (g: BackupFiles): string[] => [g.dump, g.checksum, g.manifest, g.globals].filter((f): f is string => f !== undefined);

/**
 * Temporary files left by backup runs whose process died (SIGKILL, a power cut): every one this
 * toolkit could have written (a backup file name inside) whose writer pid is gone. Only the lock
 * holder may remove them, since a live run's temporary file looks the same.
 */
export function staleTemporaries(names: readonly string[], isAlive: (pid: number) => boolean): string[] {
  return names.filter((name) => {
    const m = /^\.(.+)\.tmp-(\d+)-[0-9a-f]{8}$/.exec(name);
    return m !== null && isTemporaryName(name) && parseBackupFileName(m[1]!) !== undefined && !isAlive(Number(m[2]));
  });
}

// ---- manifest and verification -------------------------------------------------------------

export interface TableEstimate {
  schema: string;
  name: string;
  /** pg_class.reltuples: the planner's estimate; null for a table never analysed. */
  rowEstimate: number | null;
}

export interface BackupManifest {
  version: 1;
  file: string;
  format: DumpFormat;
  bytes: number;
  sha256: string;
  globals: { file: string; bytes: number; sha256: string };
  /** Set only after every data block was read back (pg_restore to /dev/null, or a full read of the .sql). */
  verified: true;
  verifiedWith: string;
  env: Environment;
  mode: BackupMode;
  pinned: boolean;
  reason: string | null;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  database: { name: string; sizeBytes: number; serverVersion: string };
  tables: TableEstimate[];
}

/** What the checksum file says: `sha256sum` format, so `sha256sum -c` works in the folder too. */
export const checksumLine = (sha256: string, file: string) => `${sha256}  ${file}\n`;
export function parseChecksumLine(text: string): string | undefined {
  const m = /^([0-9a-f]{64})\s/.exec(text);
  return m?.[1];
}

/**
 * A backup counts (for rotation, restore and the drill) only when it is complete and was checked:
 * its dump, checksum and manifest agree on the file, its size and its hash. Anything else (a dump
 * without its manifest, an empty file, a leftover) is not a backup and never pushes one out.
 */
export function isVerifiedBackup(g: BackupFiles, facts: { dumpBytes?: number; checksumText?: string; manifest?: unknown }): boolean {
  return backupProblem(g, facts) === undefined;
}

/** Why a backup does not count (monitor says it), or undefined when it does; see isVerifiedBackup. */
export function backupProblem(g: BackupFiles, facts: { dumpBytes?: number; checksumText?: string; manifest?: unknown }): string | undefined {
  if (!g.dump || !g.format) return 'no single dump file';
  if (facts.dumpBytes === undefined) return 'its dump cannot be read';
  if (facts.dumpBytes <= 0) return 'its dump is empty';
  if (!g.manifest) return 'it has no manifest (the backup never finished)';
  if (!g.checksum) return 'it has no checksum file';
  const m = facts.manifest as Partial<BackupManifest> | undefined;
  if (!m || typeof m !== 'object') return 'its manifest is unreadable';
  if (m.verified !== true || m.file !== g.dump || m.format !== g.format) return 'its manifest does not describe a verified dump of that name';
  if (m.bytes !== facts.dumpBytes) return `its dump is ${facts.dumpBytes} bytes, its manifest says ${m.bytes} (truncated or replaced)`;
  if (parseChecksumLine(facts.checksumText ?? '') !== m.sha256) return 'its checksum file and manifest disagree';
  return undefined;
}

// ---- rotation ----------------------------------------------------------------------------

export interface BackupSet {
  stem: string;
  files: string[];
  verified: boolean;
}

export interface RotationPlan {
  kept: string[];
  /**
   * File names to delete: files of verified backups this toolkit wrote, beyond the newest `keep`,
   * and the leftovers no dump owns (a checksum, manifest or roles file whose run was killed before
   * its dump got its final name, which is always the last one given).
   */
  remove: string[];
  /** The stems removed (one per backup). */
  removedStems: string[];
}

/**
 * Which backups go: the newest `keep` verified ones stay, older verified ones go. Runs only after
 * `justMade` was verified, never removes it nor the last good backup, and never touches a file
 * that is not part of a verified backup (foreign files, temp files, failed or partial dumps).
 */
export function planRotation(sets: readonly BackupSet[], keep: number, justMade: string): RotationPlan {
  if (!Number.isInteger(keep) || keep < 1) throw new UsageError(`BACKUP_KEEP must be a whole number of at least 1, got ${keep}.`);
  const verified = sets.filter((s) => s.verified).sort((a, b) => b.stem.localeCompare(a.stem));
  if (!verified.some((s) => s.stem === justMade)) {
    throw new JobError(`Rotation was asked to run, but the new backup ${justMade} is not among the verified ones.`, 'Nothing was deleted; check the backup folder.');
  }
  // The new backup always stays (even if a clock jump made older ones look newer); then the newest others.
  const kept = [justMade, ...verified.filter((s) => s.stem !== justMade).slice(0, keep - 1).map((s) => s.stem)];
  const going = verified.filter((s) => !kept.includes(s.stem));
  const orphans = sets.filter((s) => s.stem !== justMade && !s.files.some((f) => parseBackupFileName(f)?.role === 'dump'));
  return { kept, remove: [...going, ...orphans].flatMap((s) => s.files), removedStems: going.map((s) => s.stem) };
}

// ---- space -------------------------------------------------------------------------------

/** Room left free after the dump, so a backup never fills the disk the database lives on. */
export const spaceReserveBytes = 256 * 1024 * 1024;

/**
 * How large the dump will be: the previous backup's bytes-per-database-byte when one of the same
 * format exists (plus a quarter for growth), else the whole database size for a plain dump and half
 * of it for a compressed one.
 */
export function estimateDumpBytes(dbSizeBytes: number, format: DumpFormat, previous?: { bytes: number; dbSizeBytes: number; format: DumpFormat }): number {
  if (previous && previous.format === format && previous.dbSizeBytes > 0) return Math.ceil(dbSizeBytes * (previous.bytes / previous.dbSizeBytes) * 1.25);
  return format === 'plain' ? dbSizeBytes : Math.ceil(dbSizeBytes / 2);
}

export function spaceCheck(needBytes: number, freeBytes: number): { fits: boolean; needBytes: number; freeBytes: number } {
  return { fits: needBytes + spaceReserveBytes <= freeBytes, needBytes, freeBytes };
}

