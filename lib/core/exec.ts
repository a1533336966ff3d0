// The one seam for child processes. A job decides its work as values (a `Command`, a `Step` list);
// `--dry-run` prints those values and the runner executes the very same ones, so a plan cannot
// drift from what happens.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { JobError } from './errors.ts';
import { formatDuration } from './ui.ts';

export interface Command {
  cmd: string;
  argv: readonly string[];
  /** Extra variables for the child (never printed: values may be secrets). */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Pass the child's output through to ours (long builds, test runs) instead of capturing it. */
  stream?: boolean;
  /** A non-zero exit is returned, not thrown. */
  nothrow?: boolean;
  /** Written to the child's stdin, then closed (passwords go here, never into argv). */
  input?: string;
  timeoutMs?: number;
}

const needsQuotes = /[^A-Za-z0-9_@%+=:,./-]/;
const quote = (s: string) => (s === '' ? "''" : needsQuotes.test(s) ? `'${s.replaceAll("'", `'\\''`)}'` : s);

/** A command as a shell line, for plans and logs; environment values are named, never shown. */
export function renderCommand(c: Command): string {
  const env = Object.keys(c.env ?? {}).map((k) => `${k}=…`);
  const line = [...env, c.cmd, ...c.argv].map((s, i) => (i < env.length ? s : quote(s))).join(' ');
  return c.cwd ? `(cd ${quote(c.cwd)} && ${line})` : line;
}

/** The last lines of a tool's output, on one line: enough for an error message. */
export const tail = (text: string, lines = 5) => text.trim().split('\n').slice(-lines).join(' | ');

/** The environment a child gets: ours, with the command's own variables over it. */
const childEnv = (c: Command) => (c.env ? { ...process.env, ...c.env } : process.env);

/** Starts a command whose data streams (a dump is gigabytes): the caller wires its stdio and awaits its exit. */
export const start = (c: Command, stdio: StdioOptions): ChildProcess => spawn(c.cmd, [...c.argv], { cwd: c.cwd, env: childEnv(c), stdio });

/** Runs a command without a shell; throws a JobError naming it when it fails (unless `nothrow`). */
export function run(c: Command, opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(c.cmd, [...c.argv], {
      cwd: c.cwd,
      env: childEnv(c),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.stream ? 'inherit' : 'pipe', opts.stream ? 'inherit' : 'pipe'],
      timeout: opts.timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' ? `${c.cmd} is not installed (not on PATH)` : `${c.cmd} could not start: ${err.message}`;
      if (opts.nothrow) resolve({ exitCode: 127, stdout, stderr: why });
      else reject(new JobError(`${why}.`, 'Install it (make setup) and run again.'));
    });
    child.on('close', (code, signal) => {
      const exitCode = code ?? (signal ? 128 : 1);
      if (exitCode === 0 || opts.nothrow) return resolve({ exitCode, stdout, stderr });
      const why = signal ? `was stopped by ${signal}` : `exited ${exitCode}`;
      reject(new JobError(`\`${renderCommand(c)}\` ${why}: ${tail(stderr || stdout) || 'no output'}.`, 'Run it by hand to see the whole output.'));
    });
  });
}

export interface PollPolicy {
  intervalMs: number;
  timeoutMs: number;
  /** Successes in a row before the condition counts as met (a flapping service is not healthy). */
  consecutive?: number;
}

/** Polls `probe` until it holds `consecutive` times in a row, or the deadline passes. */
export async function poll(probe: () => Promise<boolean>, policy: PollPolicy): Promise<{ met: boolean; attempts: number }> {
  const started = Date.now();
  const need = policy.consecutive ?? 1;
  let streak = 0;
  let attempts = 0;
  while (Date.now() - started < policy.timeoutMs) {
    attempts++;
    streak = (await probe()) ? streak + 1 : 0;
    if (streak >= need) return { met: true, attempts };
    await new Promise((r) => setTimeout(r, policy.intervalMs));
  }
  return { met: false, attempts };
}

/** Runs `fn` over `items` with at most `concurrency` at once; results keep the items' order. */
export async function mapLimit<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, worker));
  return results;
}

/**
 * One step of a job's plan. `command` runs a child process; `wait` polls a command until it
 * succeeds; `task` is work done in-process (a stream, a file write) described by its `detail`;
 * `rollback` runs only when a step before it failed, in reverse order.
 */
export type Step =
  | { kind: 'command'; title: string; command: Command; stream?: boolean }
  | { kind: 'wait'; title: string; probe: Command; policy: PollPolicy }
  | { kind: 'task'; title: string; detail: string; run: () => Promise<void> }
  | { kind: 'rollback'; title: string; command: Command };

/** The plan as the lines `--dry-run` prints: exactly what `runPlan` would execute. */
export function renderPlan(steps: readonly Step[]): string[] {
  return steps.map((s, i) => {
    const n = `${i + 1}.`;
    switch (s.kind) {
      case 'command':
        return `${n} ${s.title}: ${renderCommand(s.command)}`;
      case 'wait':
        return `${n} ${s.title}: until \`${renderCommand(s.probe)}\` succeeds${(s.policy.consecutive ?? 1) > 1 ? ` ${s.policy.consecutive} times in a row` : ''} (every ${formatDuration(s.policy.intervalMs)}, at most ${formatDuration(s.policy.timeoutMs)})`;
      case 'task':
        return `${n} ${s.title}: ${s.detail}`;
      case 'rollback':
        return `${n} if anything above failed, ${s.title}: ${renderCommand(s.command)}`;
    }
  });
}

export interface PlanRunner {
  /** Announces a step and reports its outcome (the Ui's spinner or timestamped line). */
  run<T>(title: string, fn: () => Promise<T>): Promise<T>;
}

/** Executes a plan in order; on a failure, runs the rollback steps (newest first), then rethrows. */
export async function runPlan(steps: readonly Step[], ui: PlanRunner): Promise<void> {
  const rollbacks: Extract<Step, { kind: 'rollback' }>[] = [];
  try {
    for (const s of steps) {
      switch (s.kind) {
        case 'command':
          await ui.run(s.title, () => run(s.command, { stream: s.stream ?? false }));
          break;
        case 'wait':
          await ui.run(s.title, async () => {
            const { met, attempts } = await poll(async () => (await run(s.probe, { nothrow: true })).exitCode === 0, s.policy);
            if (!met) throw new JobError(`${s.title}: \`${renderCommand(s.probe)}\` did not succeed within ${formatDuration(s.policy.timeoutMs)} (${attempts} checks).`, 'Look at its logs and run again.');
          });
          break;
        case 'task':
          await ui.run(s.title, s.run);
          break;
        case 'rollback':
          rollbacks.unshift(s);
          break;
      }
    }
  } catch (err) {
    for (const r of rollbacks) await ui.run(r.title, () => run(r.command, { nothrow: true })).catch(() => undefined);
    throw err;
  }
}
