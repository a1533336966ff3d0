import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, SafetyError } from './errors.ts';
import { Secret } from './secret.ts';
import { composeDir } from './paths.ts';

export type Environment = 'prod' | 'dev';
export const environments: readonly Environment[] = ['prod', 'dev'];

/** The value of ENVIRONMENT that each environment's file must declare (the app reads it). */
export const appEnvironmentName = { prod: 'production', dev: 'development' } as const satisfies Record<Environment, string>;

export function parseEnvironment(value: string | undefined, where = '--env'): Environment {
  if (value === 'prod' || value === 'dev') return value;
  throw new ConfigError(`${where} must be "prod" or "dev", got ${JSON.stringify(value ?? '')}.`);
}

/** One line of an env file, with where it came from so errors can point at it. */
interface EnvLine {
  value: string;
  line: number;
}

/** Parses the subset of dotenv syntax that Compose's --env-file also understands. */
export function parseEnvFile(text: string, file: string): { entries: Map<string, EnvLine>; problems: string[] } {
  const entries = new Map<string, EnvLine>();
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(trimmed);
    if (!m) {
      problems.push(`${file}:${line}: not a KEY=value line`);
      return;
    }
    const [, key, rest] = m as unknown as [string, string, string];
    let value = rest;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, '');
    if (entries.has(key)) problems.push(`${file}:${line}: ${key} is set again (first at line ${entries.get(key)!.line})`);
    entries.set(key, { value, line });
  });
  return { entries, problems };
}

/** A field of the schema: how to parse one variable, and its default when it may be left out. */
interface Field<T> {
  parse(value: string): T | { error: string };
  default?: string;
  /** Only meaningful in one environment (e.g. the production backup folder). */
  only?: Environment;
  /**
   * A feature of the app, optional: left empty, the app still starts but loses what this says
   * (a warning, never an error). Fields without it and without a default are required: the app
   * refuses to start or fails on first use without them.
   */
  feature?: string;
}

const isError = (v: unknown): v is { error: string } => typeof v === 'object' && v !== null && 'error' in v && !(v instanceof Secret);

const text = (def?: string): Field<string> => ({ parse: (v) => v, ...(def !== undefined && { default: def }) });
const secret = (): Field<Secret> => ({ parse: (v) => new Secret(v) });
const optionalSecret = (): Field<Secret> => ({ parse: (v) => new Secret(v), default: '' });
const port = (def?: string): Field<number> => ({
  parse: (v) => (/^\d+$/.test(v) && +v >= 1 && +v <= 65535 ? +v : { error: `"${v}" is not a port (1-65535)` }),
  ...(def !== undefined && { default: def }),
});
const count = (def: string): Field<number> => ({
  parse: (v) => (/^\d+$/.test(v) && +v >= 1 ? +v : { error: `"${v}" is not a positive whole number` }),
  default: def,
});
const url = (protocols: string[]): Field<string> => ({
  parse: (v) => {
    try {
      const u = new URL(v);
      return protocols.includes(u.protocol) ? v : { error: `"${v}" must start with ${protocols.join(' or ')}//` };
    } catch {
      return { error: `"${v}" is not a URL` };
    }
  },
});
const hostname = (): Field<string> => ({
  parse: (v) => (/^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(v) ? v.toLowerCase() : { error: `"${v}" is not a host name` }),
});
const absolutePath = (def?: string): Field<string> => ({
  parse: (v) => (path.isAbsolute(v) ? path.normalize(v) : { error: `"${v}" must be an absolute path` }),
  ...(def !== undefined && { default: def }),
});
/** An absolute path, or empty for "none". */
const optionalPath = (): Field<string> => ({ parse: (v) => (v === '' ? '' : path.isAbsolute(v) ? path.normalize(v) : { error: `"${v}" must be an absolute path (or empty)` }), default: '' });
/** A share of a restic repository's data: `10%` or `n/t` (restic check --read-data-subset). */
const dataSubset = (def: string): Field<string> => ({
  parse: (v) => {
    const pct = /^(\d+(?:\.\d+)?)%$/.exec(v);
    if (pct && +pct[1]! > 0 && +pct[1]! <= 100) return v;
    const part = /^(\d+)\/(\d+)$/.exec(v);
    if (part && +part[1]! >= 1 && +part[1]! <= +part[2]!) return v;
    return { error: `"${v}" must be a percentage (10%) or a part n/t (1/5)` };
  },
  default: def,
});
/** Optional: empty turns a feature of the app off (see Field.feature). */
const feature = <T>(field: Field<T>, lost: string): Field<T> & { feature: string } => ({ ...field, default: '', feature: lost });
/** A secret the app checks for length at import (api/app/auth.py: JWT_SECRET_KEY under 32 characters stops the api). */
const longSecret = (min: number): Field<Secret> => ({ parse: (v) => (v.length >= min ? new Secret(v) : { error: `is ${v.length} characters long; the app refuses to start under ${min}` }) });
const email = (): Field<string> => ({ parse: (v) => (/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v) ? v : { error: `"${v}" is not an e-mail address` }) });
const oneOf = <T extends string>(...values: T[]): Field<T> => ({
  parse: (v) => ((values as string[]).includes(v) ? (v as T) : { error: `"${v}" must be one of ${values.join(', ')}` }),
});

