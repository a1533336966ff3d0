// The runner of sync-vault-to-dev: reads EB's database and both vault folders, asks lib/domain/vault.ts
// what to do with each file, and does it (copy or hard-link under a temporary name, then rename).
import { realpath, rm, stat, statfs } from 'node:fs/promises';
import { constants as fsConstants, existsSync, lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import type pg from 'pg';
import { open, type FileHandle } from 'node:fs/promises';
import { ConfigError, JobError, OpsError, SafetyError } from '../core/errors.ts';
import { connect, connectionFor, describeConnection } from '../tools/database.ts';
import type { EnvConfig } from '../core/config.ts';
import { isTemporaryName, syncFilesystem, temporaryName, writeFileAtomic } from '../core/atomic-file.ts';
import { withLock } from '../core/lock.ts';
import { ConfinedTree, type Folder } from '../core/confined-tree.ts';
import { projectRoot } from '../core/paths.ts';
import { formatBytes, type Confirm, type Ui } from '../core/ui.ts';
import {
  checkRoots,
  decide,
  fileGroup,
  filesOfGroup,
  freeSpaceVerdict,
  isInside,
  joinRel,
  needsOwnership,
  parseOwner,
  resolveIn,
  vaultLayout,
  type DecideOptions,
  type FileAction,
  type FileGroup,
  type FileState,
  type Owner,
  type VaultLayout,
  type VaultRelPath,
  type VaultRoot,
} from '../domain/vault.ts';

export interface SyncVaultOptions {
  /** EA's vault (the source), normally VAULT_HOST_PATH of .env.prod. */
  source: string;
  /** EB's vault (the target), normally VAULT_HOST_PATH of .env.dev. */
  target: string;
  /** Production's vault from .env.prod: never a target, whatever --source says. */
  production: string;
  /** EB's database: which posts exist. Only read, in a read-only transaction. */
  db: pg.ClientConfig;
  owner: Owner;
  link: boolean;
  checksum: boolean;
  prune: boolean;
  strict: boolean;
  dryRun: boolean;
  /** Copies in flight at once. */
  jobs: number;
  ui: Ui;
  confirm: Confirm;
  layout?: VaultLayout;
}

export interface PlannedFile {
  path: VaultRelPath;
  bytes: number;
  action: Exclude<FileAction, 'skip'>;
}

export interface SyncVaultSummary {
  ok: true;
  dryRun: boolean;
  source: string;
  target: string;
  /** Referenced groups (posts) and the files they own in the source vault. */
  groups: number;
  files: number;
  copied: number;
  /** Of the copied: files that replaced a different one already on the target. */
  replaced: number;
  linked: number;
  skipped: number;
  ownershipFixed: number;
  missing: number;
  /** The first missing source files (relative paths). */
  missingFirst: string[];
  pruned: number;
  prunedBytes: number;
  staleTempsRemoved: number;
  plannedBytes: number;
  bytesCopied: number;
  durationMs: number;
  /** --dry-run: what would be copied or linked, and what --prune would remove. */
  wouldTransfer?: PlannedFile[];
  wouldPrune?: string[];
}

const missingShown = 20;
/** Linux's O_PATH: stat an entry without opening what it is (a FIFO, a device). */
const O_PATH = 0o10000000;
const fetchRows = 2000;
/** Files staged under temporary names before one syncfs makes them durable and they are renamed. */
const batchFiles = 1000;
const batchBytes = 256 * 1024 * 1024;

/** Runs fn over items with at most `limit` in flight; the first failure stops new starts and is thrown. */
async function mapLimit<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const it = items[Symbol.iterator]();
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    for (let next = it.next(); !next.done && !failure; next = it.next()) {
      try {
        await fn(next.value);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failure) throw failure.err;
}

const isErrno = (err: unknown, ...codes: string[]) => codes.includes((err as NodeJS.ErrnoException)?.code ?? '');

function fileState(s: Stats): FileState {
  return { type: s.isFile() ? 'file' : s.isSymbolicLink() ? 'symlink' : 'other', size: s.size, uid: s.uid, gid: s.gid, mode: s.mode & 0o7777, dev: s.dev, ino: s.ino };
}

/** The real path of a vault root that must exist as a folder (exit 2 otherwise: a configuration problem). */
async function vaultRoot(p: string, role: string, hint: string): Promise<VaultRoot> {
  try {
    const real = await realpath(p);
    if (!(await stat(real)).isDirectory()) throw new ConfigError(`The ${role} vault ${p} is not a folder.`, [], hint);
    return real as VaultRoot;
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw new ConfigError(`The ${role} vault ${p} does not exist.`, [], hint);
    throw err;
  }
}

interface Planned {
  rel: VaultRelPath;
  /** The source file's real path (a symlink inside the source vault is followed). */
  src: string;
  state: FileState;
  action: FileAction;
  fixOwnership: boolean;
}

interface Plan {
  files: Planned[];
  groups: number;
  missing: string[];
  /** Target folders seen by the scan: true when present as a real folder under the root. */
  targetFolders: Map<string, boolean>;
  /** Files EB references that are never copied (export zips): --prune keeps them. */
  kept: string[];
}

/**
 * Builds the plan: EB's groups come through a cursor, ordered by folder, a batch at a time; each
 * source folder is listed once and only the names a group owns are lstat'ed, on both sides. The
 * plan keeps one small record per referenced file (tens of thousands for a 10 % sample), never the
 * listings.
 */
async function buildPlan(o: SyncVaultOptions, source: VaultRoot, target: VaultRoot, layout: VaultLayout): Promise<Plan> {
  const decideOpts: DecideOptions = { link: o.link, checksum: o.checksum, owner: o.owner, fileMode: layout.fileMode };
  const plan: Plan = { files: [], groups: 0, missing: [], targetFolders: new Map(), kept: [] };
  const seen = new Set<string>();

  // The scan's file-system calls are synchronous on purpose: each is a few microseconds on a local
  // disk, less than the thread-pool round trip of its async twin, and a scan makes tens of
  // thousands of them (this is what makes a no-op re-run fast). The event loop gets control back at
  // every FETCH.

  // Whether a folder exists and is reachable without leaving its vault: a folder is safe when its
  // parent is and it is a real folder, or (source only) a symlink resolving inside the root. Cached
  // per folder, so a shard's parent ("24" of "24/07") is checked once and each folder costs one lstat.
  const folders = { source: new Map<string, boolean>(), target: plan.targetFolders };
  const folderInside = (root: VaultRoot, rel: string, side: 'source' | 'target'): boolean => {
    const known = folders[side].get(rel);
    if (known !== undefined) return known;
    const parent = path.posix.dirname(rel);
    let present = false;
    if (parent === '.' || folderInside(root, parent, side)) {
      const abs = resolveIn(root, rel);
      const s = lstatSync(abs, { throwIfNoEntry: false });
      if (s?.isSymbolicLink()) {
        // The sync writes only through real folders of EB's vault, wherever a link would lead.
        if (side === 'target') throw new SafetyError(`The target folder ${abs} is a symlink; the sync writes only through real folders of EB's vault.`, "Replace it with a real folder (or remove it); nothing was copied.");
        const real = (() => {
          try {
            return realpathSync.native(abs);
          } catch {
            return undefined; // dangling: nothing to read there
          }
        })();
        if (real !== undefined && !isInside(root, real)) throw new SafetyError(`The source folder ${abs} is a symlink to ${real}, outside the source vault ${root}.`, 'Remove that symlink from the source vault; nothing was copied.');
        present = real !== undefined && statSync(real).isDirectory();
      } else present = s?.isDirectory() ?? false;
    }
    folders[side].set(rel, present);
    return present;
  };
  const scanFolder = (dir: VaultRelPath, groups: FileGroup[]) => {
    const srcDir = resolveIn(source, dir);
    const names = folderInside(source, dir, 'source') ? readdirSync(srcDir) : [];
    // The target side is not listed: an lstat per wanted name answers "there, and how big" for
    // less (a crashed run's temporary files are swept separately, see syncVault).
    const dstDir = folderInside(target, dir, 'target') ? resolveIn(target, dir) : undefined;
    for (const group of groups) {
      const { found, missing } = filesOfGroup(group, names);
      for (const n of missing) plan.missing.push(joinRel(dir, n));
      for (const name of found) {
        const rel = joinRel(dir, name);
        if (seen.has(rel)) continue;
        seen.add(rel);
        let src = path.join(srcDir, name);
        let s = lstatSync(src);
        const linked = s.isSymbolicLink();
        if (linked) {
          let real: string;
          try {
            real = realpathSync.native(src);
          } catch {
            plan.missing.push(rel); // a dangling link: the file it named is gone
            continue;
          }
          if (!isInside(source, real)) throw new SafetyError(`The source file ${src} is a symlink to ${real}, outside the source vault.`, 'Remove that symlink from the source vault; nothing was copied.');
          src = real;
          s = statSync(real);
        }
        if (!s.isFile()) {
          // A link standing where a file of the group should be (e.g. to a folder) names no artwork:
          // that file is missing. A real folder or device merely sharing the prefix is not artwork.
          if (linked) plan.missing.push(rel);
          continue;
        }
        const state = fileState(s);
        const dstStat = dstDir === undefined ? undefined : lstatSync(path.join(dstDir, name), { throwIfNoEntry: false });
        const dst = dstStat && fileState(dstStat);
        const action = decide(state, dst, decideOpts);
        plan.files.push({ rel, src, state, action, fixOwnership: dst !== undefined && (action === 'skip' || action === 'compare') && needsOwnership(state, dst, decideOpts) });
      }
    }
  };

  const client = await connect(o.db);
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows: columnRows } = await client.query<{ c: string }>("SELECT table_name || '.' || column_name AS c FROM information_schema.columns WHERE table_schema = 'public'");
    const columns = new Set(columnRows.map((r) => r.c));
    for (const kind of layout.kinds) {
      // A family whose columns this schema lacks has no files here (the sandbox has no blog).
      if (!kind.needs.every((c) => columns.has(c))) {
        o.ui.debug(`${kind.name}: EB's schema has no ${kind.needs.filter((c) => !columns.has(c)).join(', ')}; none referenced`);
        continue;
      }
      const { rows: countRows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM (${kind.sql}) q`);
      const progress = o.ui.progress(`Mapping EB's ${kind.name} to files`, 'rows', Number(countRows[0]!.n));
      await client.query(`DECLARE vault_groups NO SCROLL CURSOR FOR ${kind.sql}`);
      // Rows come ordered by folder: the last folder of a batch may continue in the next one.
      let pending: { dir: VaultRelPath; groups: FileGroup[] } | undefined;
      const timing = { db: 0, scan: 0 };
      for (;;) {
        const fetchStarted = performance.now();
        const { rows } = await client.query(`FETCH ${fetchRows} FROM vault_groups`);
        const scanStarted = performance.now();
        timing.db += scanStarted - fetchStarted;
        const batch: { dir: VaultRelPath; groups: FileGroup[] }[] = pending ? [pending] : [];
        for (const row of rows) {
          const group = fileGroup(kind, row);
          plan.groups++;
          // Kept by --prune, never copied (export zips).
          if (!kind.copy) {
            for (const ext of group.exts) plan.kept.push(joinRel(group.dir, `${group.key}.${ext}`));
            continue;
          }
          const last = batch.at(-1);
          if (last?.dir === group.dir) last.groups.push(group);
          else batch.push({ dir: group.dir, groups: [group] });
        }
        pending = rows.length ? batch.pop() : undefined;
        for (const f of batch) scanFolder(f.dir, f.groups);
        timing.scan += performance.now() - scanStarted;
        progress.tick(rows.length);
        if (!rows.length) break;
      }
      await client.query('CLOSE vault_groups');
      progress.done(`${plan.files.length.toLocaleString('en-US')} files so far`);
      o.ui.debug(`${kind.name}: ${Math.round(timing.db)}ms reading EB's rows, ${Math.round(timing.scan)}ms listing folders of both vaults`);
    }
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
  return plan;
}

/** sha256 of a file, streamed from an open handle (closed at the end). */
function digest(handle: FileHandle): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    handle
      .createReadStream()
      .on('error', reject)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')));
  });
}

