import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { run } from './exec.ts';
import { JobError } from './errors.ts';

/** The temporary name a file is written under before it gets its final one; cleanups look for it. */
export function temporaryName(finalPath: string): string {
  return path.join(path.dirname(finalPath), `.${path.basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}
export const isTemporaryName = (name: string) => /^\..+\.tmp-\d+-[0-9a-f]{8}$/.test(name);

/** Makes a rename durable: the directory entry itself must reach the disk. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Flushes the whole filesystem holding `anyPath` (syncfs(2), through coreutils `sync -f`): one
 * journal commit makes many files durable at once, where an fsync per file costs one commit each.
 */
export async function syncFilesystem(anyPath: string): Promise<void> {
  const r = await run({ cmd: 'sync', argv: ['-f', anyPath] }, { nothrow: true });
  if (r.exitCode !== 0) throw new JobError(`Flushing the filesystem of ${anyPath} to disk failed: ${r.stderr.trim() || `exit ${r.exitCode}`}.`, 'Check the disk (dmesg); files not yet renamed stay under temporary names.');
}

/**
 * Writes a file so that it appears under its final name only complete: temp name, fsync, rename,
 * fsync of the directory. A crash leaves the old file (or none), never a half-written one.
 */
export async function writeFileAtomic(finalPath: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = temporaryName(finalPath);
  try {
    const handle = await open(tmp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, finalPath);
    await fsyncDir(path.dirname(finalPath));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}
