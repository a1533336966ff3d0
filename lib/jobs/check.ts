import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { environments, envFilePath, loadEnvConfig, parseEnvFile, secretsOf, type EnvConfig, type Environment } from '../core/config.ts';
import { composeCommand, detectComposeFlavor, edgeComposeCommand } from '../tools/compose.ts';
import { credentialsFileName, parseCredentials } from '../domain/credentials.ts';
import { caddyfileArgv, edgeCaddyfile, readableCredentialsDir } from '../tools/caddy.ts';
import { aclFile, aclUsers, certFiles } from '../tools/mosquitto.ts';
import { JobError } from '../core/errors.ts';
import { redact, type Secret } from '../core/secret.ts';
import { readAppTree, type AppTree } from '../tools/app-tree.ts';
import { auditAppContract, pythonEnvReads, reliedOnFiles, scriptEnvReads, type AppService, type ContractInput } from '../domain/app-contract.ts';
import type { Ui } from '../core/ui.ts';
import { run } from '../core/exec.ts';
import { definedOnly, type Settings } from '../core/settings.ts';

/**
 * The isolation audit behind `make check`: pure functions over what the real tools rendered —
 * both environments' merged Compose configs (`docker compose config`), the Caddyfile adapted to
 * JSON (`caddy adapt`) and the two env files. Compose v1 and v2 render the same file differently
 * (short vs long port syntax, "768M" vs bytes), so every reader below accepts both.
 */

export type Status = 'ok' | 'warn' | 'fail';
export interface CheckRow {
  check: string;
  status: Status;
  detail: string;
}

export interface StackInput {
  cfg: EnvConfig;
  /** The parsed YAML of `docker compose config`. */
  rendered: unknown;
  /** Lines Compose printed on stderr while rendering (unset-variable warnings land here). */
  warnings: readonly string[];
  /** SHA-256 of the environment's ca.crt when it exists (make mqtt-certs creates it). */
  caFingerprint?: string;
}

export interface AuditInput {
  prod: StackInput;
  dev: StackInput;
  /** The Caddyfile adapted to Caddy's JSON (`caddy adapt`). */
  caddy: unknown;
  /** The brokers' topic rights, compose/mosquitto/acls (both environments mount the same file). */
  acl: string;
  /** The parsed YAML of the edge's `docker compose config` (caddy/docker-compose.edge.yml with caddy/.env). */
  edge: unknown;
  /** The accounts of developers.caddy (bcrypt hashes), which EB's session check reads outside the Caddyfile. */
  developers?: readonly Account[];
}

export interface Account {
  username: string;
  password: string;
}

/** EB's total budget: the VPS is shared, development gets at most this much. */
export const ebBudget = { cpus: 2.0, memoryBytes: 2 * 1024 ** 3 } as const;
export const sharedNetwork = 'caddy_net';
/** Where the edge writes its access logs and the app's worker reads them (download_stats.py). */
export const edgeLogDir = '/var/log/caddy';

// ---- reading a rendered Compose config -----------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const obj = (v: unknown): Obj => (isObj(v) ? v : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export const servicesOf = (model: unknown): Record<string, Obj> => obj(obj(model).services) as Record<string, Obj>;

/** The name Docker gives a service's container: container_name, else Compose's default. */
export function containerNames(model: unknown, project: string): string[] {
  return Object.entries(servicesOf(model)).map(([name, s]) => (typeof s.container_name === 'string' ? s.container_name : `${project}-${name}-1`));
}

/** Top-level named volumes and networks under the name Docker really uses. */
export function resourceNames(model: unknown, kind: 'volumes' | 'networks', project: string): Map<string, { name: string; external: boolean }> {
  const out = new Map<string, { name: string; external: boolean }>();
  for (const [key, raw] of Object.entries(obj(obj(model)[kind]))) {
    const v = obj(raw);
    const ext = v.external;
    const external = ext === true || isObj(ext);
    const extName = isObj(ext) && typeof ext.name === 'string' ? ext.name : undefined;
    const name = typeof v.name === 'string' ? v.name : (extName ?? (external ? key : `${project}_${key}`));
    out.set(key, { name, external });
  }
  return out;
}

export interface Mount {
  service: string;
  type: 'volume' | 'bind';
  source: string;
  target: string;
  readOnly: boolean;
}

/** Service mounts, from v1's "src:dst:mode" strings or v2's long syntax. */
export function mountsOf(model: unknown): Mount[] {
  const out: Mount[] = [];
  for (const [service, s] of Object.entries(servicesOf(model))) {
    for (const v of list(s.volumes)) {
      if (typeof v === 'string') {
        const [source = '', target = '', mode = 'rw'] = v.split(':');
        const bind = source.startsWith('/') || source.startsWith('.');
        out.push({ service, type: bind ? 'bind' : 'volume', source, target, readOnly: mode.split(',').includes('ro') });
      } else if (isObj(v)) {
        out.push({ service, type: v.type === 'bind' ? 'bind' : 'volume', source: String(v.source ?? ''), target: String(v.target ?? ''), readOnly: v.read_only === true });
      }
    }
  }
  return out;
}

export interface PublishedPort {
  service: string;
  hostIp: string;
  published: number;
  target: number;
  protocol: string;
}

/** Published ports, from short ("127.0.0.1:5433:5432/tcp") or long syntax; unpublished ones are left out. */
export function publishedPorts(model: unknown): PublishedPort[] {
  const out: PublishedPort[] = [];
  for (const [service, s] of Object.entries(servicesOf(model))) {
    for (const p of list(s.ports)) {
      if (typeof p === 'string' || typeof p === 'number') {
        const [spec = '', protocol = 'tcp'] = String(p).split('/');
        const parts = spec.split(':');
        if (parts.length < 2) continue;
        const target = Number(parts.at(-1));
        const published = Number(parts.at(-2));
        out.push({ service, hostIp: parts.length > 2 ? parts.slice(0, -2).join(':') : '', published, target, protocol });
      } else if (isObj(p) && p.published !== undefined && p.published !== '') {
        out.push({ service, hostIp: String(p.host_ip ?? ''), published: Number(p.published), target: Number(p.target), protocol: String(p.protocol ?? 'tcp') });
      }
    }
  }
  return out;
}