const permissionHint = (owner: Owner) => `Run it as root (the target must belong to uid ${owner.uid}), or pass --owner with your own uid:gid for a private copy.`;

/**
 * What --prune removes: every entry under the target root, other than a folder, that EB's database
 * does not reference. The walk goes only through real folders and never follows a symlink (a link
 * is an entry like a file, removed as itself), so nothing outside the root is ever reached.
 */
async function pruneCandidates(tree: ConfinedTree, plan: Plan): Promise<{ rel: string; name: Buffer; bytes: number }[]> {
  // Exactly the files the plan copies or keeps (EA's files of EB's posts) and those it reports
  // missing: a name that merely starts with a referenced key ("<key> copy.png", "<key>é.png") but
  // that EA no longer has is not kept.
  const keep = new Set<string>([...plan.files.map((f) => f.rel), ...plan.missing, ...plan.kept]);
  const out: { rel: string; name: Buffer; bytes: number }[] = [];
  await tree.walk(async (folder, name, rel) => {
    if (keep.has(rel)) return;
    const h = await open(folder.entry(name), O_PATH | fsConstants.O_NOFOLLOW).catch(() => undefined);
    if (!h) return; // gone since the listing
    try {
      out.push({ rel, name, bytes: (await h.stat()).size });
    } finally {
      await h.close();
    }
  });
  return out;
}

