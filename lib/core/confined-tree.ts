// File operations confined to one folder tree that someone else can write (EB's vault, writable
// by EB's own containers as uid 1000), for a process that runs as root.
//
// A path is resolved again at every call: between a check and a use, another process can swap any
// component of it (a file, or a parent folder) for a symlink, and root then writes, chowns or
// removes whatever the link names (issue 20: a root-only file outside the vault became
// 1000:1000 0644). O_NOFOLLOW guards only the last component, and Node has no openat(). So every
// folder is opened once, component by component from the root, each with O_DIRECTORY|O_NOFOLLOW
// relative to its already-verified parent, and every operation names its entry as
// `/proc/self/fd/<folder's descriptor>/<name>`: the kernel jumps to the very folder the descriptor
// holds and looks up that one name in it (openat() semantics), so no swapped folder can redirect
// it. The last component is never followed either: creation uses O_EXCL, rename/link/unlink/
// rmdir/mkdir do not follow it, and an owner or mode change goes through an O_PATH|O_NOFOLLOW
// descriptor whose type was checked (fstat) before `chown`/`chmod` of its /proc/self/fd path.
//
// Why not a child process running as the vault's owner (the other way the issue names): it could
// not give a root-owned file to uid 1000 (chown needs CAP_CHOWN), could not read EA's vault when
// only root can, and would need a message per file for 100,000+ files. Descriptors keep the one
// process and its speed, and make the kernel, not a check before the use, enforce the confinement.
import { chmod, chown, link, mkdir, open, readdir, rename, rmdir, unlink, copyFile, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import path from 'node:path';
import { SafetyError } from './errors.ts';

/** Linux's O_PATH (same value on x86-64 and arm64): a descriptor that names an inode without opening it (a FIFO or device is not touched). */
const O_PATH = 0o10000000;
const folderFlags = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Folder descriptors kept open between uses (each costs one descriptor; reopening costs an open per component). */
const keepOpen = 256;

const isErrno = (err: unknown, ...codes: string[]) => codes.includes((err as NodeJS.ErrnoException)?.code ?? '');

/** Owner and mode given to what the tree creates or fixes. */
export interface Ownership {
  uid: number;
  gid: number;
}

/** One folder of the tree, held open; `release()` when done with it. */
export interface Folder {
  /** Relative to the root ('' for the root). */
  readonly rel: string;
  /**
   * The path that names `name` in this very folder, whatever happened to its path since. A name
   * read from the disk comes as bytes (a name that is not UTF-8 must be given back byte for byte).
   */
  entry(name: string): string;
  entry(name: Buffer): Buffer;
  entry(name: string | Buffer): string | Buffer;
  /** The folder itself, for readdir. */
  readonly self: string;
  release(): void;
}

/**
 * A folder descriptor and how many holders use it. The count changes synchronously, before any
 * await: a descriptor is closed only when nobody holds it, so its number cannot be reused under a
 * holder (a reused number would name another folder).
 */
interface Entry {
  ready: Promise<FileHandle>;
  refs: number;
}

/** A name of one component: no separator, not `.` or `..`. */
function checkName<N extends string | Buffer>(name: N): N {
  const text = name.toString();
  if (!text || text === '.' || text === '..' || name.includes('/') || name.includes('\0')) throw new Error(`not a single path component: ${JSON.stringify(text)}`);
  return name;
}

function fdPath(h: FileHandle): string;
function fdPath(h: FileHandle, name: string): string;
function fdPath(h: FileHandle, name: Buffer): Buffer;
function fdPath(h: FileHandle, name: string | Buffer): string | Buffer;
function fdPath(h: FileHandle, name?: string | Buffer): string | Buffer {
  if (name === undefined) return `/proc/self/fd/${h.fd}`;
  checkName(name);
  return typeof name === 'string' ? `/proc/self/fd/${h.fd}/${name}` : Buffer.concat([Buffer.from(`/proc/self/fd/${h.fd}/`), name]);
}

type Create = Ownership & { mode: number };

export class ConfinedTree {
  private readonly entries = new Map<string, Entry>();

  private constructor(
    /** The root's real path, for messages only. */
    readonly root: string,
    rootHandle: FileHandle,
  ) {
    this.entries.set('', { ready: Promise.resolve(rootHandle), refs: 1 }); // held until close()
  }

  /** Opens the root (a real folder, not a symlink); refuses (exit 3) anything else. */
  static async open(root: string): Promise<ConfinedTree> {
    try {
      return new ConfinedTree(root, await open(root, folderFlags));
    } catch (err) {
      if (isErrno(err, 'ELOOP', 'ENOTDIR')) throw new SafetyError(`${root} is not a real folder (a symlink or a file).`, 'Point the job at the real folder.');
      throw err;
    }
  }

  /**
   * The folder at `rel` (components separated by `/`), opened through real folders only. With
   * `create`, missing folders are made with that owner and mode; without, a missing one is
   * `undefined`. Any component that is a symlink or not a folder is refused (exit 3).
   */
  async folder(rel: string, create?: Create): Promise<Folder | undefined> {
    const parts = rel.split('/').filter(Boolean);
    let currentRel = '';
    let current = this.hold('', () => Promise.reject(new Error(`${this.root} was closed`)));
    let handle: FileHandle;
    try {
      handle = await current.ready;
    } catch (err) {
      this.letGo('', current);
      throw err;
    }
    for (const part of parts) {
      const childRel = currentRel ? `${currentRel}/${checkName(part)}` : checkName(part);
      const parentHandle = handle;
      const child = this.hold(childRel, () => this.openChild(parentHandle, part, childRel, create));
      try {
        handle = await child.ready; // the parent is held until its child is open: its number stays its own
      } catch (err) {
        this.letGo(childRel, child);
        this.letGo(currentRel, current);
        if (isErrno(err, 'ENOENT') && !create) return undefined;
        throw err;
      }
      this.letGo(currentRel, current);
      current = child;
      currentRel = childRel;
    }
    const held = current;
    const heldRel = currentRel;
    let released = false;
    return {
      rel: heldRel,
      self: fdPath(handle),
      entry: ((name: string | Buffer) => fdPath(handle, name)) as Folder['entry'],
      release: () => {
        if (released) return;
        released = true;
        this.letGo(heldRel, held);
      },
    };
  }

  /** Takes a hold on the entry of `rel`, opening it with `opener` when nobody has it open. */
  private hold(rel: string, opener: () => Promise<FileHandle>): Entry {
    let e = this.entries.get(rel);
    if (!e) {
      const fresh: Entry = { ready: opener(), refs: 0 };
      fresh.ready.catch(() => {
        if (this.entries.get(rel) === fresh) this.entries.delete(rel); // the next caller tries again
      });
      this.entries.set(rel, fresh);
      e = fresh;
    }
    e.refs++;
    return e;
  }

  private letGo(rel: string, e: Entry): void {
    e.refs--;
    if (e.refs > 0) return;
    const cached = this.entries.get(rel) === e;
    if (cached && this.entries.size <= keepOpen) return;
    if (cached) this.entries.delete(rel);
    void e.ready.then((h) => h.close(), () => undefined);
  }

  private async openChild(parent: FileHandle, name: string, rel: string, create?: Create): Promise<FileHandle> {
    const at = fdPath(parent, name);
    let made = false;
    if (create) {
      try {
        await mkdir(at, { mode: create.mode });
        made = true;
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
    }
    let handle: FileHandle;
    try {
      handle = await open(at, folderFlags);
    } catch (err) {
      if (isErrno(err, 'ELOOP', 'ENOTDIR')) throw new SafetyError(`${path.join(this.root, rel)} is a symlink or not a folder; writes go only through real folders under ${this.root}.`, 'Replace it with a real folder (or remove it) and run again.');
      throw err;
    }
    if (made && create) {
      // The descriptor names the folder just opened without following a link: if someone swapped
      // ours meanwhile, this one is still inside the tree, so owning it harms nothing.
      await handle.chown(create.uid, create.gid);
      await handle.chmod(create.mode);
    }
    return handle;
  }

  /**
   * Gives the regular file `name` of `folder` this owner and mode, never through a link: the file
   * is pinned by an O_PATH|O_NOFOLLOW descriptor and checked to be a regular file with one name
   * (a hard link could name a file outside the tree) before the change. Returns false, changing
   * nothing, when the entry is not such a file.
   */
  async own(folder: Folder, name: string | Buffer, owner: Ownership, mode: number | undefined): Promise<boolean> {
    const h = await open(folder.entry(name), O_PATH | constants.O_NOFOLLOW).catch((err: unknown) => {
      if (isErrno(err, 'ENOENT')) return undefined; // gone since the plan: nothing to own
      throw err;
    });
    if (!h) return false;
    try {
      const s = await h.stat();
      if (!s.isFile() || s.nlink !== 1) return false;
      const pinned = `/proc/self/fd/${h.fd}`;
      if (s.uid !== owner.uid || s.gid !== owner.gid) await chown(pinned, owner.uid, owner.gid);
      if (mode !== undefined && (s.mode & 0o7777) !== mode) await chmod(pinned, mode);
      return true;
    } finally {
      await h.close();
    }
  }

  /** Copies `source` (outside the tree) to a new entry `name` of `folder`; fails if the name exists (never writes through a link). */
  copyInto(source: string, folder: Folder, name: string): Promise<void> {
    return copyFile(source, folder.entry(name), constants.COPYFILE_EXCL);
  }

  /** Hard-links `source` as a new entry `name` of `folder`. */
  linkInto(source: string, folder: Folder, name: string): Promise<void> {
    return link(source, folder.entry(name));
  }

  /** Renames an entry within one folder (replacing `to`, even a link, as itself). */
  rename(folder: Folder, from: string, to: string): Promise<void> {
    return rename(folder.entry(from), folder.entry(to));
  }

  /** Removes an entry that is not a folder (a link is removed as itself); a missing one is fine. */
  async remove(folder: Folder, name: string | Buffer): Promise<void> {
    try {
      await unlink(folder.entry(name));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }

  /** Opens a regular file of the tree for reading, never through a link (a FIFO does not block). */
  openFile(folder: Folder, name: string): Promise<FileHandle> {
    return open(folder.entry(name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  }

  /**
   * Visits every entry under the tree that is not a folder: its name as bytes (any name, even one
   * that is not UTF-8, can be acted on) and `rel`, its path from the root as text (for matching and
   * messages). Descends only into real folders; `visit` runs while its folder is held.
   */
  async walk(visit: (folder: Folder, name: Buffer, rel: string) => Promise<void>): Promise<void> {
    const go = async (rel: string): Promise<void> => {
      const folder = await this.folder(rel).catch((err) => {
        if (err instanceof SafetyError) return undefined; // swapped for a link since it was listed: not ours to walk
        throw err;
      });
      if (!folder) return;
      try {
        const subfolders: string[] = [];
        for (const e of await readdir(folder.self, { withFileTypes: true, encoding: 'buffer' })) {
          const childRel = rel ? `${rel}/${e.name.toString()}` : e.name.toString();
          if (e.isDirectory()) subfolders.push(childRel);
          else await visit(folder, e.name, childRel);
        }
        for (const s of subfolders) await go(s);
      } finally {
        folder.release();
      }
    };
    await go('');
  }

  /**
   * Removes the folder `rel` if empty, then each parent that becomes empty; never the root. A
   * component that is a link is left alone (rmdir does not follow it).
   */
  async removeEmptyFolders(rel: string): Promise<void> {
    for (let dir = rel; dir !== '.' && dir !== ''; dir = path.posix.dirname(dir)) {
      const parentRel = path.posix.dirname(dir) === '.' ? '' : path.posix.dirname(dir);
      const parent = await this.folder(parentRel).catch(() => undefined);
      if (!parent) return;
      try {
        this.forget(dir);
        await rmdir(parent.entry(path.posix.basename(dir)));
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue;
        if (isErrno(err, 'ENOTEMPTY', 'EEXIST', 'ENOTDIR')) return;
        throw err;
      } finally {
        parent.release();
      }
    }
  }

  /** Drops a cached folder (it is about to go); its descriptor closes when its last holder lets go. */
  private forget(rel: string): void {
    const e = this.entries.get(rel);
    if (!e) return;
    this.entries.delete(rel);
    if (e.refs === 0) void e.ready.then((h) => h.close(), () => undefined);
  }

  /** Closes every descriptor (call when no folder is held any more). */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.ready.then((h) => h.close(), () => undefined)));
  }
}
