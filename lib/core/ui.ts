import type { Ora } from 'ora';
import { SafetyError, UsageError } from './errors.ts';
import { Secret } from './secret.ts';

export interface UiOptions {
  /** Interactive terminal: spinners and prompts. Otherwise plain timestamped lines and no prompts. */
  tty: boolean;
  verbose: boolean;
  /** With --json, human output still goes to stderr; stdout carries only the JSON result. */
  stream?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** Injected clock, so progress and ETA are testable. */
  now?: () => number;
}

export type Unit = 'rows' | 'bytes' | 'files' | 'steps';

export interface Progress {
  /** Adds done work (not the total so far). */
  tick(amount?: number): void;
  done(summary?: string): void;
}

export interface Step {
  succeed(detail?: string): void;
  fail(detail?: string): void;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}

const formatAmount = (n: number, unit: Unit) => (unit === 'bytes' ? formatBytes(n) : `${n.toLocaleString('en-US')} ${unit}`);

/** "1,200/5,000 rows (24%), 300 rows/s, ETA 13s": one place computes what progress lines say. */
export function describeProgress(done: number, total: number | undefined, unit: Unit, elapsedMs: number): string {
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const rateText = unit === 'bytes' ? `${formatBytes(rate)}/s` : `${Math.round(rate).toLocaleString('en-US')} ${unit}/s`;
  if (total === undefined || total <= 0) return `${formatAmount(done, unit)}, ${rateText}`;
  const pct = Math.min(100, Math.floor((done / total) * 100));
  const eta = rate > 0 ? formatDuration(((total - done) / rate) * 1000) : '?';
  const of = unit === 'bytes' ? `${formatBytes(done)}/${formatBytes(total)}` : `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} ${unit}`;
  return `${of} (${pct}%), ${rateText}, ETA ${eta}`;
}

// ora and prompts are loaded only for a terminal: under cron or a pipe nothing spins or asks, and
// the script starts without their modules (a tenth of a second).
let ora: typeof import('ora').default | undefined;
export async function loadSpinners(): Promise<void> {
  ora ??= (await import('ora')).default;
}
const prompts = async (...args: Parameters<typeof import('prompts')>) => (await import('prompts')).default(...args);

/** Progress, spinners and log lines that work the same under a terminal and under cron. */
export class Ui {
  readonly tty: boolean;
  readonly verbose: boolean;
  readonly #out: NodeJS.WritableStream;
  readonly #now: () => number;

  constructor(opts: UiOptions) {
    this.tty = opts.tty;
    this.verbose = opts.verbose;
    this.#out = opts.stream ?? process.stderr;
    this.#now = opts.now ?? Date.now;
  }