/**
 * Copies to EB's vault exactly the files EB's database references (see docs/vault-sync.md):
 * plan, refuse what is unsafe, sweep an interrupted run's temporary files, prune if asked, check
 * free space, then copy with bounded concurrency under temporary names, made durable a batch at a
 * time (one syncfs) before they are renamed.
 */
export async function syncVault(o: SyncVaultOptions): Promise<SyncVaultSummary> {
  const started = Date.now();
  const layout = o.layout ?? vaultLayout;
  const source = await vaultRoot(o.source, 'source', 'Set VAULT_HOST_PATH in .env.prod or pass --source.');
  const target = await vaultRoot(o.target, 'target', `Create it (mkdir -p ${o.target} && chown ${o.owner.uid}:${o.owner.gid} ${o.target}) or fix VAULT_HOST_PATH in .env.dev / --target.`);
  const production = await realpath(o.production).catch(() => path.resolve(o.production));
  checkRoots({ source, target, production: [production] });
  if (o.link && !o.dryRun) {
    const [a, b] = await Promise.all([stat(source), stat(target)]);
    if (a.dev !== b.dev) throw new ConfigError(`--link needs both vaults on one filesystem, but ${source} and ${target} are on different devices.`, [], 'Run without --link to copy the files.');
  }
  // Every read and write in EB's vault goes through `tree` (lib/core/confined-tree.ts): never through a link.
  const job = async (tree: ConfinedTree): Promise<SyncVaultSummary> => {
    o.ui.debug(`Reading EB's database ${describeConnection(o.db)}`);
    const plan = await buildPlan(o, source, target, layout);
    const transfer = plan.files.filter((f) => f.action !== 'skip');
    const plannedBytes = transfer.reduce((n, f) => n + (f.action === 'link' ? 0 : f.state.size), 0);
    const summary: SyncVaultSummary = {
      ok: true,
      dryRun: o.dryRun,
      source,
      target,
      groups: plan.groups,
      files: plan.files.length,
      copied: 0,
      replaced: 0,
      linked: 0,
      skipped: 0,
      ownershipFixed: 0,
      missing: plan.missing.length,
      missingFirst: plan.missing.slice(0, missingShown),
      pruned: 0,
      prunedBytes: 0,
      staleTempsRemoved: 0,
      plannedBytes,
      bytesCopied: 0,
      durationMs: 0,
    };
    if (plan.missing.length) {
      const message = `${plan.missing.length} file${plan.missing.length === 1 ? '' : 's'} referenced by EB's database ${plan.missing.length === 1 ? 'is' : 'are'} missing from the source vault ${source} (first: ${plan.missing.slice(0, 5).join(', ')}).`;
      if (o.strict) throw new JobError(message, 'Nothing was copied (--strict). Check the source vault, or run without --strict to copy the rest.');
      o.ui.warn(message);
    }
    if (o.dryRun) {
      summary.wouldTransfer = transfer.map((f) => ({ path: f.rel, bytes: f.state.size, action: f.action as PlannedFile['action'] }));
      if (o.prune) summary.wouldPrune = (await pruneCandidates(tree, plan)).map((p) => p.rel);
      summary.skipped = plan.files.length - transfer.length;
      summary.durationMs = Date.now() - started;
      return summary;
    }

    // A run that writes leaves a marker until it has finished: finding one means the last run was
    // interrupted, and its temporary files (never under a final name) are swept from the target.
    const marker = statePathFor(target, 'incomplete');
    if (existsSync(marker)) summary.staleTempsRemoved = await sweepTemporaries(tree);
    const prune = o.prune ? await pruneCandidates(tree, plan) : [];
    const prunedBytes = prune.reduce((n, p) => n + p.bytes, 0);
    if (prune.length) await o.confirm(`Remove ${prune.length} file${prune.length === 1 ? '' : 's'} (${formatBytes(prunedBytes)}) that EB's database no longer references from ${target}?`);
    const writes = transfer.length > 0 || prune.length > 0 || plan.files.some((f) => f.fixOwnership);
    if (writes) await writeFileAtomic(marker, `${JSON.stringify({ pid: process.pid, since: new Date().toISOString() })}\n`, 0o644);
    if (prune.length) {
      const emptied = new Set<string>();
      for (const p of prune) {
        const dir = path.posix.dirname(p.rel);
        const folder = await tree.folder(dir === '.' ? '' : dir).catch(() => undefined);
        if (!folder) continue; // swapped for a link since the walk: not ours to touch
        try {
          await tree.remove(folder, p.name);
        } finally {
          folder.release();
        }
        if (dir !== '.') emptied.add(dir);
      }
      // Deepest first, so a parent is tried once its children are gone.
      for (const dir of [...emptied].sort((a, b) => b.length - a.length)) await tree.removeEmptyFolders(dir);
      summary.pruned = prune.length;
      summary.prunedBytes = prunedBytes;
    }

    const space = freeSpaceVerdict(plannedBytes, await statfs(target));
    if (!space.ok) {
      throw new JobError(`EB's vault ${target} has ${formatBytes(space.available)} free, but copying ${formatBytes(plannedBytes)} needs ${formatBytes(space.required)} with the safety margin.`, 'Free space on that filesystem (or use --link if both vaults share it), then run again; nothing was copied.');
    }

    // Folders are opened (and created) component by component, each without following a link: a
    // symlink inside EB's vault never leads a write elsewhere (e.g. into EA's vault or /etc).
    const folderOf = (rel: VaultRelPath): Promise<Folder> => {
      const dir = path.posix.dirname(rel);
      return tree.folder(dir === '.' ? '' : dir, { uid: o.owner.uid, gid: o.owner.gid, mode: layout.dirMode }).then((f) => f!);
    };
    /** Owner and mode of a file of EB's vault, through the tree; false when it is not a plain file with one name. */
    const owned = async (folder: Folder, name: string, mode: number | undefined): Promise<boolean> => {
      try {
        return await tree.own(folder, name, o.owner, mode);
      } catch (err) {
        if (isErrno(err, 'EPERM')) throw new JobError(`Cannot give ${path.join(target, folder.rel, name)} to uid ${o.owner.uid}.`, permissionHint(o.owner));
        throw err;
      }
    };

    const progress = o.ui.progress(`Copying ${transfer.length.toLocaleString('en-US')} files`, plannedBytes > 0 ? 'bytes' : 'files', plannedBytes > 0 ? plannedBytes : transfer.length);
    // Durability without an fsync per file: files are staged under temporary names; each batch is
    // made durable by ONE syncfs of the target filesystem and only then renamed to its final names;
    // a last syncfs makes the renames (and created or removed folders) durable. So a final name only
    // ever holds a complete file, at two journal commits per batch instead of one per file.
    const staged = new Map<string, { f: Planned; folder: Folder; tmp: string; name: string; action: 'copy' | 'replace' | 'link' }>();
    let stagedBytes = 0;
    let committing: Promise<void> = Promise.resolve();
    const commit = (): Promise<void> => {
      const batch = [...staged];
      staged.clear();
      stagedBytes = 0;
      committing = committing.then(async () => {
        if (!batch.length) return;
        const t0 = Date.now();
        await syncFilesystem(target);
        o.ui.debug(`${batch.length} files made durable by one syncfs in ${Date.now() - t0}ms`);
        await mapLimit(batch, 16, async ([, { f, folder, tmp, name, action }]) => {
          try {
            await tree.rename(folder, tmp, name);
          } finally {
            folder.release();
          }
          if (action === 'link') summary.linked++;
          else {
            summary.copied++;
            if (action === 'replace') summary.replaced++;
            summary.bytesCopied += f.state.size;
          }
          progress.tick(plannedBytes > 0 ? (action === 'link' ? 0 : f.state.size) : 1);
        });
      });
      return committing;
    };
    const transferOne = async (f: Planned): Promise<void> => {
      const name = path.posix.basename(f.rel);
      const folder = await folderOf(f.rel);
      let keep = false;
      try {
        let action = f.action;
        if (action === 'compare') {
          const [a, b] = await Promise.all([open(f.src).then(digest), tree.openFile(folder, name).then(digest)]);
          action = a === b ? 'skip' : 'replace';
        }
        if (action === 'skip') {
          if (f.fixOwnership && !(await owned(folder, name, layout.fileMode))) {
            action = 'replace'; // a link or a second name now: a fresh copy replaces it, touching nothing else
          } else {
            summary.skipped++;
            if (f.action === 'compare') progress.tick(plannedBytes > 0 ? f.state.size : 1);
            if (f.fixOwnership) summary.ownershipFixed++;
            return;
          }
        }
        const tmp = path.basename(temporaryName(path.join(target, f.rel)));
        try {
          if (action === 'link') await tree.linkInto(f.src, folder, tmp);
          else {
            await tree.copyInto(f.src, folder, tmp); // keeps the source's mode
            if (!(await owned(folder, tmp, f.state.mode === layout.fileMode ? undefined : layout.fileMode))) {
              throw new SafetyError(`The temporary file ${path.join(target, folder.rel, tmp)} was replaced while the sync wrote it.`, "Something else writes EB's vault during the sync; stop it and run again.");
            }
          }
        } catch (err) {
          await tree.remove(folder, tmp);
          // The source vanished since the plan (EA deleted it): report it, keep going.
          if (isErrno(err, 'ENOENT') && (err as NodeJS.ErrnoException).path === f.src) {
            summary.missing++;
            if (summary.missingFirst.length < missingShown) summary.missingFirst.push(f.rel);
            return;
          }
          throw err;
        }
        keep = true; // the staged entry holds the folder until its rename
        staged.set(`${folder.rel}/${tmp}`, { f, folder, tmp, name, action });
        stagedBytes += action === 'link' ? 0 : f.state.size;
      } finally {
        if (!keep) folder.release();
      }
      if (staged.size >= batchFiles || stagedBytes >= batchBytes) await commit();
    };
    try {
      await mapLimit(
        plan.files.filter((f) => f.action !== 'skip' || f.fixOwnership),
        o.jobs,
        transferOne,
      );
      await commit();
    } catch (err) {
      // Staged files never got their final name; remove them now (the next run would anyway).
      await committing.catch(() => undefined);
      for (const { folder, tmp } of staged.values()) {
        await tree.remove(folder, tmp);
        folder.release();
      }
      throw err;
    }
    // Renames, new folders and removals become durable in one flush; a run that changed nothing skips it.
    if (writes || summary.staleTempsRemoved) await syncFilesystem(target);
    await rm(marker, { force: true });
    summary.skipped += plan.files.filter((f) => f.action === 'skip' && !f.fixOwnership).length;
    progress.done(`${summary.copied} copied, ${summary.linked} linked, ${formatBytes(summary.bytesCopied)}`);
    summary.durationMs = Date.now() - started;
    return summary;
  };
  const inTree = async () => {
    const tree = await ConfinedTree.open(target);
    try {
      return await job(tree);
    } catch (err) {
      // An entry the tree names by descriptor that vanished or turned into a link under the sync:
      // something else writes EB's vault right now (nothing outside it was touched).
      const e = err as NodeJS.ErrnoException;
      if (!(err instanceof OpsError) && String(e.path ?? '').startsWith('/proc/self/fd/') && ['ENOENT', 'ELOOP', 'ENOTDIR', 'EEXIST'].includes(e.code ?? '')) {
        throw new JobError(`EB's vault ${target} changed while the sync wrote it (${e.code} on an entry of it).`, "Stop whatever writes EB's vault (its api and worker containers), then run again; nothing outside the vault was touched.");
      }
      throw err;
    } finally {
      await tree.close();
    }
  };
  if (o.dryRun) return inTree();
  return withLock(statePathFor(target, 'lock'), 'sync-vault-to-dev', inTree);
}

