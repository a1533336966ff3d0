#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { checkNames, defaultThresholds, nagiosExit, parseOnly, parseThresholds, type MonitorResult } from '../lib/domain/monitoring.ts';
import { ping, runMonitor } from '../lib/jobs/monitor.ts';
import { parseResolve } from '../lib/tools/probe.ts';
import { pingUrl } from '../lib/tools/healthcheck.ts';

await runScript({
  name: 'monitor',
  summary: 'Checks the alert thresholds (latency, DB connections, disk, EB container limits, certificates, backup age) like a Nagios plugin.',
  details: `Checks: ${checkNames.join(', ')}. Thresholds (--threshold key=value): ${Object.entries(defaultThresholds).map(([k, v]) => `${k}=${v}`).join(', ')}.`,
  exitCodesHelp: 'Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also for a usage or configuration error).',
  common: ['json'],
  flags: {
    only: { type: 'string', multiple: true, value: 'check[,check]', description: 'run only these checks' },
    threshold: { type: 'string', multiple: true, value: 'key=value', description: 'override a threshold (see above)' },
    probes: { type: 'int', min: 1, max: 10_000, value: 'N', default: 20, description: 'probes of EA /api/health for the latency p99' },
    'health-url': { type: 'string', value: 'URL', description: "EA's health URL (default: BASE_URL/api/health from .env.prod)" },
    'https-port': { type: 'int', min: 1, max: 65_535, value: 'N', default: 443, description: 'port of the HTTPS hosts whose certificates are checked' },
    resolve: { type: 'string', multiple: true, value: 'host:address', description: 'connect to address for host (like curl --resolve)' },
    docker: { type: 'string', value: 'PATH', default: 'docker', description: 'the docker CLI' },
    'docker-root': { type: 'string', value: 'PATH', description: "Docker's data root (default: asked from docker info)" },
    ping: { type: 'string', value: 'URL', description: 'healthchecks-style ping: URL on OK, URL/fail otherwise' },
  },
  run: async (ctx): Promise<MonitorResult> => {
    const f = ctx.flags;
    if (f.ping) pingUrl(f.ping, 'fail'); // a malformed URL is a usage error before any check runs
    const options = {
      prod: ctx.config('prod'),
      dev: ctx.config('dev'),
      only: parseOnly(f.only ?? []),
      thresholds: parseThresholds(f.threshold ?? []),
      probes: f.probes,
      httpsPort: f['https-port'],
      resolve: parseResolve(f.resolve ?? []),
      docker: f.docker,
      ...(f['health-url'] && { healthUrl: f['health-url'] }),
      ...(f['docker-root'] && { dockerRoot: f['docker-root'] }),
    };
    const progress = ctx.ui.progress('checks', 'steps');
    const result = await runMonitor({
      ...options,
      onCheck: (c) => {
        ctx.ui.debug(`${c.check}: ${c.status} (${c.ms} ms)`);
        progress.tick();
      },
    });
    progress.done(result.status);
    return f.ping ? { ...result, ping: await ping(f.ping, result, ctx.ui) } : result;
  },
  render: (r) => {
    console.log(r.summary);
    for (const c of r.checks) for (const i of c.items.length ? c.items : [{ status: c.status, label: c.check, detail: c.summary }]) console.log(`[${i.status}] ${c.check}: ${i.label}: ${i.detail}`);
    if (r.ping) console.log(`ping ${r.ping.url}: ${r.ping.detail}`);
  },
  exitCode: (r) => r.exitCode,
  onError: (message) => ({ exitCode: nagiosExit.UNKNOWN, stdout: `MONITOR UNKNOWN - ${message}` }),
}, process.argv, process.env);
