import { parseArgs } from 'node:util';
import path from 'node:path';
import { Exit, OpsError, UsageError, systemError, type ExitCode } from './errors.ts';
import { envFilePath, loadEnvConfig, parseEnvironment, type EnvConfig, type Environment } from './config.ts';
import { settingsFrom, type Environ, type Settings } from './settings.ts';
import { redact } from './secret.ts';
import { Ui, loadSpinners, makeConfirm, makeTypedConfirm, type Confirm } from './ui.ts';

interface FlagBase {
  description: string;
  short?: string;
  /** Shown in --help as the value's name, e.g. --pct <N>. */
  value?: string;
}

/**
 * A flag and its type. Values are parsed and range-checked here, once: a job receives a number, one
 * of its words or a list, never a string it must parse again. `multiple` repeats the flag;
 * `list` splits one value at commas.
 */
export type FlagSpec = FlagBase &
  (
    | { type: 'boolean'; default?: boolean }
    | { type: 'string'; multiple?: boolean; default?: string }
    | { type: 'int'; min?: number; max?: number; default?: number; /** what the value is, for errors: "a port" */ noun?: string }
    | { type: 'number'; min?: number; max?: number; /** the minimum itself is not allowed */ above?: boolean; default?: number; noun?: string }
    | { type: 'enum'; values: readonly string[]; default?: string }
    | { type: 'list'; pattern?: RegExp; default?: readonly string[] }
    | { type: 'path'; default?: string }
  );

type Given<S, T> = S extends { default: unknown } ? T : T | undefined;
type FlagValue<S extends FlagSpec> = S extends { type: 'boolean' }
  ? boolean
  : S extends { type: 'string'; multiple: true }
    ? string[]
    : S extends { type: 'int' | 'number' }
      ? Given<S, number>
      : S extends { type: 'enum'; values: readonly (infer V)[] }
        ? Given<S, V>
        : S extends { type: 'list' }
          ? string[]
          : Given<S, string>;
export type FlagValues<F extends Record<string, FlagSpec>> = { [K in keyof F]: FlagValue<F[K]> };

const quoted = (v: string) => JSON.stringify(v);

/** A flag's value as its type, or a UsageError naming the flag, what it got and what it takes. */
export function parseFlagValue(name: string, spec: FlagSpec, raw: string): unknown {
  const flag = `--${name}`;
  switch (spec.type) {
    case 'int':
    case 'number': {
      const n = (spec.type === 'int' ? /^-?\d+$/ : /^-?\d+(\.\d+)?$/).test(raw.trim()) ? Number(raw) : NaN;
      const min = spec.min ?? -Infinity;
      const max = spec.max ?? Infinity;
      const above = spec.type === 'number' && spec.above;
      if (!Number.isFinite(n) || (above ? n <= min : n < min) || n > max) {
        const kind = spec.noun ?? (spec.type === 'int' ? 'a whole number' : 'a number');
        const range = min > -Infinity && max < Infinity ? ` ${above ? 'above' : 'from'} ${min} ${above ? 'and at most' : 'to'} ${max}` : min > -Infinity ? ` ${above ? 'above' : 'of at least'} ${min}` : max < Infinity ? ` of at most ${max}` : '';
        throw new UsageError(`${flag} must be ${kind}${range}, got ${quoted(raw)}.`, `For example ${flag} ${spec.default ?? Math.max(min === -Infinity ? 1 : min + (above ? 1 : 0), 1)}.`);
      }
      return n;
    }
    case 'enum':
      if (spec.values.includes(raw)) return raw;
      throw new UsageError(`${flag} must be ${spec.values.map(quoted).join(' or ')}, got ${quoted(raw)}.`, `Run with --help for what each means.`);
    case 'list': {
      const items = raw.split(',').map((x) => x.trim()).filter(Boolean);
      const bad = spec.pattern ? items.filter((x) => !spec.pattern!.test(x)) : [];
      if (bad.length) throw new UsageError(`${flag} takes values separated by commas; ${bad.map(quoted).join(', ')} is not one.`, `For example ${flag} ${spec.value ?? 'a,b'}.`);
      return [...new Set(items)];
    }
    case 'path':
      if (raw.trim() === '') throw new UsageError(`${flag} needs a path, got an empty value.`);
      return path.resolve(raw);
    default:
      return raw;
  }
}

/** The flags every script shares; a script opts into the ones that make sense for it. */
export type CommonFlag = 'env' | 'dry-run' | 'yes' | 'json';

