// monitor: the plan's alert thresholds, checked like a Nagios plugin. Pure evaluators turn
// measurements into statuses (table-tested); thin probes measure. A probe that cannot measure
// makes its check UNKNOWN with a line saying why, and never stops the other checks.
import { readdir, readFile, statfs } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { $ } from 'zx';
import type { EnvConfig } from '../core/config.ts';
import { connect, connectionFor, describeConnection } from '../tools/database.ts';
import { UsageError } from '../core/errors.ts';
import { parseBackupName } from './backup.ts';
import { projectName, type Command } from '../tools/compose.ts';
import { certificatesIn, httpRequest, peerCertificate, type CertificateInfo, type ResolveMap } from '../tools/probe.ts';
import { formatBytes, type Ui } from '../core/ui.ts';
import { sendPing } from '../tools/healthcheck.ts';
import { defaultOffsiteThresholds, evaluateOffsite, offsitePaths, parseOffsiteStatus } from '../domain/offsite.ts';
import { certsLayout, opensslArgv, parseOpensslDate } from './mqtt-certs.ts';

export type Status = 'OK' | 'WARNING' | 'CRITICAL' | 'UNKNOWN';
/** Nagios plugin exit codes; they are monitor's own and differ from the toolkit's on purpose. */
export const nagiosExit = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const satisfies Record<Status, number>;

/** Worst first: an UNKNOWN (a check that could not measure) never hides a WARNING or CRITICAL. */
const severity: Record<Status, number> = { OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3 };
export const worst = (statuses: Iterable<Status>): Status => [...statuses].reduce<Status>((a, b) => (severity[b] > severity[a] ? b : a), 'OK');

export const checkNames = ['latency', 'connections', 'disk', 'containers', 'certs', 'backup', 'offsite'] as const;
export type CheckName = (typeof checkNames)[number];

export interface Item {
  status: Status;
  /** What was measured: a path, a host, a container. */
  label: string;
  detail: string;
}

export interface CheckResult {
  check: CheckName;
  status: Status;
  summary: string;
  items: Item[];
  ms: number;
}

// ---- thresholds --------------------------------------------------------------------------

/** The plan's thresholds; a value past `warn` is WARNING, past `crit` CRITICAL. */
export const defaultThresholds = {
  'latency-warn-ms': 500,
  'latency-crit-ms': 2000,
  'connections-warn-pct': 70,
  'connections-crit-pct': 80,
  'disk-warn-pct': 80,
  'disk-crit-pct': 90,
  /** EB is development and throttles itself at its limits: worth a look, never a page. */
  'container-warn-pct': 90,
  'cert-warn-days': 14,
  'cert-crit-days': 3,
  /** Backups run daily: one schedule plus two hours of slack, then two missed runs. */
  'backup-warn-hours': 26,
  'backup-crit-hours': 50,
  /** The offsite copy (lib/domain/offsite.ts): newest snapshot's age, days since the last good check. */
  ...defaultOffsiteThresholds,
};
export type Thresholds = typeof defaultThresholds;
export type ThresholdKey = keyof Thresholds;

/** Applies `--threshold key=value` flags over the defaults; an unknown key or a bad number is a usage error. */
export function parseThresholds(values: readonly string[]): Thresholds {
  const t: Thresholds = { ...defaultThresholds };
  for (const v of values) {
    const m = /^([a-z-]+)=(\d+(?:\.\d+)?)$/.exec(v);
    if (!m || !(m[1]! in t)) throw new UsageError(`--threshold ${JSON.stringify(v)} is not key=number with a known key.`, `Known keys: ${Object.keys(t).join(', ')}.`);
    t[m[1] as ThresholdKey] = Number(m[2]);
  }
  for (const [warn, crit] of [['latency-warn-ms', 'latency-crit-ms'], ['connections-warn-pct', 'connections-crit-pct'], ['disk-warn-pct', 'disk-crit-pct'], ['backup-warn-hours', 'backup-crit-hours'], ['offsite-warn-hours', 'offsite-crit-hours']] as const) {
    if (t[warn] > t[crit]) throw new UsageError(`--threshold ${warn}=${t[warn]} is above ${crit}=${t[crit]}.`, 'A warning must come before the critical level.');
  }
  if (t['cert-warn-days'] < t['cert-crit-days']) throw new UsageError(`--threshold cert-warn-days=${t['cert-warn-days']} is below cert-crit-days=${t['cert-crit-days']}.`, 'A warning must come before the critical level.');
  return t;
}