/**
 * Every variable an environment file holds: the app's own (read by its api/, worker/ and web/) and the toolkit's.
 * One table, so the example files, the validator and the types cannot drift apart.
 */
export const envSchema = {
  // The app's variables.
  COMPOSE_PROJECT_NAME: { parse: (v: string) => (/^makapix-(prod|dev)$/.test(v) ? v : { error: `"${v}" must be makapix-prod or makapix-dev` }) } as Field<string>,
  ENVIRONMENT: oneOf('production', 'development'),
  ROOT_DOMAIN: hostname(),
  WEB_DOMAIN: hostname(),
  BASE_URL: url(['https:', 'http:']),
  NEXT_PUBLIC_API_BASE_URL: url(['https:', 'http:']),
  DB_HOST: hostname(),
  DB_DATABASE: { parse: (v: string) => (/^[a-z_][a-z0-9_]{0,62}$/.test(v) ? v : { error: `"${v}" is not a plain database name` }) } as Field<string>,
  DB_ADMIN_USER: text(),
  DB_ADMIN_PASSWORD: secret(),
  DB_API_WORKER_USER: text(),
  DB_API_WORKER_PASSWORD: secret(),
  REDIS_HOST: hostname(),
  VAULT_HOST_PATH: absolutePath(),
  VAULT_LOCATION: absolutePath(),
  VAULT_DOMAIN: hostname(),
  MQTT_HOST: hostname(),
  MQTT_PUBLIC_HOST: hostname(),
  MQTT_PUBLIC_PORT: port(),
  MQTT_PASSWORD: secret(),
  /** The app's MQTT account on the in-network listener (1883); its password is MQTT_PASSWORD. */
  MQTT_BACKEND_USER: { ...text('svc_backend'), parse: (v: string) => (/^[A-Za-z0-9_.-]{1,64}$/.test(v) ? v : { error: `"${v}" is not a plain MQTT user name` }) } as Field<string>,
  /** api/app/auth.py refuses to import with a key under 32 characters. */
  JWT_SECRET_KEY: longSecret(32),
  GITHUB_OAUTH_CLIENT_ID: text(),
  GITHUB_OAUTH_CLIENT_SECRET: secret(),
  GITHUB_REDIRECT_URI: url(['https:', 'http:']),
  RESEND_FROM_EMAIL: email(),
  MAKAPIX_IP_HASH_SALT: secret(),
  /**
   * api/app/sqids_config.py refuses to import without it; it encodes every public id, so it must
   * never change once set (copy production's value).
   */
  SQIDS_ALPHABET: { parse: (v: string) => (/^\S{3,}$/.test(v) && new Set(v).size === v.length ? v : { error: 'must be at least 3 distinct characters without spaces' }) } as Field<string>,
  /** api/app/settings.py: every artwork, avatar and blog image URL starts with it; unset, the first one raises. */
  VAULT_PUBLIC_BASE_URL: url(['https:', 'http:']),
  // The app's features: optional, each empty one is a warning saying what is lost (file and line).
  RESEND_API_KEY: feature(secret(), 'no e-mail is sent: sign-up verification and password reset do not work (api/app/services/email.py)'),
  CORS_ORIGINS: feature(text(), "the api allows only the app's default origins (http://localhost...): the native app's and other sites' browser calls are refused (api/app/main.py)"),
  SENTRY_DSN: feature(secret(), 'errors of the api and worker are not reported to Sentry (api/app/observability.py)'),
  SENTRY_ENVIRONMENT: text(''),
  SENTRY_TRACES_SAMPLE_RATE: { parse: (v: string) => (/^(0(\.\d+)?|1(\.0+)?)$/.test(v) ? v : { error: `"${v}" is not a rate between 0 and 1` }), default: '0' } as Field<string>,
  SENTRY_RELEASE: text(''),
  HEALTHCHECKS_PING_KEY: feature(secret(), "the worker's beat tasks ping no healthchecks.io dead-man's switch: a stopped beat goes unnoticed (api/app/observability.py)"),
  MAKAPIX_ADMIN_USER: feature(text(), 'no owner account is seeded at start (api/app/seed.py)'),
  MAKAPIX_ADMIN_PASSWORD: feature(secret(), 'no owner account is seeded at start (api/app/seed.py)'),
  /** EB only, as in the app's docker-compose.dev.yml: fresh dev player certificates last 1095 days. */
  CERT_RENEWAL_THRESHOLD_DAYS: {
    ...feature(count('1'), 'players renew their certificate only in the last 90 days (the app\'s default): on EB, whose certificates last 1095 days, every renewal test is refused (api/app/routers/player.py)'),
    only: 'dev',
  } as Field<number> & { feature: string },
  // The toolkit's variables.
  APP_DIR: absolutePath(),
  IMAGE_TAG: text('latest'),
  POSTGRES_IMAGE: text('postgres:17-alpine'),
  REDIS_IMAGE: text('redis:7-alpine'),
  MOSQUITTO_IMAGE: text('eclipse-mosquitto:2'),
  VAULT_IMAGE: text('caddy:2-alpine'),
  /** Where the toolkit reaches this environment's database from the host (published on loopback only). */
  DB_PUBLISHED_HOST: { ...hostname(), default: '127.0.0.1' } as Field<string>,
  DB_PUBLISHED_PORT: port(),
  /** The named volume holding the database; in production the existing one, reused. */
  DB_VOLUME_NAME: text(),
  /** Where this environment's MQTT CA, server and device certificates live (outside the repo). */
  MQTT_CERTS_DIR: absolutePath(),
  /** Where the edge Caddy writes its access logs; the worker reads the vault's for its download statistics. */
  CADDY_LOG_DIR: absolutePath('/var/log/caddy'),
  /** The broker's user inside its container (eclipse-mosquitto: 1883); it must be able to read server.key. */
  MQTT_BROKER_UID: { parse: (v: string) => (/^\d{1,10}$/.test(v) ? +v : { error: `"${v}" is not a numeric user id` }), default: '1883' } as Field<number>,
  BACKUP_DIR: absolutePath('/backups'),
  BACKUP_KEEP: count('7'),
  /** EA only: the append-only JSONL log of deploys (deploy-to-prod); its folder also holds the deploy lock. */
  DEPLOY_LOG: { ...absolutePath('/var/lib/makapix-ops/deploys.jsonl'), only: 'prod' } as Field<string>,
  /**
   * EA only: the offsite copy (docs/backup.md). Any restic repository (a path, sftp:, s3:, b2:, rest:);
   * empty: backup-prod makes no offsite copy (and says so).
   */
  RESTIC_REPOSITORY: { ...text(''), only: 'prod' } as Field<string>,
  /** The repository's password, alone in a file of mode 0600 (restic reads it; it never reaches argv or logs). */
  RESTIC_PASSWORD_FILE: { ...absolutePath('/etc/makapix-ops/restic-password'), only: 'prod' } as Field<string>,
  /** A 0600 KEY=value file with the backend's keys (B2_ACCOUNT_ID/B2_ACCOUNT_KEY, AWS_*, ...); empty: none. */
  RESTIC_BACKEND_ENV_FILE: { ...optionalPath(), only: 'prod' } as Field<string>,
  /** For an sftp: repository, the ssh command restic runs (its -o sftp.command); empty: ssh with ~/.ssh/config. */
  RESTIC_SFTP_COMMAND: { ...text(''), only: 'prod' } as Field<string>,
  /** Retention of the offsite snapshots (restic forget --keep-*), then prune. */
  OFFSITE_KEEP_DAILY: { ...count('7'), only: 'prod' } as Field<number>,
  OFFSITE_KEEP_WEEKLY: { ...count('4'), only: 'prod' } as Field<number>,
  OFFSITE_KEEP_MONTHLY: { ...count('12'), only: 'prod' } as Field<number>,
  /** The share of the repository's data the periodic check reads back (restic check --read-data-subset). */
  OFFSITE_CHECK_SUBSET: { ...dataSubset('10%'), only: 'prod' } as Field<string>,
  /** EB only: when set, sampled users' password hashes become this password's hash. */
  DEV_LOGIN_PASSWORD: { ...optionalSecret(), only: 'dev' } as Field<Secret>,
} satisfies Record<string, Field<unknown>>;

