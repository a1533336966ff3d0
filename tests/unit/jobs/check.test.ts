import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnvFile, validateEnv, type EnvConfig, type Environment } from '../../../lib/core/config.ts';
import { composeDir } from '../../../lib/core/paths.ts';
import { aclFile } from '../../../lib/tools/mosquitto.ts';
import { auditIsolation, analyzeCaddyHost, parseMemory, publishedPorts, renderCheckTable, type AuditInput, type CheckRow } from '../../../lib/jobs/check.ts';

/** The real file: the audit must pass on what the repository ships. */
const committedAcl = readFileSync(aclFile, 'utf8');

// ---- fixtures: what `docker compose config` and `caddy adapt` render, small and editable ----------

function envConfig(env: Environment, edits: Record<string, string> = {}): EnvConfig {
  const file = path.join(composeDir, `.env.${env}.example`);
  const { entries } = parseEnvFile(readFileSync(file, 'utf8'), file);
  for (const [k, v] of Object.entries(edits)) entries.set(k, { value: v, line: 0 });
  const { vars, problems, warnings } = validateEnv(file, entries);
  if (!vars) throw new Error(problems.join('; '));
  return { env, file, vars, warnings };
}

const limits = { db: [0.6, '768M'], cache: [0.15, '128M'], api: [0.3, '384M'], worker: [0.3, '256M'], web: [0.3, '256M'], mqtt: [0.15, '64M'], vault: [0.15, '64M'] } as const;

/** A rendered stack in Compose v1's shapes (short port and volume syntax). */
function stack(env: Environment) {
  const p = `makapix-${env}`;
  const vault = env === 'prod' ? '/mnt/vault-1' : '/mnt/vault-dev';
  const environment = { ENVIRONMENT: env === 'prod' ? 'production' : 'development' };
  const services: Record<string, Record<string, unknown>> = {
    db: { container_name: `${p}-db`, ports: [`127.0.0.1:${env === 'prod' ? 5432 : 5433}:5432/tcp`], volumes: ['db_data:/var/lib/postgresql/data:rw'], networks: { internal: {} } },
    cache: { container_name: `${p}-cache`, networks: { internal: {} } },
    api: { container_name: `${p}-api`, environment: { ...environment }, volumes: [`${vault}:/vault:rw`], networks: { internal: {}, caddy_net: {} } },
    worker: { container_name: `${p}-worker`, environment: { ...environment }, volumes: [`${vault}:/vault:rw`, '/var/log/caddy:/var/log/caddy:ro'], networks: { internal: {} } },
    web: { container_name: `${p}-web`, environment: { ...environment }, networks: { internal: {}, caddy_net: {} } },
    mqtt: { container_name: `${p}-mqtt`, ports: [{ published: env === 'prod' ? 8883 : 8884, target: 8883 }], volumes: [`/etc/makapix/${env}/mqtt:/mosquitto/certs:ro`, '/ops/compose/mosquitto:/mosquitto/config:ro'], networks: { internal: {} } },
    vault: { container_name: `${p}-vault`, volumes: [`${vault}:/vault:ro`], networks: { internal: {}, caddy_net: {} } },
  };
  if (env === 'dev') for (const [name, [cpus, mem]] of Object.entries(limits)) Object.assign(services[name]!, { cpus, mem_limit: mem });
  return {
    services,
    networks: { internal: { name: `${p}-internal` }, caddy_net: { external: true, name: 'caddy_net' } },
    volumes: { db_data: env === 'prod' ? { external: true, name: 'makapix_pg_data' } : { name: 'makapix-dev_pg_data' } },
  };
}

