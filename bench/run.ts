// `make bench`: runs each bench/*.bench.ts in turn (one process each, never two at once: they
// compare times measured side by side, so they must not compete for the two cores).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

const dir = import.meta.dirname;
const only = process.argv[2];
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts') && (!only || f.includes(only))).sort();
let failed = 0;
for (const f of files) {
  process.stdout.write(`\n### ${f}\n`);
  const r = spawnSync(path.join(dir, '../bin/ts'), [path.join(dir, f)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.stdout.write(`\n${files.length - failed} benchmarks completed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
