#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { existsSync } from 'node:fs';
import { runScript } from '../lib/core/cli.ts';
import { envFilePath } from '../lib/core/config.ts';
import { renderDrill, renderRestore, restoreDatabase, restoreDrill, type DrillResult, type RestoreResult } from '../lib/jobs/restore.ts';
import { UsageError } from '../lib/core/errors.ts';

await runScript({
  name: 'restore',
  summary: "Restores a verified backup into an environment's database (--file), or proves the newest backup restores (--drill).",
  details: [
    'Restore: checksum first; into a new database, then swapped in by renaming (the live one is untouched until the',
    'restore succeeded). Production asks you to type "prod" (or takes --yes --i-know-this-is-production) and first',
    'takes a fresh pinned backup. Drill: restores into a scratch database, compares row counts with the live one,',
    'drops it; exit 1 when the backup cannot be restored. Examples:',
    '  restore --env dev --file /backups/makapix-20261125-030000.dump',
    '  restore --env prod --drill --json',
  ].join('\n'),
  common: ['env', 'dry-run', 'yes', 'json'],
  flags: {
    file: { type: 'string', value: 'path', description: 'the backup to restore (.dump or .sql, with its .sha256 beside it)' },
    drill: { type: 'boolean', description: 'restore the newest verified backup (or --file) into a scratch database and compare' },
    direct: { type: 'boolean', description: "use the host's pg_restore/psql over DB_PUBLISHED_PORT instead of the db container's" },
    dir: { type: 'string', value: 'path', description: 'the backup folder (default: BACKUP_DIR)' },
    'i-know-this-is-production': { type: 'boolean', description: 'with --yes: restore into production without the typed confirmation' },
  },
  run: async (ctx): Promise<RestoreResult | DrillResult> => {
    const f = ctx.flags;
    if (f.drill && ctx.dryRun) throw new UsageError('--drill has no --dry-run: it only writes a scratch database, which it drops.', 'Run it without --dry-run.');
    const cfg = ctx.config(ctx.env!);
    const mode = f.direct ? 'direct' : 'compose';
    if (f.drill) return restoreDrill(cfg, { mode, ui: ctx.ui, ...(f.file && { file: f.file }), ...(f.dir && { dir: f.dir }) });
    if (!f.file) throw new UsageError('restore needs --file <backup> (or --drill).', 'Run restore --help for usage.');
    const productionCfg = cfg.env === 'dev' && existsSync(envFilePath('prod', ctx.settings.envDir)) ? ctx.config('prod') : undefined;
    return restoreDatabase(cfg, {
      file: f.file, mode, ui: ctx.ui, typedConfirm: ctx.typedConfirm, confirm: ctx.confirm, yes: ctx.yes, iKnowThisIsProduction: f['i-know-this-is-production'],
      dryRun: ctx.dryRun, ...(f.dir && { backupDir: f.dir }), ...(productionCfg && { productionCfg }),
    });
  },
  render: (r) => ('scratchDatabase' in r ? renderDrill(r) : renderRestore(r)),
  exitCode: (r) => ('scratchDatabase' in r && !r.ok ? 1 : 0),
}, process.argv, process.env);
