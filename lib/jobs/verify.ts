// verify: the migration plan's smoke tests against live endpoints, as a checklist. Pure judges
// turn what a probe saw into pass/fail with a detail (table-tested); the runner below probes.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import dns from 'node:dns/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { environments, envFilePath, loadEnvConfig, type EnvConfig, type Environment } from '../core/config.ts';
import { connect, connectionFor } from '../tools/database.ts';
import { UsageError } from '../core/errors.ts';
import { Secret } from '../core/secret.ts';
import { httpRequest, peerCertificate, type HttpAnswer, type ResolveMap } from '../tools/probe.ts';
import { probeTopic } from '../tools/mosquitto.ts';
import { vaultLayout, fileGroup } from '../domain/vault.ts';
import { certsLayout, deviceFiles } from '../domain/pki.ts';
import { credentialsFileName, scopes } from '../domain/credentials.ts';
import { parseCredentials } from '../domain/credentials.ts';
import { defaultThresholds, evaluateBackup } from '../domain/monitoring.ts';
import { probeBackup } from '../tools/backup-store.ts';
import { formatDuration } from '../core/ui.ts';

export type Outcome = 'pass' | 'fail';
export interface Judgement {
  result: Outcome;
  detail: string;
}
export interface CheckLine extends Judgement {
  check: string;
  ms: number;
}

const pass = (detail: string): Judgement => ({ result: 'pass', detail });
const fail = (detail: string): Judgement => ({ result: 'fail', detail });

/** `--env prod|dev|all`. */
export function parseTarget(value: string): Environment[] {
  if (value === 'all') return ['prod', 'dev'];
  if (value === 'prod' || value === 'dev') return [value];
  throw new UsageError(`--env must be prod, dev or all, got ${JSON.stringify(value)}.`);
}

/** `--vault-file dev=24/07/<key>.png`: a known file per environment instead of a sample from its database. */
export function parseVaultFiles(values: readonly string[]): Partial<Record<Environment, string>> {
  const out: Partial<Record<Environment, string>> = {};
  for (const v of values) {
    const m = /^(prod|dev)=([^/].*)$/.exec(v);
    if (!m || m[2]!.split('/').some((s) => s === '..' || s === '')) throw new UsageError(`--vault-file ${JSON.stringify(v)} is not env=relative/path inside the vault.`, 'Write it like --vault-file dev=24/07/<storage_key>.png.');
    out[m[1] as Environment] = m[2]!;
  }
  return out;
}

// ---- pure judges -------------------------------------------------------------------------

/** Each host resolves; and, checked separately, all of them to one shared address (one VPS). */
export function judgeDns(answers: ReadonlyMap<string, string[] | { error: string }>): { host: string; judgement: Judgement }[] {
  const lines = [...answers].map(([host, a]) => ({
    host,
    judgement: Array.isArray(a) ? (a.length ? pass(a.join(', ')) : fail('no address')) : fail(a.error),
  }));
  return lines;
}

export function judgeSameAddress(answers: ReadonlyMap<string, string[] | { error: string }>): Judgement {
  const sets = [...answers].map(([host, a]) => ({ host, addrs: Array.isArray(a) ? a : [] }));
  if (sets.some((s) => s.addrs.length === 0)) return fail(`not every host resolves (${sets.filter((s) => !s.addrs.length).map((s) => s.host).join(', ')})`);
  const common = sets.map((s) => s.addrs).reduce((a, b) => a.filter((x) => b.includes(x)));
  return common.length ? pass(`all ${sets.length} hosts on ${common.join(', ')}`) : fail(sets.map((s) => `${s.host} → ${s.addrs.join(', ')}`).join('; '));
}

const robotsTag = (a: HttpAnswer) => {
  const v = a.headers['x-robots-tag'];
  return Array.isArray(v) ? v.join(', ') : v;
};

