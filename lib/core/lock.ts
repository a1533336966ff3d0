import { open, readFile, rm, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { hostname } from 'node:os';
import { JobError } from './errors.ts';

export interface Lock {
  readonly path: string;
  release(): Promise<void>;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes an exclusive lock file (O_EXCL) holding our pid. A lock left by a process that died is
 * taken over; a live holder makes this fail with a message naming it (exit 1).
 */
export async function acquireLock(lockPath: string, job: string): Promise<Lock> {
  await mkdir(path.dirname(lockPath), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o644);
      await handle.writeFile(JSON.stringify({ pid: process.pid, host: hostname(), job, since: new Date().toISOString() }));
      await handle.close();
      let released = false;
      return {
        path: lockPath,
        release: async () => {
          if (released) return;
          released = true;
          await rm(lockPath, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await readFile(lockPath, 'utf8').then((t) => JSON.parse(t) as { pid: number; job: string; since: string }, () => undefined);
      if (holder && isAlive(holder.pid)) {
        throw new JobError(`Another ${holder.job} is running (pid ${holder.pid}, since ${holder.since}; lock ${lockPath}).`, 'Wait for it to finish; if that process is gone, remove the lock file.');
      }
      await rm(lockPath, { force: true }); // stale: its holder is dead
    }
  }
  throw new JobError(`Could not take the lock ${lockPath}.`, 'Another run keeps taking it; try again in a moment.');
}

/** Runs fn while holding the lock, and always releases it. */
export async function withLock<T>(lockPath: string, job: string, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(lockPath, job);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