/** A flag that must be a whole number ≥ min (probe counts, ports, days). */
export function positiveCount(flag: string, value: string, min = 1): number {
  if (/^\d+$/.test(value) && +value >= min) return +value;
  throw new UsageError(`${flag} must be a whole number of at least ${min}, got ${JSON.stringify(value)}.`);
}

/** `--only certs,disk` or repeated `--only`; none means every check. */
export function parseOnly(values: readonly string[]): CheckName[] {
  const names = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const n of names) if (!(checkNames as readonly string[]).includes(n)) throw new UsageError(`--only ${JSON.stringify(n)} is not a check.`, `Checks: ${checkNames.join(', ')}.`);
  return names.length ? checkNames.filter((c) => names.includes(c)) : [...checkNames];
}

// ---- pure evaluation ---------------------------------------------------------------------

/** Nearest-rank percentile: the smallest sample with at least p % of the samples at or below it. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

const level = (value: number, warn: number, crit: number): Status => (value > crit ? 'CRITICAL' : value > warn ? 'WARNING' : 'OK');
const ms = (n: number) => `${Math.round(n)} ms`;
const pct = (n: number) => `${n.toFixed(n < 10 ? 1 : 0)}%`;
type Evaluated = Omit<CheckResult, 'ms'>;
const checkOf = (check: CheckName, items: Item[], summary: (s: Status) => string): Evaluated => {
  const status = worst(items.map((i) => i.status));
  return { check, status, summary: summary(status), items };
};
/** A check's summary names its worst items; when all are fine, a count says what was covered. */
const worstItems = (items: Item[], status: Status, fine: string) =>
  status === 'OK' ? fine : items.filter((i) => i.status === status).map((i) => `${i.label} ${i.detail}`).join('; ');

export type LatencySample = { ms: number } | { error: string };

/** EA's /api/health: any failed probe is CRITICAL (the API is down for someone); else p99 against the thresholds. */
export function evaluateLatency(url: string, samples: readonly LatencySample[], t: Thresholds): Evaluated {
  const errors = samples.flatMap((s) => ('error' in s ? [s.error] : []));
  const times = samples.flatMap((s) => ('ms' in s ? [s.ms] : []));
  if (samples.length === 0) return checkOf('latency', [{ status: 'UNKNOWN', label: url, detail: 'no probes were made' }], () => `${url}: no probes were made`);
  if (errors.length) {
    const detail = `${errors.length} of ${samples.length} probes failed (${errors[0]})`;
    return checkOf('latency', [{ status: 'CRITICAL', label: url, detail }], () => `${url}: ${detail}`);
  }
  const p99 = percentile(times, 99);
  const status = level(p99, t['latency-warn-ms'], t['latency-crit-ms']);
  const limit = status === 'CRITICAL' ? t['latency-crit-ms'] : t['latency-warn-ms'];
  const detail = `p99 ${ms(p99)} over ${samples.length} probes (median ${ms(percentile(times, 50))}; ${status === 'OK' ? '≤' : '>'} ${ms(limit)})`;
  return checkOf('latency', [{ status, label: url, detail }], () => detail);
}

export type ConnectionsMeasure = { used: number; max: number } | { error: string };

export function evaluateConnections(where: string, m: ConnectionsMeasure, t: Thresholds): Evaluated {
  if ('error' in m) return checkOf('connections', [{ status: 'UNKNOWN', label: where, detail: m.error }], () => m.error);
  const share = (m.used / m.max) * 100;
  const status = level(share, t['connections-warn-pct'], t['connections-crit-pct']);
  const limit = status === 'CRITICAL' ? t['connections-crit-pct'] : t['connections-warn-pct'];
  const detail = `${m.used} of max_connections ${m.max} in use (${pct(share)}; ${status === 'OK' ? '≤' : '>'} ${limit}%)`;
  return checkOf('connections', [{ status, label: where, detail }], () => detail);
}