type Handler = Record<string, unknown>;
const noindex: Handler[] = [
  { handler: 'headers', response: { set: { 'X-Robots-Tag': ['noindex, nofollow'] } } },
  { handler: 'headers', response: { deferred: true, set: { 'X-Robots-Tag': ['noindex, nofollow'] } } },
];
const auth = (user: string, hash: string): Handler => ({ handler: 'authentication', providers: { http_basic: { accounts: [{ username: user, password: hash }], hash: { algorithm: 'bcrypt' } } } });
const proxy = (dial: string): Handler => ({ handler: 'reverse_proxy', upstreams: [{ dial }] });
/** EB's developer-session check as caddy/Caddyfile writes it out (forward auth that passes Set-Cookie on). */
const sessionCheck = (dial = 'edge-auth.makapix-edge:9180', onAllowed: Handler[] = [{ handler: 'headers', request: { set: { 'X-Makapix-Developer': ['{http.reverse_proxy.header.X-Makapix-Developer}'] } } }]): Handler => ({
  handler: 'reverse_proxy',
  rewrite: { method: 'GET', uri: '/check' },
  upstreams: [{ dial }],
  handle_response: [
    { match: { status_code: [2], headers: { 'Set-Cookie': ['*'] } }, routes: [{ handle: [{ handler: 'headers', response: { set: { 'Set-Cookie': ['{http.reverse_proxy.header.Set-Cookie}'] } } }, ...onAllowed] }] },
    { match: { status_code: [2] }, routes: [{ handle: onAllowed }] },
  ],
});
/** `request_header -Authorization`. */
const dropAuthorization: Handler = { handler: 'headers', request: { delete: ['Authorization'] } };
const strip = { handle: [dropAuthorization] };
/** `request_header @eb_basic -Authorization`. */
const stripBasic = { match: [{ header_regexp: { Authorization: { pattern: '(?i)^\\s*basic(\\s|$)' } } }], handle: [{ handler: 'headers', request: { delete: ['Authorization'] } }] };
const site = (host: string, routes: unknown[]) => ({ match: [{ host: [host] }], handle: [{ handler: 'subroute', routes }], terminal: true });
const sub = (routes: unknown[], match?: unknown[]) => ({ ...(match && { match }), handle: [{ handler: 'subroute', routes }] });

const files = (root: string): Handler[] => [{ handler: 'vars', root }, { handler: 'file_server', hide: ['caddy/Caddyfile'] }];
const mkpx404 = { match: [{ path: ['/mkpx/*'] }], handle: [{ handler: 'static_response', status_code: 404 }] };
/** The App Link hosts: constants only. */
const appLinks = (host: string, extra: Handler[] = []) =>
  site(host, [{ handle: extra }, sub([{ handle: [{ handler: 'static_response', status_code: 200, body: '[]' }] }], [{ path: ['/.well-known/assetlinks.json'] }]), sub([{ handle: [{ handler: 'static_response', status_code: 404 }] }])]);

/** The rendered edge project (caddy/docker-compose.edge.yml with its defaults), v1's short syntax. */
const edgeStack = (volumes = ['/mnt/vault-1:/srv/vault-prod:ro', '/mnt/vault-dev:/srv/vault-dev:ro', '/var/log/caddy:/var/log/caddy:rw']) => ({ services: { caddy: { volumes: ['/opt/makapix-ops/caddy:/etc/caddy:ro', ...volumes] } } });

