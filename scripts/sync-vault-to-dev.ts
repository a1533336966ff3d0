#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { runSyncVault, describeSync } from '../lib/jobs/vault-sync.ts';

await runScript({
  name: 'sync-vault-to-dev',
  summary: "Copy into EB's vault exactly the artwork files that EB's database references (from EA's vault).",
  details: 'Source: VAULT_HOST_PATH of .env.prod; target and database: .env.dev. Re-runs copy only what changed.\nExamples: sync-vault-to-dev --dry-run; sync-vault-to-dev --prune --yes --json (cron)',
  common: ['dry-run', 'yes', 'json'],
  flags: {
    source: { type: 'string', value: 'dir', description: "EA's vault folder (default: VAULT_HOST_PATH of .env.prod)" },
    target: { type: 'string', value: 'dir', description: "EB's vault folder (default: VAULT_HOST_PATH of .env.dev)" },
    owner: { type: 'string', value: 'uid:gid', description: 'owner of the files and folders written (EB containers)', default: '1000:1000' },
    jobs: { type: 'int', min: 1, max: 64, value: 'N', description: 'copies in flight at once', default: 8 },
    link: { type: 'boolean', description: 'hard-link instead of copying (both vaults on one filesystem)' },
    checksum: { type: 'boolean', description: 'compare content, not only size, of files already there' },
    prune: { type: 'boolean', description: "remove files EB's database no longer references (asks; --yes)" },
    strict: { type: 'boolean', description: 'fail (exit 1) if a referenced file is missing in the source' },
  },
  run: (ctx) => runSyncVault(ctx.config('prod'), ctx.config('dev'), { ...ctx.flags, dryRun: ctx.dryRun, ui: ctx.ui, confirm: ctx.confirm }),
  render: (r) => process.stdout.write(`${describeSync(r).join('\n')}\n`),
}, process.argv, process.env);
