// The vault: where a database row's artwork files live on disk, and the pure decisions of a sync
// (which file to copy, link, skip or prune; whether roots and paths are safe). No I/O here: the
// runner (lib/jobs/vault-sync.ts) reads directories and the database and feeds these functions.
import path from 'node:path';
import { SafetyError, UsageError } from '../core/errors.ts';

declare const brand: unique symbol;
/** The real (symlink-free, absolute) path of a vault's root folder. */
export type VaultRoot = string & { readonly [brand]: 'VaultRoot' };
/** A path relative to a vault root that was validated never to leave it ("24/07", "24/07/<key>.png"). */
export type VaultRelPath = string & { readonly [brand]: 'VaultRelPath' };

/**
 * One kind of file group the database references. Its query returns one row per group: the folder
 * (`dir`, relative to the vault root), the name prefix every file of the group starts with (`key`)
 * and the extensions that must exist as `<key>.<ext>` (`exts`, a text array, may be empty). Rows
 * must come ordered by dir so the runner reads each folder once.
 */
export interface FileKind {
  readonly name: string;
  readonly sql: string;
  /** What a dir from this query must look like; anything else is refused (the database is data). */
  readonly dirPattern: RegExp;
  readonly dirExample: string;
  readonly keyPattern: RegExp;
}

export interface VaultLayout {
  readonly kinds: readonly FileKind[];
  /** Mode of the files and folders the sync creates: the EB containers write as their uid, the static server reads. */
  readonly fileMode: number;
  readonly dirMode: number;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The vault layout: the app keeps artwork at `<storage_shard>/<storage_key>.<ext>`,
 * one ext per post_files row, variants beside it sharing the storage_key prefix. A layout change
 * (another folder scheme, another kind such as avatars stored outside the shards) is an edit here.
 */
export const vaultLayout: VaultLayout = {
  kinds: [
    {
      name: 'artwork',
      sql: `SELECT p.storage_shard AS dir, p.storage_key::text AS key,
                   coalesce(array_agg(DISTINCT lower(f.format)) FILTER (WHERE f.format IS NOT NULL), '{}') AS exts
              FROM posts p LEFT JOIN post_files f ON f.post_id = p.id
             WHERE p.storage_key IS NOT NULL
             GROUP BY p.storage_shard, p.storage_key
             ORDER BY p.storage_shard, p.storage_key`,
      // Two hex components ("24/07"), or three on older rows ("a4/47/ee").
      dirPattern: /^[0-9a-f]{2}\/[0-9a-f]{2}(\/[0-9a-f]{2})?$/,
      dirExample: '24/07 or a4/47/ee',
      keyPattern: uuid,
    },
  ],
  fileMode: 0o644,
  dirMode: 0o755,
};

/** A validated row of a FileKind query: the files `<dir>/<key>*` and the required `<dir>/<key>.<ext>`. */
export interface FileGroup {
  readonly kind: string;
  readonly dir: VaultRelPath;
  readonly key: string;
  readonly exts: readonly string[];
}

const extPattern = /^[a-z0-9]{1,10}$/;

/**
 * Turns a database row into a file group, or refuses (exit 3) a row whose folder, key or extension
 * could point anywhere but a plain folder under the vault root (`..`, absolute paths, separators).
 */
export function fileGroup(kind: FileKind, row: { dir: unknown; key: unknown; exts: unknown }): FileGroup {
  const { dir, key, exts } = row;
  const hint = 'The database is not trusted input: fix or delete that row in EB, then run again. Nothing was copied.';
  if (typeof dir !== 'string' || !kind.dirPattern.test(dir) || path.posix.normalize(dir) !== dir || path.isAbsolute(dir)) {
    throw new SafetyError(`A ${kind.name} row has the folder ${JSON.stringify(dir)}, which is not a vault folder (expected like ${kind.dirExample}); it could escape the vault root.`, hint);
  }
  if (typeof key !== 'string' || !kind.keyPattern.test(key)) {
    throw new SafetyError(`A ${kind.name} row in ${dir} has the key ${JSON.stringify(key)}, which is not a valid storage key.`, hint);
  }
  const list = Array.isArray(exts) ? exts : [];
  for (const ext of list) {
    if (typeof ext !== 'string' || !extPattern.test(ext)) throw new SafetyError(`The ${kind.name} ${dir}/${key} has the file format ${JSON.stringify(ext)}, which is not a plain extension.`, hint);
  }
  return { kind: kind.name, dir: dir as VaultRelPath, key, exts: [...new Set(list as string[])].sort() };
}

/**
 * THE mapping from a group to its files: a name belongs to a key when it is the key itself or the
 * key followed by a separator (`<key>.png`, `<key>_x4.png`, `<key>-upscaled.webp`), so a key that is
 * a prefix of another key's characters never claims that key's files.
 */
export function belongsTo(name: string, key: string): boolean {
  if (!name.startsWith(key)) return false;
  if (name.length === key.length) return true;
  return /[^A-Za-z0-9]/.test(name[key.length]!);
}

/** Which names of a folder listing a group owns, and which of its required `<key>.<ext>` are absent. */
export function filesOfGroup(group: FileGroup, names: readonly string[]): { found: string[]; missing: string[] } {
  const found = names.filter((n) => belongsTo(n, group.key));
  const present = new Set(found);
  const missing = group.exts.map((ext) => `${group.key}.${ext}`).filter((n) => !present.has(n));
  return { found, missing };
}

/** A file path inside a vault folder; the name must be one plain path component. */
export function joinRel(dir: VaultRelPath, name: string): VaultRelPath {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new SafetyError(`The file name ${JSON.stringify(name)} in ${dir} is not a plain name.`, 'Nothing under it was touched.');
  }
  return `${dir}/${name}` as VaultRelPath;
}

