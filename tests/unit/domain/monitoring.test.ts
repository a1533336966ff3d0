import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultThresholds, diskUsage, evaluateBackup, evaluateCerts, evaluateConnections, evaluateContainers, evaluateDisk, evaluateLatency, nagiosExit, parseOnly, parseThresholds, percentile, summarize, worst, type MonitorResult, type Status } from '../../../lib/domain/monitoring.ts';
import { dockerArgs, parseContainerStats, parseDockerSize } from '../../../lib/jobs/monitor.ts';
import { PassThrough } from 'node:stream';
import { executeCommand, type CommandSpec } from '../../../lib/core/cli.ts';
import { backupName, parseBackupName } from '../../../lib/domain/backup-files.ts';
import { parseResolve } from '../../../lib/tools/probe.ts';
import { ConfigError, UsageError } from '../../../lib/core/errors.ts';

const t = defaultThresholds;
const now = new Date('2026-11-25T12:00:00Z');
const days = (n: number) => new Date(now.getTime() + n * 86_400_000);

test('nagios exit codes and the order of statuses', () => {
  assert.equal(nagiosExit, { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 });
  const cases: [Status[], Status][] = [
    [[], 'OK'],
    [['OK', 'OK'], 'OK'],
    [['OK', 'UNKNOWN'], 'UNKNOWN'],
    [['UNKNOWN', 'WARNING'], 'WARNING'],
    [['WARNING', 'CRITICAL', 'UNKNOWN'], 'CRITICAL'],
  ];
  for (const [input, want] of cases) assert.is(worst(input), want, input.join(','));
});

test('percentile is nearest-rank', () => {
  const cases: [number[], number, number][] = [
    [[5], 99, 5],
    [[1, 2, 3, 4], 50, 2],
    [[10, 1, 7, 3], 99, 10],
    [Array.from({ length: 100 }, (_, i) => i + 1), 99, 99],
    [Array.from({ length: 200 }, (_, i) => i + 1), 99, 198],
  ];
  for (const [samples, p, want] of cases) assert.is(percentile(samples, p), want, `${p} of ${samples.length}`);
  assert.ok(Number.isNaN(percentile([], 99)));
});

test('latency: p99 against the thresholds; any failed probe is CRITICAL', () => {
  const url = 'https://makapix.club/api/health';
  const fast = Array.from({ length: 20 }, () => ({ ms: 40 }));
  const cases: [string, Parameters<typeof evaluateLatency>[1], Status, RegExp][] = [
    ['fast', fast, 'OK', /p99 40 ms over 20 probes .*≤ 500 ms/],
    ['one slow probe of 20 is the p99', [...fast.slice(1), { ms: 700 }], 'WARNING', /p99 700 ms .*> 500 ms/],
    ['exactly at the limit', [{ ms: 500 }], 'OK', /p99 500 ms/],
    ['very slow', [{ ms: 2500 }], 'CRITICAL', /> 2000 ms/],
    ['a failed probe', [...fast, { error: 'HTTP 502' }], 'CRITICAL', /1 of 21 probes failed \(HTTP 502\)/],
    ['no probes', [], 'UNKNOWN', /no probes/],
  ];
  for (const [name, samples, status, detail] of cases) {
    const r = evaluateLatency(url, samples, t);
    assert.is(r.status, status, name);
    assert.match(r.summary, detail, name);
  }
});

test('connections: share of max_connections, strictly above the threshold', () => {
  const cases: [Parameters<typeof evaluateConnections>[1], Status, RegExp][] = [
    [{ used: 5, max: 100 }, 'OK', /5 of max_connections 100 in use \(5\.0%; ≤ 70%\)/],
    [{ used: 70, max: 100 }, 'OK', /70%/],
    [{ used: 71, max: 100 }, 'WARNING', /> 70%/],
    [{ used: 8, max: 10 }, 'WARNING', /80%; > 70%/],
    [{ used: 9, max: 10 }, 'CRITICAL', /90%; > 80%/],
    [{ error: 'Cannot connect to PostgreSQL at 127.0.0.1:1 (database makapix): ECONNREFUSED.' }, 'UNKNOWN', /Cannot connect to PostgreSQL at 127\.0\.0\.1:1/],
  ];
  for (const [m, status, detail] of cases) {
    const r = evaluateConnections('prod', m, t);
    assert.is(r.status, status, JSON.stringify(m));
    assert.match(r.summary, detail);
  }
});

