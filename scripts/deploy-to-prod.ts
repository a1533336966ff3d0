#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { defaultHealth } from '../lib/tools/docker.ts';
import { deployToProd, rollbackProd, renderDeploy } from '../lib/jobs/deploy.ts';

await runScript({
  name: 'deploy-to-prod',
  summary: "Deploys main (its tree tested on EB) to EA: preflight, the app's tests in a one-off EB container, pinned backup, fast-forward, build, migrations to the head, overlapping switch, health, record.",
  details: 'Unhealthy after the switch: rolls back to the previous image tag by itself. Records every attempt in DEPLOY_LOG.\nExamples:\n  deploy-to-prod --dry-run\n  deploy-to-prod --rollback\nExit 3: refused (another deploy running, dirty checkout, EB not on main, ...).',
  common: ['dry-run', 'yes', 'json'],
  defaultEnv: 'prod',
  flags: {
    rollback: { type: 'boolean', description: 'switch EA back to the tag before the last successful deploy (no build)' },
    'skip-tests': { type: 'boolean', description: "don't run the app's tests on EB (needs --yes; recorded)" },
    'health-timeout': { type: 'int', min: 1, max: 3600, value: 'seconds', default: 120, description: 'how long a new container may take to become healthy (3 successes in a row, 1 s apart)' },
    'eb-branch': { type: 'string', value: 'name', default: 'develop', description: "the branch EB's checkout tracks (its tree must equal main's)" },
    'test-command': { type: 'string', value: 'cmd', default: 'python scripts/run_tests.py', description: "the app's test command, run in /workspace/api of a one-off EB api container" },
    'test-memory': { type: 'int', min: 64, max: 2048, value: 'MiB', default: 768, description: 'memory of the test container (EB stops worker, web, api as needed to stay within 2 GiB)' },
    'health-url': { type: 'string', value: 'url', description: "poll this URL for step 8 (e.g. https://makapix.club/api/health) instead of the api container's healthcheck" },
  },
  run: async (ctx) => {
    const prod = ctx.config('prod');
    const health = { ...defaultHealth, timeoutMs: ctx.flags['health-timeout'] * 1000 };
    if (ctx.flags.rollback) return rollbackProd(prod, { ui: ctx.ui, dryRun: ctx.dryRun, operator: ctx.settings.operator, health });
    const opts = { ui: ctx.ui, dryRun: ctx.dryRun, operator: ctx.settings.operator, health, skipTests: ctx.flags['skip-tests'], yes: ctx.yes, ebBranch: ctx.flags['eb-branch'], testCommand: ctx.flags['test-command'].split(/\s+/).filter(Boolean), testMemoryMb: ctx.flags['test-memory'], ...(ctx.flags['health-url'] && { healthUrl: ctx.flags['health-url'] }) };
    return deployToProd(prod, ctx.config('dev'), opts);
  },
  render: (r) => process.stdout.write(renderDeploy(r)),
}, process.argv, process.env);
