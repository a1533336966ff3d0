// Runs every uvu test file in its own process (a crash or a leaked server stays contained),
// two at a time, with tests/setup-errors.ts preloaded (uvu would swallow a test.before's error),
// and ends with the one line CI reads: "N passed, N failed".
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const loader = path.join(root, 'node_modules/tsx/dist/loader.mjs');
const setupErrors = path.join(root, 'tests/setup-errors.ts');
const jobs = Math.max(1, Number(process.env.TEST_JOBS ?? 2));
const timeoutMs = Number(process.env.TEST_TIMEOUT_S ?? 900) * 1000;
const filter = process.env.TEST_FILTER ? new RegExp(process.env.TEST_FILTER) : undefined;

function collect(target: string): string[] {
  const abs = path.resolve(target);
  if (statSync(abs).isFile()) return [abs];
  return readdirSync(abs, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? collect(path.join(abs, e.name)) : e.name.endsWith('.test.ts') ? [path.join(abs, e.name)] : []))
    .sort();
}

interface Outcome {
  file: string;
  passed: number;
  failed: number;
  output: string;
}

/** uvu prints "Total: N / Passed: N / Skipped: N" per process; a process that dies without it failed. */
export function countOutcome(output: string, exitCode: number | null): { passed: number; failed: number } {
  const num = (label: string) => Number(new RegExp(`${label}:\\s+(\\d+)`).exec(output)?.[1] ?? NaN);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped') || 0;
  if (Number.isNaN(total) || Number.isNaN(passed)) return { passed: 0, failed: 1 };
  const failed = total - passed - skipped;
  return { passed, failed: exitCode === 0 ? failed : Math.max(failed, 1) };
}

function runFile(file: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', loader, '--import', setupErrors, file], { cwd: root, env: { ...process.env, FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let lingered = false;
    let grace: NodeJS.Timeout | undefined;
    const collectOutput = (d: Buffer) => {
      output += d;
      // uvu has printed its totals: a process still alive after that only holds a leaked handle.
      if (!grace && /Duration:\s+\S+/.test(output)) {
        grace = setTimeout(() => {
          lingered = true;
          output += `\n[runner] ${path.relative(root, file)} kept running after its tests ended (a handle left open) and was stopped.\n`;
          child.kill('SIGTERM');
        }, 10_000);
      }
    };
    child.stdout.on('data', collectOutput);
    child.stderr.on('data', collectOutput);
    const timer = setTimeout(() => {
      output += `\n[runner] ${path.relative(root, file)} ran longer than ${timeoutMs / 1000}s and was stopped.\n`;
      child.kill('SIGTERM');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({ file, ...countOutcome(output, lingered ? 0 : code), output });
    });
  });
}

async function main(targets: string[]): Promise<number> {
  const files = targets.flatMap(collect).filter((f) => !filter || filter.test(f));
  const queue = [...files];
  let passed = 0;
  let failed = 0;
  const worker = async () => {
    for (let file = queue.shift(); file; file = queue.shift()) {
      const started = Date.now();
      const o = await runFile(file);
      passed += o.passed;
      failed += o.failed;
      const status = o.failed ? 'FAIL' : 'ok';
      process.stdout.write(`\n=== ${status} ${path.relative(root, file)} (${o.passed} passed, ${o.failed} failed, ${((Date.now() - started) / 1000).toFixed(1)}s)\n${o.output.trimEnd()}\n`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, files.length || 1) }, worker));
  if (files.length === 0) failed++;
  process.stdout.write(`\n${files.length} test files\n${passed} passed, ${failed} failed\n`);
  return failed > 0 || passed === 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2).length ? process.argv.slice(2) : ['tests/unit', 'tests/integration']).then((code) => process.exit(code));
}