type Schema = typeof envSchema;
type FeatureKeys = { [K in keyof Schema]: Schema[K] extends { feature: string } ? K : never }[keyof Schema];
/** Features left empty are undefined; everything else is parsed and present. */
export type EnvVars = { [K in Exclude<keyof Schema, FeatureKeys>]: Schema[K] extends Field<infer T> ? T : never } & {
  [K in FeatureKeys]?: Schema[K] extends Field<infer T> ? T : never;
};

/** Each environment is one Compose project of this name. */
export const projectName = (env: Environment) => `makapix-${env}` as const;

/** A parsed, validated environment file. */
export interface EnvConfig {
  readonly env: Environment;
  /** Absolute path of the file it came from (Compose gets it as --env-file). */
  readonly file: string;
  readonly vars: Readonly<EnvVars>;
  /** Empty features of the app, each with what is lost and where (file:line); printed, never fatal. */
  readonly warnings: readonly string[];
}

/** Where an environment's file lives: compose/, or the folder Settings.envDir names (MAKAPIX_ENV_DIR: the sandbox uses that). */
export function envFilePath(env: Environment, dir = composeDir): string {
  return path.resolve(dir, `.env.${env}`);
}

/** Does a schema field belong in an environment's file? (`only` fields live in one of them.) */
export const fieldApplies = (key: keyof typeof envSchema, env: Environment) => {
  const only = (envSchema[key] as Field<unknown>).only;
  return only === undefined || only === env;
};

