#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runScript } from '../lib/core/cli.ts';
import { ConfigError, UsageError } from '../lib/core/errors.ts';
import { settingsFrom } from '../lib/core/settings.ts';
import { defaultSessionSeconds, parseSessionKey, startEdgeAuth } from '../lib/jobs/edge-auth.ts';

// Defaults come from the environment, so the edge's compose file configures the container the
// same way it configures Caddy; flags win over them.
const credentialsDir = settingsFrom(process.env).credentialsDir;

await runScript(
  {
    name: 'edge-auth',
    summary: "Serve EB's developer check for the edge Caddy (forward auth): a password once, then a signed session cookie.",
    details:
      'Runs until SIGTERM or SIGINT. Reads <credentials-dir>/developers.caddy (make basic-auth) and re-reads it when it changes.\n' +
      'Environment: EDGE_AUTH_LISTEN, MAKAPIX_CREDENTIALS_DIR, EDGE_SESSION_KEY_FILE, EDGE_SESSION_HOURS.',
    common: [],
    flags: {
      listen: { type: 'string', value: 'host:port', description: 'where Caddy reaches it', default: process.env.EDGE_AUTH_LISTEN ?? '127.0.0.1:9180' },
      'credentials-dir': { type: 'path', value: 'dir', description: 'folder of developers.caddy', default: credentialsDir },
      'key-file': { type: 'path', value: 'file', description: 'the session key (hex, at least 32 bytes)', default: process.env.EDGE_SESSION_KEY_FILE ?? path.join(credentialsDir, 'session.key') },
      'session-hours': { type: 'number', min: 0, above: true, max: 168, value: 'N', description: 'how long a session lasts', default: Number(process.env.EDGE_SESSION_HOURS ?? defaultSessionSeconds / 3600) },
    },
    run: async (ctx) => {
      const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(ctx.flags.listen);
      if (!m) throw new UsageError(`--listen must be host:port, got ${JSON.stringify(ctx.flags.listen)}.`, 'For example 0.0.0.0:9180.');
      const keyFile = ctx.flags['key-file'];
      const keyText = await readFile(keyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new ConfigError(`The session key ${keyFile} cannot be read (${err.code ?? err.message}).`, [], 'make up-edge writes one; or point EDGE_SESSION_KEY_FILE at it.');
      });
      const server = await startEdgeAuth({
        host: m[1]!,
        port: Number(m[2]),
        credentialsDir: ctx.flags['credentials-dir'],
        key: parseSessionKey(keyText, keyFile),
        sessionSeconds: Math.round(ctx.flags['session-hours'] * 3600),
      });
      ctx.ui.info(`edge-auth: listening on ${m[1]}:${server.port}`);
      const signal = await new Promise<string>((resolve) => {
        for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s));
      });
      await server.close();
      return { stoppedBy: signal };
    },
  },
  process.argv,
  process.env,
);
