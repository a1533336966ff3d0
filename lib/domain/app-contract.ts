// The contract between the toolkit and the real app (fabkury/makapix), checked rather than assumed:
// which environment variables its api, worker and web read, which files the compose files rely on,
// which services its own compose defines. `make check` with APP_DIR reads a checkout, and these pure
// functions say what the toolkit's compose no longer covers — so the next migration that adds a
// required variable is caught before a deploy, not by a crash loop.
import type { Environment } from '../core/config.ts';

/** The app commit the compose files, env schema and this table were last fitted to. */
export const fittedAppCommit = '4350ab8';

export type AppService = 'api' | 'worker' | 'web';

/** One read of an environment variable in the app's code. */
export interface EnvRead {
  name: string;
  file: string;
  line: number;
  /** Read with a fallback value (an empty-string fallback counts as none: the code then refuses). */
  hasDefault: boolean;
}

/**
 * How the toolkit treats a variable the app reads:
 * - required: the app does not boot or fails on first use without the right value: compose passes it;
 * - feature: optional, the app loses a feature without it (the env schema warns): compose passes it;
 * - default: the app's own default is right for us, not passed on purpose;
 * - test: read only by the app's tests or one-off scripts.
 */
export type VarClass = 'required' | 'feature' | 'default' | 'test';

/**
 * The variables of the app at the fitted commit whose class is not "required" or that compose
 * must pass although the code has a fallback (the fallback is wrong for us). A variable missing
 * from this table is judged by its read: no fallback -> required, a fallback -> default with a
 * warning until someone classifies it here.
 */
export const knownVariables: Record<string, { class: VarClass; dev?: VarClass; why: string }> = {
  // Fallbacks that would be wrong on the VPS: compose passes them.
  MQTT_USERNAME: { class: 'required', why: "fallback api-server, an account the broker does not have" },
  MQTT_BROKER_HOST: { class: 'required', why: 'fallback "mqtt", which on caddy_net may be the other environment\'s broker' },
  MQTT_PUBLIC_HOST: { class: 'required', why: 'fallback development.makapix.club, wrong for EA' },
  MQTT_PUBLIC_PORT: { class: 'required', why: 'fallback 8884, wrong for EA' },
  CELERY_BROKER_URL: { class: 'required', why: 'fallback the LRU cache, which evicts queued tasks' },
  CELERY_RESULT_BACKEND: { class: 'required', why: 'fallback the LRU cache' },
  BASE_URL: { class: 'required', why: 'fallback http://localhost in e-mails and player provisioning' },
  GITHUB_REDIRECT_URI: { class: 'required', why: 'fallback http://localhost/...' },
  DB_HOST: { class: 'required', why: 'fallback "db" happens to be right; passed to be explicit' },
  // Features: optional, passed, the env schema warns when empty (lib/core/config.ts).
  RESEND_API_KEY: { class: 'feature', why: 'e-mail' },
  CORS_ORIGINS: { class: 'feature', why: 'browser origins besides localhost' },
  SENTRY_DSN: { class: 'feature', why: 'error reporting' },
  SENTRY_ENVIRONMENT: { class: 'feature', why: 'error reporting' },
  SENTRY_TRACES_SAMPLE_RATE: { class: 'feature', why: 'error reporting' },
  SENTRY_RELEASE: { class: 'feature', why: 'error reporting' },
  HEALTHCHECKS_PING_KEY: { class: 'feature', why: "beat's dead-man's switches" },
  MAKAPIX_ADMIN_USER: { class: 'feature', why: 'owner seeding' },
  MAKAPIX_ADMIN_PASSWORD: { class: 'feature', why: 'owner seeding' },
  CERT_RENEWAL_THRESHOLD_DAYS: { class: 'default', dev: 'feature', why: "the app's 90 days in EA; EB's long-lived dev certificates need 3650 (as the app's dev compose)" },
  // The app's defaults are right: not passed on purpose.
  API_BASE_URL: { class: 'default', why: 'derived from BASE_URL + /api' },
  APPLE_APP_BUNDLE_ID: { class: 'default', why: 'the published app id' },
  COOKIE_DOMAIN: { class: 'default', why: 'host-only cookies' },
  COOKIE_SAMESITE: { class: 'default', why: 'lax' },
  COOKIE_SECURE: { class: 'default', why: 'detected from the request (Caddy terminates TLS)' },
  DB_PORT: { class: 'default', why: '5432 inside the network' },
  DB_ADMIN_URL: { class: 'default', why: 'alembic builds it from DB_ADMIN_*' },
  GEOIP_DB_PATH: { class: 'default', why: 'the database shipped in the image' },
  JWT_ACCESS_TOKEN_EXPIRE_MINUTES: { class: 'default', why: 'the app decides' },
  JWT_ALGORITHM: { class: 'default', why: 'the app decides' },
  JWT_REFRESH_TOKEN_EXPIRE_DAYS: { class: 'default', why: 'the app decides' },
  LOG_LEVEL: { class: 'default', why: 'INFO' },
  MAKAPIX_ARTWORK_SIZE_LIMIT: { class: 'default', why: 'the app decides (api and web read the same default)' },
  MAKAPIX_MKPX_SIZE_LIMIT: { class: 'default', why: 'the app decides' },
  MAKAPIX_VAULT_MIN_FREE_BYTES: { class: 'default', why: 'the app decides' },
  MODERATION_ALERT_EMAIL: { class: 'default', why: 'the app decides' },
  NATIVE_OAUTH_REDIRECT_URIS: { class: 'default', why: "the native app's hosts (app., app-dev.)" },
  NEXT_PUBLIC_MAKAPIX_ARTWORK_SIZE_LIMIT_BYTES: { class: 'default', why: 'web/next.config.mjs derives it' },
  NODE_ENV: { class: 'default', why: 'set by the web Dockerfile' },
  TEST_DATABASE_URL: { class: 'test', why: 'the test suite' },
  PYTEST_CHUNK_SIZE: { class: 'test', why: 'scripts/run_tests.py' },
};

