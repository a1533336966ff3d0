#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { cutoverProd, edgeHttpAddress } from '../lib/jobs/cutover.ts';

await runScript({
  name: 'cutover-prod',
  summary: 'Once: stops the old single-environment stack and starts production as EA on the same database volume (backup first, health checked).',
  details: 'Exit 3 when DB_VOLUME_NAME does not exist or a container still uses it. Prints the rollback command.',
  common: ['dry-run', 'yes', 'json'],
  defaultEnv: 'prod',
  flags: { 'old-project': { type: 'string', value: 'name', default: 'makapix', description: 'the Compose project name of the old stack (docker ps shows it in the labels)' } },
  run: async (ctx) =>
    cutoverProd(ctx.config('prod'), {
      oldProject: ctx.flags['old-project'],
      ui: ctx.ui,
      dryRun: ctx.dryRun,
      confirm: ctx.confirm,
      credentialsDir: ctx.settings.credentialsDir,
      // Where the edge Caddy's port 80 is published (caddy/docker-compose.edge.yml): the handover is timed there.
      edgeHttp: edgeHttpAddress(ctx.settings.environ.EDGE_HTTP_BIND),
    }),
  render: (r) =>
    process.stdout.write(
      `${r.plan.steps.map((s, i) => `${i + 1}. ${s}`).join('\n')}\n${r.backup ? `Backup: ${r.backup}\n` : ''}${r.gaps ? `Handover gap: ${r.gaps.handoverMs} ms (no proxy on the ports)\nOutage: ${r.gaps.outageMs} ms (the site down in all)\n` : ''}Rollback: ${r.plan.rollback}\n`,
    ),
}, process.argv, process.env);
