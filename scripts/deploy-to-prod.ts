#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { defaultHealth } from '../lib/tools/docker.ts';
import { deployToProd, rollbackProd, renderDeploy } from '../lib/jobs/deploy.ts';

await runScript({
  name: 'deploy-to-prod',
  summary: "Deploys main (tested on EB) to EA: preflight, EB tests, pinned backup, fast-forward, build, migrations, overlapping switch, health, record.",
  details: 'Unhealthy after the switch: rolls back to the previous image tag by itself. Records every attempt in DEPLOY_LOG.\nExamples:\n  deploy-to-prod --dry-run\n  deploy-to-prod --rollback\nExit 3: refused (another deploy running, dirty checkout, EB not on main, ...).',
  common: ['dry-run', 'yes', 'json'],
  defaultEnv: 'prod',
  flags: {
    rollback: { type: 'boolean', description: 'switch EA back to the tag before the last successful deploy (no build)' },
    'skip-tests': { type: 'boolean', description: "don't run the app's tests on EB (needs --yes; recorded)" },
    'health-timeout': { type: 'int', min: 1, max: 3600, value: 'seconds', default: 120, description: 'how long a new container may take to become healthy (3 successes in a row, 1 s apart)' },
    'health-url': { type: 'string', value: 'url', description: "poll this URL for step 8 (e.g. https://makapix.club/api/health) instead of the api container's healthcheck" },
  },
  run: async (ctx) => {
    const prod = ctx.config('prod');
    const health = { ...defaultHealth, timeoutMs: ctx.flags['health-timeout'] * 1000 };
    if (ctx.flags.rollback) return rollbackProd(prod, { ui: ctx.ui, dryRun: ctx.dryRun, operator: ctx.settings.operator, health });
    const opts = { ui: ctx.ui, dryRun: ctx.dryRun, operator: ctx.settings.operator, health, skipTests: ctx.flags['skip-tests'], yes: ctx.yes, ...(ctx.flags['health-url'] && { healthUrl: ctx.flags['health-url'] }) };
    return deployToProd(prod, ctx.config('dev'), opts);
  },
  render: (r) => process.stdout.write(renderDeploy(r)),
}, process.argv, process.env);
