#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runScript } from '../lib/core/cli.ts';
import { envFilePath } from '../lib/core/config.ts';
import { ConfigError, OpsError, UsageError } from '../lib/core/errors.ts';
import { renderPlan, runPlan } from '../lib/core/exec.ts';
import { detectComposeFlavor } from '../lib/tools/compose.ts';
import { initOffsite, parseBackupOptions, planBackup, planUpkeep, renderBackup, renderUpkeep, type UpkeepResult } from '../lib/jobs/backup.ts';
import { runBackupPlan, type BackupResult } from '../lib/tools/backup-store.ts';
import { repoFromConfig, resticHostname } from '../lib/tools/restic.ts';
import { withPings } from '../lib/tools/healthcheck.ts';

type Result = BackupResult | UpkeepResult | { repository: string } | { dryRun: true; plan: string[] };

await runScript({
  name: 'backup-prod',
  summary: "Backs up EA's database (and its roles) to a verified, checksummed file in BACKUP_DIR, rotates (keeps BACKUP_KEEP), then copies it and everything that cannot be recreated offsite (restic).",
  details: [
    'Cron: see docs/backup.md. Exit 1 on any failure (another run holding the lock, not enough space, a failed or unreadable dump,',
    'an offsite copy that could not be made: the local backup and its rotation are kept then). Offsite upkeep, on its own schedule:',
    '  backup-prod --retention --check      forget (OFFSITE_KEEP_*) and prune, then check --read-data-subset (OFFSITE_CHECK_SUBSET)',
    '  backup-prod --init-offsite           create the repository named by RESTIC_REPOSITORY (once)',
  ].join('\n'),
  common: ['dry-run', 'json'],
  defaultEnv: 'prod',
  flags: {
    format: { type: 'enum', values: ['custom', 'plain'] as const, default: 'custom', description: 'custom (.dump, compressed) or plain (.sql)' },
    direct: { type: 'boolean', description: "use the host's pg_dump against DB_PUBLISHED_PORT instead of the one in the db container" },
    pin: { type: 'boolean', description: 'keep this backup apart from the rotation (BACKUP_DIR/pinned)' },
    reason: { type: 'string', value: 'text', description: 'why this backup was taken (recorded in its manifest)' },
    dir: { type: 'path', value: 'path', description: 'the backup folder (default: BACKUP_DIR)' },
    keep: { type: 'int', min: 1, max: 10_000, value: 'N', description: 'verified backups the rotation keeps (default: BACKUP_KEEP)' },
    'no-offsite': { type: 'boolean', description: 'only the local backup, no offsite snapshot' },
    retention: { type: 'boolean', description: 'no backup: apply the offsite retention (forget, then prune)' },
    check: { type: 'boolean', description: 'no backup: check the offsite repository, reading OFFSITE_CHECK_SUBSET of its data' },
    'check-subset': { type: 'string', value: 'N%|n/t', description: 'with --check: the share to read (default: OFFSITE_CHECK_SUBSET)' },
    'init-offsite': { type: 'boolean', description: 'create the offsite repository (RESTIC_REPOSITORY), once' },
    ping: { type: 'string', value: 'URL', description: 'healthchecks-style pings: URL/start, URL on success, URL/fail (the offsite step included)' },
  },
  run: async (ctx): Promise<Result> => {
    const f = ctx.flags;
    const cfg = ctx.config('prod');
    // A broken offsite configuration (a password file missing or readable by others) must not cost
    // the night's local backup: the backup runs, then the run fails with the configuration's error.
    const repoOrError = f['no-offsite'] ? undefined : await repoFromConfig(cfg).catch((err: unknown) => (err instanceof OpsError ? err : Promise.reject(err)));
    const repo = repoOrError instanceof OpsError ? undefined : repoOrError;
    const host = resticHostname();
    if (f['init-offsite'] || f.retention || f.check) {
      if (repoOrError instanceof OpsError) throw repoOrError;
      if (!repo) throw new UsageError('There is no offsite repository: RESTIC_REPOSITORY is empty in .env.prod (or --no-offsite was given).', 'Set RESTIC_REPOSITORY and RESTIC_PASSWORD_FILE (docs/backup.md).');
      if (f['init-offsite']) return initOffsite(repo, ctx.ui);
      const subset = f['check-subset'] ?? cfg.vars.OFFSITE_CHECK_SUBSET;
      if (!/^(\d+(\.\d+)?%|\d+\/\d+)$/.test(subset)) throw new UsageError(`--check-subset must be like 10% or 1/5, got ${JSON.stringify(subset)}.`);
      const plan = planUpkeep(cfg, {
        repo, host, ui: ctx.ui, ...(f.dir && { dir: f.dir }),
        ...(f.retention && { retention: { daily: cfg.vars.OFFSITE_KEEP_DAILY, weekly: cfg.vars.OFFSITE_KEEP_WEEKLY, monthly: cfg.vars.OFFSITE_KEEP_MONTHLY } }),
        ...(f.check && { checkSubset: subset }),
      });
      if (ctx.dryRun) return { dryRun: true, plan: renderPlan(plan.steps) };
      return withPings(f.ping, ctx.ui, async () => {
        try {
          await runPlan(plan.steps, ctx.ui);
          return plan.result();
        } finally {
          await plan.cleanup();
        }
      }, (r) => `${r.repository}: ${r.forget?.detail ?? ''} ${r.check ? `check ${r.check.ok ? 'OK' : 'FAILED'} ${r.check.figures}` : ''}`.trim());
    }
    const opts = parseBackupOptions(f);
    if (!repoOrError && !f['no-offsite']) ctx.ui.warn('No offsite copy: RESTIC_REPOSITORY is empty in .env.prod (docs/backup.md).');
    const devCfg = existsSync(envFilePath('dev', ctx.settings.envDir)) ? ctx.config('dev') : undefined;
    const offsite = repo && { repo, host, edgeCredentialsDir: ctx.settings.credentialsDir, ...(devCfg && { devCfg }) };
    const flavor = opts.mode === 'compose' ? await detectComposeFlavor().catch(() => 'v2' as const) : 'v2';
    const plan = await planBackup(cfg, { ...opts, ui: ctx.ui, ...(offsite && { offsite }) }, flavor);
    if (ctx.dryRun) return { dryRun: true, plan: renderPlan(plan.steps) };
    return withPings(f.ping, ctx.ui, async () => {
      const r = await runBackupPlan(plan, ctx.ui);
      if (repoOrError instanceof OpsError) {
        throw new ConfigError(`The local backup ${path.basename(r.file)} is made and rotated, but there is no offsite copy: ${repoOrError.message}`, [], repoOrError.hint);
      }
      return r;
    }, (r) => `${r.file} ${r.bytes} bytes sha256 ${r.sha256}${r.offsite ? ` offsite ${r.offsite.snapshotId}` : ''}`);
  },
  render: (r) => ('plan' in r ? process.stdout.write(`${r.plan.join('\n')}\n`) : 'file' in r ? renderBackup(r) : 'locksCleared' in r ? renderUpkeep(r) : process.stdout.write(`created ${r.repository}\n`)),
}, process.argv, process.env);
