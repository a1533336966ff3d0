#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { parseStackAction, runEdge, runStack, stackActions } from '../lib/jobs/stack.ts';

await runScript({
  name: 'stack.ts',
  summary: 'Start, stop, inspect or rebuild one environment (docker compose, with its env file checked first).',
  positionals: `<${stackActions.join('|')}|up-edge|reload-edge>`,
  details: 'up: start (creates caddy_net and EB\'s vault folder when missing); down: stop and remove containers, keep volumes;\nlogs: follow; ps: list; rebuild (dev only): build, then recreate only what changed.',
  common: ['env', 'dry-run', 'json'],
  defaultEnv: 'dev',
  flags: { service: { type: 'string', value: 'name', description: 'act on one service only (e.g. api)' } },
  run: async (ctx) => {
    if (ctx.positionals[0] === 'up-edge' || ctx.positionals[0] === 'reload-edge') return runEdge(ctx.positionals[0] === 'up-edge' ? 'up' : 'reload', ctx.settings, ctx.ui, ctx.dryRun);
    const action = parseStackAction(ctx.positionals[0]);
    return runStack(ctx.config(ctx.env!), action, { ui: ctx.ui, dryRun: ctx.dryRun, ...(ctx.flags.service && { service: ctx.flags.service }) });
  },
  render: (r, ctx) => {
    if (ctx.dryRun) for (const s of r.steps) process.stdout.write(`${s}\n`);
  },
}, process.argv, process.env);
