// Backups of EA's database: the file-name contract shared by the writer (backup-prod) and its
// readers (monitor's age check, verify --pre, restore). One place, so they cannot drift apart.

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
