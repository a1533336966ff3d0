// The layering of lib/ (docs/architecture.md), read from the imports themselves: a rule that
// only lives in a document drifts, this one fails the build.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';

type Layer = 'core' | 'tools' | 'domain' | 'jobs' | 'dev' | 'scripts' | 'bench' | 'tests';

interface Edge {
  from: string;
  to: string;
  /** `import type`: erased at run time, so it does no I/O and makes no run-time cycle. */
  typeOnly: boolean;
  line: number;
}

const walk = (dir: string): string[] =>
  readdirSync(path.join(projectRoot, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'node_modules' || e.name === 'fixtures' ? [] : walk(path.join(dir, e.name))) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );

const importPattern = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?'([^']+)'|import\(\s*'([^']+)'\s*\)/gm;

/** Every import of a file: relative ones resolved to repository paths, packages as written. */
export function importsOf(file: string, text: string): Edge[] {
  const out: Edge[] = [];
  for (const m of text.matchAll(importPattern)) {
    const spec = m[3] ?? m[4]!;
    const typeOnly = Boolean(m[2]);
    const line = text.slice(0, m.index).split('\n').length;
    out.push({ from: file, to: spec.startsWith('.') ? path.normalize(path.join(path.dirname(file), spec)) : spec, typeOnly, line });
  }
  return out;
}

export function layerOf(file: string): Layer | undefined {
  const [top, sub] = file.split(path.sep);
  if (top === 'lib') return (['core', 'tools', 'domain', 'jobs'] as const).find((l) => l === sub);
  return (['dev', 'scripts', 'bench', 'tests'] as const).find((l) => l === top);
}

/** Which layers each layer may import at run time (domain/ may also take types from tools/: they are erased). */
const allowed: Record<Layer, readonly Layer[]> = {
  core: ['core'],
  tools: ['core', 'domain', 'tools'],
  domain: ['core', 'domain'],
  jobs: ['core', 'tools', 'domain'],
  dev: ['core', 'tools', 'domain', 'jobs', 'dev'],
  scripts: ['core', 'tools', 'domain', 'jobs', 'dev'],
  bench: ['core', 'tools', 'domain', 'jobs', 'dev', 'bench'],
  tests: ['core', 'tools', 'domain', 'jobs', 'dev', 'tests', 'scripts'],
};

/** Packages and built-ins that reach a disk, a process, a socket or a server: not for domain/. */
const ioModules = /^(node:)?(fs|fs\/promises|child_process|net|tls|http|https|dns|dgram|worker_threads)$|^(zx|pg|pg-copy-streams|mqtt|ora|prompts)$/;

export function violations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const from = layerOf(e.from);
    if (!from) continue;
    const where = `${e.from}:${e.line}`;
    if (!e.to.includes(path.sep) || !e.to.endsWith('.ts')) {
      if (from === 'domain' && !e.typeOnly && ioModules.test(e.to)) out.push(`${where}: domain/ does no I/O, yet imports ${e.to}`);
      continue;
    }
    const to = layerOf(e.to);
    if (!to) continue;
    if (!allowed[from].includes(to) && !(e.typeOnly && from === 'domain' && to === 'tools')) out.push(`${where}: ${from} may not import ${to} (${e.to})`);
    if (from === 'jobs' && to === 'jobs') out.push(`${where}: a job imports another job (${e.to})`);
  }
  return [...new Set(out)];
}

/** Run-time import cycles among lib/ and dev/ modules (type-only imports are erased, so they cannot loop). */
export function cycles(edges: readonly Edge[]): string[][] {
  const graph = new Map<string, string[]>();
  for (const e of edges) if (!e.typeOnly && e.to.endsWith('.ts')) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (state.get(m) === 'open') found.push([...stack.slice(stack.indexOf(m)), m]);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...graph.keys()].sort()) if (!state.has(n)) visit(n);
  return found;
}

const files = [...walk('lib'), ...walk('dev'), ...walk('scripts'), ...walk('bench'), ...walk('tests')];
const edges = files.flatMap((f) => importsOf(f, readFileSync(path.join(projectRoot, f), 'utf8')));

test('lib/ has exactly the four layers, and nothing outside them', () => {
  const stray = walk('lib').filter((f) => !layerOf(f));
  assert.equal(stray, [], `modules outside lib/{core,tools,domain,jobs}: ${stray.join(', ')}`);
});

test('every import follows the layer rules', () => {
  assert.equal(violations(edges), []);
});

test('process.env is read only by entries, dev/ and tests (lib/ takes Settings passed in)', () => {
  // exec.ts, the one seam for child processes, hands the environment on to children; it reads no setting from it.
  const readers = walk('lib').filter((f) => f !== path.join('lib', 'core', 'exec.ts') && /process\.env\b/.test(readFileSync(path.join(projectRoot, f), 'utf8')));
  assert.equal(readers, []);
});

test('there are no import cycles', () => {
  assert.equal(cycles(edges.filter((e) => /^(lib|dev)\//.test(e.from))), []);
});

test('the rules catch what they forbid', () => {
  const e = (from: string, to: string, typeOnly = false): Edge => ({ from, to, typeOnly, line: 1 });
  assert.equal(violations([e('lib/jobs/deploy.ts', 'lib/jobs/backup.ts')]).length, 2);
  assert.equal(violations([e('lib/domain/sampling.ts', 'node:fs')]).length, 1);
  assert.equal(violations([e('lib/domain/sampling.ts', 'pg', true)]).length, 0);
  assert.equal(violations([e('lib/tools/compose.ts', 'dev/ports.ts')]).length, 1);
  assert.equal(violations([e('lib/domain/pki.ts', 'lib/tools/openssl.ts')]).length, 1);
  assert.equal(violations([e('lib/domain/pki.ts', 'lib/tools/openssl.ts', true)]).length, 0);
  assert.equal(violations([e('bench/run.ts', 'tests/harness/vault.ts')]).length, 1);
  assert.equal(cycles([e('lib/a.ts', 'lib/b.ts'), e('lib/b.ts', 'lib/a.ts')]).length, 1);
  assert.equal(cycles([e('lib/a.ts', 'lib/b.ts'), e('lib/b.ts', 'lib/a.ts', true)]).length, 0);
});

test.run();
