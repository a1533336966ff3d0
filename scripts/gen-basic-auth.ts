#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { askNewSecret } from '../lib/core/ui.ts';
import { runBasicAuth, renderBasicAuth, defaultCost } from '../lib/jobs/basic-auth.ts';
import { scopes } from '../lib/domain/credentials.ts';

await runScript({
  name: 'gen-basic-auth',
  summary: 'Manage who may open EB through Caddy: developers (the EB site) or devices (vault-dev only).',
  positionals: '<add|remove|rotate|list> [user]',
  details: 'The password is typed twice without echo on a terminal, or read from stdin (--password-stdin),\nor generated (--generate, shown once). Never pass it as an argument.\nExamples: gen-basic-auth add alice --generate; echo "$PW" | gen-basic-auth rotate tv1 --scope devices --password-stdin',
  common: ['env', 'dry-run', 'yes', 'json'],
  defaultEnv: 'dev',
  flags: {
    scope: { type: 'enum', values: scopes, description: 'which credentials: the EB site or vault-dev', default: 'developers' },
    'password-stdin': { type: 'boolean', description: 'read the password from stdin' },
    generate: { type: 'boolean', description: 'generate a strong password and show it once' },
    cost: { type: 'int', min: 4, max: 31, value: 'N', description: "bcrypt cost (Caddy's hash-password uses 14)", default: defaultCost },
    force: { type: 'boolean', description: 'add: replace a user that exists' },
    'no-reload': { type: 'boolean', description: 'write the file but do not reload the running Caddy' },
  },
  run: (ctx) =>
    runBasicAuth({
      positionals: ctx.positionals, env: ctx.env, scope: ctx.flags.scope, cost: ctx.flags.cost, force: ctx.flags.force,
      reload: !ctx.flags['no-reload'], dryRun: ctx.dryRun, confirm: ctx.confirm, settings: ctx.settings,
      password: { stdin: ctx.flags['password-stdin'], generate: ctx.flags.generate, tty: ctx.ui.tty, input: process.stdin, ask: askNewSecret },
    }),
  render: (r) => renderBasicAuth(r),
}, process.argv, process.env);