/** "768M", "1g", "805306368" (v2 renders bytes) -> bytes; undefined when absent or unreadable. */
export function parseMemory(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(value.trim());
  if (!m) return undefined;
  const unit = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.round(Number(m[1]) * unit);
}

/** A service's CPU and memory limits: service-level cpus/mem_limit, or deploy.resources.limits. */
export function limitsOf(service: Obj): { cpus?: number; memoryBytes?: number } {
  const deploy = obj(obj(obj(service.deploy).resources).limits);
  const cpusRaw = service.cpus ?? deploy.cpus;
  const cpus = cpusRaw === undefined || cpusRaw === '' ? NaN : Number(cpusRaw);
  const memoryBytes = parseMemory(service.mem_limit ?? deploy.memory);
  return { ...(Number.isFinite(cpus) && cpus > 0 && { cpus }), ...(memoryBytes !== undefined && memoryBytes > 0 && { memoryBytes }) };
}

// ---- reading Caddy's adapted JSON --------------------------------------------------------------

export interface HostAnalysis {
  host: string;
  /** False when no route of any server answers for the host. */
  served: boolean;
  /** Served by a plain-HTTP listener (the http_port). */
  plainHttp: boolean;
  /** Handlers that can answer before any authentication, e.g. "reverse_proxy web.makapix-dev:3000". */
  unprotected: string[];
  /** What the host serves, authenticated or not: "reverse_proxy <dial>" and "file_server <root>". */
  serves: string[];
  /** Path patterns exempted from authentication (the allow-list). */
  exemptPaths: string[];
  authenticated: boolean;
  /**
   * Upstreams asked before anything answers, in the forward-auth shape (a GET to a check service
   * whose 2xx lets the request through and whose other answers go to the client): EB's
   * developer-session check (caddy/Caddyfile, eb_developer_session).
   */
  forwardAuth: string[];
  /** Upstreams that may receive a request still carrying an `Authorization: Basic` credential. */
  basicForwardedTo: string[];
  /** X-Robots-Tag noindex set unconditionally, before authentication or any answer (covers 401s). */
  noindex: boolean;
  accounts: Account[];
}

/** Handlers that never answer a request themselves. */
const passiveHandlers = new Set(['headers', 'authentication', 'subroute', 'rewrite', 'vars', 'map', 'encode', 'request_body', 'tracing', 'push', 'copy_response_headers', 'log_append']);

/** Paths that cannot match a request (no leading "/"), used as placeholders in the Caddyfile. */
const isPlaceholderPath = (p: string) => !p.startsWith('/') && !p.startsWith('*');

const namesHost = (hosts: unknown, host: string) => list(hosts).some((h) => typeof h === 'string' && (h.toLowerCase() === host || (h.startsWith('*.') && host.endsWith(h.slice(1)))));

function routesForHost(routes: unknown[], host: string): unknown[] {
  return routes.filter((r) => {
    const sets = list(obj(r).match);
    if (sets.length === 0) return true;
    return sets.some((s) => {
      const hosts = obj(s).host;
      return hosts === undefined || namesHost(hosts, host);
    });
  });
}

/** True when some route of the server names the host itself (not only a catch-all). */
const namedIn = (server: Obj, host: string) => list(server.routes).some((r) => list(obj(r).match).some((m) => namesHost(obj(m).host, host)));

/**
 * Walks a host's routes in order, as Caddy runs them, tracking what authentication covers so far:
 * nothing, everything, or everything except some paths (an `@x not path ...` matcher on the route
 * that authenticates). Any other condition on an authentication handler counts as no cover.
 */
export function analyzeCaddyHost(caddy: unknown, host: string): HostAnalysis {
  const http = obj(obj(obj(caddy).apps).http);
  const httpPort = Number(http.http_port ?? 80);
  const result: HostAnalysis = { host, served: false, plainHttp: false, unprotected: [], serves: [], exemptPaths: [], authenticated: false, forwardAuth: [], basicForwardedTo: [], noindex: false, accounts: [] };
  let everyAuthenticated = true;
  let everyNoindex = true;
  const servers = Object.values(obj(http.servers)).map(obj);
  const isPlain = (s: Obj) => list(s.listen).some((l) => String(l).endsWith(`:${httpPort}`));
  // A host with an HTTPS site gets Caddy's automatic redirect on the plain-HTTP port, ahead of any
  // catch-all route there (caddy/Caddyfile's refusal of unknown hosts), unless redirects are off.
  // Only a catch-all answering (the refusal of unknown hosts) means the Caddyfile has no site for it.
  if (!servers.some((s) => namedIn(s, host.toLowerCase()))) return result;
  const redirected = servers.some((s) => !isPlain(s) && namedIn(s, host.toLowerCase()) && obj(s.automatic_https).disable !== true && obj(s.automatic_https).disable_redirects !== true);
  for (const s of servers) {
    if (isPlain(s) && redirected && !namedIn(s, host.toLowerCase())) continue;
    const routes = routesForHost(list(s.routes), host.toLowerCase());
    if (!routes.length) continue;
    result.served = true;
    if (isPlain(s)) result.plainHttp = true;
    const state: { cover: Cover } = { cover: { kind: 'none' } };
    let noindex = false;
    let decided = false;
    let basicStripped = false;
    // The folder `root` set last (a vars handler), which a file_server without its own root serves.
    let root = '';
    const walk = (rs: unknown[], conditions: unknown[][]): void => {
      for (const r of rs) {
        const route = obj(r);
        // The host matcher only selects the site (routesForHost did that); other matchers are conditions.
        const sets = list(route.match).map((m) => Object.fromEntries(Object.entries(obj(m)).filter(([k]) => k !== 'host')));
        const match = sets.some((m) => Object.keys(m).length === 0) ? [] : sets;
        const conds = match.length ? [...conditions, match] : conditions;
        for (const h of list(route.handle)) {
          const handler = obj(h);
          const kind = String(handler.handler);
          if (kind === 'headers') {
            const resp = obj(handler.response);
            const tag = list(obj(resp.set)['X-Robots-Tag']);
            if (!decided && conds.length === 0 && resp.deferred !== true && tag.some((v) => /noindex/i.test(String(v)))) noindex = true;
            if (!basicStripped && stripsBasic(handler, conds)) basicStripped = true;
          } else if (kind === 'authentication' || isForwardAuth(handler)) {
            decided = true;
            if (kind === 'authentication') for (const a of list(obj(obj(handler.providers).http_basic).accounts)) result.accounts.push({ username: String(obj(a).username), password: String(obj(a).password) });
            else result.forwardAuth.push(...upstreamsOf(handler).filter((u) => !result.forwardAuth.includes(u)));
            const c = coverOf(conds);
            if (c.kind === 'all' || (c.kind === 'except' && state.cover.kind === 'none')) state.cover = c;
          } else if (kind === 'subroute') {
            walk(list(handler.routes), conds);
          } else if (kind === 'vars' && typeof handler.root === 'string') {
            root = handler.root;
          } else if (!passiveHandlers.has(kind)) {
            decided = true;
            const what = describeHandler(handler, root);
            if (state.cover.kind === 'none') result.unprotected.push(what);
            if ((kind === 'reverse_proxy' || kind === 'file_server') && !result.serves.includes(what)) result.serves.push(what);
            if (kind === 'reverse_proxy' && !basicStripped) result.basicForwardedTo.push(...upstreamsOf(handler).filter((u) => !result.basicForwardedTo.includes(u)));
          }
        }
      }
    };
    walk(routes, []);
    const { cover } = state;
    // Every server (HTTPS and plain HTTP) that answers for the host must authenticate and mark noindex.
    if (cover.kind === 'none') everyAuthenticated = false;
    if (!noindex) everyNoindex = false;
    if (cover.kind === 'except') result.exemptPaths.push(...cover.paths.filter((p) => !result.exemptPaths.includes(p)));
  }
  return { ...result, authenticated: result.served && everyAuthenticated, noindex: result.served && everyNoindex };
}

