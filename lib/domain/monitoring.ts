// Monitoring as pure decisions: the Nagios statuses, the thresholds, and each check's judgement of
// what the probes measured (lib/jobs/monitor.ts measures; verify --pre reuses the backup judgement).
import { UsageError } from '../core/errors.ts';
import { formatBytes } from '../core/ui.ts';
import { defaultOffsiteThresholds, evaluateOffsite, type OffsiteStatus } from './offsite.ts';
import type { CertificateInfo } from '../tools/probe.ts';
import type { CrlLoad } from './pki.ts';

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
  /** The app signs its CRL for 30 days and its worker renews it nightly once 7 or fewer are left: under 5, two renewals failed. */
  'crl-warn-days': 5,
  'crl-crit-days': 2,
  /** Backups run daily: one schedule plus two hours of slack, then two missed runs. */
  'backup-warn-hours': 26,
  'backup-crit-hours': 50,
  /** The offsite copy (./offsite.ts): newest snapshot's age, days since the last good check. */
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
  if (t['crl-warn-days'] < t['crl-crit-days']) throw new UsageError(`--threshold crl-warn-days=${t['crl-warn-days']} is below crl-crit-days=${t['crl-crit-days']}.`, 'A warning must come before the critical level.');
  if (t['cert-warn-days'] < t['cert-crit-days']) throw new UsageError(`--threshold cert-warn-days=${t['cert-warn-days']} is below cert-crit-days=${t['cert-crit-days']}.`, 'A warning must come before the critical level.');
  return t;
}

/** A flag that must be a whole number ≥ min (probe counts, ports, days). */

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
export type Evaluated = Omit<CheckResult, 'ms'>;
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

export type CertMeasure = CertificateInfo | (CertificateInfo & { crl: true }) | { source: string; error: string } | { source: string; crlLoad: CrlLoad };

const crlLoadItem = (source: string, load: CrlLoad): Item =>
  load === 'not-loaded'
    ? { status: 'CRITICAL', label: source, detail: 'the broker has not loaded this CRL: revocations in it are not in force, and the broker refuses every player once its old CRL expires (is watch-crl.sh running?)' }
    : load === 'unknown'
      ? { status: 'UNKNOWN', label: source, detail: 'the broker records no loaded CRL (/tmp/crl.loaded): its watch-crl.sh is not running' }
      : { status: 'OK', label: source, detail: load === 'loaded' ? 'loaded by the broker' : 'new, the broker reloads it within seconds' };

export function evaluateCerts(measures: readonly CertMeasure[], now: Date, t: Thresholds): Evaluated {
  const items = measures.map((m): Item => {
    if ('error' in m) return { status: 'UNKNOWN', label: m.source, detail: m.error };
    if ('crlLoad' in m) return crlLoadItem(m.source, m.crlLoad);
    const days = (m.notAfter.getTime() - now.getTime()) / 86_400_000;
    const [warn, crit] = 'crl' in m ? [t['crl-warn-days'], t['crl-crit-days']] : [t['cert-warn-days'], t['cert-crit-days']];
    const status: Status = days < crit ? 'CRITICAL' : days < warn ? 'WARNING' : 'OK';
    const when = days < 0 ? `expired ${Math.ceil(-days)} days ago` : `expires in ${Math.floor(days)} days`;
    return { status, label: m.source, detail: `(${m.subject}) ${when}, ${m.notAfter.toISOString().slice(0, 10)}` };
  });
  if (items.length === 0) return checkOf('certs', [{ status: 'UNKNOWN', label: 'certificates', detail: 'none found' }], () => 'no certificate found');
  return checkOf('certs', items, (s) => worstItems(items, s, `${items.length} certificates valid for ≥ ${t['cert-warn-days']} days`));
}

/** One backup found in the folder, as its own files describe it (see probeBackup). */
export interface BackupCandidate {
  /** The dump's file name. */
  name: string;
  /** The time in its name. */
  takenAt: Date;
  /** When the backup finished, from its manifest (absent when it has none). */
  finishedAt?: Date;
  /** Why it does not count: no manifest, a size or checksum that differs, damaged bytes... */
  problem?: string;
}

/** The offsite copy from what backup-prod recorded (status undefined: none or unreadable); not configured is a WARNING. */
export function evaluateOffsiteCopy(configured: boolean, status: OffsiteStatus | undefined, now: Date, t: Thresholds): Evaluated {
  const items: Item[] = configured ? evaluateOffsite(status, now, t) : [{ status: 'WARNING', label: 'offsite', detail: 'no offsite copy is configured (RESTIC_REPOSITORY in .env.prod)' }];
  return checkOf('offsite', items, (s) => worstItems(items, s, items.map((i) => `${i.label} ${i.detail}`).join('; ')));
}

export type BackupMeasure = { dir: string; backups: readonly BackupCandidate[] } | { dir: string; error: string; missing?: boolean };

/** A clock a little ahead of the backup host's is not "the future"; a year 2099 name is. */
export const futureSlackMs = 10 * 60_000;
export const isDatedInFuture = (b: BackupCandidate, now: Date) => Math.max(b.takenAt.getTime(), b.finishedAt?.getTime() ?? 0) > now.getTime() + futureSlackMs;

/**
 * The newest backup that counts (its manifest, size and checksum agree, and it is not dated in the
 * future) against the schedule; none at all is CRITICAL. A newer backup that does not count (empty,
 * truncated, damaged, unfinished) makes the check at least WARNING and is named: a file name alone
 * never reads OK.
 */
export function evaluateBackup(m: BackupMeasure, now: Date, t: Thresholds): Evaluated {
  if ('error' in m) {
    const status: Status = m.missing ? 'CRITICAL' : 'UNKNOWN';
    return checkOf('backup', [{ status, label: m.dir, detail: m.error }], () => `${m.dir}: ${m.error}`);
  }
  const judged = [...m.backups]
    .map((b) => ({ ...b, problem: b.problem ?? (isDatedInFuture(b, now) ? 'it is dated in the future' : undefined) }))
    .sort((a, b) => b.takenAt.getTime() - a.takenAt.getTime());
  const newest = judged.find((b) => !b.problem);
  const bad = judged.filter((b) => b.problem && (!newest || b.takenAt > newest.takenAt));
  const badNote = bad.length ? `; ${bad[0]!.name} does not count: ${bad[0]!.problem}${bad.length > 1 ? ` (and ${bad.length - 1} more)` : ''}` : '';
  if (!newest) {
    const detail = judged.length ? `holds no verified backup${badNote}` : 'holds no backup (makapix-YYYYMMDD-HHMMSS.dump|sql)';
    return checkOf('backup', [{ status: 'CRITICAL', label: m.dir, detail }], () => `${m.dir} ${detail}`);
  }
  const hours = (now.getTime() - (newest.finishedAt ?? newest.takenAt).getTime()) / 3_600_000;
  const byAge = level(hours, t['backup-warn-hours'], t['backup-crit-hours']);
  const status = bad.length ? worst([byAge, 'WARNING']) : byAge;
  const detail = `newest ${newest.name} is ${hours.toFixed(1)} h old (${byAge === 'OK' ? '≤' : '>'} ${byAge === 'CRITICAL' ? t['backup-crit-hours'] : t['backup-warn-hours']} h)${badNote}`;
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