test('disk: usage as df counts it, per path; an unmeasurable path is UNKNOWN', () => {
  // 100 blocks, 10 free of which 5 reserved for root: df says 90 used of 95 → 94.7 %.
  assert.equal(diskUsage({ bsize: 1, blocks: 100, bfree: 10, bavail: 5 }), { usedBytes: 90, sizeBytes: 95 });
  const g = 1024 ** 3;
  const r = evaluateDisk(
    [
      { role: 'prod vault', path: '/mnt/vault-1', usage: { usedBytes: 50 * g, sizeBytes: 100 * g } },
      { role: 'dev vault', path: '/mnt/vault-dev', usage: { usedBytes: 85 * g, sizeBytes: 100 * g } },
      { role: 'prod backups', path: '/backups', error: 'cannot measure: ENOENT' },
    ],
    t,
  );
  assert.equal(r.items.map((i) => i.status), ['OK', 'WARNING', 'UNKNOWN']);
  assert.is(r.status, 'WARNING');
  assert.match(r.summary, /dev vault \/mnt\/vault-dev 85% used \(15\.0 GiB free\)/);
  assert.is(evaluateDisk([{ role: 'x', path: '/x', usage: { usedBytes: 91, sizeBytes: 100 } }], t).status, 'CRITICAL');
  assert.is(evaluateDisk([{ role: 'x', path: '/x', usage: { usedBytes: 10, sizeBytes: 100 } }], t).summary, '1 paths below 80%');
});

test('containers: CPU against the limit in cores, memory against its limit; never CRITICAL', () => {
  const m = 1024 ** 2;
  const r = evaluateContainers(
    'makapix-dev',
    [
      { name: 'makapix-dev-api', cpuPct: 25, cpuLimit: 0.5, memUsedBytes: 100 * m, memLimitBytes: 384 * m },
      { name: 'makapix-dev-db', cpuPct: 95, cpuLimit: 1, memUsedBytes: 100 * m, memLimitBytes: 768 * m },
      { name: 'makapix-dev-web', cpuPct: 1, cpuLimit: 0.5, memUsedBytes: 250 * m, memLimitBytes: 256 * m },
      { name: 'makapix-dev-cache', cpuPct: 300, memUsedBytes: 10 * m },
    ],
    t,
  );
  assert.equal(r.items.map((i) => i.status), ['OK', 'WARNING', 'WARNING', 'OK']);
  assert.match(r.items[0]!.detail, /CPU 50% of its limit/);
  assert.match(r.items[1]!.detail, /CPU 95% of its limit/);
  assert.match(r.items[2]!.detail, /memory 250\.0 MiB 98% of its limit/);
  assert.match(r.items[3]!.detail, /no CPU limit, no memory limit/);
  assert.is(r.status, 'WARNING');
  assert.is(evaluateContainers('makapix-dev', [], t).status, 'OK');
  const unknown = evaluateContainers('makapix-dev', { error: 'docker not available (docker ps: command not found)' }, t);
  assert.is(unknown.status, 'UNKNOWN');
  assert.match(unknown.summary, /docker not available/);
});

test('docker: argv, sizes, and stats joined with limits', () => {
  assert.equal(dockerArgs.stats(['a', 'b']), ['stats', '--no-stream', '--format', '{{json .}}', 'a', 'b']);
  assert.equal(dockerArgs.projectContainers('makapix-dev'), ['ps', '--filter', 'label=com.docker.compose.project=makapix-dev', '--format', '{{.Names}}']);
  const sizes: [string, number][] = [['0B', 0], ['6.5MiB', 6.5 * 1024 ** 2], ['1.9GiB', 1.9 * 1024 ** 3], ['12kB', 12_000], ['2GB', 2e9]];
  for (const [text, bytes] of sizes) assert.is(parseDockerSize(text), bytes, text);
  assert.throws(() => parseDockerSize('lots'), /unreadable size/);
  const stats = [
    JSON.stringify({ Name: 'makapix-dev-db', CPUPerc: '12.50%', MemUsage: '200MiB / 768MiB', MemPerc: '26.04%' }),
    JSON.stringify({ Name: 'makapix-dev-cache', CPUPerc: '0.10%', MemUsage: '5MiB / 1.9GiB', MemPerc: '0.26%' }),
  ].join('\n');
  const limits = `/makapix-dev-db 1000000000 0 0 805306368\n/makapix-dev-cache 0 25000 100000 0\n`;
  assert.equal(parseContainerStats(stats, limits), [
    { name: 'makapix-dev-cache', cpuPct: 0.1, cpuLimit: 0.25, memUsedBytes: 5 * 1024 ** 2 },
    { name: 'makapix-dev-db', cpuPct: 12.5, cpuLimit: 1, memUsedBytes: 200 * 1024 ** 2, memLimitBytes: 805306368 },
  ]);
});

