#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { Exit } from '../lib/core/errors.ts';
import { runIsolationAudit, renderCheckTable } from '../lib/jobs/check.ts';

await runScript({
  name: 'check',
  summary: 'Prove EA and EB are isolated: renders both stacks and the Caddyfile and audits them (changes nothing).',
  details: 'Exit 1 when any check fails; warnings (e.g. EB paths exempt from basic auth) do not fail.\nThe --compose-dir/--caddyfile/--env-dir options audit copies (tests, a change under review).',
  common: ['json'],
  flags: {
    'compose-dir': { type: 'string', value: 'dir', description: 'folder with docker-compose.yml and the overrides (default: compose/)' },
    caddyfile: { type: 'string', value: 'file', description: 'the Caddyfile to audit (default: caddy/Caddyfile)' },
    'env-dir': { type: 'string', value: 'dir', description: 'folder with .env.prod and .env.dev (default: MAKAPIX_ENV_DIR or compose/)' },
    'app-dir': { type: 'string', value: 'dir', description: "also audit the contract with this app checkout: variables its code reads that compose does not pass, moved files, services of its compose ours lacks" },
  },
  run: (ctx) => runIsolationAudit({ composeDir: ctx.flags['compose-dir'], caddyfile: ctx.flags.caddyfile, envDir: ctx.flags['env-dir'], appDir: ctx.flags['app-dir'], settings: ctx.settings, ui: ctx.ui }),
  render: (r) => process.stdout.write(renderCheckTable(r.rows)),
  exitCode: (r) => (r.ok ? Exit.ok : Exit.failed),
}, process.argv, process.env);