interface CaddyShape {
  ebSite?: unknown;
  ebVault?: unknown;
  eaVault?: unknown;
  ebApp?: unknown;
}
/** The adapted Caddyfile, shaped like caddy adapt's output for caddy/Caddyfile. */
function caddy(shape: CaddyShape = {}) {
  const ebSite =
    shape.ebSite ??
    site('development.makapix.club', [
      {
        handle: [
          ...noindex,
          {
            handler: 'subroute',
            routes: [
              sub([{ handle: [sessionCheck()] }], [{ not: [{ path: ['makapix-none'] }] }]),
              stripBasic,
              { match: [{ path: ['/robots.txt'] }], handle: [{ handler: 'static_response', status_code: 200, body: 'User-agent: *\nDisallow: /\n' }] },
              sub([{ handle: [proxy('api.makapix-dev:8000')] }], [{ path: ['/api/*'] }]),
              sub([{ handle: [proxy('web.makapix-dev:3000')] }]),
            ],
          },
        ],
      },
    ]);
  const ebVault = shape.ebVault ?? site('vault-dev.makapix.club', [{ handle: [...noindex, { handler: 'subroute', routes: [{ handle: [auth('tv1', '$2b$device')] }, strip, mkpx404, { handle: files('/srv/vault-dev') }] }] }]);
  const eaVault = shape.eaVault ?? site('vault.makapix.club', [{ handle: [{ handler: 'subroute', routes: [mkpx404, { handle: files('/srv/vault-prod') }] }] }]);
  const ebApp = shape.ebApp ?? appLinks('app-dev.makapix.club', noindex);
  return {
    apps: {
      http: {
        servers: {
          srv0: { listen: [':443'], routes: [ebSite, ebVault, ebApp, eaVault, appLinks('app.makapix.club'), site('makapix.club', [sub([{ handle: [proxy('web.makapix-prod:3000')] }])])] },
          // The refusal of unknown hosts: a catch-all after the plain-HTTP sites.
          srv1: { listen: [':80'], routes: [ebVault, eaVault, { handle: [{ handler: 'subroute', routes: [{ handle: [{ handler: 'headers', response: { set: { 'X-Robots-Tag': ['noindex, nofollow'] } } }, { handler: 'static_response', status_code: 421 }] }] }], terminal: true }] },
        },
      },
    },
  };
}

function input(edit: (i: AuditInput) => void = () => {}): AuditInput {
  const i: AuditInput = {
    prod: { cfg: envConfig('prod'), rendered: stack('prod'), warnings: [], caFingerprint: 'aa' },
    dev: { cfg: envConfig('dev'), rendered: stack('dev'), warnings: [], caFingerprint: 'bb' },
    caddy: caddy(),
    acl: committedAcl,
    edge: edgeStack(),
    developers: [{ username: 'alice', password: '$2b$dev' }],
  };
  edit(i);
  return i;
}

const svc = (i: AuditInput, env: Environment, name: string) => (i[env].rendered as ReturnType<typeof stack>).services[name]!;
const failing = (rows: CheckRow[]) => rows.filter((r) => r.status === 'fail');

test('the committed configuration shape passes every check', () => {
  const rows = auditIsolation(input());
  assert.equal(failing(rows), []);
  assert.ok(rows.length >= 20, `only ${rows.length} checks`);
  assert.match(rows.find((r) => r.check === 'EB resource budget')!.detail, /1\.95 CPUs, 1920 MiB/);
  // The examples leave the app's optional features (e-mail, Sentry, ...) empty: warnings, not failures.
  assert.match(renderCheckTable(rows), /All \d+ checks passed \(2 warnings\)\./);
  assert.match(rows.find((r) => r.check === 'prod app features')!.detail, /^off: RESEND_API_KEY, SENTRY_DSN, HEALTHCHECKS_PING_KEY, MAKAPIX_ADMIN_USER, MAKAPIX_ADMIN_PASSWORD/);
});

test('with every feature of the app configured, nothing warns', () => {
  const full = { RESEND_API_KEY: 're_1', SENTRY_DSN: 'https://k@sentry.invalid/1', HEALTHCHECKS_PING_KEY: 'k', MAKAPIX_ADMIN_USER: 'owner', MAKAPIX_ADMIN_PASSWORD: 'pw' };
  const rows = auditIsolation(input((i) => {
    i.prod.cfg = envConfig('prod', full);
    i.dev.cfg = envConfig('dev', { ...full, HEALTHCHECKS_PING_KEY: 'k2' });
  }));
  assert.equal(rows.filter((r) => r.status === 'warn'), []);
});

