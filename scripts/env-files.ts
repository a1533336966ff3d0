#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { composeDir } from '../lib/core/paths.ts';
import { envFilesExitCode, makeEnvFiles, renderEnvFilesReport } from '../lib/jobs/env-files.ts';
import { runIsolationAudit } from '../lib/jobs/check.ts';

await runScript({
  name: 'env-files',
  summary: "Write compose/.env.prod (production's current values) and compose/.env.dev (development values, fresh secrets) from what runs today.",
  details: [
    "Reads the app checkout's deploy/stack/.env.prod and .env (or --from), EB's .env.dev when it exists, and the running",
    'db/api/web containers (docker inspect); confirms each database password by logging in. Prints names and sources, never a value.',
    'Ends with the validator and make check. Exit 2 while a value is left to fill (listed, with where to get it);',
    'exit 3 when a file exists and --force is not given (with --force a dated copy is kept).',
  ].join('\n'),
  common: ['dry-run', 'json'],
  flags: {
    from: { type: 'string', multiple: true, value: 'file', description: "EA's env file, repeatable, first wins (default: the app checkout's deploy/stack/.env.prod, then .env)" },
    'dev-from': { type: 'string', multiple: true, value: 'file', description: "EB's env file, repeatable (default: the EB checkout's deploy/stack/.env.dev when it exists)" },
    'app-dir': { type: 'path', value: 'dir', default: '/opt/makapix', description: "EA's app checkout" },
    'dev-app-dir': { type: 'path', value: 'dir', default: '/opt/makapix-dev', description: "EB's app checkout" },
    'old-project': { type: 'string', value: 'name', default: 'makapix', description: 'the Compose project of the running production stack (makapix-prod is tried next)' },
    'no-docker': { type: 'boolean', description: 'read only the env files, no container' },
    'env-dir': { type: 'path', value: 'dir', description: 'where to write .env.prod and .env.dev (default: MAKAPIX_ENV_DIR or compose/)' },
    force: { type: 'boolean', description: 'replace existing files (each is kept as <file>.bak-<date>)' },
  },
  run: (ctx) => {
    const envDir = ctx.flags['env-dir'] ?? ctx.settings.envDir;
    return makeEnvFiles({
      appDir: ctx.flags['app-dir'],
      devAppDir: ctx.flags['dev-app-dir'],
      from: ctx.flags.from,
      devFrom: ctx.flags['dev-from'],
      prodProjects: [...new Set([ctx.flags['old-project'], 'makapix-prod'])],
      devProject: 'makapix-dev',
      docker: !ctx.flags['no-docker'],
      envDir,
      templateDir: composeDir,
      force: ctx.flags.force,
      dryRun: ctx.dryRun,
      ui: ctx.ui,
      audit: (dir) => runIsolationAudit({ envDir: dir, settings: ctx.settings, ui: ctx.ui }),
    });
  },
  render: (r) => process.stdout.write(renderEnvFilesReport(r)),
  exitCode: envFilesExitCode,
}, process.argv, process.env);