/** The lock and the interrupted-run marker of one target vault: outside it (a file in the vault would be served and pruned). */
function statePathFor(target: VaultRoot, what: 'lock' | 'incomplete'): string {
  return path.join(projectRoot, '.state', `sync-vault-${createHash('sha256').update(target).digest('hex').slice(0, 16)}.${what}`);
}

/** Removes every temporary-named file under the target (an interrupted run's), never following a symlink. */
async function sweepTemporaries(tree: ConfinedTree): Promise<number> {
  let removed = 0;
  await tree.walk(async (folder, name) => {
    if (!isTemporaryName(name.toString())) return;
    await tree.remove(folder, name);
    removed++;
  });
  return removed;
}

/** The human report of a run (stdout); --json prints the summary itself. */
export function describeSync(s: SyncVaultSummary): string[] {
  const lines: string[] = [];
  if (s.dryRun) {
    for (const f of s.wouldTransfer ?? []) lines.push(`would ${f.action} ${f.path} (${formatBytes(f.bytes)})`);
    for (const p of s.wouldPrune ?? []) lines.push(`would prune ${p}`);
    lines.push(
      `Dry run: ${s.wouldTransfer?.length ?? 0} of ${s.files} referenced files to transfer (${formatBytes(s.plannedBytes)} to copy), ${s.skipped} already there` +
        `${s.wouldPrune ? `, ${s.wouldPrune.length} to prune` : ''}, ${s.missing} missing in the source; nothing was changed.`,
    );
  } else {
    lines.push(
      `${s.groups} posts, ${s.files} files: ${s.copied} copied (${s.replaced} replaced), ${s.linked} linked, ${s.skipped} skipped, ` +
        `${s.missing} missing, ${s.pruned} pruned; ${formatBytes(s.bytesCopied)} copied in ${(s.durationMs / 1000).toFixed(1)}s.`,
    );
    if (s.ownershipFixed) lines.push(`Owner or mode fixed on ${s.ownershipFixed} existing files.`);
    if (s.staleTempsRemoved) lines.push(`Removed ${s.staleTempsRemoved} temporary files left by an interrupted run.`);
  }
  if (s.missing) lines.push(`Missing in ${s.source}: ${s.missingFirst.join(', ')}${s.missing > s.missingFirst.length ? ', ...' : ''}`);
  return lines;
}