// Each broken fact must fail exactly its own check, with a message that names the culprit.
const broken: { name: string; edit: (i: AuditInput) => void; check: string; detail: RegExp; also?: string[] }[] = [
  { name: 'a shared container name', edit: (i) => void (svc(i, 'dev', 'db').container_name = 'makapix-prod-db'), check: 'container names', detail: /makapix-prod-db/ },
  { name: 'a shared named volume', edit: (i) => void ((i.dev.rendered as ReturnType<typeof stack>).volumes.db_data = { name: 'makapix_pg_data' }), check: 'named volumes', detail: /makapix_pg_data/ },
  { name: 'a writable host folder in both', edit: (i) => void (svc(i, 'dev', 'worker').volumes = ['/mnt/vault-1/sub:/vault:rw']), check: 'host folders', detail: /\/mnt\/vault-1/ },
  { name: 'the same host port', edit: (i) => void (svc(i, 'dev', 'mqtt').ports = ['8883:8883']), check: 'host ports', detail: /8883\/tcp/ },
  { name: 'a database published on every interface', edit: (i) => void (svc(i, 'dev', 'db').ports = ['5433:5432']), check: 'published services', detail: /dev db published on all interfaces:5433/ },
  { name: 'the plaintext MQTT listener published', edit: (i) => void (svc(i, 'prod', 'mqtt').ports = ['1883:1883']), check: 'published services', detail: /plaintext listener 1883/ },
  { name: 'a shared network other than caddy_net', edit: (i) => void ((i.dev.rendered as ReturnType<typeof stack>).networks.internal.name = 'makapix-prod-internal'), check: 'networks', detail: /makapix-prod-internal/ },
  { name: 'the same database password', edit: (i) => void (i.dev.cfg = envConfig('dev', { DB_API_WORKER_PASSWORD: 'change-me-prod-db-admin' })), check: 'database passwords', detail: /EB database password equals an EA one/ },
  { name: 'the same JWT secret', edit: (i) => void (i.dev.cfg = envConfig('dev', { JWT_SECRET_KEY: 'change-me-prod-jwt-secret-of-32-characters-or-more' })), check: 'JWT secret', detail: /same JWT_SECRET_KEY/ },
  { name: 'the same OAuth client', edit: (i) => void (i.dev.cfg = envConfig('dev', { GITHUB_OAUTH_CLIENT_ID: 'change-me-prod-oauth-id' })), check: 'OAuth client', detail: /change-me-prod-oauth-id/ },
  { name: 'the same MQTT CA certificate', edit: (i) => void (i.dev.caFingerprint = 'aa'), check: 'MQTT CA', detail: /same certificate/ },
  { name: 'one MQTT certificate folder inside the other', edit: (i) => void (i.dev.cfg = envConfig('dev', { MQTT_CERTS_DIR: '/etc/makapix/prod/mqtt/dev' })), check: 'MQTT CA', detail: /overlaps/ },
  { name: "the app's fallback MQTT account (api-server), which the ACL does not know", edit: (i) => void (i.dev.cfg = envConfig('dev', { MQTT_BACKEND_USER: 'api-server' })), check: 'MQTT backend account', detail: /dev MQTT_BACKEND_USER=api-server \(\.env\.dev\.example\) has no rights in compose\/mosquitto\/acls, which grants svc_backend/ },
  {
    name: "the edge mounting EB's vault where Caddy serves EA's",
    edit: (i) => void (i.edge = edgeStack(['/mnt/vault-dev:/srv/vault-prod:ro', '/mnt/vault-dev:/srv/vault-dev:ro', '/var/log/caddy:/var/log/caddy'])),
    check: 'edge vault folders',
    detail: /^vault\.makapix\.club serves \/mnt\/vault-dev, not prod's VAULT_HOST_PATH=\/mnt\/vault-1 \(set it in caddy\/\.env\)$/,
  },
  { name: 'a vault mounted writable in the edge', edit: (i) => void (i.edge = edgeStack(['/mnt/vault-1:/srv/vault-prod', '/mnt/vault-dev:/srv/vault-dev:ro', '/var/log/caddy:/var/log/caddy'])), check: 'edge vault folders', detail: /mounts \/mnt\/vault-1 writable/ },
  { name: 'a vault folder the edge does not mount', edit: (i) => void (i.edge = edgeStack(['/mnt/vault-1:/srv/vault-prod:ro', '/var/log/caddy:/var/log/caddy'])), check: 'edge vault folders', detail: /vault-dev\.makapix\.club serves \/srv\/vault-dev, which the edge does not mount/ },
  { name: 'no log folder in the edge', edit: (i) => void (i.edge = edgeStack(['/mnt/vault-1:/srv/vault-prod:ro', '/mnt/vault-dev:/srv/vault-dev:ro'])), check: 'edge access logs', detail: /mounts no host folder at \/var\/log\/caddy/ },
  { name: 'a worker reading another log folder', edit: (i) => void (svc(i, 'prod', 'worker').volumes = ['/srv/logs:/var/log/caddy:ro']), check: 'edge access logs', detail: /^prod worker reads \/srv\/logs, the edge writes \/var\/log\/caddy$/ },
  { name: 'the same vault path', edit: (i) => void (i.dev.cfg = envConfig('dev', { VAULT_HOST_PATH: '/mnt/vault-1' })), check: 'vault path', detail: /overlaps: \/mnt\/vault-1/, also: ['edge vault folders'] },
  { name: 'EB over its CPU budget', edit: (i) => void (svc(i, 'dev', 'db').cpus = 1.0), check: 'EB resource budget', detail: /CPU limits add up to 2\.35 > 2/ },
  { name: 'EB over its memory budget (v2 renders bytes)', edit: (i) => void (svc(i, 'dev', 'db').mem_limit = String(1024 ** 3)), check: 'EB resource budget', detail: /2176 MiB > 2048 MiB/ },
  { name: 'an EB service without a limit', edit: (i) => void delete svc(i, 'dev', 'vault').mem_limit, check: 'EB resource budget', detail: /no limit on vault \(memory\)/ },
  { name: 'EA running as development', edit: (i) => void (svc(i, 'prod', 'api').environment = { ENVIRONMENT: 'development' }), check: 'ENVIRONMENT', detail: /prod api has ENVIRONMENT=development/ },
  { name: 'an unset variable', edit: (i) => void (i.dev.warnings = ['WARNING: The MQTT_FOO variable is not set. Defaulting to a blank string.']), check: 'dev config renders', detail: /MQTT_FOO/ },
  { name: 'an unset variable (v2 wording)', edit: (i) => void (i.prod.warnings = ['level=warning msg="The \\"BAR\\" variable is not set. Defaulting to a blank string."']), check: 'prod config renders', detail: /BAR/ },
  { name: "EB's OAuth redirect on EA's domain", edit: (i) => void (i.dev.cfg = envConfig('dev', { GITHUB_REDIRECT_URI: 'https://makapix.club/api/auth/github/callback' })), check: 'EB OAuth redirect', detail: /points at makapix\.club/ },
  { name: "EA's database volume not external", edit: (i) => void ((i.prod.rendered as ReturnType<typeof stack>).volumes.db_data = { name: 'makapix_pg_data' } as never), check: 'EA database volume', detail: /not external/ },
  { name: "EA's database volume under another name", edit: (i) => void ((i.prod.rendered as ReturnType<typeof stack>).volumes.db_data = { external: true, name: 'db_data' }), check: 'EA database volume', detail: /uses volume db_data, not DB_VOLUME_NAME=makapix_pg_data/ },
  {
    name: 'an EB host without basic auth',
    edit: (i) => void (i.caddy = caddy({ ebVault: site('vault-dev.makapix.club', [{ handle: [...noindex, dropAuthorization, ...files('/srv/vault-dev')] }]) })),
    check: 'EB behind basic auth',
    detail: /vault-dev\.makapix\.club has no basic auth; vault-dev\.makapix\.club answers without credentials: file_server \/srv\/vault-dev/,
  },
  {
    name: "the public App Link host proxying to EB's web",
    edit: (i) => void (i.caddy = caddy({ ebApp: appLinks('app-dev.makapix.club', [...noindex, proxy('web.makapix-dev:3000')]) })),
    check: 'EB only through its hosts',
    detail: /^app-dev\.makapix\.club answers without credentials with EB's reverse_proxy web\.makapix-dev:3000$/,
  },
  {
    name: "EA's vault serving EB's vault folder",
    edit: (i) => void (i.caddy = caddy({ eaVault: site('vault.makapix.club', [{ handle: files('/srv/vault-dev') }]) })),
    check: 'EB only through its hosts',
    detail: /vault\.makapix\.club answers without credentials with EB's file_server \/srv\/vault-dev/,
    also: ['edge vault folders'],
  },
  {
    name: 'an EB route answering before authentication',
    edit: (i) => void (i.caddy = caddy({ ebSite: site('development.makapix.club', [{ handle: [...noindex, dropAuthorization, proxy('web.makapix-dev:3000'), sessionCheck()] }]) })),
    check: 'EB behind basic auth',
    detail: /answers without credentials: reverse_proxy web\.makapix-dev:3000/,
  },
  {
    name: 'basic auth only on some paths',
    edit: (i) => void (i.caddy = caddy({ ebSite: site('development.makapix.club', [{ handle: [...noindex] }, sub([{ handle: [sessionCheck()] }], [{ path: ['/admin/*'] }]), stripBasic, { handle: [proxy('web.makapix-dev:3000')] }]) })),
    check: 'EB behind basic auth',
    detail: /has no basic auth/,
  },
  { name: 'an EB host missing from the Caddyfile', edit: (i) => void (i.dev.cfg = envConfig('dev', { VAULT_DOMAIN: 'vault-eb.makapix.club' })), check: 'EB behind basic auth', detail: /vault-eb\.makapix\.club has no site/, also: ['EB noindex', 'edge vault folders'] },
  {
    name: 'noindex only deferred (a 401 would miss it)',
    edit: (i) => void (i.caddy = caddy({ ebVault: site('vault-dev.makapix.club', [{ handle: [noindex[1], auth('tv1', 'h'), dropAuthorization, ...files('/srv/vault-dev')] }]) })),
    check: 'EB noindex',
    detail: /vault-dev\.makapix\.club does not set X-Robots-Tag/,
  },
  {
    name: 'a developer account on plain-HTTP vault-dev',
    edit: (i) => void (i.caddy = caddy({ ebVault: site('vault-dev.makapix.club', [{ handle: [...noindex, auth('alice', '$2b$dev'), dropAuthorization, ...files('/srv/vault-dev')] }]) })),
    check: 'EB credentials on plain HTTP',
    detail: /developer account alice also open vault-dev/,
  },
  {
    name: "the plain-HTTP catch-all once Caddy's redirects are off (it would answer for EB's site)",
    edit: (i) => {
      const c = caddy();
      (c.apps.http.servers.srv0 as Record<string, unknown>).automatic_https = { disable_redirects: true };
      i.caddy = c;
    },
    check: 'EB behind basic auth',
    detail: /development\.makapix\.club answers without credentials: static_response 421/,
    also: ['EB credentials on plain HTTP'],
  },
  {
    name: "EB's site on Caddy's basicauth, which passes the password on",
    edit: (i) => void (i.caddy = caddy({ ebSite: site('development.makapix.club', [{ handle: [...noindex, auth('alice', '$2b$dev'), proxy('web.makapix-dev:3000')] }]) })),
    check: 'EB passwords to upstreams',
    detail: /development\.makapix\.club passes a Basic credential \(a password\) on to web\.makapix-dev:3000/,
  },
  {
    name: 'Basic removed only on protected paths (an exempt path would get the browser\'s cached password)',
    edit: (i) => void (i.caddy = caddy({ ebSite: site('development.makapix.club', [{ handle: [...noindex] }, sub([{ handle: [sessionCheck()] }, stripBasic], [{ not: [{ path: ['makapix-none', '/open/*'] }] }]), { handle: [proxy('web.makapix-dev:3000')] }]) })),
    check: 'EB passwords to upstreams',
    detail: /on to web\.makapix-dev:3000/,
  },
  {
    name: 'Authorization removed only when it is Bearer (the password still goes on)',
    edit: (i) => void (i.caddy = caddy({ ebSite: site('development.makapix.club', [{ handle: [...noindex, sessionCheck()] }, { match: [{ header_regexp: { Authorization: { pattern: '^Bearer ' } } }], handle: [dropAuthorization] }, { handle: [proxy('web.makapix-dev:3000')] }]) })),
    check: 'EB passwords to upstreams',
    detail: /on to web\.makapix-dev:3000/,
  },
  {
    name: 'a check whose 2xx answer is written to the client is no authentication',
    edit: (i) => void (i.caddy = caddy({ ebSite: site('development.makapix.club', [{ handle: [...noindex, sessionCheck('edge-auth.makapix-edge:9180', [{ handler: 'static_response', status_code: 200 }]), dropAuthorization, proxy('web.makapix-dev:3000')] }]) })),
    check: 'EB behind basic auth',
    detail: /development\.makapix\.club has no basic auth; development\.makapix\.club answers without credentials: reverse_proxy edge-auth\.makapix-edge:9180, reverse_proxy web\.makapix-dev:3000/,
    // Such a check service is an ordinary upstream, and it does receive the password.
    also: ['EB passwords to upstreams'],
  },
  {
    name: "a developer of developers.caddy also on vault-dev's device list",
    edit: (i) => void (i.caddy = caddy({ ebVault: site('vault-dev.makapix.club', [{ handle: [...noindex, auth('tv1', 'h'), auth('alice', '$2b$dev'), dropAuthorization, ...files('/srv/vault-dev')] }]) })),
    check: 'EB credentials on plain HTTP',
    detail: /developer account alice also open vault-dev/,
  },
  {
    name: 'the developer session check on plain-HTTP vault-dev',
    edit: (i) => void (i.caddy = caddy({ ebVault: site('vault-dev.makapix.club', [{ handle: [...noindex, sessionCheck(), dropAuthorization, ...files('/srv/vault-dev')] }]) })),
    check: 'EB credentials on plain HTTP',
    detail: /vault-dev\.makapix\.club, which is plain HTTP, asks a session check \(edge-auth\.makapix-edge:9180\)/,
  },
];

