// Reads an app checkout (fabkury/makapix, or a fixture that mirrors it) for `make check`'s contract
// audit: every file's path, and the text of the files whose environment reads matter. Read-only.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** Folders never walked: dependencies, build output, history. */
const skipped = new Set(['node_modules', '.git', '.next', '__pycache__', '.venv', 'venv']);

export interface AppTree {
  root: string;
  /** Every file, relative to the root, with forward slashes. */
  paths: string[];
  /** Text of the source files under the given folders (by relative path). */
  sources: Map<string, string>;
}

async function walk(root: string, rel = ''): Promise<string[]> {
  const entries = await readdir(path.join(root, rel), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    if (skipped.has(e.name)) continue;
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await walk(root, p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Walks the checkout and reads the sources matching `wanted` (relative path -> read it?). */
export async function readAppTree(root: string, wanted: (relPath: string) => boolean): Promise<AppTree> {
  const paths = (await walk(root)).sort();
  const sources = new Map<string, string>();
  for (const p of paths.filter(wanted)) sources.set(p, await readFile(path.join(root, p), 'utf8'));
  return { root, paths, sources };
}