const upstreamsOf = (h: Obj) => list(h.upstreams).map((u) => String(obj(u).dial));

/**
 * Caddy's forward_auth, as adapted (or written out, as caddy/Caddyfile does to pass Set-Cookie on):
 * a reverse_proxy that rewrites the request to a GET and handles only 2xx answers itself, with
 * header changes alone, so every other answer of the check service (401) goes to the client.
 */
function isForwardAuth(h: Obj): boolean {
  if (h.handler !== 'reverse_proxy' || obj(h.rewrite).method !== 'GET') return false;
  const handlers = list(h.handle_response);
  return (
    handlers.length > 0 &&
    handlers.every((r) => {
      const codes = list(obj(obj(r).match).status_code);
      const onlyHeaders = list(obj(r).routes).every((route) => list(obj(route).handle).every((x) => obj(x).handler === 'headers'));
      return codes.length > 0 && codes.every((c) => c === 2 || (typeof c === 'number' && c >= 200 && c < 300)) && onlyHeaders;
    })
  );
}

/**
 * A headers handler that removes `Authorization` from the request, unconditionally or only when it
 * is Basic: every condition on the way to it a header_regexp on Authorization that a Basic
 * credential matches and a Bearer token does not.
 */
function stripsBasic(h: Obj, conditions: unknown[][]): boolean {
  if (!list(obj(h.request).delete).some((f) => String(f).toLowerCase() === 'authorization')) return false;
  const basicOnly = (m: unknown) => {
    const set = obj(m);
    const pattern = obj(obj(set.header_regexp).Authorization).pattern;
    if (Object.keys(set).length !== 1 || typeof pattern !== 'string') return false;
    // Go's inline (?i) has no JavaScript spelling at the start of a pattern: take it as the i flag.
    const re = new RegExp(pattern.replace(/^\(\?i\)/, ''), pattern.startsWith('(?i)') ? 'i' : '');
    return re.test('Basic YWxpY2U6cHc=') && re.test('basic YWxpY2U6cHc=') && !re.test('Bearer x');
  };
  return conditions.every((sets) => sets.every(basicOnly));
}

type Cover = { kind: 'none' } | { kind: 'all' } | { kind: 'except'; paths: string[] };

function coverOf(conditions: unknown[][]): Cover {
  if (conditions.length === 0) return { kind: 'all' };
  if (conditions.length === 1 && conditions[0]!.length === 1) {
    const set = obj(conditions[0]![0]);
    const keys = Object.keys(set);
    const not = list(set.not);
    if (keys.length === 1 && keys[0] === 'not' && not.length === 1) {
      const inner = obj(not[0]);
      if (Object.keys(inner).length === 1 && Array.isArray(inner.path)) return { kind: 'except', paths: inner.path.map(String).filter((p) => !isPlaceholderPath(p)) };
    }
  }
  return { kind: 'none' };
}

function describeHandler(h: Obj, root: string): string {
  const upstreams = list(h.upstreams).map((u) => String(obj(u).dial));
  if (h.handler === 'reverse_proxy') return `reverse_proxy ${upstreams.join(', ')}`;
  if (h.handler === 'file_server') return `file_server ${typeof h.root === 'string' ? h.root : root || '(working directory)'}`;
  if (h.handler === 'static_response') return `static_response ${h.status_code ?? 200}`;
  return String(h.handler);
}

// ---- the audit ---------------------------------------------------------------------------------

const row = (check: string, status: Status, detail: string): CheckRow => ({ check, status, detail });
const shared = <T>(a: Iterable<T>, b: Iterable<T>): T[] => {
  const bs = new Set(b);
  return [...new Set(a)].filter((x) => bs.has(x));
};
const nested = (a: string, b: string) => {
  const rel = (x: string, y: string) => path.relative(path.resolve(x), path.resolve(y));
  const inside = (r: string) => r === '' || (!r.startsWith('..') && !path.isAbsolute(r));
  return inside(rel(a, b)) || inside(rel(b, a));
};
const secretsShared = (a: Secret[], b: Secret[]) => a.some((x) => b.some((y) => x.equals(y)));
const project = (s: StackInput) => s.cfg.vars.COMPOSE_PROJECT_NAME;
const gib = (bytes: number) => `${Math.round(bytes / 1024 ** 2)} MiB`;