for (const b of broken) {
  test(`fails "${b.check}" for ${b.name}`, () => {
    const rows = auditIsolation(input(b.edit));
    const failed = failing(rows);
    assert.equal(
      failed.map((r) => r.check),
      [b.check, ...(b.also ?? [])],
      `expected only "${b.check}" to fail, got ${JSON.stringify(failed)}`,
    );
    assert.match(failed[0]!.detail, b.detail);
    assert.match(renderCheckTable(rows), new RegExp(`${1 + (b.also?.length ?? 0)} of \\d+ checks failed`));
  });
}

test('an exempt EB path is reported as a warning, not hidden and not a failure', () => {
  const rows = auditIsolation(
    input((i) => {
      i.caddy = caddy({
        ebSite: site('development.makapix.club', [{ handle: [...noindex, { handler: 'subroute', routes: [sub([{ handle: [sessionCheck()] }], [{ not: [{ path: ['makapix-none', '/api/provision/*'] }] }]), stripBasic, { handle: [proxy('web.makapix-dev:3000')] }] }] }]),
      });
    }),
  );
  assert.equal(failing(rows), []);
  const exempt = rows.find((r) => r.check === 'EB auth exemptions')!;
  assert.is(exempt.status, 'warn');
  assert.is(exempt.detail, 'open without credentials: development.makapix.club/api/provision/*');
});

