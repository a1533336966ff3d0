#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { UsageError } from '../lib/core/errors.ts';
import { describeSandbox, sandboxDown, sandboxSizeFlags, sandboxStatus, sandboxUp } from '../dev/sandbox.ts';

await runScript({
  name: 'sandbox',
  summary: 'The local sandbox: EA and EB as throwaway PostgreSQL 15 clusters on loopback, EA seeded, with vaults and env files.',
  positionals: 'up|down|status',
  details: 'up      start (or restart) the sandbox; an existing one is kept, not reseeded\ndown    stop both clusters and delete the sandbox folder\nstatus  show what runs where (changes nothing)\nRun other scripts against it after `. .sandbox/activate` (sets MAKAPIX_ENV_DIR=.sandbox/env and the edge host names).',
  common: ['json'],
  flags: sandboxSizeFlags,
  run: async (ctx) => {
    const [action, ...extra] = ctx.positionals;
    if (extra.length || !['up', 'down', 'status'].includes(action ?? '')) throw new UsageError(`sandbox takes one action, up, down or status; got "${ctx.positionals.join(' ')}".`, 'Run sandbox --help for usage.');
    if (action === 'up') return sandboxUp({ users: ctx.flags.users, seed: ctx.flags.seed, ui: ctx.ui });
    if (action === 'down') return sandboxDown({ ui: ctx.ui });
    return sandboxStatus();
  },
  render: (r) => process.stdout.write(`${'removed' in r ? (r.removed ? `Deleted the sandbox in ${r.dir}.` : `No sandbox in ${r.dir}.`) : describeSandbox(r)}\n`),
}, process.argv, process.env);