/** Every isolation fact `make check` proves, one row each; nothing here touches a tool or a file. */
export function auditIsolation(input: AuditInput): CheckRow[] {
  const { prod, dev } = input;
  const both: [Environment, StackInput][] = [
    ['prod', prod],
    ['dev', dev],
  ];
  const rows: CheckRow[] = [];

  for (const [env, s] of both) {
    const unset = s.warnings.flatMap((w) => [...w.matchAll(/The \\?"?([A-Za-z_][A-Za-z0-9_]*)\\?"? variable is not set/g)].map((m) => m[1]!));
    rows.push(
      unset.length
        ? row(`${env} config renders`, 'fail', `unset variable${unset.length > 1 ? 's' : ''} ${[...new Set(unset)].join(', ')} (add to ${path.basename(s.cfg.file)})`)
        : row(`${env} config renders`, 'ok', `${Object.keys(servicesOf(s.rendered)).length} services, no unset variable`),
    );
  }

  const namesP = containerNames(prod.rendered, project(prod));
  const namesD = containerNames(dev.rendered, project(dev));
  const sharedNames = shared(namesP, namesD);
  rows.push(sharedNames.length ? row('container names', 'fail', `shared: ${sharedNames.join(', ')}`) : row('container names', 'ok', `${namesP.length} + ${namesD.length}, none shared`));

  const volP = [...resourceNames(prod.rendered, 'volumes', project(prod)).values()].map((v) => v.name);
  const volD = [...resourceNames(dev.rendered, 'volumes', project(dev)).values()].map((v) => v.name);
  const sharedVol = shared(volP, volD);
  rows.push(sharedVol.length ? row('named volumes', 'fail', `shared: ${sharedVol.join(', ')}`) : row('named volumes', 'ok', `${volP.join(', ') || 'none'} / ${volD.join(', ') || 'none'}`));

  // A host folder both stacks mount is allowed only read-only on both sides (the Mosquitto config).
  const bindsP = mountsOf(prod.rendered).filter((m) => m.type === 'bind');
  const bindsD = mountsOf(dev.rendered).filter((m) => m.type === 'bind');
  const badBinds = bindsP.flatMap((a) => bindsD.filter((b) => nested(a.source, b.source) && !(a.readOnly && b.readOnly)).map((b) => `${a.source} (prod ${a.service}${a.readOnly ? '' : ', writable'}) ~ ${b.source} (dev ${b.service}${b.readOnly ? '' : ', writable'})`));
  rows.push(badBinds.length ? row('host folders', 'fail', `shared and writable: ${[...new Set(badBinds)].join('; ')}`) : row('host folders', 'ok', 'no writable host folder shared'));

  const portsP = publishedPorts(prod.rendered);
  const portsD = publishedPorts(dev.rendered);
  const key = (p: PublishedPort) => `${p.published}/${p.protocol}`;
  const sharedPorts = shared(portsP.map(key), portsD.map(key));
  rows.push(
    sharedPorts.length
      ? row('host ports', 'fail', `both publish ${sharedPorts.join(', ')}`)
      : row('host ports', 'ok', `prod ${portsP.map(key).join(', ') || 'none'}; dev ${portsD.map(key).join(', ') || 'none'}`),
  );

  const exposure: string[] = [];
  for (const [env, s] of both) {
    for (const p of publishedPorts(s.rendered)) {
      if (p.service === 'db' && p.hostIp !== '127.0.0.1') exposure.push(`${env} db published on ${p.hostIp || 'all interfaces'}:${p.published}`);
      if (p.service === 'mqtt' && p.target === 1883) exposure.push(`${env} MQTT plaintext listener 1883 published on ${p.published}`);
      if (p.service !== 'db' && p.service !== 'mqtt') exposure.push(`${env} ${p.service} publishes ${p.published}`);
    }
    const db = portsOf(s, 'db');
    if (db.length === 0) exposure.push(`${env} db is not published on 127.0.0.1:${s.cfg.vars.DB_PUBLISHED_PORT} (the toolkit needs it)`);
    else if (!db.some((p) => p.published === s.cfg.vars.DB_PUBLISHED_PORT)) exposure.push(`${env} db is published on ${db.map((p) => p.published).join(', ')}, not DB_PUBLISHED_PORT=${s.cfg.vars.DB_PUBLISHED_PORT}`);
  }
  rows.push(exposure.length ? row('published services', 'fail', exposure.join('; ')) : row('published services', 'ok', 'db on 127.0.0.1 only, MQTT only its mTLS listener'));

  const netP = [...resourceNames(prod.rendered, 'networks', project(prod)).values()].map((n) => n.name);
  const netD = [...resourceNames(dev.rendered, 'networks', project(dev)).values()].map((n) => n.name);
  const sharedNets = shared(netP, netD).filter((n) => n !== sharedNetwork);
  rows.push(sharedNets.length ? row('networks', 'fail', `shared besides ${sharedNetwork}: ${sharedNets.join(', ')}`) : row('networks', 'ok', `only ${sharedNetwork} is shared`));

  const pv = prod.cfg.vars;
  const dv = dev.cfg.vars;
  rows.push(
    secretsShared([pv.DB_ADMIN_PASSWORD, pv.DB_API_WORKER_PASSWORD], [dv.DB_ADMIN_PASSWORD, dv.DB_API_WORKER_PASSWORD])
      ? row('database passwords', 'fail', 'an EB database password equals an EA one')
      : row('database passwords', 'ok', 'all four differ across environments'),
  );
  rows.push(pv.JWT_SECRET_KEY.equals(dv.JWT_SECRET_KEY) ? row('JWT secret', 'fail', 'EA and EB use the same JWT_SECRET_KEY') : row('JWT secret', 'ok', 'differs'));
  rows.push(
    pv.GITHUB_OAUTH_CLIENT_ID === dv.GITHUB_OAUTH_CLIENT_ID || pv.GITHUB_OAUTH_CLIENT_SECRET.equals(dv.GITHUB_OAUTH_CLIENT_SECRET)
      ? row('OAuth client', 'fail', `EA and EB share a GitHub OAuth client${pv.GITHUB_OAUTH_CLIENT_ID === dv.GITHUB_OAUTH_CLIENT_ID ? ` (${pv.GITHUB_OAUTH_CLIENT_ID})` : ' secret'}`)
      : row('OAuth client', 'ok', 'each environment has its own'),
  );

  if (nested(pv.MQTT_CERTS_DIR, dv.MQTT_CERTS_DIR)) rows.push(row('MQTT CA', 'fail', `MQTT_CERTS_DIR overlaps: ${pv.MQTT_CERTS_DIR} / ${dv.MQTT_CERTS_DIR}`));
  else if (prod.caFingerprint && dev.caFingerprint && prod.caFingerprint === dev.caFingerprint) rows.push(row('MQTT CA', 'fail', 'both ca.crt files are the same certificate'));
  else if (!prod.caFingerprint || !dev.caFingerprint) rows.push(row('MQTT CA', 'warn', `separate folders; no CA yet in ${[!prod.caFingerprint && pv.MQTT_CERTS_DIR, !dev.caFingerprint && dv.MQTT_CERTS_DIR].filter(Boolean).join(' and ')} (make mqtt-certs)`));
  else rows.push(row('MQTT CA', 'ok', 'separate folders, different CAs'));

  rows.push(backendAccountRow(both, input.acl));

  rows.push(nested(pv.VAULT_HOST_PATH, dv.VAULT_HOST_PATH) ? row('vault path', 'fail', `VAULT_HOST_PATH overlaps: ${pv.VAULT_HOST_PATH} / ${dv.VAULT_HOST_PATH}`) : row('vault path', 'ok', `${pv.VAULT_HOST_PATH} / ${dv.VAULT_HOST_PATH}`));

  rows.push(environmentRow(both));
  rows.push(budgetRow(dev.rendered));

  for (const r of caddyRows(input.caddy, dv.WEB_DOMAIN, dv.VAULT_DOMAIN, input.developers ?? [])) rows.push(r);
  rows.push(edgeVaultRow(input.caddy, input.edge, both));
  rows.push(accessLogRow(input.edge, both));
  rows.push(ebImagesRow(dv.VAULT_PUBLIC_BASE_URL, dv.WEB_DOMAIN));

  let redirectHost = '';
  try {
    redirectHost = new URL(dv.GITHUB_REDIRECT_URI).hostname.toLowerCase();
  } catch {
    // validated by lib/core/config.ts already; an empty host fails below
  }
  rows.push(
    redirectHost === dv.WEB_DOMAIN
      ? row('EB OAuth redirect', 'ok', `on ${dv.WEB_DOMAIN}`)
      : row('EB OAuth redirect', 'fail', `GITHUB_REDIRECT_URI of EB points at ${redirectHost || '?'}, not EB's ${dv.WEB_DOMAIN}`),
  );

  rows.push(prodVolumeRow(prod));
  // The app's optional features left empty (lib/core/config.ts): what each environment loses.
  for (const [env, s] of both) {
    const off = s.cfg.warnings.map((w) => /: ([A-Z0-9_]+) is (?:empty|missing)/.exec(w)?.[1]).filter(Boolean);
    rows.push(off.length ? row(`${env} app features`, 'warn', `off: ${off.join(', ')} (${path.basename(s.cfg.file)}; the warnings name what is lost)`) : row(`${env} app features`, 'ok', 'every optional feature of the app is configured'));
  }
  return rows;
}

