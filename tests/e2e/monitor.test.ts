// monitor's containers check on the real Docker engine: `docker stats` and the limits `docker
// inspect` reports, for containers of one compose project (a project of its own, so it never
// mixes with the stacks the other e2e files run).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { $ } from 'zx';
import { loadEnvConfig } from '../../lib/core/config.ts';
import { composeDir } from '../../lib/core/paths.ts';
import { defaultThresholds } from '../../lib/domain/monitoring.ts';
import { runMonitor } from '../../lib/jobs/monitor.ts';
import { runAtExit } from '../../dev/cleanup.ts';
import { ensureEngine } from './harness/engine.ts';
import { ensureBaseImage } from './harness/images.ts';

const project = 'makapix-monitor-e2e';
const names = { busy: `${project}-busy`, idle: `${project}-idle`, free: `${project}-free` };

test('EB-style containers at their CPU limit are WARNING; idle and unlimited ones are told apart', async () => {
  await ensureEngine();
  const image = await ensureBaseImage();
  runAtExit('docker', ['rm', '-f', ...Object.values(names)]);
  const run = (name: string, limits: string[], cmd: string[]) => $({ quiet: true })`docker run -d --name ${name} --label ${`com.docker.compose.project=${project}`} ${limits} ${image} ${cmd}`;
  await run(names.busy, ['--cpus', '0.2', '--memory', '64m'], ['sh', '-c', 'while :; do :; done']);
  await run(names.idle, ['--cpus', '0.5', '--memory', '128m'], ['sleep', '600']);
  await run(names.free, [], ['sleep', '600']);
  await new Promise((r) => setTimeout(r, 2000)); // a CPU share needs a few samples

  const dir = mkdtempSync(path.join(tmpdir(), 'monitor-e2e-'));
  for (const env of ['prod', 'dev'] as const) writeFileSync(path.join(dir, `.env.${env}`), readFileSync(path.join(composeDir, `.env.${env}.example`)));
  const r = await runMonitor({
    prod: loadEnvConfig('prod', path.join(dir, '.env.prod')),
    dev: loadEnvConfig('dev', path.join(dir, '.env.dev')),
    only: ['containers'],
    // 50 %, not the default 90: a loaded test machine may give the busy loop less than its full quota.
    thresholds: { ...defaultThresholds, 'container-warn-pct': 50 },
    probes: 1,
    httpsPort: 443,
    resolve: new Map(),
    docker: 'docker',
    containersProject: project,
  });
  const items = Object.fromEntries(r.checks[0]!.items.map((i) => [i.label, i]));
  assert.equal(Object.keys(items).sort(), Object.values(names).sort(), JSON.stringify(r.checks[0]));
  assert.is(items[names.busy]!.status, 'WARNING', items[names.busy]!.detail);
  assert.match(items[names.busy]!.detail, /^CPU \d+% of its limit, memory .* of its limit$/);
  assert.is(items[names.idle]!.status, 'OK', items[names.idle]!.detail);
  assert.match(items[names.idle]!.detail, /^CPU \d+(\.\d)?% of its limit/);
  assert.is(items[names.free]!.detail, 'no CPU limit, no memory limit');
  assert.is(r.status, 'WARNING');
  assert.match(r.summary, new RegExp(`^MONITOR WARNING - containers WARNING: ${names.busy} CPU`));
});

test.run();
