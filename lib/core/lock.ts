// One run at a time, per lock file. The lock is a file whose content names its holder: the host,
// the pid and that process's start time (a pid alone can be reused), and the boot it ran in.
//
// Taking it is atomic: the holder's record is written and flushed under a temporary name, then
// link()ed to the lock's name, which fails if the name exists. So a lock is never seen empty or
// half-written while its holder lives (a reader could catch the old create-then-write in between,
// and a full disk at start left a 0-byte lock that failed every later run).
//
// A lock is stale only when its holder is provably gone: same host, and the boot changed, the pid
// is dead, or the pid now belongs to a process started at another time. An unreadable lock (empty,
// damaged, or half-written by an older version of this code) can have no live holder under this
// protocol; it is stale when it predates the current boot or is older than a grace period that an
// older writer needs to finish its write. A holder on another host is never judged stale.
//
// Breaking a stale lock is atomic too: the breaker first link()s the stale inode to a name made of
// its inode number (only one contender can create it), checks that the lock still is that inode,
// and only then removes it; the next link() of a record decides who holds the lock. So 20
// contenders on one stale lock end with exactly one holder.
import { link, lstat, mkdir, open, unlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { hostname } from 'node:os';
import { JobError, systemError } from './errors.ts';
import { temporaryName, writeFileAtomic } from './atomic-file.ts';

export interface Lock {
  readonly path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** How long to wait for a live holder to finish before failing (default: fail at once). */
  waitMs?: number;
  /** How old an unreadable lock must be to count as stale when it is from this boot. */
  unreadableGraceMs?: number;
}

/** What a lock file says about its holder. */
export interface LockRecord {
  job: string;
  host: string;
  pid: number;
  /** The holder's start time, in clock ticks since boot (/proc/<pid>/stat, field 22). */
  start: number | null;
  boot: string | null;
  since: string;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's start time (clock ticks since boot), or null when it is gone or this is not Linux. */
export function processStart(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]);
    return Number.isFinite(start) ? start : null;
  } catch {
    return null;
  }
}

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** When this boot began (ms since the epoch), from /proc/stat's btime. */
function bootTimeMs(): number | null {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return m ? Number(m[1]) * 1000 : null;
  } catch {
    return null;
  }
}

export function ownRecord(job: string): LockRecord {
  return { job, host: hostname(), pid: process.pid, start: processStart(process.pid), boot: bootId(), since: new Date().toISOString() };
}

/** Reads a record; undefined when it is not one (empty, damaged, half-written). Older records lack start and boot. */
export function parseRecord(text: string): LockRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (!Number.isInteger(r.pid) || (r.pid as number) <= 0) return undefined;
  return {
    job: typeof r.job === 'string' ? r.job : 'run',
    host: typeof r.host === 'string' ? r.host : hostname(),
    pid: r.pid as number,
    start: typeof r.start === 'number' ? r.start : null,
    boot: typeof r.boot === 'string' ? r.boot : null,
    since: typeof r.since === 'string' ? r.since : 'an unknown time',
  };
}

export type Verdict = { live: true; why: string } | { live: false; why: string };

/**
 * Whether a record's holder may still run. Pure given its probes: `alive` and `startOf` look at
 * this host's processes, `boot` is this boot's id.
 */
export function judgeRecord(r: LockRecord, here: { host: string; boot: string | null; alive: (pid: number) => boolean; startOf: (pid: number) => number | null }): Verdict {
  if (r.host !== here.host) return { live: true, why: `held on another host, ${r.host}` };
  if (r.boot !== null && here.boot !== null && r.boot !== here.boot) return { live: false, why: 'its holder ran before the machine restarted' };
  if (!here.alive(r.pid)) return { live: false, why: `its holder, pid ${r.pid}, is gone` };
  if (r.start !== null) {
    const now = here.startOf(r.pid);
    if (now !== null && now !== r.start) return { live: false, why: `pid ${r.pid} now belongs to another process` };
  }
  return { live: true, why: `pid ${r.pid}` };
}

type Seen = { kind: 'absent' } | { kind: 'live'; record: LockRecord; why: string } | { kind: 'stale'; ino: number; why: string } | { kind: 'young-unreadable' };