test("EB's image URLs: on the EB site under /vault, else a warning (a browser would not show them)", () => {
  assert.equal(auditIsolation(input()).find((r) => r.check === 'EB image URLs')!.status, 'ok');
  const row = auditIsolation(input((i) => void (i.dev.cfg = envConfig('dev', { VAULT_PUBLIC_BASE_URL: 'https://vault-dev.makapix.club' })))).find((r) => r.check === 'EB image URLs')!;
  assert.is(row.status, 'warn');
  assert.match(row.detail, /not https:\/\/development\.makapix\.club\/vault/);
});

test('workers that read the edge logs: ok; a worker that does not mount them: a warning', () => {
  const mount = (i: AuditInput) => (['prod', 'dev'] as const).forEach((env) => (svc(i, env, 'worker').volumes = ['/var/log/caddy:/var/log/caddy:ro']));
  const ok = auditIsolation(input(mount)).find((r) => r.check === 'edge access logs')!;
  assert.equal([ok.status, ok.detail], ['ok', '/var/log/caddy, read by both workers']);
  const warn = auditIsolation(input((i) => (mount(i), (svc(i, 'dev', 'worker').volumes = [])))).find((r) => r.check === 'edge access logs')!;
  assert.equal([warn.status, warn.detail], ['warn', '/var/log/caddy; the dev worker does not mount it at /var/log/caddy, so download statistics stay empty']);
});