/** Is `child` the same as or below `parent`? Both absolute and normalised (real paths). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** The absolute path of a relative vault path; throws (exit 3) if it would land outside the root. */
export function resolveIn(root: VaultRoot, rel: string): string {
  const abs = path.resolve(root, rel);
  if (path.isAbsolute(rel) || !isInside(root, abs) || abs === root) {
    throw new SafetyError(`The path ${JSON.stringify(rel)} escapes the vault root ${root}.`, 'Nothing was written outside the vault.');
  }
  return abs;
}

/**
 * The roots a sync may use, as real paths. Refuses (exit 3) a target that is production's vault, or
 * inside or around the source or production's vault: any of those would write where EA reads.
 */
export function checkRoots(roots: { source: string; target: string; production: readonly string[] }): void {
  const { source, target } = roots;
  const hint = 'Point --target (or VAULT_HOST_PATH in .env.dev) at EB\'s own vault folder, e.g. /mnt/vault-dev.';
  for (const prod of [source, ...roots.production]) {
    if (target === prod) throw new SafetyError(`The target vault ${target} is ${prod === source ? 'the source vault' : "production's vault (VAULT_HOST_PATH in .env.prod)"}.`, hint);
    if (isInside(prod, target)) throw new SafetyError(`The target vault ${target} is inside ${prod === source ? 'the source vault' : "production's vault"} ${prod}.`, hint);
    if (isInside(target, prod)) throw new SafetyError(`The target vault ${target} contains ${prod === source ? 'the source vault' : "production's vault"} ${prod}.`, hint);
  }
}

/** What the sync knows about one file on either side (from lstat). */
export interface FileState {
  readonly type: 'file' | 'symlink' | 'other';
  readonly size: number;
  readonly uid: number;
  readonly gid: number;
  /** Permission bits only. */
  readonly mode: number;
  readonly dev: number;
  readonly ino: number;
}

export interface Owner {
  readonly uid: number;
  readonly gid: number;
}

export function parseOwner(text: string): Owner {
  const m = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!m) throw new UsageError(`--owner must be <uid>:<gid> (numbers), got ${JSON.stringify(text)}.`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

export interface DecideOptions {
  link: boolean;
  checksum: boolean;
  owner: Owner;
  fileMode: number;
}

/**
 * - copy: absent on the target; replace: present but different (another size, or not a regular file);
 * - link: absent or different, and a hard link may stand in for a copy;
 * - compare: same size and --checksum asks for the content to decide; skip: already there.
 */
export type FileAction = 'copy' | 'replace' | 'link' | 'compare' | 'skip';

/**
 * A hard link shares the source's inode, so its owner and mode are EA's: linking is only allowed
 * when they already are what EB expects (changing them would change EA's file).
 */
export const canLink = (src: FileState, o: DecideOptions) => src.uid === o.owner.uid && src.gid === o.owner.gid && src.mode === o.fileMode;

/**
 * The decision for one file. Final names are only ever complete (temp + rename), so a target file
 * whose size differs was not cut short by a crash: the source changed, and it is copied again.
 */
export function decide(src: FileState, dst: FileState | undefined, o: DecideOptions): FileAction {
  const fresh = o.link && canLink(src, o) ? 'link' : undefined;
  if (!dst) return fresh ?? 'copy';
  if (dst.type !== 'file' || dst.size !== src.size) return fresh ?? 'replace';
  if (dst.dev === src.dev && dst.ino === src.ino) return 'skip'; // already a hard link to the source
  return o.checksum ? 'compare' : 'skip';
}

/**
 * A file kept on the target whose owner or mode is not what EB's containers expect. Never when it
 * is a hard link to the source: its inode is EA's file, which the sync must not change.
 */
export function needsOwnership(src: FileState, dst: FileState, o: DecideOptions): boolean {
  if (dst.type !== 'file' || (dst.dev === src.dev && dst.ino === src.ino)) return false;
  return dst.uid !== o.owner.uid || dst.gid !== o.owner.gid || dst.mode !== o.fileMode;
}

/**
 * Which (dir, key) groups the database references, for --prune: a target file is kept when it
 * belongs to a referenced key of its own folder, by the same rule that chose it for copying.
 */
export class ReferenceIndex {
  readonly #keys = new Map<string, string[]>();
  add(group: FileGroup): void {
    const list = this.#keys.get(group.dir);
    if (list) list.push(group.key);
    else this.#keys.set(group.dir, [group.key]);
  }
  /** Is the target file at this relative path ("24/07/<key>.png") referenced? */
  references(rel: string): boolean {
    const slash = rel.lastIndexOf('/');
    if (slash <= 0) return false;
    const keys = this.#keys.get(rel.slice(0, slash));
    const name = rel.slice(slash + 1);
    return keys !== undefined && keys.some((k) => belongsTo(name, k));
  }
}

/** Space for the planned bytes plus a margin (5 % of them, at least 256 MiB), so EB's disk never fills up. */
export function freeSpaceVerdict(plannedBytes: number, fs: { bavail: number; bsize: number }): { ok: boolean; available: number; required: number } {
  const available = fs.bavail * fs.bsize;
  const required = plannedBytes === 0 ? 0 : plannedBytes + Math.max(256 * 1024 * 1024, Math.ceil(plannedBytes * 0.05));
  return { ok: required <= available, available, required };
}
