import { parseArgs } from 'node:util';
import path from 'node:path';
import { Exit, OpsError, UsageError, type ExitCode } from './errors.ts';
import { envFilePath, loadEnvConfig, parseEnvironment, type EnvConfig, type Environment } from './config.ts';
import { settingsFrom, type Environ, type Settings } from './settings.ts';
import { redact } from './secret.ts';
import { Ui, loadSpinners, makeConfirm, makeTypedConfirm, type Confirm } from './ui.ts';

export interface FlagSpec {
  type: 'boolean' | 'string';
  description: string;
  short?: string;
  multiple?: boolean;
  /** Shown in --help as the value's name, e.g. --pct <N>. */
  value?: string;
  default?: string | boolean;
}

type FlagValue<S extends FlagSpec> = S['type'] extends 'boolean'
  ? boolean
  : S['multiple'] extends true
    ? string[]
    : S extends { default: string }
      ? string
      : string | undefined;
export type FlagValues<F extends Record<string, FlagSpec>> = { [K in keyof F]: FlagValue<F[K]> };

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
  const label = ([name, f]: [string, FlagSpec]) => `${f.short ? `-${f.short}, ` : '    '}--${name}${f.type === 'string' ? ` <${f.value ?? 'value'}>` : ''}`;
  const width = Math.max(...all.map((e) => label(e).length));
  const lines = all.map((e) => {
    const def = e[1].default !== undefined && e[1].default !== false ? ` (default: ${e[1].default})` : '';
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

/** Parses argv, runs the command and turns its outcome (or its typed error) into an exit code. */
export async function executeCommand<F extends Record<string, FlagSpec>, R>(spec: CommandSpec<F, R>, argv: string[], io: Io = defaultIo(), environ: Environ = {}): Promise<ExitCode> {
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  const json = argv.includes('--json') && spec.common.includes('json');
  if (io.tty) await loadSpinners();
  const ui = new Ui({ tty: io.tty, verbose, stream: io.stderr });
  try {
    const options: Record<string, { type: 'boolean' | 'string'; short?: string; multiple?: boolean; default?: string | boolean }> = {};
    for (const [name, f] of [...Object.entries(spec.flags ?? {}), ...[...spec.common, 'verbose', 'help'].map((k) => [k, commonSpecs[k as CommonFlag]] as const)]) {
      options[name] = { type: f.type, ...(f.short && { short: f.short }), ...(f.multiple && { multiple: true }), ...(f.default !== undefined && { default: f.default }) };
    }
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs({ args: argv, options, allowPositionals: Boolean(spec.positionals), strict: true });
    } catch (err) {
      throw new UsageError(`${(err as Error).message.replace(/\. To specify.*$/s, '')}.`.replace(/\.\.$/, '.'), `Run ${spec.name} --help for usage.`);
    }
    const values = parsed.values as Record<string, unknown>;
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
    const ops = err instanceof OpsError ? err : undefined;
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