export function judgeStatus(a: HttpAnswer, want: number): Judgement {
  if (a.status === want) return pass(`HTTP ${a.status}`);
  const where = a.status >= 300 && a.status < 400 && a.headers.location ? ` → ${a.headers.location}` : '';
  return fail(`HTTP ${a.status}${where}, expected ${want}${want === 401 ? ' (open without credentials)' : ''}`);
}

/** A page answers when it is neither an error nor a redirect away from it; EA's web root may render anything. */
export function judgeAnswers(a: HttpAnswer): Judgement {
  return a.status >= 200 && a.status < 300 ? pass(`HTTP ${a.status}`) : judgeStatus(a, 200);
}

export function judgeHealth(a: HttpAnswer): Judgement {
  if (a.status !== 200) return judgeStatus(a, 200);
  const body = a.body.trim().slice(0, 80);
  return /unhealthy|"status"\s*:\s*"(error|fail|down)/i.test(body) ? fail(`HTTP 200 but ${body}`) : pass(`HTTP 200 ${body}`);
}

/** Every EB response (401s included) must carry noindex. */
export function judgeNoindex(answers: readonly { url: string; answer: HttpAnswer }[]): Judgement {
  const missing = answers.filter((x) => !/\bnoindex\b/i.test(robotsTag(x.answer) ?? ''));
  return missing.length ? fail(`no X-Robots-Tag: noindex on ${missing.map((x) => `${x.url} (HTTP ${x.answer.status})`).join(', ')}`) : pass(`X-Robots-Tag "${robotsTag(answers[0]!.answer)}" on ${answers.length} responses`);
}

/** EA must be indexable: no X-Robots-Tag at all. */
export function judgeIndexable(answers: readonly { url: string; answer: HttpAnswer }[]): Judgement {
  const tagged = answers.filter((x) => robotsTag(x.answer) !== undefined);
  return tagged.length ? fail(`X-Robots-Tag "${robotsTag(tagged[0]!.answer)}" on ${tagged.map((x) => x.url).join(', ')}`) : pass(`no X-Robots-Tag on ${answers.length} responses`);
}

/** robots.txt disallows everything: a group for every agent with `Disallow: /`. */
export function judgeRobots(a: HttpAnswer): Judgement {
  if (a.status !== 200) return judgeStatus(a, 200);
  let anyAgent = false;
  for (const raw of a.body.split(/\r?\n/)) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^([a-z-]+)\s*:\s*(.*)$/i.exec(line);
    if (!m) continue;
    const [key, value] = [m[1]!.toLowerCase(), m[2]!.trim()];
    if (key === 'user-agent') anyAgent = value === '*';
    else if (key === 'disallow' && anyAgent && value === '/') return pass('User-agent: * / Disallow: /');
  }
  return fail(`robots.txt does not disallow all: ${JSON.stringify(a.body.slice(0, 80))}`);
}

export function judgeCertDays(c: { subject: string; notAfter: Date }, now: Date, minDays: number): Judgement {
  const days = Math.floor((c.notAfter.getTime() - now.getTime()) / 86_400_000);
  const text = `${c.subject}, ${days} days left (until ${c.notAfter.toISOString().slice(0, 10)})`;
  return days >= minDays ? pass(text) : fail(`${text}, fewer than ${minDays}`);
}

export type MqttOutcome = { connected: true; roundTrip: boolean; ms: number } | { connected: false; error: string };

export function judgeMqtt(expect: 'accept' | 'refuse', o: MqttOutcome): Judgement {
  if (expect === 'accept') {
    if (!o.connected) return fail(`refused: ${o.error}`);
    return o.roundTrip ? pass(`connected, published and received in ${Math.round(o.ms)} ms`) : fail('connected, but the test message did not come back');
  }
  return o.connected ? fail('the broker ACCEPTED it') : pass(`refused (${o.error})`);
}

// ---- probes ------------------------------------------------------------------------------

export interface Credentials {
  user: string;
  password: Secret;
}