export interface DiskMeasure {
  /** What the path is for ("prod vault"), shown beside it. */
  role: string;
  path: string;
  usage?: { usedBytes: number; sizeBytes: number };
  error?: string;
}

/** Usage as df counts it: used over what non-root users can have (used + available). */
export function diskUsage(s: { bsize: number; blocks: number; bfree: number; bavail: number }): { usedBytes: number; sizeBytes: number } {
  const used = (s.blocks - s.bfree) * s.bsize;
  return { usedBytes: used, sizeBytes: used + s.bavail * s.bsize };
}

export function evaluateDisk(measures: readonly DiskMeasure[], t: Thresholds): Evaluated {
  const items = measures.map((m): Item => {
    const label = `${m.role} ${m.path}`;
    if (!m.usage) return { status: 'UNKNOWN', label, detail: m.error ?? 'not measured' };
    const share = m.usage.sizeBytes > 0 ? (m.usage.usedBytes / m.usage.sizeBytes) * 100 : 0;
    const status = level(share, t['disk-warn-pct'], t['disk-crit-pct']);
    return { status, label, detail: `${pct(share)} used (${formatBytes(m.usage.sizeBytes - m.usage.usedBytes)} free)` };
  });
  return checkOf('disk', items, (s) => worstItems(items, s, `${items.length} paths below ${t['disk-warn-pct']}%`));
}

export interface ContainerMeasure {
  name: string;
  /** docker stats CPUPerc: 100 = one core. */
  cpuPct: number;
  /** The CPU limit in cores, undefined without a limit. */
  cpuLimit?: number;
  memUsedBytes: number;
  memLimitBytes?: number;
}

export function evaluateContainers(project: string, m: readonly ContainerMeasure[] | { error: string }, t: Thresholds): Evaluated {
  if ('error' in m) return checkOf('containers', [{ status: 'UNKNOWN', label: project, detail: m.error }], () => m.error);
  if (m.length === 0) return checkOf('containers', [{ status: 'OK', label: project, detail: 'no containers running' }], () => `${project}: no containers running`);
  const items = m.map((c): Item => {
    const parts: string[] = [];
    let status: Status = 'OK';
    const judge = (share: number, what: string) => {
      if (share >= t['container-warn-pct']) status = 'WARNING';
      parts.push(`${what} ${pct(share)} of its limit`);
    };
    if (c.cpuLimit) judge(c.cpuPct / c.cpuLimit, 'CPU');
    else parts.push('no CPU limit');
    if (c.memLimitBytes) judge((c.memUsedBytes / c.memLimitBytes) * 100, `memory ${formatBytes(c.memUsedBytes)}`);
    else parts.push('no memory limit');
    return { status, label: c.name, detail: parts.join(', ') };
  });
  return checkOf('containers', items, (s) => worstItems(items, s, `${items.length} ${project} containers below ${t['container-warn-pct']}% of their limits`));
}

export type CertMeasure = CertificateInfo | { source: string; error: string };

export function evaluateCerts(measures: readonly CertMeasure[], now: Date, t: Thresholds): Evaluated {
  const items = measures.map((m): Item => {
    if ('error' in m) return { status: 'UNKNOWN', label: m.source, detail: m.error };
    const days = (m.notAfter.getTime() - now.getTime()) / 86_400_000;
    const status: Status = days < t['cert-crit-days'] ? 'CRITICAL' : days < t['cert-warn-days'] ? 'WARNING' : 'OK';
    const when = days < 0 ? `expired ${Math.ceil(-days)} days ago` : `expires in ${Math.floor(days)} days`;
    return { status, label: m.source, detail: `(${m.subject}) ${when}, ${m.notAfter.toISOString().slice(0, 10)}` };
  });
  if (items.length === 0) return checkOf('certs', [{ status: 'UNKNOWN', label: 'certificates', detail: 'none found' }], () => 'no certificate found');
  return checkOf('certs', items, (s) => worstItems(items, s, `${items.length} certificates valid for ≥ ${t['cert-warn-days']} days`));
}