export interface Context<F extends Record<string, FlagSpec>> {
  flags: FlagValues<F>;
  positionals: string[];
  /** Set when the command takes --env (or has a fixed environment). */
  env: Environment | undefined;
  dryRun: boolean;
  yes: boolean;
  json: boolean;
  verbose: boolean;
  ui: Ui;
  confirm: Confirm;
  typedConfirm: (question: string, expected: string) => Promise<void>;
  /** What the process environment says (read once by the entry). */
  settings: Settings;
  /** An environment's validated env file, from settings.envDir. */
  config(env: Environment): EnvConfig;
}

export interface CommandSpec<F extends Record<string, FlagSpec>, R> {
  name: string;
  summary: string;
  /** Extra lines for --help: positionals, examples, exit codes beyond the common ones. */
  details?: string;
  positionals?: string;
  common: readonly CommonFlag[];
  /** Required --env unless a default is given here. */
  defaultEnv?: Environment;
  flags?: F;
  run(ctx: Context<F>): Promise<R>;
  /** Human rendering of the result (stdout); --json prints the result itself instead. */
  render?(result: R, ctx: Context<F>): void;
  /** Exit code for a result that completed but is not a success (e.g. a failed check). */
  exitCode?(result: R): ExitCode;
  /**
   * For a command with its own exit convention (monitor is a Nagios plugin): the code for an error
   * (usage, configuration, unexpected) and an optional status line for stdout. The error line and
   * hint still go to stderr. The help text's exit-code line comes from `exitCodesHelp`.
   */
  onError?(message: string): { exitCode: ExitCode; stdout?: string };
  exitCodesHelp?: string;
}

const commonSpecs: Record<CommonFlag | 'verbose' | 'help', FlagSpec> = {
  env: { type: 'string', value: 'prod|dev', description: 'the environment to act on' },
  'dry-run': { type: 'boolean', description: 'print the plan with real values, change nothing' },
  yes: { type: 'boolean', short: 'y', description: 'answer yes to confirmations (cron, scripts)' },
  json: { type: 'boolean', description: 'print the result as JSON on stdout' },
  verbose: { type: 'boolean', short: 'v', description: 'more detail, and stack traces on errors' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
};

export function helpText<F extends Record<string, FlagSpec>, R>(spec: CommandSpec<F, R>): string {
  const all: [string, FlagSpec][] = [...Object.entries(spec.flags ?? {}), ...[...spec.common, 'verbose' as const, 'help' as const].map((k) => [k, commonSpecs[k]] as [string, FlagSpec])];
  const valueName = (f: FlagSpec) => f.value ?? (f.type === 'enum' ? f.values.join('|') : f.type === 'int' || f.type === 'number' ? 'N' : 'value');
  const label = ([name, f]: [string, FlagSpec]) => `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'boolean' ? '' : ` <${valueName(f)}>`}`;
  const width = Math.max(...all.map((e) => label(e).length));
  const lines = all.map((e) => {
    const d = e[1].default;
    const def = d !== undefined && d !== false && !(Array.isArray(d) && d.length === 0) ? ` (default: ${Array.isArray(d) ? d.join(',') : d})` : '';
    return `  ${label(e).padEnd(width)}  ${e[1].description}${def}`;
  });
  return [
    `Usage: ${spec.name}${spec.positionals ? ` ${spec.positionals}` : ''} [options]`,
    '',
    spec.summary,
    ...(spec.details ? ['', spec.details.trimEnd()] : []),
    '',
    'Options:',
    ...lines,
    '',
    spec.exitCodesHelp ?? 'Exit codes: 0 done, 1 failed, 2 usage or configuration error, 3 refused for safety.',
  ].join('\n');
}

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream | NodeJS.WritableStream;
  tty: boolean;
}

const defaultIo = (): Io => ({ stdout: process.stdout, stderr: process.stderr, tty: Boolean(process.stdin.isTTY && process.stderr.isTTY) });

/**
 * Node's parser speaks in several lines ("argument is ambiguous ... To specify an option argument
 * starting with a dash use ..."); an operator gets its first sentence and the way out.
 */
function parserError(message: string, command: string): UsageError {
  const first = message.split('\n')[0]!.trim().replace(/\.?$/, '.');
  const dash = /Option '(--[a-z-]+)[^']*' argument is ambiguous/.exec(first);
  if (dash) return new UsageError(`${dash[1]} was given a value that starts with a dash.`, `If you meant it, write it as ${dash[1]}=<value>; run ${command} --help for usage.`);
  return new UsageError(first, `Run ${command} --help for usage.`);
}