export interface VerifyOptions {
  prod: EnvConfig;
  dev: EnvConfig;
  targets: readonly Environment[];
  httpsPort: number;
  httpPort: number;
  resolve: ResolveMap;
  /** Extra CAs (PEM) trusted for HTTPS besides the system's: a sandbox proxy's local CA. */
  ca?: string[];
  /** EB's developer credential (the site) and device credential (vault-dev). */
  ebCredentials?: Credentials;
  deviceCredentials?: Credentials;
  /** The device certificate (mqtt-certs issue <device>) used for the MQTT checks in each env. */
  device: string;
  vaultFiles: Partial<Record<Environment, string>>;
  /** Files sampled from an environment's database when no known file is given. */
  vaultSample: number;
  minCertDays: number;
  timeoutMs?: number;
  now?: () => Date;
  /** Called as each line is decided, for progress. */
  onLine?: (line: CheckLine) => void;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function systemLookup(host: string): Promise<string[]> {
  return (await dns.lookup(host, { all: true })).map((a) => a.address);
}

/** Vault files to fetch: the known one, or a random sample of the files the env's database references. */
async function vaultFilesOf(cfg: EnvConfig, known: string | undefined, n: number): Promise<string[]> {
  if (known) return [known];
  const kind = vaultLayout.kinds[0]!;
  const client = await connect(connectionFor(cfg));
  try {
    await client.query('BEGIN TRANSACTION READ ONLY');
    const { rows } = await client.query<{ dir: unknown; key: unknown; exts: unknown }>(`SELECT * FROM (${kind.sql}) g WHERE cardinality(g.exts) > 0 ORDER BY random() LIMIT $1`, [n]);
    await client.query('COMMIT');
    if (rows.length === 0) throw new Error(`the ${cfg.env} database references no vault file`);
    return rows.map((r) => {
      const g = fileGroup(kind, r);
      return `${g.dir}/${g.key}.${g.exts[Math.floor(Math.random() * g.exts.length)]}`;
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface MqttAttempt {
  host: string;
  /** The client certificate's CN: the broker's ACL lets it round-trip only on its own probe topic. */
  user: string;
  address: string | undefined;
  port: number;
  ca: string;
  client?: { cert: string; key: string };
  timeoutMs: number;
}

/** One MQTT-over-TLS session: connect, subscribe to a fresh topic of its own, publish, wait for it to come back. */
export function mqttRoundTrip(a: MqttAttempt): Promise<MqttOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    const topic = probeTopic(a.user, randomBytes(6).toString('hex'));
    const payload = randomBytes(8).toString('hex');
    let done = false;
    let connacked = false;
    const client = mqtt.connect({
      protocol: 'mqtts',
      host: a.address ?? a.host,
      port: a.port,
      servername: a.host,
      ca: a.ca,
      ...(a.client && { cert: a.client.cert, key: a.client.key }),
      rejectUnauthorized: true,
      reconnectPeriod: 0,
      connectTimeout: a.timeoutMs,
      clientId: `makapix-ops-verify-${randomBytes(4).toString('hex')}`,
    });
    const finish = (o: MqttOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.end(true);
      resolve(o);
    };
    // After a CONNACK the broker did let the client in; what went wrong later is the round trip's failure.
    const cut = (error: string) => finish(connacked ? { connected: true, roundTrip: false, ms: performance.now() - started } : { connected: false, error });
    const timer = setTimeout(() => cut(`no CONNACK within ${a.timeoutMs} ms`), a.timeoutMs);
    client.on('connect', () => {
      connacked = true;
      client.subscribe(topic, { qos: 1 }, (err) => {
        if (err) cut(err.message);
        else client.publish(topic, payload, { qos: 1 });
      });
    });
    client.on('message', (t, body) => {
      if (t === topic && body.toString() === payload) finish({ connected: true, roundTrip: true, ms: performance.now() - started });
    });
    client.on('error', (err: Error) => cut((err as NodeJS.ErrnoException).code ?? err.message));
    client.on('close', () => cut('closed before CONNACK'));
  });
}

export interface VerifyResult {
  ok: boolean;
  targets: Environment[];
  checks: CheckLine[];
}

/** Runs the checklist in order; a probe that throws fails its own line, never the run. */
export async function runVerify(o: VerifyOptions): Promise<VerifyResult> {
  const now = o.now ?? (() => new Date());
  const timeoutMs = o.timeoutMs ?? 10_000;
  const lookup = async (host: string) => {
    const pinned = o.resolve.get(host);
    return pinned ? [pinned] : systemLookup(host);
  };
  const checks: CheckLine[] = [];
  const line = async (check: string, judge: () => Promise<Judgement>) => {
    const started = performance.now();
    let j: Judgement;
    try {
      j = await judge();
    } catch (err) {
      j = fail(message(err));
    }
    const l = { check, ...j, ms: Math.round(performance.now() - started) };
    checks.push(l);
    o.onLine?.(l);
  };
  const cache = new Map<string, Promise<HttpAnswer>>();
  const get = (url: string, auth?: Credentials): Promise<HttpAnswer> => {
    const key = `${auth?.user ?? ''} ${url}`;
    if (!cache.has(key)) {
      const address = o.resolve.get(new URL(url).hostname);
      cache.set(key, httpRequest({ url, timeoutMs, ...(address && { address }), ...(o.ca && { ca: o.ca }), ...(auth && { auth }) }));
    }
    return cache.get(key)!;
  };
  const cfgs = { prod: o.prod, dev: o.dev };
  const https = (host: string, p = '/') => `https://${host}${o.httpsPort === 443 ? '' : `:${o.httpsPort}`}${p}`;
  const http = (host: string, p = '/') => `http://${host}${o.httpPort === 80 ? '' : `:${o.httpPort}`}${p}`;

  // DNS: every host of the targeted environments, then (for all) that they share one address.
  const hosts = [...new Set(o.targets.flatMap((e) => [cfgs[e].vars.ROOT_DOMAIN, cfgs[e].vars.WEB_DOMAIN, cfgs[e].vars.VAULT_DOMAIN]))];
  const answers = new Map<string, string[] | { error: string }>();
  for (const h of hosts) answers.set(h, await lookup(h).catch((err: NodeJS.ErrnoException) => ({ error: err.code ?? message(err) })));
  for (const { host, judgement } of judgeDns(answers)) {
    await line(`dns ${host}`, async () => (o.resolve.has(host) ? { ...judgement, detail: `${judgement.detail} (pinned by --resolve; DNS not asked)` } : judgement));
  }
  if (hosts.length > 1) await line('dns one address', async () => judgeSameAddress(answers));

  for (const env of o.targets) {
    const v = cfgs[env].vars;
    const site = v.WEB_DOMAIN;
    if (env === 'prod') {
      await line(`prod ${https(site)} answers`, async () => judgeAnswers(await get(https(site))));
      await line(`prod ${https(site, '/api/health')} healthy`, async () => judgeHealth(await get(https(site, '/api/health'))));
      await line('prod no X-Robots-Tag', async () => judgeIndexable(await Promise.all([https(site), https(site, '/api/health')].map(async (url) => ({ url, answer: await get(url) })))));
    } else {
      const eb = [https(site), https(site, '/api/health'), https(site, '/robots.txt')];
      for (const url of eb) await line(`dev ${url} needs credentials`, async () => judgeStatus(await get(url), 401));
      const creds = o.ebCredentials;
      if (!creds) await line('dev with credentials', async () => fail('VERIFY_EB_USER and VERIFY_EB_PASSWORD are not set: give a developer account through the environment'));
      else {
        await line(`dev ${https(site)} with credentials`, async () => judgeStatus(await get(https(site), creds), 200));
        await line(`dev ${https(site, '/api/health')} healthy`, async () => judgeHealth(await get(https(site, '/api/health'), creds)));
        await line('dev robots.txt disallows all', async () => judgeRobots(await get(https(site, '/robots.txt'), creds)));
      }
      await line('dev X-Robots-Tag noindex', async () =>
        judgeNoindex(await Promise.all([...eb.map((url) => ({ url, creds: undefined })), ...(creds ? eb.map((url) => ({ url, creds })) : [])].map(async (x) => ({ url: x.url, answer: await get(x.url, x.creds) })))),
      );
    }
    const hostsOfEnv = [...new Set([v.WEB_DOMAIN, v.VAULT_DOMAIN])];
    for (const h of hostsOfEnv) {
      await line(`${env} TLS certificate of ${h}`, async () => {
        const address = o.resolve.get(h);
        return judgeCertDays(await peerCertificate(h, o.httpsPort, { timeoutMs, ...(address && { address }) }), now(), o.minCertDays);
      });
    }

    // Vaults: plain HTTP, no redirect (players); vault-dev only with the device credential.
    let files: string[] = [];
    await line(`${env} vault files to fetch`, async () => {
      files = await vaultFilesOf(cfgs[env], o.vaultFiles[env], o.vaultSample);
      return pass(files.join(', '));
    });
    for (const f of files) {
      const url = http(v.VAULT_DOMAIN, `/${f}`);
      if (env === 'prod') await line(`prod ${url} over plain HTTP`, async () => judgeStatus(await get(url), 200));
      else {
        await line(`dev ${url} needs the device credential`, async () => judgeStatus(await get(url), 401));
        if (!o.deviceCredentials) await line(`dev ${url} with the device credential`, async () => fail('VERIFY_DEVICE_USER and VERIFY_DEVICE_PASSWORD are not set'));
        else await line(`dev ${url} with the device credential`, async () => judgeStatus(await get(url, o.deviceCredentials), 200));
      }
    }

    // MQTT: this env's device gets in and round-trips; the other env's device and no certificate do not.
    const other: Environment = env === 'prod' ? 'dev' : 'prod';
    const attempt = async (client: Environment | undefined): Promise<MqttOutcome> => {
      const ca = await readFile(certsLayout(v.MQTT_CERTS_DIR).caCrt, 'utf8');
      const dev = client ? deviceFiles(certsLayout(cfgs[client].vars.MQTT_CERTS_DIR), o.device) : undefined;
      if (dev && !existsSync(dev.crt)) throw new Error(`no device certificate ${o.device} for ${client} (${dev.crt}): run make mqtt-certs ENV=${client} ARGS="issue ${o.device}"`);
      const address = o.resolve.get(v.MQTT_PUBLIC_HOST);
      return mqttRoundTrip({
        host: v.MQTT_PUBLIC_HOST,
        user: o.device,
        address,
        port: v.MQTT_PUBLIC_PORT,
        ca,
        timeoutMs,
        ...(dev && { client: { cert: await readFile(dev.crt, 'utf8'), key: await readFile(dev.key, 'utf8') } }),
      });
    };
    const broker = `${env} mqtt ${v.MQTT_PUBLIC_HOST}:${v.MQTT_PUBLIC_PORT}`;
    await line(`${broker} accepts a ${env} device`, async () => judgeMqtt('accept', await attempt(env)));
    await line(`${broker} refuses a ${other} device`, async () => judgeMqtt('refuse', await attempt(other)));
    await line(`${broker} refuses no certificate`, async () => judgeMqtt('refuse', await attempt(undefined)));
  }
  return { ok: checks.every((c) => c.result === 'pass'), targets: [...o.targets], checks };
}

// ---- --pre: the pre-migration checklist items a program can check ---------------------------

export interface PreOptions {
  envDir?: string;
  credentialsDir: string;
  /** The isolation audit (`make check`), run by the caller's runner so its steps show as progress. */
  audit: () => Promise<{ ok: boolean; rows: readonly { check: string; status: string; detail: string }[] }>;
  maxBackupHours: number;
  now?: () => Date;
  onLine?: (line: CheckLine) => void;
}

/** Lines of the pre-migration checklist; each failure says what to do next. */
export async function runPreChecks(o: PreOptions): Promise<VerifyResult> {
  const now = o.now ?? (() => new Date());
  const checks: CheckLine[] = [];
  const line = async (check: string, judge: () => Promise<Judgement>) => {
    const started = performance.now();
    const j = await judge().catch((err: unknown) => fail(message(err)));
    const l = { check, ...j, ms: Math.round(performance.now() - started) };
    checks.push(l);
    o.onLine?.(l);
  };
  const cfgs: Partial<Record<Environment, EnvConfig>> = {};
  for (const env of environments) {
    await line(`pre ${env} env file complete`, async () => {
      cfgs[env] = loadEnvConfig(env, envFilePath(env, o.envDir));
      return pass(`${cfgs[env]!.file}: every variable set and valid`);
    });
  }
  await line('pre isolation audit clean (make check)', async () => {
    const r = await o.audit();
    const bad = r.rows.filter((x) => x.status === 'fail');
    return r.ok ? pass(`${r.rows.length} checks, none failed`) : fail(bad.map((x) => `${x.check}: ${x.detail}`).join('; '));
  });
  await line(`pre backup younger than ${o.maxBackupHours} h`, async () => {
    if (!cfgs.prod) return fail('the prod env file is not valid (see above)');
    const t = { ...defaultThresholds, 'backup-warn-hours': o.maxBackupHours, 'backup-crit-hours': Math.max(o.maxBackupHours, defaultThresholds['backup-crit-hours']) };
    const r = evaluateBackup(await probeBackup(cfgs.prod.vars.BACKUP_DIR), now(), t);
    return r.status === 'OK' ? pass(r.summary) : fail(`${r.summary}: run make backup-prod`);
  });
  for (const scope of scopes) {
    await line(`pre credentials file ${credentialsFileName(scope)} present`, async () => {
      const file = path.join(o.credentialsDir, credentialsFileName(scope));
      if (!existsSync(file)) return fail(`${file} does not exist: run make basic-auth ARGS="add <user>${scope === 'devices' ? ' --scope devices' : ''}"`);
      const users = parseCredentials(await readFile(file, 'utf8'), scope, file);
      return users.length ? pass(`${file}: ${users.length} account${users.length === 1 ? '' : 's'}`) : fail(`${file} holds no account (everyone is locked out): run make basic-auth ARGS="add <user>${scope === 'devices' ? ' --scope devices' : ''}"`);
    });
  }
  return { ok: checks.every((c) => c.result === 'pass'), targets: [...environments], checks };
}

/** The checklist as a table: check, result, detail, time. */
export function renderChecklist(r: VerifyResult): string {
  const width = Math.min(70, Math.max(...r.checks.map((c) => c.check.length)));
  const rows = r.checks.map((c) => `${c.result === 'pass' ? 'PASS' : 'FAIL'}  ${c.check.padEnd(width)}  ${c.detail}  (${formatDuration(c.ms)})`);
  const failed = r.checks.filter((c) => c.result === 'fail').length;
  return [...rows, '', failed ? `${failed} of ${r.checks.length} checks FAILED` : `all ${r.checks.length} checks passed`].join('\n');
}

/** Credentials come from the environment, never argv (a process list would show them). */
export function credentialsFromEnvironment(environ: Record<string, string | undefined>, prefix: 'VERIFY_EB' | 'VERIFY_DEVICE'): Credentials | undefined {
  const user = environ[`${prefix}_USER`];
  const password = environ[`${prefix}_PASSWORD`];
  if (!user && !password) return undefined;
  if (!user || !password) throw new UsageError(`${prefix}_USER and ${prefix}_PASSWORD must be set together.`);
  return { user, password: new Secret(password) };
}