const portsOf = (s: StackInput, service: string) => publishedPorts(s.rendered).filter((p) => p.service === service);

function environmentRow(both: [Environment, StackInput][]): CheckRow {
  const wrong: string[] = [];
  const expected = { prod: 'production', dev: 'development' } as const;
  for (const [env, s] of both) {
    for (const name of ['api', 'worker', 'web']) {
      const svc = servicesOf(s.rendered)[name];
      if (!svc) continue;
      const envs = svc.environment;
      const value = isObj(envs) ? envs.ENVIRONMENT : list(envs).map(String).find((e) => e.startsWith('ENVIRONMENT='))?.slice(12);
      if (value !== expected[env]) wrong.push(`${env} ${name} has ENVIRONMENT=${value ?? '(unset)'}`);
    }
  }
  return wrong.length ? row('ENVIRONMENT', 'fail', wrong.join('; ')) : row('ENVIRONMENT', 'ok', 'production in EA, development in EB');
}

function budgetRow(devModel: unknown): CheckRow {
  let cpus = 0;
  let memory = 0;
  const missing: string[] = [];
  for (const [name, svc] of Object.entries(servicesOf(devModel))) {
    const l = limitsOf(svc);
    if (l.cpus === undefined || l.memoryBytes === undefined) missing.push(`${name} (${[l.cpus === undefined && 'cpus', l.memoryBytes === undefined && 'memory'].filter(Boolean).join(', ')})`);
    cpus += l.cpus ?? 0;
    memory += l.memoryBytes ?? 0;
  }
  const total = `${+cpus.toFixed(3)} CPUs, ${gib(memory)} (budget ${ebBudget.cpus} CPUs, ${gib(ebBudget.memoryBytes)})`;
  const problems = [
    ...(missing.length ? [`no limit on ${missing.join(', ')}`] : []),
    ...(cpus > ebBudget.cpus + 1e-9 ? [`CPU limits add up to ${+cpus.toFixed(3)} > ${ebBudget.cpus}`] : []),
    ...(memory > ebBudget.memoryBytes ? [`memory limits add up to ${gib(memory)} > ${gib(ebBudget.memoryBytes)}`] : []),
  ];
  return problems.length ? row('EB resource budget', 'fail', `${problems.join('; ')}`) : row('EB resource budget', 'ok', total);
}

/**
 * The api and worker log into the broker as MQTT_BACKEND_USER; the ACL grants the backend's topics
 * to one account by name, so any other name connects fine and then silently gets no topic at all.
 */
function backendAccountRow(both: [Environment, StackInput][], acl: string): CheckRow {
  const granted = aclUsers(acl);
  const wrong = both.filter(([, s]) => !granted.includes(s.cfg.vars.MQTT_BACKEND_USER)).map(([env, s]) => `${env} MQTT_BACKEND_USER=${s.cfg.vars.MQTT_BACKEND_USER} (${path.basename(s.cfg.file)})`);
  return wrong.length
    ? row('MQTT backend account', 'fail', `${wrong.join(', ')} has no rights in compose/mosquitto/acls, which grants ${granted.join(', ') || 'no account'}: the api would reach no topic`)
    : row('MQTT backend account', 'ok', `${[...new Set(both.map(([, s]) => s.cfg.vars.MQTT_BACKEND_USER))].join(', ')} granted the backend's topics`);
}

