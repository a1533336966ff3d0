/**
 * `make demo`: an ordered list of steps run against the local sandbox. The first brings the
 * sandbox up; each later issue appends its job (sample-data, sync-vault, ...) as one entry of
 * demoSteps, so the demo grows into the whole main job run end to end on the sandbox.
 */
import path from 'node:path';
import { loadEnvConfig, type EnvConfig, type Environment } from '../lib/core/config.ts';
import { describeSandbox, sandboxUp, type SandboxStatus } from './sandbox.ts';
import { formatDuration, type Ui } from '../lib/core/ui.ts';
import { syncVaultDemoStep } from '../lib/jobs/vault-sync.ts';
import { sampleDataDemoStep } from '../lib/jobs/sample-data.ts';
import { backupDemoStep } from '../lib/jobs/restore.ts';

export interface DemoContext {
  ui: Ui;
  users: number;
  seed: number;
  /** The folder with the sandbox's .env.prod and .env.dev (what MAKAPIX_ENV_DIR must be). */
  envDir: string;
  /** The sandbox as the first step left it. */
  sandbox: SandboxStatus;
  /** An environment's validated config, read from envDir. */
  config(env: Environment): EnvConfig;
}

export interface DemoStep {
  name: string;
  /** What it shows, for the listing. */
  description: string;
  /** Does the step; returns the lines to print about what it did and where. */
  run(ctx: DemoContext): Promise<string[]>;
}

export interface DemoStepReport {
  name: string;
  lines: string[];
  durationMs: number;
}

export interface DemoReport {
  sandbox: SandboxStatus;
  steps: DemoStepReport[];
  durationMs: number;
}

/** Later steps append themselves here, in the order the demo runs them. */
export const demoSteps: DemoStep[] = [
  sampleDataDemoStep,
  // sync-vault runs after the data sample step (it copies the files of EB's sampled posts).
  syncVaultDemoStep,
  backupDemoStep,
];

export interface DemoOptions {
  users: number;
  seed: number;
  ui: Ui;
  /** The sandbox folder (default lib/core/paths.ts sandboxDir). */
  dir?: string;
  steps?: readonly DemoStep[];
}

/** Brings the sandbox up, then runs every step in order; a failing step stops the demo. */
export async function runDemo(opts: DemoOptions): Promise<DemoReport> {
  const started = Date.now();
  const sandbox = await sandboxUp({ users: opts.users, seed: opts.seed, ui: opts.ui, ...(opts.dir !== undefined && { dir: opts.dir }) });
  const ctx: DemoContext = {
    ui: opts.ui,
    users: opts.users,
    seed: opts.seed,
    envDir: sandbox.envDir,
    sandbox,
    config: (env) => loadEnvConfig(env, path.join(sandbox.envDir, `.env.${env}`)),
  };
  const steps: DemoStepReport[] = [{ name: 'sandbox', lines: describeSandbox(sandbox).split('\n'), durationMs: sandbox.durationMs ?? 0 }];
  for (const step of opts.steps ?? demoSteps) {
    const stepStarted = Date.now();
    const lines = await opts.ui.run(`demo: ${step.name} (${step.description})`, () => step.run(ctx));
    steps.push({ name: step.name, lines, durationMs: Date.now() - stepStarted });
  }
  return { sandbox, steps, durationMs: Date.now() - started };
}

export function describeDemo(r: DemoReport): string {
  const out = r.steps.flatMap((s) => [`== ${s.name}`, ...s.lines, '']);
  out.push(`Point any script or make target at the sandbox: . ${path.join(r.sandbox.dir, 'activate')}  (exports MAKAPIX_ENV_DIR=${r.sandbox.envDir} and the edge host names)`);
  out.push(`Total ${formatDuration(r.durationMs)}. Stop and delete the sandbox: make sandbox-down.`);
  return out.join('\n');
}