/** What the entry passes in: its flags as given, before any configuration is read. */
export interface SyncVaultRequest {
  source?: string | undefined;
  target?: string | undefined;
  owner: string;
  jobs: number;
  link: boolean;
  checksum: boolean;
  prune: boolean;
  strict: boolean;
  dryRun: boolean;
  ui: Ui;
  confirm: Confirm;
}

/**
 * sync-vault-to-dev: source from .env.prod's VAULT_HOST_PATH, target and database from .env.dev
 * (--source / --target override the folders; production's vault stays protected either way).
 */
export function runSyncVault(prod: EnvConfig, dev: EnvConfig, r: SyncVaultRequest): Promise<SyncVaultSummary> {
  const { jobs } = r;
  const owner = parseOwner(r.owner);
  return syncVault({
    source: r.source ?? prod.vars.VAULT_HOST_PATH,
    target: r.target ?? dev.vars.VAULT_HOST_PATH,
    production: prod.vars.VAULT_HOST_PATH,
    db: connectionFor(dev),
    owner,
    jobs,
    link: r.link,
    checksum: r.checksum,
    prune: r.prune,
    strict: r.strict,
    dryRun: r.dryRun,
    ui: r.ui,
    confirm: r.confirm,
  });
}

/** `make demo`, after the data sample: EB's vault gets the files of EB's sampled posts. */