/** Services of the app's own compose the toolkit leaves out on purpose (docs/stacks.md says why). */
export const omittedAppServices: Record<string, string> = {
  caddy: 'the shared edge proxy is its own project (caddy/docker-compose.edge.yml)',
  'www-redirect': 'a label-only stub for caddy-docker-proxy; the edge Caddyfile redirects www itself',
  redis: 'the rate-limit Redis on caddy_net: no code of the app at the fitted commit reads it (REDIS_URL is the cache)',
};

/** Files the toolkit's compose files and jobs rely on, relative to the app checkout. */
export const reliedOnFiles: Record<string, string> = {
  'api/Dockerfile': 'builds the api image',
  'worker/Dockerfile': 'builds the worker image',
  'web/Dockerfile': 'builds the web image',
  'api/alembic.ini': 'migrations run from /workspace/api (the api working_dir)',
  'api/scripts/run_tests.py': "the app's test runner (deploy's test gate)",
  'worker/worker.py': 'the worker command (Celery worker with beat)',
  'db/init.sql': "the db's init script",
  'db/init-users.sh': 'creates the api_worker role and the makapix_test database',
};

const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;
const emptyDefault = /^\s*(""|''|None)\s*$/;

/** Environment reads in Python: os.getenv / os.environ.get / os.environ[...] / *_env("X", ...) helpers, over line breaks too. */
export function pythonEnvReads(file: string, text: string): EnvRead[] {
  const out: EnvRead[] = [];
  const call = /(?:\bgetenv|\benviron\.get|\b_\w*env)\(\s*["']([A-Z][A-Z0-9_]*)["']\s*(?:,([^)]*))?\)/g;
  for (const m of text.matchAll(call)) out.push({ name: m[1]!, file, line: lineOf(text, m.index), hasDefault: m[2] !== undefined && !emptyDefault.test(m[2]) });
  for (const m of text.matchAll(/\benviron\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]/g)) out.push({ name: m[1]!, file, line: lineOf(text, m.index), hasDefault: false });
  return out;
}

/** Environment reads in JavaScript/TypeScript (`env.X` or `env["X"]` of node's process object), with a `??`/`||` fallback or not. */
export function scriptEnvReads(file: string, text: string): EnvRead[] {
  const out: EnvRead[] = [];
  for (const m of text.matchAll(/process\.env(?:\.([A-Z][A-Z0-9_]*)|\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\])(\s*(?:\?\?|\|\|))?/g)) {
    out.push({ name: (m[1] ?? m[2])!, file, line: lineOf(text, m.index), hasDefault: m[3] !== undefined });
  }
  return out;
}