export type BackupMeasure = { dir: string; names: readonly string[] } | { dir: string; error: string; missing?: boolean };

/** The newest backup (by the time in its name) against the schedule; no backup at all is CRITICAL. */
export function evaluateBackup(m: BackupMeasure, now: Date, t: Thresholds): Evaluated {
  if ('error' in m) {
    const status: Status = m.missing ? 'CRITICAL' : 'UNKNOWN';
    return checkOf('backup', [{ status, label: m.dir, detail: m.error }], () => `${m.dir}: ${m.error}`);
  }
  const newest = m.names
    .map((n) => ({ name: n, parsed: parseBackupName(n) }))
    .filter((b) => b.parsed)
    .sort((a, b) => b.parsed!.takenAt.getTime() - a.parsed!.takenAt.getTime())[0];
  if (!newest) return checkOf('backup', [{ status: 'CRITICAL', label: m.dir, detail: 'holds no backup (makapix-YYYYMMDD-HHMMSS.dump|sql)' }], () => `${m.dir} holds no backup`);
  const hours = (now.getTime() - newest.parsed!.takenAt.getTime()) / 3_600_000;
  const status = level(hours, t['backup-warn-hours'], t['backup-crit-hours']);
  const detail = `newest ${newest.name} is ${hours.toFixed(1)} h old (${status === 'OK' ? '≤' : '>'} ${status === 'CRITICAL' ? t['backup-crit-hours'] : t['backup-warn-hours']} h)`;
  return checkOf('backup', [{ status, label: m.dir, detail }], () => detail);
}

export interface MonitorResult {
  status: Status;
  exitCode: (typeof nagiosExit)[Status];
  /** The plugin's first output line. */
  summary: string;
  checks: CheckResult[];
  ping?: { url: string; ok: boolean; detail: string };
}

export function summarize(checks: CheckResult[]): Omit<MonitorResult, 'ping'> {
  const status = worst(checks.map((c) => c.status));
  const bad = checks.filter((c) => c.status !== 'OK');
  const text = bad.length ? bad.map((c) => `${c.check} ${c.status}: ${c.summary}`).join(' | ') : `${checks.length} checks OK (${checks.map((c) => c.check).join(', ')})`;
  return { status, exitCode: nagiosExit[status], summary: `MONITOR ${status} - ${text}`, checks };
}

// ---- probes ------------------------------------------------------------------------------