async function inspect(lockPath: string, graceMs: number): Promise<Seen> {
  let handle;
  try {
    handle = await open(lockPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw err;
  }
  try {
    const s = await handle.stat();
    const record = parseRecord(await handle.readFile('utf8'));
    if (!record) {
      const boot = bootTimeMs();
      if (boot !== null && s.mtimeMs < boot) return { kind: 'stale', ino: s.ino, why: 'it is unreadable and older than the last restart' };
      if (Date.now() - s.mtimeMs >= graceMs) return { kind: 'stale', ino: s.ino, why: `it is unreadable (${s.size} bytes) and no run writes one` };
      return { kind: 'young-unreadable' };
    }
    const v = judgeRecord(record, { host: hostname(), boot: bootId(), alive: isAlive, startOf: processStart });
    return v.live ? { kind: 'live', record, why: v.why } : { kind: 'stale', ino: s.ino, why: v.why };
  } finally {
    await handle.close();
  }
}

/**
 * Removes the lock if it still is the stale inode `ino`; false when another contender is breaking
 * it or the lock changed since it was judged.
 */
async function breakStale(lockPath: string, ino: number): Promise<boolean> {
  const breaker = `${lockPath}.break-${ino}`;
  try {
    await link(lockPath, breaker);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOENT') return false;
    throw err;
  }
  try {
    if ((await lstat(breaker)).ino !== ino) return false; // the lock was replaced between judging and linking
    // Only the holder of the breaker name removes inode `ino`, and the name cannot be re-created while it exists.
    if ((await lstat(lockPath).catch(() => undefined))?.ino === ino) await unlink(lockPath);
    return true;
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Takes the lock at lockPath for `job`. A live holder makes this wait up to `waitMs`, then fail
 * (exit 1) with a message naming it and the file; a stale lock is broken and taken.
 */
export async function acquireLock(lockPath: string, job: string, opts: LockOptions = {}): Promise<Lock> {
  const waitMs = opts.waitMs ?? 0;
  const graceMs = opts.unreadableGraceMs ?? 2000;
  const deadline = Date.now() + waitMs;
  try {
    await mkdir(path.dirname(lockPath), { recursive: true });
  } catch (err) {
    throw systemError(err, path.dirname(lockPath), `creating the folder of the lock ${lockPath}`) ?? err;
  }
  const record = ownRecord(job);
  const tmp = temporaryName(lockPath);
  try {
    await writeFileAtomic(tmp, `${JSON.stringify(record)}\n`, 0o644);
  } catch (err) {
    throw systemError(err, path.dirname(lockPath), `writing the lock ${lockPath}`) ?? err;
  }
  try {
    // Bounded: each round either takes the lock, breaks a stale one, or waits for a live holder.
    for (let round = 0; ; round++) {
      let ino: number;
      try {
        await link(tmp, lockPath);
        ino = (await lstat(tmp)).ino;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw systemError(err, path.dirname(lockPath), `taking the lock ${lockPath}`) ?? err;
        const seen = await inspect(lockPath, graceMs);
        if (seen.kind === 'stale') {
          if (!(await breakStale(lockPath, seen.ino))) await sleep(5 + Math.random() * 20);
        } else if (seen.kind === 'live') {
          if (Date.now() >= deadline) {
            const r = seen.record;
            throw new JobError(`Another ${r.job} is running (pid ${r.pid}, since ${r.since}; ${seen.why}; lock ${lockPath}).`, 'Wait for it to finish; if that process is gone, remove the lock file.');
          }
          await sleep(100);
        } else if (seen.kind === 'young-unreadable') await sleep(50);
        if (round > 10_000) throw new JobError(`Could not take the lock ${lockPath}: other runs keep taking and breaking it.`, 'Try again in a moment.');
        continue;
      }
      let released = false;
      return {
        path: lockPath,
        release: async () => {
          if (released) return;
          released = true;
          // Only our own lock: never a later holder's (if ours was broken as stale by mistake).
          if ((await lstat(lockPath).catch(() => undefined))?.ino === ino) await unlink(lockPath).catch(() => undefined);
        },
      };
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Runs fn while holding the lock, and always releases it. */
export async function withLock<T>(lockPath: string, job: string, fn: () => Promise<T>, opts?: LockOptions): Promise<T> {
  const lock = await acquireLock(lockPath, job, opts);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

