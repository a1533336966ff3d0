#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { runScript } from '../lib/core/cli.ts';
import { ConfigError, UsageError } from '../lib/core/errors.ts';
import { caddyDir } from '../lib/core/paths.ts';
import { defaultSessionSeconds } from '../lib/domain/edge-session.ts';
import { parseSessionKey, startEdgeAuth } from '../lib/jobs/edge-auth.ts';
import { credentialsFileName } from '../lib/jobs/basic-auth.ts';

// Defaults come from the environment, so the edge's compose file configures the container the
// same way it configures Caddy; flags win over them.
const credentialsDir = process.env.MAKAPIX_CREDENTIALS_DIR ?? path.join(caddyDir, 'credentials');

await runScript({
  name: 'edge-auth',
  summary: "Serve EB's developer check for the edge Caddy (forward auth): Basic once, then a signed session cookie.",
  details:
    'Runs until SIGTERM or SIGINT. Reads <credentials-dir>/developers.caddy (make basic-auth) and re-reads it when it changes.\n' +
    'Environment: EDGE_AUTH_LISTEN, MAKAPIX_CREDENTIALS_DIR, EDGE_SESSION_KEY_FILE, EDGE_SESSION_HOURS.',
  common: [],
  flags: {
    listen: { type: 'string', value: 'host:port', description: 'where Caddy reaches it', default: process.env.EDGE_AUTH_LISTEN ?? '127.0.0.1:9180' },
    'credentials-dir': { type: 'string', value: 'dir', description: 'folder of developers.caddy', default: credentialsDir },
    'key-file': { type: 'string', value: 'file', description: 'the session key (hex, at least 32 bytes)', default: process.env.EDGE_SESSION_KEY_FILE ?? path.join(credentialsDir, 'session.key') },
    'session-hours': { type: 'string', value: 'N', description: 'how long a session lasts', default: process.env.EDGE_SESSION_HOURS ?? String(defaultSessionSeconds / 3600) },
  },
  run: async (ctx) => {
    const m = /^(.+):(\d{1,5})$/.exec(ctx.flags.listen);
    if (!m) throw new UsageError(`--listen must be host:port, got ${JSON.stringify(ctx.flags.listen)}.`, 'For example 0.0.0.0:9180.');
    const hours = Number(ctx.flags['session-hours']);
    if (!(hours > 0 && hours <= 24 * 7)) throw new UsageError(`--session-hours must be more than 0 and at most 168, got ${JSON.stringify(ctx.flags['session-hours'])}.`, 'The default is 12.');
    const keyFile = ctx.flags['key-file'];
    const keyText = await readFile(keyFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError(`The session key ${keyFile} cannot be read (${err.code ?? err.message}).`, [], 'make up-edge writes one; or point EDGE_SESSION_KEY_FILE at it.');
    });
    const server = await startEdgeAuth({
      host: m[1]!.replace(/^\[|\]$/g, ''),
      port: Number(m[2]),
      credentialsFile: path.join(ctx.flags['credentials-dir'], credentialsFileName('developers')),
      key: parseSessionKey(keyText, keyFile),
      sessionSeconds: Math.round(hours * 3600),
    });
    ctx.ui.info(`edge-auth: listening on ${m[1]}:${server.port}`);
    const signal = await new Promise<string>((resolve) => {
      for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve(s));
    });
    await server.close();
    return { stoppedBy: signal };
  },
});