/** Parses argv, runs the command and turns its outcome (or its typed error) into an exit code. */
export async function executeCommand<F extends Record<string, FlagSpec>, R>(spec: CommandSpec<F, R>, argv: string[], io: Io = defaultIo(), environ: Environ = {}): Promise<ExitCode> {
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  const json = argv.includes('--json') && spec.common.includes('json');
  if (io.tty) await loadSpinners();
  const ui = new Ui({ tty: io.tty, verbose, stream: io.stderr });
  try {
    const options: Record<string, { type: 'boolean' | 'string'; short?: string; multiple?: boolean }> = {};
    const all = [...Object.entries(spec.flags ?? {}), ...[...spec.common, 'verbose', 'help'].map((k) => [k, commonSpecs[k as CommonFlag]] as const)] as [string, FlagSpec][];
    for (const [name, f] of all) {
      options[name] = { type: f.type === 'boolean' ? 'boolean' : 'string', ...(f.short && { short: f.short }), ...(f.type === 'string' && f.multiple && { multiple: true }) };
    }
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: argv, options, allowPositionals: Boolean(spec.positionals), strict: true });
    } catch (err) {
      throw parserError((err as Error).message, spec.name);
    }
    const values = parsed.values as Record<string, unknown>;
    for (const [name, f] of all) {
      const raw = values[name];
      if (raw === undefined) {
        if (f.type === 'list') values[name] = [...(f.default ?? [])];
        else if (f.default !== undefined) values[name] = f.default;
      }
      else if (typeof raw === 'string') values[name] = parseFlagValue(name, f, raw);
    }
    if (values.help) {
      io.stdout.write(`${helpText(spec)}\n`);
      return Exit.ok;
    }
    let env: Environment | undefined;
    if (spec.common.includes('env')) {
      const given = values.env as string | undefined;
      if (given === undefined && spec.defaultEnv === undefined) throw new UsageError(`${spec.name} needs --env prod or --env dev.`, `Run ${spec.name} --help for usage.`);
      env = given === undefined ? spec.defaultEnv : parseEnvironment(given);
    } else env = spec.defaultEnv;
    const yes = Boolean(values.yes);
    const settings = settingsFrom(environ);
    const ctx: Context<F> = {
      flags: values as FlagValues<F>,
      positionals: parsed.positionals,
      env,
      dryRun: Boolean(values['dry-run']),
      yes,
      json,
      verbose,
      ui,
      confirm: makeConfirm({ yes, tty: io.tty }),
      typedConfirm: makeTypedConfirm({ yes, tty: io.tty }),
      settings,
      config: (e) => loadEnvConfig(e, envFilePath(e, settings.envDir)),
    };
    const result = await spec.run(ctx);
    if (json) io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else spec.render?.(result, ctx);
    return spec.exitCode?.(result) ?? Exit.ok;
  } catch (err) {
    // A system error on a folder (a full disk, a read-only mount...) is a sentence, not "Unexpected error".
    const ops = err instanceof OpsError ? err : systemError(err);
    const message = redact(ops ? ops.message : `Unexpected error: ${err instanceof Error ? err.message : String(err)}`);
    const own = spec.onError?.(message);
    const code = own?.exitCode ?? ops?.exitCode ?? Exit.failed;
    const hint = ops ? ops.hint : 'Run again with --verbose for the stack trace.';
    ui.error(`${message}${hint ? ` ${redact(hint)}` : ''}`);
    if (verbose && err instanceof Error && err.stack) io.stderr.write(`${redact(err.stack)}\n`);
    if (json) io.stdout.write(`${JSON.stringify({ ok: false, exitCode: code, error: message, hint: hint ?? null })}\n`);
    else if (own?.stdout) io.stdout.write(`${own.stdout}\n`);
    return code;
  }
}

/** The whole of a script's entry: `await runScript(spec, argv, environ)` with the process's own. */
export async function runScript<F extends Record<string, FlagSpec>, R>(spec: CommandSpec<F, R>, argv: readonly string[], environ: Environ): Promise<void> {
  const name = path.basename(argv[1] ?? spec.name);
  process.exitCode = await executeCommand({ ...spec, name: spec.name || name }, argv.slice(2), defaultIo(), environ);
}
