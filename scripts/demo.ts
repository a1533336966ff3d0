#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { describeDemo, runDemo } from '../dev/demo.ts';
import { sandboxSizeFlags } from '../dev/sandbox.ts';

await runScript({
  name: 'demo',
  summary: 'Bring up the local sandbox (EA seeded, EB empty) and run the main jobs on it, printing what was made and where.',
  common: ['json'],
  flags: sandboxSizeFlags,
  run: (ctx) => runDemo({ users: ctx.flags.users, seed: ctx.flags.seed, ui: ctx.ui }),
  render: (r) => process.stdout.write(`${describeDemo(r)}\n`),
}, process.argv, process.env);