/** Every host a site of the adapted config answers for. */
export function caddyHosts(caddy: unknown): string[] {
  const hosts = new Set<string>();
  for (const server of Object.values(obj(obj(obj(obj(caddy).apps).http).servers))) {
    for (const r of list(obj(server).routes)) for (const m of list(obj(r).match)) for (const h of list(obj(m).host)) hosts.add(String(h).toLowerCase());
  }
  return [...hosts];
}

/**
 * EB's upstreams and vault folder must be reachable through EB's own (authenticated) hosts only:
 * another site, e.g. the public App Link host app-dev, may answer constants but never proxy to EB
 * or serve its files without credentials.
 */
function ebOnlyRow(caddy: unknown, eb: HostAnalysis[]): CheckRow {
  const ebServes = new Set(eb.flatMap((h) => h.serves));
  const others = caddyHosts(caddy).filter((h) => !eb.some((e) => e.host.toLowerCase() === h));
  const leaks = others.flatMap((host) => {
    const open = analyzeCaddyHost(caddy, host).unprotected.filter((u) => ebServes.has(u));
    return open.length ? [`${host} answers without credentials with EB's ${open.join(', ')}`] : [];
  });
  return leaks.length ? row('EB only through its hosts', 'fail', leaks.join('; ')) : row('EB only through its hosts', 'ok', `no other host (${others.length}) reaches ${[...ebServes].join(', ') || 'EB'}`);
}

/**
 * Caddy serves each vault from a folder inside the edge container; that folder must be the edge's
 * read-only mount of the environment's VAULT_HOST_PATH, or the vault host silently serves another
 * environment's files, or nothing.
 */
function edgeVaultRow(caddy: unknown, edge: unknown, both: [Environment, StackInput][]): CheckRow {
  const mounts = mountsOf(edge);
  const problems: string[] = [];
  const seen: string[] = [];
  for (const [env, s] of both) {
    const host = s.cfg.vars.VAULT_DOMAIN;
    const roots = analyzeCaddyHost(caddy, host).serves.filter((x) => x.startsWith('file_server ')).map((x) => x.slice('file_server '.length));
    if (roots.length === 0) {
      problems.push(`${host} serves no vault folder`);
      continue;
    }
    for (const root of roots) {
      const m = mounts.find((x) => x.target === root);
      if (!m) problems.push(`${host} serves ${root}, which the edge does not mount`);
      else if (m.source !== s.cfg.vars.VAULT_HOST_PATH) problems.push(`${host} serves ${m.source}, not ${env}'s VAULT_HOST_PATH=${s.cfg.vars.VAULT_HOST_PATH} (set it in caddy/.env)`);
      else if (!m.readOnly) problems.push(`the edge mounts ${m.source} writable`);
      else seen.push(`${host} ← ${m.source}`);
    }
  }
  return problems.length ? row('edge vault folders', 'fail', problems.join('; ')) : row('edge vault folders', 'ok', `${seen.join(', ')} (read-only)`);
}

/**
 * The workers' download statistics read the edge's JSON access logs at /var/log/caddy: a worker
 * that mounts another host folder there reads nothing. One that mounts none is only a warning
 * (statistics stay empty, nothing else breaks).
 */
function accessLogRow(edge: unknown, both: [Environment, StackInput][]): CheckRow {
  const logs = mountsOf(edge).find((m) => m.target === edgeLogDir);
  if (!logs) return row('edge access logs', 'fail', `the edge mounts no host folder at ${edgeLogDir}, so its access logs are lost with the container`);
  const wrong: string[] = [];
  const missing: string[] = [];
  for (const [env, s] of both) {
    const m = mountsOf(s.rendered).find((x) => x.service === 'worker' && x.target === edgeLogDir);
    if (!m) missing.push(env);
    else if (m.source !== logs.source) wrong.push(`${env} worker reads ${m.source}, the edge writes ${logs.source}`);
  }
  if (wrong.length) return row('edge access logs', 'fail', wrong.join('; '));
  if (missing.length) return row('edge access logs', 'warn', `${logs.source}; the ${missing.join(' and ')} worker${missing.length > 1 ? 's do' : ' does'} not mount it at ${edgeLogDir}, so download statistics stay empty`);
  return row('edge access logs', 'ok', `${logs.source}, read by both workers`);
}

function caddyRows(caddy: unknown, ebHost: string, ebVaultHost: string, developers: readonly Account[]): CheckRow[] {
  const hosts = [analyzeCaddyHost(caddy, ebHost), analyzeCaddyHost(caddy, ebVaultHost)];
  const auth: string[] = [];
  const noindex: string[] = [];
  for (const h of hosts) {
    if (!h.served) {
      auth.push(`${h.host} has no site in the Caddyfile`);
      noindex.push(`${h.host} has no site`);
      continue;
    }
    if (!h.authenticated) auth.push(`${h.host} has no basic auth`);
    if (h.unprotected.length) auth.push(`${h.host} answers without credentials: ${h.unprotected.join(', ')}`);
    if (!h.noindex) noindex.push(`${h.host} does not set X-Robots-Tag noindex on every response`);
  }
  const mechanism = (h: HostAnalysis) =>
    [...(h.forwardAuth.length ? [`developer session checked by ${h.forwardAuth.join(', ')}`] : []), ...(h.accounts.length ? ['basic auth'] : [])].join(' + ') || 'no check';
  const exempt = hosts.flatMap((h) => h.exemptPaths.map((p) => `${h.host}${p}`));
  const [site, vault] = hosts as [HostAnalysis, HostAnalysis];
  const forwarded = hosts.filter((h) => h.basicForwardedTo.length).map((h) => `${h.host} passes a Basic credential (a password) on to ${h.basicForwardedTo.join(', ')}`);
  // Accounts are compared with their hashes: the locked placeholders differ, a copied developer does not.
  // The developers are the site's basicauth accounts and those of developers.caddy, which the session check reads.
  const developerAccounts = [...site.accounts, ...developers];
  const leaked = [...new Set(vault.accounts.filter((a) => developerAccounts.some((b) => b.username === a.username && b.password === a.password)).map((a) => a.username))];
  const plainProblems = [
    ...(leaked.length ? [`developer account${leaked.length > 1 ? 's' : ''} ${leaked.join(', ')} also open ${ebVaultHost}, which is plain HTTP`] : []),
    ...(vault.forwardAuth.length ? [`${ebVaultHost}, which is plain HTTP, asks a session check (${vault.forwardAuth.join(', ')}): developer credentials would travel in clear`] : []),
    ...(site.plainHttp ? [`${site.host} is served over plain HTTP, so developer passwords would travel in clear`] : []),
  ];
  return [
    auth.length ? row('EB behind basic auth', 'fail', auth.join('; ')) : row('EB behind basic auth', 'ok', hosts.map((h) => `${h.host}: ${mechanism(h)}`).join('; ')),
    noindex.length ? row('EB noindex', 'fail', noindex.join('; ')) : row('EB noindex', 'ok', 'X-Robots-Tag on every response, 401s included'),
    ebOnlyRow(caddy, hosts),
    exempt.length ? row('EB auth exemptions', 'warn', `open without credentials: ${exempt.join(', ')}`) : row('EB auth exemptions', 'ok', 'none (EB_AUTH_EXEMPT_PATHS is empty)'),
    plainProblems.length ? row('EB credentials on plain HTTP', 'fail', plainProblems.join('; ')) : row('EB credentials on plain HTTP', 'ok', `${ebVaultHost} takes device credentials only`),
    forwarded.length ? row('EB passwords to upstreams', 'fail', forwarded.join('; ')) : row('EB passwords to upstreams', 'ok', 'Basic credentials are removed before any EB upstream'),
  ];
}