test('a missing CA is a warning until make mqtt-certs ran', () => {
  const row = auditIsolation(input((i) => delete i.dev.caFingerprint)).find((r) => r.check === 'MQTT CA')!;
  assert.is(row.status, 'warn');
  assert.match(row.detail, /\/etc\/makapix\/dev\/mqtt/);
});

test('host analysis: the plain-HTTP listener, exemptions and accounts', () => {
  const a = analyzeCaddyHost(caddy(), 'vault-dev.makapix.club');
  assert.equal({ served: a.served, plainHttp: a.plainHttp, authenticated: a.authenticated, noindex: a.noindex, unprotected: a.unprotected, exemptPaths: a.exemptPaths, forwardAuth: a.forwardAuth, basicForwardedTo: a.basicForwardedTo }, { served: true, plainHttp: true, authenticated: true, noindex: true, unprotected: [], exemptPaths: [], forwardAuth: [], basicForwardedTo: [] });
  const eb = analyzeCaddyHost(caddy(), 'development.makapix.club');
  assert.equal({ authenticated: eb.authenticated, forwardAuth: eb.forwardAuth, basicForwardedTo: eb.basicForwardedTo, unprotected: eb.unprotected, accounts: eb.accounts }, { authenticated: true, forwardAuth: ['edge-auth.makapix-edge:9180'], basicForwardedTo: [], unprotected: [], accounts: [] });
  assert.equal(a.accounts.map((x) => x.username), ['tv1', 'tv1']);
  assert.equal(a.serves, ['file_server /srv/vault-dev']);
  const app = analyzeCaddyHost(caddy(), 'app-dev.makapix.club');
  assert.equal({ authenticated: app.authenticated, noindex: app.noindex, unprotected: app.unprotected, serves: app.serves }, { authenticated: false, noindex: true, unprotected: ['static_response 200', 'static_response 404'], serves: [] });
  const ea = analyzeCaddyHost(caddy(), 'makapix.club');
  assert.equal({ plainHttp: ea.plainHttp, authenticated: ea.authenticated, noindex: ea.noindex, unprotected: ea.unprotected }, { plainHttp: false, authenticated: false, noindex: false, unprotected: ['reverse_proxy web.makapix-prod:3000'] });
});

const memory = [
  ['768M', 768 * 1024 ** 2],
  ['768m', 768 * 1024 ** 2],
  ['1g', 1024 ** 3],
  ['805306368', 805306368],
  [805306368, 805306368],
  ['64mb', 64 * 1024 ** 2],
  ['lots', undefined],
  [undefined, undefined],
] as const;
for (const [value, bytes] of memory) test(`memory ${JSON.stringify(value)} is ${bytes} bytes`, () => assert.is(parseMemory(value), bytes));

test('ports in v1 short syntax and v2 long syntax read the same', () => {
  const model = { services: { db: { ports: ['127.0.0.1:5433:5432/tcp', '9000'] }, mqtt: { ports: [{ mode: 'ingress', host_ip: '', target: 8883, published: '8884', protocol: 'tcp' }, { target: 1883 }] } } };
  assert.equal(publishedPorts(model), [
    { service: 'db', hostIp: '127.0.0.1', published: 5433, target: 5432, protocol: 'tcp' },
    { service: 'mqtt', hostIp: '', published: 8884, target: 8883, protocol: 'tcp' },
  ]);
});

test.run();
