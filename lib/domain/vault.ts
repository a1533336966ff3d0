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
  /** The `table.column`s its query reads: a schema without them (the sandbox has no blog) has no such files. */
  readonly needs: readonly string[];
  /**
   * false: referenced files EB keeps (never pruned) but never copied from EA: per-user export
   * zips are personal data, and EB's are EB's own.
   */
  readonly copy: boolean;
}

export interface VaultLayout {
  readonly kinds: readonly FileKind[];
  /** Mode of the files and folders the sync creates: the EB containers write as their uid, the static server reads. */
  readonly fileMode: number;
  readonly dirMode: number;
}

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const hex2 = '[0-9a-f]{2}';
/** A stored shard: two hex components ("24/07", v2), or three on rows older than the resharding ("a4/47/ee", v1). */
const shard = `${hex2}/${hex2}(/${hex2})?`;
const uuidText = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
/**
 * A sub-vault file referenced by a public URL (`https://vault.makapix.club/avatar/24/07/<uuid>.png`):
 * the folder, the key and the extension, from the URL's path (whichever sharding depth it has).
 */
const urlParts = (family: string) => `'/(${family}/[0-9a-f]{2}/[0-9a-f]{2}(?:/[0-9a-f]{2})?)/(${uuidText})\\.([A-Za-z0-9]{1,10})(?:[?#].*)?$'`;

/**
 * The vault as the app lays it out (api/app/vault.py, avatar_vault.py, blog_vault.py, tasks.py's
 * exports; api/scripts/reshard_vault.py for the two shard depths). Every family EB's database
 * references, from EB's rows:
 * - artwork: `<storage_shard>/<storage_key>.<ext>`, one ext per post_files row, variants beside it
 *   sharing the storage_key prefix; the stored shard is the truth (v1 or v2); a post without a shard
 *   (a playlist post) has no file;
 * - mkpx: the `.mkpx` source of a post that has one (`mkpx_file_bytes`), `mkpx/<storage_shard>/<storage_key>.mkpx`;
 * - avatar, blog_image: sub-vaults named by the URLs stored in `users.avatar_url` and
 *   `blog_posts.image_urls` (or linked from a blog post's body): the path in the URL is the file
 *   EB serves (the twin copy the app mirrors during a resharding window is not needed);
 * - bdr: per-user export zips (`batch_download_requests.file_path`, `bdr/<user_sqid>/<id>.zip`): never
 *   copied from EA (personal data; the sample empties that table), but EB's own are kept by --prune.
 */
export const vaultLayout: VaultLayout = {
  kinds: [
    {
      name: 'artwork',
      sql: `SELECT p.storage_shard AS dir, p.storage_key::text AS key,
                   coalesce(array_agg(DISTINCT lower(f.format)) FILTER (WHERE f.format IS NOT NULL), '{}') AS exts
              FROM posts p LEFT JOIN post_files f ON f.post_id = p.id
             WHERE p.storage_key IS NOT NULL AND p.storage_shard IS NOT NULL
             GROUP BY p.storage_shard, p.storage_key
             ORDER BY p.storage_shard, p.storage_key`,
      dirPattern: new RegExp(`^${shard}$`),
      dirExample: '24/07 or a4/47/ee',
      keyPattern: uuid,
      needs: ['posts.storage_shard', 'posts.storage_key', 'post_files.format'],
      copy: true,
    },
    {
      name: 'mkpx source',
      sql: `SELECT 'mkpx/' || storage_shard AS dir, storage_key::text AS key, ARRAY['mkpx'] AS exts
              FROM posts WHERE storage_shard IS NOT NULL AND mkpx_file_bytes IS NOT NULL
             ORDER BY 1, 2`,
      dirPattern: new RegExp(`^mkpx/${shard}$`),
      dirExample: 'mkpx/24/07',
      keyPattern: uuid,
      needs: ['posts.storage_shard', 'posts.mkpx_file_bytes'],
      copy: true,
    },
    {
      name: 'avatar',
      sql: `SELECT DISTINCT m[1] AS dir, m[2] AS key, ARRAY[lower(m[3])] AS exts
              FROM (SELECT regexp_match(avatar_url, ${urlParts('avatar')}) AS m FROM users WHERE avatar_url IS NOT NULL) x
             WHERE m IS NOT NULL ORDER BY 1, 2`,
      dirPattern: new RegExp(`^avatar/${shard}$`),
      dirExample: 'avatar/24/07',
      keyPattern: uuid,
      needs: ['users.avatar_url'],
      copy: true,
    },
    {
      name: 'blog image',
      sql: `SELECT DISTINCT m[1] AS dir, m[2] AS key, ARRAY[lower(m[3])] AS exts
              FROM (SELECT regexp_match(u, ${urlParts('blog_image')}) AS m FROM blog_posts b, unnest(b.image_urls) u
                    UNION ALL
                    SELECT regexp_match(u[1], ${urlParts('blog_image')}) FROM blog_posts b, regexp_matches(b.body, '(https?://[^[:space:]"''<>)]*/blog_image/[^[:space:]"''<>)]+)', 'g') u) x
             WHERE m IS NOT NULL ORDER BY 1, 2`,
      dirPattern: new RegExp(`^blog_image/${shard}$`),
      dirExample: 'blog_image/24/07',
      keyPattern: uuid,
      needs: ['blog_posts.image_urls', 'blog_posts.body'],
      copy: true,
    },
    {
      name: 'export zip',
      sql: `SELECT DISTINCT m[1] AS dir, m[2] AS key, ARRAY['zip'] AS exts
              FROM (SELECT regexp_match(file_path, '^(bdr/[A-Za-z0-9_-]{1,64})/(${uuidText})\\.zip$') AS m FROM batch_download_requests WHERE file_path IS NOT NULL) x
             WHERE m IS NOT NULL ORDER BY 1, 2`,
      dirPattern: /^bdr\/[A-Za-z0-9_-]{1,64}$/,
      dirExample: 'bdr/<user_sqid>',
      keyPattern: uuid,
      needs: ['batch_download_requests.file_path'],
      copy: false,
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
