/**
 * `make demo`: an ordered list of steps run against the local sandbox. The first brings the
 * sandbox up; each later issue appends its job (sample-data, sync-vault, ...) as one entry of
 * demoSteps, so the demo grows into the whole main job run end to end on the sandbox.
 */
import path from 'node:path';
import { loadEnvConfig, type EnvConfig, type Environment } from '../lib/core/config.ts';
import { describeSandbox, sandboxUp, type SandboxStatus } from './sandbox.ts';
import { formatBytes, formatDuration, type Ui } from '../lib/core/ui.ts';
import { describeSync, syncVault } from '../lib/jobs/vault-sync.ts';
import { describeReport, sampleDataToDev } from '../lib/jobs/sample-data.ts';
import { sandboxSamplingConfigFile } from './sandbox-sampling.ts';
import { restoreDrill } from '../lib/jobs/restore.ts';
import { backupDatabase } from '../lib/tools/backup-store.ts';
import { connectionFor } from '../lib/tools/database.ts';
import { JobError } from '../lib/core/errors.ts';

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
// The demo's steps: each calls one job on the sandbox and says what it did.
const sampleDataDemoStep: DemoStep = {
  name: 'sample-data',
  description: "replace EB's data with an anonymized 10% sample of EA",
  run: async (ctx) => {
    const dev = ctx.config('dev');
    const report = await sampleDataToDev({
      source: connectionFor(ctx.config('prod')),
      target: connectionFor(dev),
      dev,
      pct: 10,
      seed: ctx.seed,
      users: [],
      excludeBanned: false,
      schemaFromProd: false,
      dryRun: false,
      // The sandbox runs its own schema (dev/sandbox-schema.sql), not the app's.
      configFile: sandboxSamplingConfigFile,
      ui: ctx.ui,
      confirm: async () => undefined, // the sandbox's own EB: nothing to ask
    });
    return describeReport(report);
  },
};

const syncVaultDemoStep: DemoStep = {
  name: 'sync-vault',
  description: "copy into EB's vault the files of EB's sampled posts, then show a re-run is a no-op",
  run: async (ctx) => {
    const prod = ctx.config('prod');
    const dev = ctx.config('dev');
    const base = {
      source: prod.vars.VAULT_HOST_PATH,
      target: dev.vars.VAULT_HOST_PATH,
      production: prod.vars.VAULT_HOST_PATH,
      db: connectionFor(dev),
      // EB's containers run as uid 1000; a non-root demo keeps the files its own.
      owner: process.getuid?.() === 0 ? { uid: 1000, gid: 1000 } : { uid: process.getuid?.() ?? 1000, gid: process.getgid?.() ?? 1000 },
      jobs: 8,
      link: false,
      checksum: false,
      strict: false,
      dryRun: false,
      ui: ctx.ui,
      confirm: async () => undefined, // the sandbox's own EB vault: pruning it needs no question
    };
    const first = await syncVault({ ...base, prune: true });
    const again = await syncVault({ ...base, prune: false });
    return [...describeSync(first), `Re-run: ${again.copied} copied, ${again.skipped} already there (${again.durationMs} ms).`, `EB's vault: ${dev.vars.VAULT_HOST_PATH}`];
  },
};

const backupDemoStep: DemoStep = {
  name: 'backup',
  description: "back EA up (verified, checksummed, rotated), then prove the backup restores with the drill",
  run: async (ctx) => {
    const prod = ctx.config('prod');
    const backup = await backupDatabase(prod, { mode: 'direct', ui: ctx.ui });
    const drill = await restoreDrill(prod, { mode: 'direct', ui: ctx.ui, file: backup.file });
    if (!drill.ok) throw new JobError(`The restore drill of ${backup.file} failed: ${drill.problems.join('; ')}.`, 'Read the lines above.');
    return [
      `Backup ${backup.file}: ${formatBytes(backup.bytes)}, sha256 ${backup.sha256.slice(0, 12)}…, in ${formatDuration(backup.durationMs)}`,
      `Drill: restored into ${drill.scratchDatabase} (dropped after), ${drill.tables.length} tables compared, in ${formatDuration(drill.durationMs)}`,
    ];
  },
};

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
