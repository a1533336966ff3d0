#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { existsSync } from 'node:fs';
import { runScript } from '../lib/core/cli.ts';
import { envFilePath } from '../lib/core/config.ts';
import {
  offsiteDrill, renderDrill, renderOffsiteRestore, renderRestore, restoreDatabase, restoreDrill, restoreFromOffsite, type DrillResult, type OffsiteRestoreResult, type RestoreResult,
} from '../lib/jobs/restore.ts';
import { repoFromConfig } from '../lib/tools/restic.ts';
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
    'From the offsite copy (RESTIC_REPOSITORY of .env.prod; SNAPSHOT: an id, or latest by default):',
    '  restore --env prod --drill --from-offsite [SNAPSHOT] [--sample 20]   the dump restored from the repository into a scratch',
    '      database and compared; SAMPLE vault files restored and compared by sha256 with the live vault; the snapshot\'s age',
    '  restore --env prod --from-offsite [SNAPSHOT] --target /srv/recovered   everything back into an empty folder (typed "prod")',
  ].join('\n'),
  positionals: '[SNAPSHOT]',
  common: ['env', 'dry-run', 'yes', 'json'],
  flags: {
    file: { type: 'string', value: 'path', description: 'the backup to restore (.dump or .sql, with its .sha256 beside it)' },
    drill: { type: 'boolean', description: 'restore the newest verified backup (or --file) into a scratch database and compare' },
    direct: { type: 'boolean', description: "use the host's pg_restore/psql over DB_PUBLISHED_PORT instead of the db container's" },
    dir: { type: 'string', value: 'path', description: 'the backup folder (default: BACKUP_DIR)' },
    'i-know-this-is-production': { type: 'boolean', description: 'with --yes: restore into production without the typed confirmation' },
    'from-offsite': { type: 'boolean', description: 'work from the offsite restic repository (the drill, or a full restore into --target)' },
    target: { type: 'path', value: 'path', description: 'with --from-offsite: the empty folder everything is restored into' },
    sample: { type: 'int', min: 1, max: 100_000, value: 'N', default: 20, description: 'with --drill --from-offsite: vault files compared by sha256' },
  },
  run: async (ctx): Promise<RestoreResult | DrillResult | OffsiteRestoreResult> => {
    const f = ctx.flags;
    if (f.drill && ctx.dryRun) throw new UsageError('--drill has no --dry-run: it only writes a scratch database, which it drops.', 'Run it without --dry-run.');
    if (ctx.positionals.length > 1 || (ctx.positionals.length && !f['from-offsite'])) throw new UsageError('A SNAPSHOT is given only with --from-offsite, and only one.', 'Run restore --help for usage.');
    const cfg = ctx.config(ctx.env!);
    const mode = f.direct ? 'direct' : 'compose';
    if (f['from-offsite']) {
      if (cfg.env !== 'prod') throw new UsageError('--from-offsite works on production\'s offsite copy: use --env prod.', 'EB is a sample of EA and is not copied offsite.');
      const repo = await repoFromConfig(cfg);
      if (!repo) throw new UsageError('RESTIC_REPOSITORY is empty in .env.prod: there is no offsite copy to work from.', 'Set RESTIC_REPOSITORY and RESTIC_PASSWORD_FILE (docs/backup.md).');
      const snapshot = ctx.positionals[0];
      if (f.drill) {
        return offsiteDrill(cfg, { mode, ui: ctx.ui, repo, sample: f.sample, ...(snapshot && { snapshot }) });
      }
      if (!f.target) throw new UsageError('restore --from-offsite needs --target <empty folder> (or --drill).', 'Run restore --help for usage.');
      if (ctx.dryRun) throw new UsageError('--from-offsite has no --dry-run: it writes only into the empty --target folder.', 'Run it without --dry-run.');
      return restoreFromOffsite(cfg, { ui: ctx.ui, repo, target: f.target, typedConfirm: ctx.typedConfirm, yes: ctx.yes, iKnowThisIsProduction: f['i-know-this-is-production'], ...(snapshot && { snapshot }) });
    }
    if (f.drill) return restoreDrill(cfg, { mode, ui: ctx.ui, ...(f.file && { file: f.file }), ...(f.dir && { dir: f.dir }) });
    if (!f.file) throw new UsageError('restore needs --file <backup> (or --drill).', 'Run restore --help for usage.');
    const productionCfg = cfg.env === 'dev' && existsSync(envFilePath('prod', ctx.settings.envDir)) ? ctx.config('prod') : undefined;
    return restoreDatabase(cfg, {
      file: f.file, mode, ui: ctx.ui, typedConfirm: ctx.typedConfirm, confirm: ctx.confirm, yes: ctx.yes, iKnowThisIsProduction: f['i-know-this-is-production'],
      dryRun: ctx.dryRun, ...(f.dir && { backupDir: f.dir }), ...(productionCfg && { productionCfg }),
    });
  },
  render: (r) => ('scratchDatabase' in r ? renderDrill(r) : 'parts' in r ? renderOffsiteRestore(r) : renderRestore(r)),
  exitCode: (r) => ('scratchDatabase' in r && !r.ok ? 1 : 0),
}, process.argv, process.env);