/**
 * Validates parsed entries against the schema; every problem is reported, not just the first.
 * Problems are errors (a required variable missing, empty or malformed); warnings name each empty
 * feature and what the app loses without it. Both point at the file and line.
 */
export function validateEnv(file: string, entries: Map<string, EnvLine>): { vars?: EnvVars; problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  const vars: Record<string, unknown> = {};
  const declared = entries.get('ENVIRONMENT')?.value;
  const env = (Object.keys(appEnvironmentName) as Environment[]).find((e) => appEnvironmentName[e] === declared);
  for (const [key, field] of Object.entries(envSchema) as [string, Field<unknown>][]) {
    const entry = entries.get(key);
    const where = entry ? `${file}:${entry.line}` : file;
    if (field.only && env && field.only !== env && !entry) continue;
    let raw = entry?.value;
    if (raw === undefined) {
      if (field.default === undefined) {
        problems.push(`${where}: ${key} is missing`);
        continue;
      }
      raw = field.default;
    } else if (raw === '' && field.default !== '') {
      problems.push(`${where}: ${key} is empty`);
      continue;
    }
    if (raw === '' && field.feature !== undefined) {
      warnings.push(`${where}: ${key} is ${entry ? 'empty' : 'missing'}: ${field.feature}`);
      vars[key] = undefined;
      continue;
    }
    const parsed = field.parse(raw);
    if (isError(parsed)) problems.push(`${where}: ${key} ${parsed.error}`);
    else vars[key] = parsed;
  }
  return problems.length ? { problems, warnings } : { vars: vars as EnvVars, problems, warnings };
}

/**
 * Loads and validates an environment's file. A missing file or any invalid value is a ConfigError
 * (exit 2) listing every problem; a file that declares the other environment is a SafetyError (exit 3).
 */
export function loadEnvConfig(env: Environment, file = envFilePath(env)): EnvConfig {
  const abs = path.resolve(file);
  if (!existsSync(abs)) {
    const example = path.join(composeDir, `.env.${env}.example`);
    throw new ConfigError(`The ${env} environment file ${abs} does not exist.`, [], `Copy ${example} to ${abs} and fill in its values.`);
  }
  const { entries, problems: syntax } = parseEnvFile(readFileSync(abs, 'utf8'), abs);
  const { vars, problems, warnings } = validateEnv(abs, entries);
  const all = [...syntax, ...problems];
  if (all.length || !vars) {
    throw new ConfigError(`${abs} has ${all.length} problem${all.length === 1 ? '' : 's'}: ${all.join('; ')}.`, all, `Fix them (compare with compose/.env.${env}.example) and run again.`);
  }
  if (vars.ENVIRONMENT !== appEnvironmentName[env] || vars.COMPOSE_PROJECT_NAME !== `makapix-${env}`) {
    throw new SafetyError(
      `${abs} declares ENVIRONMENT=${vars.ENVIRONMENT} and COMPOSE_PROJECT_NAME=${vars.COMPOSE_PROJECT_NAME}, but it was loaded as the ${env} environment.`,
      `Use the file that belongs to ${env} (ENVIRONMENT=${appEnvironmentName[env]}, COMPOSE_PROJECT_NAME=makapix-${env}).`,
    );
  }
  return { env, file: abs, vars, warnings };
}

/** All secret values of a config, to redact from anything a child process prints. */
export function secretsOf(cfg: EnvConfig): Secret[] {
  return Object.values(cfg.vars).filter((v): v is Secret => v instanceof Secret);
}