export type Status = 'ok' | 'warn' | 'fail';
export interface ContractRow {
  check: string;
  status: Status;
  detail: string;
}

export interface ContractInput {
  /** What each service's code reads (api: api/app + alembic; worker: the same plus worker/; web: web/src + next.config). */
  reads: Record<AppService, EnvRead[]>;
  /** Per environment: the variables compose passes to each service (environment + the web's build args). */
  passed: Record<Environment, Record<AppService, ReadonlySet<string>>>;
  /** Files of reliedOnFiles that exist in the checkout, and where a missing one is found instead. */
  files: Record<string, { exists: boolean; movedTo?: string }>;
  /** Services the app's deploy/stack/docker-compose.yml defines, and ours. */
  appServices: readonly string[];
  ourServices: readonly string[];
}

const where = (r: EnvRead) => `${r.file}:${r.line}`;

/** Every contract fact, one row each; nothing here reads a file. */
export function auditAppContract(input: ContractInput): ContractRow[] {
  const rows: ContractRow[] = [];
  for (const env of ['prod', 'dev'] as const) {
    // One entry per variable not passed: the services that read it, and its first read without a fallback.
    const missing = new Map<string, { services: AppService[]; read: EnvRead }>();
    const leftToDefault = new Set<string>();
    for (const service of ['api', 'worker', 'web'] as const) {
      for (const r of input.reads[service]) {
        if (input.passed[env][service].has(r.name)) continue;
        const m = missing.get(r.name) ?? { services: [], read: r };
        if (!m.services.includes(service)) m.services.push(service);
        if (m.read.hasDefault && !r.hasDefault) m.read = r;
        missing.set(r.name, m);
      }
    }
    const errors: string[] = [];
    const warnings: string[] = [];
    for (const [name, { services, read: r }] of [...missing].sort(([a], [b]) => a.localeCompare(b))) {
      const known = knownVariables[name];
      const cls = known ? (env === 'dev' && known.dev ? known.dev : known.class) : r.hasDefault ? undefined : 'required';
      if (cls === 'default' || cls === 'test') {
        leftToDefault.add(name);
        continue;
      }
      const who = `${name} (read by ${services.join(', ')}; ${where(r)})`;
      if (cls === 'required') errors.push(`${who}${known ? `: ${known.why}` : ': no fallback'}`);
      else if (cls === 'feature') warnings.push(`${who}: a feature (${known!.why})`);
      else warnings.push(`${who}: has a fallback, not classified yet (lib/domain/app-contract.ts)`);
    }
    const detail = [...errors, ...warnings].join('; ');
    rows.push(
      errors.length
        ? { check: `${env} app variables`, status: 'fail', detail: `not passed by compose: ${detail}` }
        : warnings.length
          ? { check: `${env} app variables`, status: 'warn', detail: `not passed by compose: ${detail}` }
          : { check: `${env} app variables`, status: 'ok', detail: `every variable the app reads is passed, or left to the app's default on purpose (${leftToDefault.size})` },
    );
  }
  const missing = Object.entries(input.files).filter(([, f]) => !f.exists);
  rows.push(
    missing.length
      ? { check: 'app files', status: 'fail', detail: missing.map(([p, f]) => `${p} ${f.movedTo ? `moved to ${f.movedTo}` : 'is gone'} (${reliedOnFiles[p] ?? 'relied on'})`).join('; ') }
      : { check: 'app files', status: 'ok', detail: `${Object.keys(input.files).length} files where the compose files expect them (Dockerfiles, api/alembic.ini, worker.py, db init)` },
  );
  const lacking = input.appServices.filter((s) => !input.ourServices.includes(s) && !(s in omittedAppServices));
  const omitted = input.appServices.filter((s) => !input.ourServices.includes(s) && s in omittedAppServices);
  rows.push(
    lacking.length
      ? { check: 'app services', status: 'fail', detail: `the app's compose defines ${lacking.join(', ')}, ours does not` }
      : { check: 'app services', status: 'ok', detail: `all of the app's services are ours${omitted.length ? `, except on purpose: ${omitted.join(', ')}` : ''}` },
  );
  return rows;
}