/**
 * EB's image URLs must be on EB's own site, under /vault (caddy/Caddyfile serves vault-dev's files
 * there behind the developer session): a browser sends that session only to the same origin, and
 * vault-dev itself takes device credentials only, so images anywhere else never show.
 */
function ebImagesRow(base: string, ebHost: string): CheckRow {
  const want = `https://${ebHost}/vault`;
  return base.replace(/\/+$/, '') === want
    ? row('EB image URLs', 'ok', `${want} (same origin, behind the developer session)`)
    : row('EB image URLs', 'warn', `EB's VAULT_PUBLIC_BASE_URL is ${base}, not ${want}: developers' browsers will not show EB's images`);
}

function prodVolumeRow(prod: StackInput): CheckRow {
  const want = prod.cfg.vars.DB_VOLUME_NAME;
  const data = mountsOf(prod.rendered).find((m) => m.service === 'db' && m.target === '/var/lib/postgresql/data');
  if (!data) return row('EA database volume', 'fail', 'the prod db service mounts nothing at /var/lib/postgresql/data');
  if (data.type !== 'volume') return row('EA database volume', 'fail', `the prod db data is the host folder ${data.source}, not the volume ${want}`);
  const vol = resourceNames(prod.rendered, 'volumes', project(prod)).get(data.source);
  if (!vol) return row('EA database volume', 'fail', `the prod db mounts ${data.source}, which is not declared`);
  if (vol.name !== want) return row('EA database volume', 'fail', `the prod db uses volume ${vol.name}, not DB_VOLUME_NAME=${want}`);
  if (!vol.external) return row('EA database volume', 'fail', `volume ${want} is not external: Compose would create an empty one instead of reusing production's`);
  return row('EA database volume', 'ok', `${want} (external, reused)`);
}

/** The table `make check` prints. */
export function renderCheckTable(rows: readonly CheckRow[]): string {
  const w1 = Math.max(5, ...rows.map((r) => r.check.length));
  const lines = [`${'check'.padEnd(w1)}  status  detail`, ...rows.map((r) => `${r.check.padEnd(w1)}  ${r.status.padEnd(6)}  ${r.detail}`)];
  const failed = rows.filter((r) => r.status === 'fail').length;
  const warned = rows.filter((r) => r.status === 'warn').length;
  lines.push('', failed ? `${failed} of ${rows.length} checks failed${warned ? `, ${warned} warning${warned > 1 ? 's' : ''}` : ''}.` : `All ${rows.length} checks passed${warned ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}.`);
  return `${lines.join('\n')}\n`;
}

// ---- the runner --------------------------------------------------------------------------------

// ---- the app's contract (make check APP_DIR=...) ------------------------------------------------

/** The app's compose, whose services ours is compared with. */
export const appComposeFile = 'deploy/stack/docker-compose.yml';

/** Which services' code a file of the app is: the worker imports the api's package, so it reads what the api reads. */
export function servicesReading(relPath: string): AppService[] {
  if (/^api\/(app|alembic)\/.*\.py$/.test(relPath)) return ['api', 'worker'];
  if (/^worker\/.*\.py$/.test(relPath)) return ['worker'];
  if (/^web\/src\/.*\.(tsx?|jsx?|mjs)$/.test(relPath) || /^web\/next\.config\.(mjs|js)$/.test(relPath)) return ['web'];
  return [];
}

const envKeys = (v: unknown): string[] => (isObj(v) ? Object.keys(v) : list(v).map((e) => String(e).split('=')[0]!));

/** The contract audit's input from a read checkout and both rendered stacks (pure). */
export function appContractInput(tree: Pick<AppTree, 'paths' | 'sources'>, prod: unknown, dev: unknown): ContractInput {
  const reads: ContractInput['reads'] = { api: [], worker: [], web: [] };
  for (const [file, text] of tree.sources) {
    const services = servicesReading(file);
    if (!services.length) continue;
    const found = file.endsWith('.py') ? pythonEnvReads(file, text) : scriptEnvReads(file, text);
    for (const s of services) reads[s].push(...found);
  }
  const passedBy = (model: unknown): Record<AppService, Set<string>> => {
    const svc = servicesOf(model);
    const of = (name: AppService) => new Set([...envKeys(svc[name]?.environment), ...envKeys(obj(svc[name]?.build).args)]);
    return { api: of('api'), worker: of('worker'), web: of('web') };
  };
  const files: ContractInput['files'] = {};
  for (const rel of Object.keys(reliedOnFiles)) {
    const base = path.posix.basename(rel);
    const movedTo = tree.paths.find((p) => p !== rel && path.posix.basename(p) === base && (base !== 'Dockerfile' || p.startsWith(`${rel.split('/')[0]}`) || p.includes(`${rel.split('/')[0]}.`)));
    files[rel] = { exists: tree.paths.includes(rel), ...(movedTo && { movedTo }) };
  }
  const appCompose = tree.sources.get(appComposeFile);
  return {
    reads,
    passed: { prod: passedBy(prod), dev: passedBy(dev) },
    files,
    appServices: appCompose ? Object.keys(servicesOf(parseYaml(appCompose))) : [],
    ourServices: Object.keys(servicesOf(prod)),
  };
}

