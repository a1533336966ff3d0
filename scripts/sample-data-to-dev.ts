#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { sampleDataToDev, describeReport, optionsFromFlags } from '../lib/jobs/sample-data.ts';

await runScript({
  name: 'sample-data-to-dev',
  summary: "Replace EB's database with an anonymized, referentially whole PCT % sample of EA's (one transaction).",
  details: 'Source: .env.prod (or --source-url), target: .env.dev (or --target-url, which must be that same EB database).\nExamples: sample-data-to-dev --pct 10 --dry-run; sample-data-to-dev --pct 5 --seed 42 --users 12 --yes --json\nExit 2 also when a sensitive-looking column has no anonymization rule, or the configuration names what the schema lacks (docs/sample-data.md).',
  common: ['dry-run', 'yes', 'json'],
  flags: {
    pct: { type: 'number', noun: 'a percentage', min: 0, above: true, max: 100, value: 'N', description: "percentage of EA's users to pick, in (0, 100]", default: 10 },
    seed: { type: 'int', min: -(2 ** 53 - 1), max: 2 ** 53 - 1, value: 'S', description: 'makes the pick reproducible (default: random, printed)' },
    users: { type: 'list', pattern: /^[A-Za-z0-9-]{1,64}$/, value: '12,34', description: 'user ids always included' },
    'exclude-banned': { type: 'boolean', description: 'never pick banned or deactivated users (named ones stay)' },
    'schema-from-prod': { type: 'boolean', description: "recreate EB's schema from EA's first (when they differ)" },
    direct: { type: 'boolean', description: "with --schema-from-prod: run the host's pg_dump against EA's address, not the one in EA's db container" },
    'source-url': { type: 'string', value: 'url', description: 'EA as postgresql://user@host:port/db (password: PGPASSWORD)' },
    'target-url': { type: 'string', value: 'url', description: 'EB as postgresql://user@host:port/db' },
    config: { type: 'string', value: 'file', description: 'the sampling configuration (default: config/sampling.ts, the real app at its Alembic head)' },
  },
  run: (ctx) => sampleDataToDev({ ...optionsFromFlags(ctx.flags, (env) => ctx.config(env), ctx.settings), dryRun: ctx.dryRun, ui: ctx.ui, confirm: ctx.confirm }),
  render: (r) => process.stdout.write(`${describeReport(r).join('\n')}\n`),
}, process.argv, process.env);