export interface MonitorOptions {
  prod: EnvConfig;
  dev: EnvConfig;
  only: readonly CheckName[];
  thresholds: Thresholds;
  /** Probes of EA's health endpoint for the latency check. */
  probes: number;
  /** Defaults to EA's `${BASE_URL}/api/health`. */
  healthUrl?: string;
  httpsPort: number;
  resolve: ResolveMap;
  /** The docker CLI (cron's PATH may not hold it). */
  docker: string;
  /** The compose project whose containers are held against their limits: EB's. */
  containersProject?: string;
  /** Docker's data root; asked from `docker info` when not given. */
  dockerRoot?: string;
  timeoutMs?: number;
  now?: () => Date;
  /** Called as each check finishes, for progress lines. */
  onCheck?: (c: CheckResult) => void;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function probeLatency(url: string, n: number, timeoutMs: number, resolve: ResolveMap): Promise<LatencySample[]> {
  const samples: LatencySample[] = [];
  const address = resolve.get(new URL(url).hostname);
  // One after another: concurrent probes would measure the probe's own load, not the API's.
  for (let i = 0; i < n; i++) {
    try {
      const a = await httpRequest({ url, timeoutMs, ...(address && { address }) });
      samples.push(a.status === 200 ? { ms: a.ms } : { error: `HTTP ${a.status}` });
    } catch (err) {
      samples.push({ error: message(err) });
    }
  }
  return samples;
}

async function probeConnections(cfg: EnvConfig): Promise<ConnectionsMeasure> {
  const config = connectionFor(cfg);
  let client;
  try {
    client = await connect({ ...config, connectionTimeoutMillis: 5000 });
  } catch (err) {
    return { error: message(err) };
  }
  try {
    // Client backends other than this one, against the server's limit (background workers do not count).
    const { rows } = await client.query<{ used: number; max: number }>(
      "SELECT count(*)::int AS used, current_setting('max_connections')::int AS max FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    );
    return rows[0]!;
  } catch (err) {
    return { error: `${describeConnection(config)}: ${message(err)}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The one builder of plain `docker` command lines (compose has its own, lib/tools/compose.ts). */
export function dockerCommand(docker: string, args: readonly string[]): Command {
  return { cmd: docker, argv: [...args] };
}

export const dockerArgs = {
  rootDir: ['info', '--format', '{{.DockerRootDir}}'],
  /** Running containers of a compose project, by the label compose sets. */
  projectContainers: (project: string) => ['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}}'],
  /** `{{json .}}` rather than `--format json`: Debian's docker 20.10 CLI knows only the former. */
  stats: (names: readonly string[]) => ['stats', '--no-stream', '--format', '{{json .}}', ...names],
  limits: (names: readonly string[]) => ['inspect', '--format', '{{.Name}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.Memory}}', ...names],
} as const;

async function docker(bin: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const { cmd, argv } = dockerCommand(bin, args);
  const out = await $({ quiet: true, nothrow: true, timeout: timeoutMs })`${cmd} ${argv}`.catch((err: unknown) => ({ exitCode: -1, stdout: '', stderr: message(err) }));
  if (out.exitCode !== 0) {
    // 127: the shell found no such command.
    const why = out.exitCode === 127 ? 'command not found' : out.stderr.trim().split('\n').pop() || `exit ${out.exitCode}`;
    throw new Error(`docker not available (${cmd} ${args[0]}: ${why})`);
  }
  return out.stdout;
}

const sizeUnits: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3, TIB: 1024 ** 4 };
/** docker's human sizes ("6.5MiB", "1.9GB") in bytes. */
export function parseDockerSize(text: string): number {
  const m = /^([\d.]+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = sizeUnits[(m?.[2] || 'B').toUpperCase()];
  if (!m || unit === undefined) throw new Error(`docker reported an unreadable size ${JSON.stringify(text)}`);
  return Number(m[1]) * unit;
}

/** Joins `docker stats` JSON lines with `docker inspect` limit lines into measures. */
export function parseContainerStats(statsOut: string, limitsOut: string): ContainerMeasure[] {
  const limits = new Map<string, { cpu?: number; mem?: number }>();
  for (const line of limitsOut.split('\n').filter(Boolean)) {
    const [name, nano, quota, period, mem] = line.trim().split(/\s+/);
    const cpu = Number(nano) > 0 ? Number(nano) / 1e9 : Number(quota) > 0 && Number(period) > 0 ? Number(quota) / Number(period) : undefined;
    limits.set(name!.replace(/^\//, ''), { ...(cpu && { cpu }), ...(Number(mem) > 0 && { mem: Number(mem) }) });
  }
  return statsOut
    .split('\n')
    .filter((l) => l.trim())
    .map((line) => {
      const s = JSON.parse(line) as { Name: string; CPUPerc: string; MemUsage: string };
      const l = limits.get(s.Name) ?? {};
      return {
        name: s.Name,
        cpuPct: Number.parseFloat(s.CPUPerc),
        ...(l.cpu && { cpuLimit: l.cpu }),
        memUsedBytes: parseDockerSize(s.MemUsage.split('/')[0]!),
        ...(l.mem && { memLimitBytes: l.mem }),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

async function probeContainers(bin: string, project: string, timeoutMs: number): Promise<ContainerMeasure[] | { error: string }> {
  try {
    const names = (await docker(bin, dockerArgs.projectContainers(project), timeoutMs)).split('\n').map((s) => s.trim()).filter(Boolean);
    if (names.length === 0) return [];
    const [stats, limits] = await Promise.all([docker(bin, dockerArgs.stats(names), timeoutMs * 3), docker(bin, dockerArgs.limits(names), timeoutMs)]);
    return parseContainerStats(stats, limits);
  } catch (err) {
    return { error: message(err) };
  }
}

async function probeDisk(targets: { role: string; path: string }[]): Promise<DiskMeasure[]> {
  return Promise.all(
    targets.map(async (t): Promise<DiskMeasure> => {
      try {
        return { ...t, usage: diskUsage(await statfs(t.path)) };
      } catch (err) {
        return { ...t, error: `cannot measure: ${(err as NodeJS.ErrnoException).code ?? message(err)}` };
      }
    }),
  );
}

/** The host names each environment serves over HTTPS, deduplicated. */
export const httpsHosts = (cfgs: readonly EnvConfig[]) => [...new Set(cfgs.flatMap((c) => [c.vars.ROOT_DOMAIN, c.vars.WEB_DOMAIN, c.vars.VAULT_DOMAIN]))];

async function probeCerts(o: MonitorOptions, timeoutMs: number): Promise<CertMeasure[]> {
  const remote = httpsHosts([o.prod, o.dev]).map(async (host): Promise<CertMeasure[]> => {
    const address = o.resolve.get(host);
    try {
      return [await peerCertificate(host, o.httpsPort, { timeoutMs, ...(address && { address }) })];
    } catch (err) {
      return [{ source: `${host}:${o.httpsPort}`, error: `cannot read its certificate: ${message(err)}` }];
    }
  });
  const onDisk = [...new Set([o.prod.vars.MQTT_CERTS_DIR, o.dev.vars.MQTT_CERTS_DIR])].map(async (dir): Promise<CertMeasure[]> => {
    try {
      // The live ones only: not revoked devices (devices/revoked/), not openssl's copies (newcerts/), not bundles.
      const layout = certsLayout(dir);
      const devices = (await readdir(layout.devices).catch(() => [] as string[])).filter((n) => n.endsWith('.crt')).sort();
      const files = [layout.caCrt, layout.serverCrt, ...devices.map((n) => path.join(layout.devices, n))];
      if (!existsSync(layout.caCrt)) return [{ source: dir, error: `holds no ${path.basename(layout.caCrt)} (run make mqtt-certs)` }];
      return [...(await certificatesIn(files.filter((f) => existsSync(f)))), await crlNextUpdate(layout.crl)];
    } catch (err) {
      return [{ source: dir, error: `cannot read: ${(err as NodeJS.ErrnoException).code ?? message(err)}` }];
    }
  });
  return (await Promise.all([...remote, ...onDisk])).flat();
}

/**
 * Mosquitto refuses EVERY client once its CRL's next update has passed, so that date is watched
 * like an expiry. Node cannot read a CRL; openssl does, through lib/jobs/mqtt-certs.ts's argv builder.
 */
async function crlNextUpdate(file: string): Promise<CertMeasure> {
  if (!existsSync(file)) return { source: file, error: 'missing: the broker will not start (run make mqtt-certs ARGS="renew")' };
  const r = await $({ quiet: true, nothrow: true })`openssl ${opensslArgv.crlInfo(file)}`;
  const when = /nextUpdate=(.*)/.exec(`${r.stdout}`)?.[1];
  if (r.exitCode !== 0 || !when) return { source: file, error: `openssl cannot read it: ${`${r.stderr}`.trim().split('\n').pop() || `exit ${r.exitCode}`}` };
  return { source: file, subject: 'CRL next update: past it the broker refuses every device', notAfter: new Date(parseOpensslDate(when)) };
}

/** What a backup folder holds, for evaluateBackup (verify --pre reads it too). */
export async function probeBackup(dir: string): Promise<BackupMeasure> {
  try {
    return { dir, names: await readdir(dir) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { dir, error: 'does not exist: no backup was ever taken here', missing: true } : { dir, error: `cannot read: ${code ?? message(err)}` };
  }
}

async function diskTargets(o: MonitorOptions, timeoutMs: number): Promise<{ targets: { role: string; path: string }[]; unknown: DiskMeasure[] }> {
  const targets = [
    { role: 'prod vault', path: o.prod.vars.VAULT_HOST_PATH },
    { role: 'dev vault', path: o.dev.vars.VAULT_HOST_PATH },
    { role: 'prod backups', path: o.prod.vars.BACKUP_DIR },
    ...(o.dev.vars.BACKUP_DIR !== o.prod.vars.BACKUP_DIR ? [{ role: 'dev backups', path: o.dev.vars.BACKUP_DIR }] : []),
  ];
  if (o.dockerRoot) return { targets: [...targets, { role: 'docker data root', path: o.dockerRoot }], unknown: [] };
  try {
    const root = (await docker(o.docker, dockerArgs.rootDir, timeoutMs)).trim();
    return { targets: [...targets, { role: 'docker data root', path: root }], unknown: [] };
  } catch (err) {
    return { targets, unknown: [{ role: 'docker data root', path: '(unknown)', error: `${message(err)}; pass --docker-root to measure it anyway` }] };
  }
}

/** Runs the selected checks concurrently; each one's failure to measure stays its own UNKNOWN. */
export async function runMonitor(o: MonitorOptions): Promise<Omit<MonitorResult, 'ping'>> {
  const now = o.now ?? (() => new Date());
  const timeoutMs = o.timeoutMs ?? 10_000;
  const t = o.thresholds;
  const healthUrl = o.healthUrl ?? `${o.prod.vars.BASE_URL.replace(/\/+$/, '')}/api/health`;
  const run: Record<CheckName, () => Promise<Evaluated>> = {
    latency: async () => evaluateLatency(healthUrl, await probeLatency(healthUrl, o.probes, timeoutMs, o.resolve), t),
    connections: async () => evaluateConnections(`prod ${describeConnection(connectionFor(o.prod))}`, await probeConnections(o.prod), t),
    disk: async () => {
      const { targets, unknown } = await diskTargets(o, timeoutMs);
      return evaluateDisk([...(await probeDisk(targets)), ...unknown], t);
    },
    containers: async () => {
      const project = o.containersProject ?? projectName('dev');
      return evaluateContainers(project, await probeContainers(o.docker, project, timeoutMs), t);
    },
    certs: async () => evaluateCerts(await probeCerts(o, timeoutMs), now(), t),
    backup: async () => evaluateBackup(await probeBackup(o.prod.vars.BACKUP_DIR), now(), t),
    // What backup-prod's offsite runs recorded beside the backups: no network call every 5 minutes.
    offsite: async () => {
      const items = o.prod.vars.RESTIC_REPOSITORY
        ? evaluateOffsite(parseOffsiteStatus(await readFile(offsitePaths(o.prod.vars.BACKUP_DIR).status, 'utf8').catch(() => '')), now(), t)
        : [{ status: 'WARNING' as const, label: 'offsite', detail: 'no offsite copy is configured (RESTIC_REPOSITORY in .env.prod)' }];
      return checkOf('offsite', items, (s) => worstItems(items, s, items.map((i) => `${i.label} ${i.detail}`).join('; ')));
    },
  };
  const checks = await Promise.all(
    o.only.map(async (name): Promise<CheckResult> => {
      const started = performance.now();
      let result: Evaluated;
      try {
        result = await run[name]();
      } catch (err) {
        // A bug or surprise in one probe is that check's UNKNOWN, not the end of the run.
        result = { check: name, status: 'UNKNOWN', summary: message(err), items: [] };
      }
      const done = { ...result, ms: Math.round(performance.now() - started) };
      o.onCheck?.(done);
      return done;
    }),
  );
  return summarize(checks);
}

/**
 * Healthchecks-style dead-man's switch (lib/tools/healthcheck.ts): the success URL on OK, `/fail`
 * otherwise, the summary as the body. A ping that cannot be delivered is a warning and never changes
 * the exit code: the checks are what was asked.
 */
export async function ping(base: string, result: Omit<MonitorResult, 'ping'>, ui: Ui): Promise<NonNullable<MonitorResult['ping']>> {
  const kind = result.status === 'OK' ? 'success' : 'fail';
  const ok = await sendPing(base, kind, ui, result.summary);
  return { url: new URL(base).origin, ok, detail: ok ? `pinged ${kind}` : `${kind} ping not delivered` };
}
