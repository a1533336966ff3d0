#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { detectComposeFlavor } from '../lib/tools/compose.ts';
import { backupDatabase, type BackupResult } from '../lib/tools/backup-store.ts';
import { describeBackupPlan, parseBackupOptions, renderBackup } from '../lib/jobs/backup.ts';
import { withPings } from '../lib/tools/healthcheck.ts';

await runScript({
  name: 'backup-prod',
  summary: "Backs up EA's database (and its roles) to a verified, checksummed file in BACKUP_DIR, then rotates (keeps BACKUP_KEEP).",
  details: 'Cron: see docs/backup.md. Exit 1 on any failure (another run holding the lock, not enough space, a failed or unreadable dump).',
  common: ['dry-run', 'json'],
  defaultEnv: 'prod',
  flags: {
    format: { type: 'enum', values: ['custom', 'plain'] as const, default: 'custom', description: 'custom (.dump, compressed) or plain (.sql)' },
    direct: { type: 'boolean', description: "use the host's pg_dump against DB_PUBLISHED_PORT instead of the one in the db container" },
    pin: { type: 'boolean', description: 'keep this backup apart from the rotation (BACKUP_DIR/pinned)' },
    reason: { type: 'string', value: 'text', description: 'why this backup was taken (recorded in its manifest)' },
    dir: { type: 'path', value: 'path', description: 'the backup folder (default: BACKUP_DIR)' },
    keep: { type: 'int', min: 1, max: 10_000, value: 'N', description: 'verified backups the rotation keeps (default: BACKUP_KEEP)' },
    ping: { type: 'string', value: 'URL', description: 'healthchecks-style pings: URL/start, URL on success, URL/fail' },
  },
  run: async (ctx): Promise<BackupResult | { dryRun: true; plan: string[] }> => {
    const cfg = ctx.config('prod');
    const opts = parseBackupOptions(ctx.flags);
    if (ctx.dryRun) return { dryRun: true, plan: describeBackupPlan(cfg, opts, opts.mode === 'compose' ? await detectComposeFlavor().catch(() => 'v2' as const) : 'v2') };
    return withPings(ctx.flags.ping, ctx.ui, () => backupDatabase(cfg, { ...opts, ui: ctx.ui }), (r) => `${r.file} ${r.bytes} bytes sha256 ${r.sha256}`);
  },
  render: (r) => ('plan' in r ? process.stdout.write(`${r.plan.join('\n')}\n`) : renderBackup(r)),
}, process.argv, process.env);