  #line(level: string, message: string): void {
    this.#out.write(this.tty ? `${message}\n` : `${new Date(this.#now()).toISOString()} ${level} ${message}\n`);
  }

  info(message: string): void {
    this.#line('info', message);
  }
  warn(message: string): void {
    this.#line('warn', message);
  }
  error(message: string): void {
    this.#line('error', message);
  }
  debug(message: string): void {
    if (this.verbose) this.#line('debug', message);
  }

  // The Ui has already decided it talks to a terminal; ora's own guess would read $CI and stay silent.
  #spinner(label: string): Ora {
    return ora!({ text: label, stream: this.#out as NodeJS.WriteStream, isEnabled: true });
  }

  /** A named step: a spinner on a terminal, a start and an end line (with its duration) otherwise. */
  step(label: string): Step {
    const started = this.#now();
    const took = () => formatDuration(this.#now() - started);
    if (this.tty && ora) {
      const spinner = this.#spinner(label).start();
      return {
        succeed: (detail) => spinner.succeed(`${label}${detail ? `: ${detail}` : ''} (${took()})`),
        fail: (detail) => spinner.fail(`${label}${detail ? `: ${detail}` : ''} (${took()})`),
      };
    }
    this.#line('info', `${label} ...`);
    return {
      succeed: (detail) => this.#line('info', `${label}: done${detail ? `, ${detail}` : ''} (${took()})`),
      fail: (detail) => this.#line('error', `${label}: failed${detail ? `, ${detail}` : ''} (${took()})`),
    };
  }

  /** Runs fn as a step; the step fails (and the error propagates) if fn throws. */
  async run<T>(label: string, fn: () => Promise<T>, detail?: (result: T) => string | undefined): Promise<T> {
    const s = this.step(label);
    try {
      const result = await fn();
      s.succeed(detail?.(result));
      return result;
    } catch (err) {
      s.fail(err instanceof Error ? err.message : String(err));
      throw err;
    }
  }

  /** Counts, rate and ETA; at most one plain line every intervalMs without a terminal. */
  progress(label: string, unit: Unit, total?: number, intervalMs = 5000): Progress {
    const started = this.#now();
    let done = 0;
    let lastPrint = started;
    const spinner = this.tty && ora ? this.#spinner(label).start() : undefined;
    const render = () => `${label}: ${describeProgress(done, total, unit, this.#now() - started)}`;
    return {
      tick: (amount = 1) => {
        done += amount;
        const now = this.#now();
        // The clock restarts only when something was shown: ticks closer together than the interval
        // (thousands of files a second) must not hold the line still for the whole step.
        if (now - lastPrint < (spinner ? 100 : intervalMs)) return;
        if (spinner) spinner.text = render();
        else this.#line('info', render());
        lastPrint = now;
      },
      done: (summary) => {
        const text = `${label}: ${summary ?? formatAmount(done, unit)} (${formatDuration(this.#now() - started)})`;
        if (spinner) spinner.succeed(text);
        else this.#line('info', text);
      },
    };
  }
}

export type Confirm = (question: string) => Promise<void>;

/**
 * The confirmation a destructive step asks for. --yes answers it; without a terminal nobody can,
 * so it refuses (exit 3) rather than hang under cron.
 */
export function makeConfirm(opts: { yes: boolean; tty: boolean }): Confirm {
  return async (question) => {
    if (opts.yes) return;
    if (!opts.tty) throw new SafetyError(`Not confirmed: ${question}`, 'Run it from a terminal to answer, or pass --yes for unattended runs.');
    const { ok } = await prompts({ type: 'confirm', name: 'ok', message: question, initial: false }, { onCancel: () => true });
    if (ok !== true) throw new SafetyError(`Not confirmed: ${question}`, 'Nothing was changed.');
  };
}

/** A confirmation that must be answered by typing an exact word (e.g. the environment name). */
export function makeTypedConfirm(opts: { yes: boolean; tty: boolean }): (question: string, expected: string) => Promise<void> {
  return async (question, expected) => {
    if (opts.yes) return;
    if (!opts.tty) throw new SafetyError(`Not confirmed: ${question}`, `Run it from a terminal and type "${expected}", or pass the flags documented in --help.`);
    const { answer } = await prompts({ type: 'text', name: 'answer', message: `${question} Type "${expected}" to go on:` });
    if (answer !== expected) throw new SafetyError(`Not confirmed: ${question}`, 'Nothing was changed.');
  };
}

/** A new secret typed twice without echo; only for a terminal (the caller checks). */
export async function askNewSecret(label: string): Promise<Secret> {
  const ask = async (message: string) => {
    // On stderr: with --json, stdout carries only the result.
    const { value } = await prompts({ type: 'password', name: 'value', message, stdout: process.stderr });
    if (typeof value !== 'string') throw new UsageError(`No ${label} was entered.`, 'Nothing was changed.');
    return new Secret(value);
  };
  const first = await ask(`New ${label}:`);
  if (!first.equals(await ask(`Repeat the ${label}:`))) throw new UsageError(`The two ${label}s differ.`, 'Nothing was changed; run it again.');
  return first;
}