test('certs: < 14 days WARNING, < 3 days or expired CRITICAL, unreadable UNKNOWN', () => {
  const cert = (d: number, source = 'makapix.club:443') => ({ source, subject: 'makapix.club', notAfter: days(d) });
  const cases: [Parameters<typeof evaluateCerts>[0], Status, RegExp][] = [
    [[cert(90)], 'OK', /1 certificates valid for ≥ 14 days/],
    [[cert(90), cert(5, '/etc/makapix/dev/mqtt/server.crt')], 'WARNING', /server\.crt \(makapix\.club\) expires in 5 days, 2026-11-30/],
    [[cert(13.9)], 'WARNING', /expires in 13 days/],
    [[cert(2)], 'CRITICAL', /expires in 2 days/],
    [[cert(-1)], 'CRITICAL', /expired 1 days ago/],
    [[cert(90), { source: 'vault.makapix.club:443', error: 'cannot read its certificate: ECONNREFUSED' }], 'UNKNOWN', /vault\.makapix\.club:443 cannot read its certificate: ECONNREFUSED/],
    [[], 'UNKNOWN', /no certificate found/],
  ];
  for (const [m, status, detail] of cases) {
    const r = evaluateCerts(m, now, t);
    assert.is(r.status, status, JSON.stringify(m));
    assert.match(r.summary, detail);
  }
});

test('backup: file names, and the newest backup against the schedule', () => {
  assert.equal(parseBackupName('makapix-20261125-031500.dump'), { takenAt: new Date('2026-11-25T03:15:00Z'), ext: 'dump' });
  for (const name of ['makapix-20261125-031500.dump.tmp', 'makapix-20261125-031500.dump.sha256', 'makapix-20261125-031500.json', 'makapix-20261332-031500.dump', 'other-20261125-031500.dump', 'makapix-2026112-031500.sql']) {
    assert.is(parseBackupName(name), undefined, name);
  }
  assert.is(backupName(new Date('2026-01-02T03:04:05.678Z'), 'sql'), 'makapix-20260102-030405.sql');
  const dir = '/backups';
  const at = (hoursAgo: number) => backupName(new Date(now.getTime() - hoursAgo * 3_600_000), 'dump');
  const good = (hoursAgo: number) => ({ name: at(hoursAgo), takenAt: new Date(now.getTime() - hoursAgo * 3_600_000), finishedAt: new Date(now.getTime() - hoursAgo * 3_600_000 + 60_000) });
  const bad = (hoursAgo: number, problem: string) => ({ ...good(hoursAgo), problem });
  const year2099 = { name: 'makapix-20991231-000000.dump', takenAt: new Date('2099-12-31T00:00:00Z') };
  const cases: [Parameters<typeof evaluateBackup>[0], Status, RegExp][] = [
    [{ dir, backups: [good(30), good(3)] }, 'OK', /newest makapix-20261125-090000\.dump is 3\.0 h old \(≤ 26 h\)/],
    [{ dir, backups: [good(27)] }, 'WARNING', /27\.0 h old \(> 26 h\)/],
    [{ dir, backups: [good(60)] }, 'CRITICAL', /60\.0 h old \(> 50 h\)/],
    [{ dir, backups: [] }, 'CRITICAL', /\/backups holds no backup/],
    [{ dir, error: 'does not exist: no backup was ever taken here', missing: true }, 'CRITICAL', /does not exist/],
    [{ dir, error: 'cannot read: EACCES' }, 'UNKNOWN', /EACCES/],
    // File names alone never read OK: issue 20.
    [{ dir, backups: [good(30), year2099] }, 'WARNING', /newest makapix-20261124-060000\.dump is 30\.0 h old .*makapix-20991231-000000\.dump does not count: it is dated in the future/],
    [{ dir, backups: [year2099] }, 'CRITICAL', /holds no verified backup; .* dated in the future/],
    [{ dir, backups: [{ ...good(3), finishedAt: new Date('2099-01-01T00:00:00Z') }, good(20)] }, 'WARNING', /dated in the future/],
    [{ dir, backups: [good(20), bad(2, 'its dump is empty')] }, 'WARNING', /newest makapix-20261124-160000\.dump is 20\.0 h old .*does not count: its dump is empty/],
    [{ dir, backups: [good(40), bad(2, 'its bytes are damaged (sha256 differs from its manifest)')] }, 'WARNING', /40\.0 h old .*damaged/],
    [{ dir, backups: [bad(2, 'its dump is 10 bytes, its manifest says 99 (truncated or replaced)')] }, 'CRITICAL', /holds no verified backup; .*truncated/],
  ];
  for (const [m, status, detail] of cases) {
    const r = evaluateBackup(m, now, t);
    assert.is(r.status, status, JSON.stringify(m));
    assert.match(r.summary, detail);
  }
});