export interface AuditOptions {
  /** Where the compose files are (a copy, in tests); default compose/. */
  composeDir?: string;
  /** An app checkout to audit the contract against (make check APP_DIR=...). */
  appDir?: string;
  caddyfile?: string;
  /** Folder of .env.prod and .env.dev (default: settings.envDir). */
  envDir?: string;
  settings: Pick<Settings, 'envDir' | 'credentialsDir' | 'caddy' | 'environ'>;
  ui: Ui;
}

export interface AuditResult {
  ok: boolean;
  rows: CheckRow[];
}

/**
 * `make check`: loads both env files (a missing or invalid variable stops here, exit 2, before
 * any tool runs), renders both stacks with the real compose CLI through the one compose builder,
 * adapts the Caddyfile with the real caddy, then audits. Rendered configs hold secrets: they are
 * parsed, never printed.
 */
export async function runIsolationAudit(opts: AuditOptions): Promise<AuditResult> {
  const cfgs = environments.map((env) => loadEnvConfig(env, envFilePath(env, opts.envDir ?? opts.settings.envDir)));
  const [prodCfg, devCfg] = cfgs as [EnvConfig, EnvConfig];
  const flavor = await detectComposeFlavor();
  const render = async (cfg: EnvConfig): Promise<StackInput> => {
    const { cmd, argv } = composeCommand(cfg, ['config'], flavor, opts.composeDir);
    const r = await opts.ui.run(`render the ${cfg.env} stack (${cmd} config)`, () => run({ cmd, argv }, { nothrow: true }));
    const stderr = redact(`${r.stderr}`, secretsOf(cfg));
    if (r.exitCode !== 0) {
      throw new JobError(`${cmd} config failed for ${cfg.env}: ${stderr.trim().split('\n').slice(-3).join(' / ')}.`, `Fix the compose files or ${cfg.file} (APP_DIR must exist for Compose v1) and run again.`);
    }
    const ca = await readFile(path.join(cfg.vars.MQTT_CERTS_DIR, certFiles.ca)).catch(() => undefined);
    return {
      cfg,
      rendered: parseYaml(`${r.stdout}`),
      warnings: stderr.split('\n').filter((l) => l.trim() !== ''),
      ...(ca && { caFingerprint: createHash('sha256').update(ca).digest('hex') }),
    };
  };
  const prod = await render(prodCfg);
  const dev = await render(devCfg);
  const caddyfile = opts.caddyfile ?? edgeCaddyfile;
  const bin = opts.settings.caddy.bin;
  // The edge's settings (e.g. EB_AUTH_EXEMPT_PATHS) live in caddy/.env, which Compose reads when it
  // starts the edge; the caller's environment wins over it, as with Compose.
  const edgeEnvFile = path.join(path.dirname(caddyfile), '.env');
  const edgeText = await readFile(edgeEnvFile, 'utf8').catch(() => '');
  const edgeVars = Object.fromEntries([...parseEnvFile(edgeText, edgeEnvFile).entries].map(([k, v]) => [k, v.value]));
  const credentials = await readableCredentialsDir(opts.settings.credentialsDir);
  const adapted = await opts.ui.run('adapt the Caddyfile (caddy adapt)', async () =>
    run({ cmd: bin, argv: caddyfileArgv('adapt', caddyfile), env: { ...edgeVars, ...definedOnly(opts.settings.environ), MAKAPIX_CREDENTIALS_DIR: credentials } }, { nothrow: true }),
  );
  if (adapted.exitCode !== 0) {
    throw new JobError(`caddy adapt rejected ${caddyfile}: ${redact(`${adapted.stderr}`).trim().split('\n').slice(-2).join(' / ')}.`, `Run caddy validate --config ${caddyfile} --adapter caddyfile for details.`);
  }
  const developersFile = path.join(credentials, credentialsFileName('developers'));
  const developers = parseCredentials(await readFile(developersFile, 'utf8'), 'developers', developersFile).map((u) => ({ username: u.user, password: u.hash }));
  const acl = await readFile(aclFile, 'utf8');
  // The committed edge project (--caddyfile swaps only the Caddyfile); Compose reads caddy/.env itself.
  const edgeCmd = edgeComposeCommand(['config'], flavor);
  const edgeRendered = await opts.ui.run(`render the edge (${edgeCmd.cmd} config)`, () => run(edgeCmd, { nothrow: true }));
  if (edgeRendered.exitCode !== 0) {
    throw new JobError(`${edgeCmd.cmd} config failed for the edge: ${`${edgeRendered.stderr}`.trim().split('\n').slice(-3).join(' / ')}.`, 'Fix caddy/docker-compose.edge.yml or caddy/.env and run again.');
  }
  const rows = auditIsolation({ prod, dev, caddy: JSON.parse(`${adapted.stdout}`), acl, edge: parseYaml(`${edgeRendered.stdout}`), developers });
  if (opts.appDir) {
    const appDir = opts.appDir;
    const tree = await opts.ui.run(`read the app at ${appDir}`, () => readAppTree(appDir, (p) => servicesReading(p).length > 0 || p === appComposeFile));
    if (!tree.paths.length) throw new JobError(`${appDir} holds no file: it is not an app checkout.`, 'Pass the folder of a fabkury/makapix checkout (APP_DIR=/opt/makapix).');
    rows.push(...auditAppContract(appContractInput(tree, prod.rendered, dev.rendered)));
    if (!tree.sources.has(appComposeFile)) rows.push(row('app compose', 'warn', `${appComposeFile} is not in ${appDir}: its services were not compared`));
  }
  return { ok: rows.every((r) => r.status !== 'fail'), rows };
}
