// monitor: the plan's alert thresholds, checked like a Nagios plugin. Pure evaluators turn
// measurements into statuses (table-tested); thin probes measure. A probe that cannot measure
// makes its check UNKNOWN with a line saying why, and never stops the other checks.
import { readFile, readdir, stat, statfs } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { docker } from '../tools/docker.ts';
import type { EnvConfig } from '../core/config.ts';
import { connect, connectionFor, describeConnection } from '../tools/database.ts';
import { projectName } from '../core/config.ts';
import { certificatesIn, httpRequest, peerCertificate, type ResolveMap } from '../tools/probe.ts';
import type { Ui } from '../core/ui.ts';
import { type CheckName, type CheckResult, type Thresholds, type Evaluated, type LatencySample, evaluateLatency, type ConnectionsMeasure, evaluateConnections, type DiskMeasure, diskUsage, evaluateDisk, type ContainerMeasure, evaluateContainers, type CertMeasure, evaluateCerts, evaluateBackup, evaluateOffsiteCopy, type MonitorResult, summarize } from '../domain/monitoring.ts';
import { offsitePaths, parseOffsiteStatus } from '../domain/offsite.ts';
import { probeBackup } from '../tools/backup-store.ts';
import { sendPing } from '../tools/healthcheck.ts';
import { certsLayout, crlLoadState } from '../domain/pki.ts';
import { crlNextUpdate as readCrlNextUpdate } from '../tools/openssl.ts';

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

export const dockerArgs = {
  rootDir: ['info', '--format', '{{.DockerRootDir}}'],
  /** Running containers of a compose project, by the label compose sets. */
  projectContainers: (project: string) => ['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}}'],
  /** `{{json .}}` rather than `--format json`: Debian's docker 20.10 CLI knows only the former. */
  stats: (names: readonly string[]) => ['stats', '--no-stream', '--format', '{{json .}}', ...names],
  limits: (names: readonly string[]) => ['inspect', '--format', '{{.Name}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.Memory}}', ...names],
} as const;

/** docker's output, or an error that becomes this check's UNKNOWN (never the whole run's failure). */
async function dockerOutput(bin: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const out = await docker(args, { bin, nothrow: true, timeoutMs });
  // 127: no such program.
  const why = out.exitCode === 127 ? 'command not found' : out.stderr.trim().split('\n').pop() || `exit ${out.exitCode}`;
  if (!out.ok) throw new Error(`docker not available (${bin} ${args[0]}: ${why})`);
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
    const names = (await dockerOutput(bin, dockerArgs.projectContainers(project), timeoutMs)).split('\n').map((s) => s.trim()).filter(Boolean);
    if (names.length === 0) return [];
    const [stats, limits] = await Promise.all([dockerOutput(bin, dockerArgs.stats(names), timeoutMs * 3), dockerOutput(bin, dockerArgs.limits(names), timeoutMs)]);
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
  return (await Promise.all([...remote, ...onDisk, probeCrlLoaded(o, timeoutMs)])).flat();
}

/**
 * Mosquitto refuses EVERY client once its CRL's next update has passed, so that date is watched
 * like an expiry (with the CRL's own thresholds). Node cannot read a CRL; openssl does (lib/tools/openssl.ts).
 */
async function crlNextUpdate(file: string): Promise<CertMeasure> {
  if (!existsSync(file)) return { source: file, error: 'missing: the broker will not start (run make mqtt-certs ARGS="renew")' };
  try {
    return { source: file, subject: 'CRL next update: past it the broker refuses every device', notAfter: await readCrlNextUpdate(file), crl: true };
  } catch (err) {
    return { source: file, error: `openssl cannot read it: ${message(err)}` };
  }
}

/** Where the broker's watcher records the hash of the CRL it loaded (compose/mosquitto/watch-crl.sh). */
const crlLoadedMarker = '/tmp/crl.loaded';

/** Whether each running broker has loaded the crl.pem on disk; a broker that is not running loads it when it starts. */
async function probeCrlLoaded(o: MonitorOptions, timeoutMs: number): Promise<CertMeasure[]> {
  const measures = [o.prod, o.dev].map(async (cfg): Promise<CertMeasure[]> => {
    const crl = certsLayout(cfg.vars.MQTT_CERTS_DIR).crl;
    if (!existsSync(crl)) return [];
    const container = `${projectName(cfg.env)}-mqtt`;
    const running = await dockerOutput(o.docker, ['inspect', '--format', '{{.State.Running}}', container], timeoutMs).then((r) => r.trim() === 'true', () => false);
    if (!running) return [];
    const marker = await dockerOutput(o.docker, ['exec', container, 'cat', crlLoadedMarker], timeoutMs).then((r) => r.trim(), () => undefined);
    const [text, st] = await Promise.all([readFile(crl), stat(crl)]);
    const load = crlLoadState({ fileSha: createHash('sha256').update(text).digest('hex'), loadedSha: marker || undefined, fileAgeMs: (o.now?.() ?? new Date()).getTime() - st.mtimeMs, graceMs: 60_000 });
    return [{ source: `${container}: ${crl}`, crlLoad: load }];
  });
  return (await Promise.all(measures)).flat();
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
    const root = (await dockerOutput(o.docker, dockerArgs.rootDir, timeoutMs)).trim();
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
    offsite: async () => evaluateOffsiteCopy(Boolean(o.prod.vars.RESTIC_REPOSITORY), parseOffsiteStatus(await readFile(offsitePaths(o.prod.vars.BACKUP_DIR).status, 'utf8').catch(() => '')), now(), t),
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