test('summary: the first line names every check that is not OK', () => {
  const ok = { ...evaluateConnections('prod', { used: 1, max: 100 }, t), ms: 1 };
  const warn = { ...evaluateCerts([{ source: 'a:443', subject: 'a', notAfter: days(5) }], now, t), ms: 1 };
  assert.equal(summarize([ok]).summary, 'MONITOR OK - 1 checks OK (connections)');
  const s = summarize([ok, warn]);
  assert.is(s.status, 'WARNING');
  assert.is(s.exitCode, 1);
  assert.match(s.summary, /^MONITOR WARNING - certs WARNING: a:443 \(a\) expires in 5 days/);
});

test('flags: thresholds, --only and --resolve', () => {
  assert.equal(parseThresholds([]), defaultThresholds);
  assert.is(parseThresholds(['latency-warn-ms=250', 'disk-crit-pct=95'])['latency-warn-ms'], 250);
  const bad: [string[], RegExp][] = [
    [['latency=5'], /not key=number with a known key/],
    [['disk-warn-pct=lots'], /not key=number/],
    [['disk-warn-pct=95'], /disk-warn-pct=95 is above disk-crit-pct=90/],
    [['cert-crit-days=20'], /cert-warn-days=14 is below cert-crit-days=20/],
  ];
  for (const [values, msg] of bad) assert.throws(() => parseThresholds(values), (e: Error) => e instanceof UsageError && msg.test(e.message));
  assert.equal(parseOnly([]), ['latency', 'connections', 'disk', 'containers', 'certs', 'backup', 'offsite']);
  assert.equal(parseOnly(['backup,certs']), ['certs', 'backup']);
  assert.equal(parseOnly(['disk', 'latency']), ['latency', 'disk']);
  assert.throws(() => parseOnly(['cert']), (e: Error) => e instanceof UsageError && /"cert" is not a check/.test(e.message));
  assert.equal([...parseResolve(['Makapix.club:127.0.0.1', 'vault.makapix.club:[::1]'])], [['makapix.club', '127.0.0.1'], ['vault.makapix.club', '::1']]);
  assert.throws(() => parseResolve(['makapix.club']), /is not host:address/);
});

test('the CLI: results and errors end with Nagios codes, errors with a status line on stdout', async () => {
  const io = () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let o = '';
    stdout.on('data', (d) => (o += d));
    stderr.resume();
    return { stdout, stderr, tty: false, out: () => o };
  };
  const spec = (run: () => Promise<MonitorResult>): CommandSpec<Record<string, never>, MonitorResult> => ({
    name: 'monitor',
    summary: 'x',
    common: ['json'],
    exitCodesHelp: 'Exit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.',
    run,
    exitCode: (r) => r.exitCode,
    onError: (message) => ({ exitCode: nagiosExit.UNKNOWN, stdout: `MONITOR UNKNOWN - ${message}` }),
  });
  const critical = summarize([{ ...evaluateConnections('prod', { used: 9, max: 10 }, t), ms: 1 }]);
  assert.is(await executeCommand(spec(async () => critical), [], io()), 2);
  const usage = io();
  assert.is(await executeCommand(spec(async () => critical), ['--bogus'], usage), 3);
  assert.match(usage.out(), /^MONITOR UNKNOWN - Unknown option '--bogus'/);
  const json = io();
  assert.is(await executeCommand(spec(async () => { throw new ConfigError('No env file.'); }), ['--json'], json), 3);
  assert.equal(JSON.parse(json.out()), { ok: false, exitCode: 3, error: 'No env file.', hint: null });
  const help = io();
  assert.is(await executeCommand(spec(async () => critical), ['--help'], help), 0);
  assert.match(help.out(), /\nExit codes \(Nagios\): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN\.$/m);
});

test.run();
