// The decisions behind `make env-files` (phase 1 of the migration plan, tasks 6-7): which value each
// variable of compose/.env.prod and compose/.env.dev gets, from where, and what is left to fill.
// Pure: the job reads the app's env files and `docker inspect`, this module decides, the job writes.
// The variable list is the schema's own (lib/core/config.ts), never a copy: a variable added there
// is merged here with the same rules.
import { appEnvironmentName, envSchema, type Environment } from '../core/config.ts';
import { Secret } from '../core/secret.ts';

/** One value found somewhere; `where` names the place (file:line, container), never the value. */
export interface Found {
  value: string;
  where: string;
}

/** A place values come from: a file, a container's environment, a fact read from Docker. */
export interface Source {
  label: string;
  values: ReadonlyMap<string, Found>;
}

/** A variable of the schema and what the merge needs to know about it. */
export interface KeySpec {
  key: string;
  /** The schema parses it into a Secret. */
  secret: boolean;
  /** The schema's default ('' for optional ones); undefined when the variable is required. */
  default?: string;
  only?: Environment;
}

const secretProbes = ['x', 'probe'.repeat(13), '0123456789abcdef'.repeat(4)];

/** Every variable of the schema, in its order; read from the schema itself. */
export function schemaKeys(): KeySpec[] {
  return Object.entries(envSchema).map(([key, f]) => {
    const field = f as { parse(v: string): unknown; default?: string; only?: Environment };
    // A secret field may check its value's shape (a minimum length, say): probe with a few shapes.
    const secret = secretProbes.some((v) => field.parse(v) instanceof Secret);
    return { key, secret, ...(field.default !== undefined && { default: field.default }), ...(field.only && { only: field.only }) };
  });
}

// ---- the rules, by variable ------------------------------------------------------------------

/**
 * Facts that live in the database volume: the database, its roles and their passwords were set when
 * the volume was initialised (the app's db/init-users.sh). A file can only repeat them; another value
 * locks the app out, so they are carried and never generated over.
 */
export const volumeBound: ReadonlySet<string> = new Set(['DB_DATABASE', 'DB_ADMIN_USER', 'DB_ADMIN_PASSWORD', 'DB_API_WORKER_USER', 'DB_API_WORKER_PASSWORD']);

/** The database passwords the job confirms by logging in, with the variable naming their role. */
export const dbPasswords: Readonly<Record<string, string>> = { DB_ADMIN_PASSWORD: 'DB_ADMIN_USER', DB_API_WORKER_PASSWORD: 'DB_API_WORKER_USER' };

/**
 * EB takes EA's value whatever it had: the app stores `public_sqid` in its rows (api/app/sqids_config.py),
 * so rows sampled from EA must decode with EA's alphabet.
 */
export const sameAsEa: ReadonlySet<string> = new Set(['SQIDS_ALPHABET']);

/** EB takes EA's value when it has none of its own: EA's dumps must restore into EB (same PostgreSQL major). */
export const eaByDefault: ReadonlySet<string> = new Set(['POSTGRES_IMAGE']);

/**
 * In EA's file these must come from the old stack itself (its env files or `docker inspect`): a guess
 * from the example would point production at another volume or another PostgreSQL major version.
 */
export const readFromOldStack: ReadonlySet<string> = new Set([...volumeBound, 'DB_VOLUME_NAME', 'POSTGRES_IMAGE']);

/** Fixed per environment by the toolkit: the validator refuses a file declaring the other one. */
export const identityOf = (env: Environment): Readonly<Record<string, string>> => ({ COMPOSE_PROJECT_NAME: `makapix-${env}`, ENVIRONMENT: appEnvironmentName[env] });

/**
 * Values that follow from another one when no source holds them. NEXT_PUBLIC_API_BASE_URL is an
 * origin: the app's web appends /api/... itself (web/src, `NEXT_PUBLIC_API_BASE_URL || window.location.origin`;
 * deploy/stack/docker-compose.prod.yml of the app sets https://makapix.club).
 */
export const derived: Readonly<Record<string, { from: string; derive(value: string): string | undefined; why: string }>> = {
  NEXT_PUBLIC_API_BASE_URL: {
    from: 'BASE_URL',
    derive: (v) => {
      try {
        return new URL(v).origin;
      } catch {
        return undefined;
      }
    },
    why: "the origin of BASE_URL (the app's web appends /api itself)",
  },
};

function derive(key: string, planned: readonly Entry[]): Omit<Entry, 'key' | 'secret'> | undefined {
  const rule = derived[key];
  const base = rule && planned.find((e) => e.key === rule.from && e.origin !== 'placeholder');
  const value = base && rule.derive(base.value);
  return value ? { value, origin: 'derived', source: rule.why } : undefined;
}

/** Secrets another party issues: nothing to generate, only where to get them. */
export const issuedElsewhere: readonly (readonly [RegExp, string])[] = [
  [/^GITHUB_OAUTH_/, "the environment's own GitHub OAuth app (docs/RUNBOOK.md 2.1; EB's is registered in phase 7)"],
  [/^RESEND_API_KEY$/, 'the Resend dashboard, API Keys (one key per environment)'],
  [/^SENTRY_DSN$/, "the Sentry project's Settings, Client Keys"],
  [/PING_KEY$/, "the healthchecks.io project's settings (Ping key)"],
];
const issuer = (key: string) => issuedElsewhere.find(([re]) => re.test(key))?.[1];

/** A value in a committed example file that only marks what to fill. */
export const isTemplatePlaceholder = (v: string) => v === '' || /^change-me/i.test(v);

// ---- secrets of the right shape --------------------------------------------------------------

/**
 * How many random bytes a fresh secret gets; it is written as hex. Hex because the app's compose
 * files build the worker's DATABASE_URL without encoding (deploy/stack/docker-compose.yml; only
 * api/app/db.py encodes) and Mosquitto's password file and the shell must take it as is; 32 bytes
 * (64 characters) for signing keys and
 * salts (JWT needs at least 32 characters; the app's own advice for the salt is `openssl rand -hex 32`).
 */
export function secretBytes(key: string): number {
  return /JWT|SECRET_KEY|SALT/.test(key) ? 32 : 24;
}

/** What is wrong with a secret's shape for this variable ([] when nothing). */
export function secretShapeProblems(key: string, value: string): string[] {
  const out: string[] = [];
  if (key in dbPasswords && !/^[A-Za-z0-9._~-]+$/.test(value)) out.push(`${key} holds characters that are not URL-safe`);
  if (/JWT/.test(key) && value.length < 32) out.push(`${key} is shorter than 32 characters`);
  return out;
}

// ---- the merge ---------------------------------------------------------------------------------

export type Origin = 'carried' | 'fixed' | 'from-ea' | 'derived' | 'template' | 'default' | 'generated' | 'placeholder';

export interface Entry {
  key: string;
  value: string;
  origin: Origin;
  /** Where the value came from, for the comment above it and the report. */
  source: string;
  secret: boolean;
  /** For a placeholder: where to get the value. */
  hint?: string;
}

/** Two places holding different values for one variable (values are never shown). */
export interface Disagreement {
  env: Environment;
  key: string;
  /** The place whose value was written. */
  chosen: string;
  other: string;
}

/** The outcome of logging in to a database with one candidate password. */
export interface LoginCheck {
  env: Environment;
  key: string;
  where: string;
  ok: boolean;
  reason?: string;
}

export interface EnvInputs {
  /** In the order they win: live containers, then the env files. */
  sources: readonly Source[];
  /** The committed example file (compose/.env.<env>.example): the toolkit's settings and EB's domains. */
  template: ReadonlyMap<string, string>;
  templateName: string;
  logins?: readonly LoginCheck[];
}

export interface Planned {
  env: Environment;
  entries: Entry[];
  disagreements: Disagreement[];
  notes: string[];
}

/** Every non-empty value of a key across the sources, first source first. */
export function candidatesOf(key: string, sources: readonly Source[]): Found[] {
  return sources.flatMap((s) => {
    const f = s.values.get(key);
    return f && f.value !== '' ? [f] : [];
  });
}

function disagreementsOf(env: Environment, key: string, chosen: Found, all: readonly Found[]): Disagreement[] {
  const seen = new Set<string>();
  return all.filter((f) => f.value !== chosen.value && !seen.has(f.where) && seen.add(f.where)).map((f) => ({ env, key, chosen: chosen.where, other: f.where }));
}

/** The candidate to write: for a database password, the first one that logged in. */
function choose(env: Environment, key: string, found: readonly Found[], logins: readonly LoginCheck[]): Found {
  if (key in dbPasswords) {
    const worked = found.find((f) => logins.some((l) => l.env === env && l.key === key && l.where === f.where && l.ok));
    if (worked) return worked;
  }
  return found[0]!;
}

const fallback = (k: KeySpec, i: EnvInputs): Omit<Entry, 'key' | 'secret'> | undefined => {
  const t = i.template.get(k.key);
  if (t !== undefined && !isTemplatePlaceholder(t)) return { value: t, origin: 'template', source: i.templateName };
  if (k.default !== undefined) return { value: k.default, origin: 'default', source: k.default === '' ? 'left empty (optional)' : "the schema's default" };
  return undefined;
};

function placeholder(k: KeySpec, env: Environment, templateName: string): Omit<Entry, 'key' | 'secret'> {
  const hint =
    env === 'dev'
      ? (issuer(k.key) ?? `set it by hand (see ${templateName})`)
      : readFromOldStack.has(k.key)
        ? "the old stack: `docker inspect` of its db container (its volume on /var/lib/postgresql/data, its image, its POSTGRES_* variables) or its env file (give it with --from)"
        : "production's current value: the old stack's env file or `docker inspect` of its api container (give the file with --from)";
  return { value: '', origin: 'placeholder', source: 'not found', hint };
}

/** EA's file: the values production runs with today, made explicit. Nothing is invented here. */
function planProd(keys: readonly KeySpec[], i: EnvInputs): Planned {
  const env: Environment = 'prod';
  const out: Planned = { env, entries: [], disagreements: [], notes: [] };
  const fixed = identityOf(env);
  for (const k of keys.filter((x) => x.only !== 'dev')) {
    const found = candidatesOf(k.key, i.sources);
    let e: Omit<Entry, 'key' | 'secret'>;
    if (fixed[k.key] !== undefined) {
      e = { value: fixed[k.key]!, origin: 'fixed', source: 'the toolkit (fixed for EA)' };
      for (const f of found.filter((x) => x.value !== fixed[k.key])) out.notes.push(`${k.key}: ${f.where} has another value; EA's file must say ${fixed[k.key]}.`);
    } else if (found.length) {
      const chosen = choose(env, k.key, found, i.logins ?? []);
      e = { value: chosen.value, origin: 'carried', source: chosen.where };
      out.disagreements.push(...disagreementsOf(env, k.key, chosen, found));
      if (k.secret) out.notes.push(...secretShapeProblems(k.key, chosen.value).map((p) => `${p} (${chosen.where}); kept, since production runs with it.`));
    } else {
      const mustBeFound = (k.secret && k.default === undefined) || readFromOldStack.has(k.key);
      e = (mustBeFound ? undefined : (derive(k.key, out.entries) ?? fallback(k, i))) ?? placeholder(k, env, i.templateName);
    }
    out.entries.push({ key: k.key, secret: k.secret, ...e });
  }
  return out;
}

/**
 * EB's file: what EB already has (its running containers, its .env.dev) is carried; what it lacks
 * comes from the development template, from EA for the few values that must match, or is a fresh
 * secret. A secret EB shares with EA is replaced, except one living in EB's volume (reported).
 */
function planDev(keys: readonly KeySpec[], i: EnvInputs, prod: Planned, random: (bytes: number) => string): Planned {
  const env: Environment = 'dev';
  const out: Planned = { env, entries: [], disagreements: [], notes: [] };
  const fixed = identityOf(env);
  const ea = new Map(prod.entries.filter((e) => e.origin !== 'placeholder').map((e) => [e.key, e]));
  const fresh = (k: KeySpec): Omit<Entry, 'key' | 'secret'> => ({ value: random(secretBytes(k.key)), origin: 'generated', source: `generated (${secretBytes(k.key) * 2} hex characters)` });
  for (const k of keys.filter((x) => x.only !== 'prod')) {
    const found = candidatesOf(k.key, i.sources);
    const fromEa = ea.get(k.key);
    let e: Omit<Entry, 'key' | 'secret'>;
    if (fixed[k.key] !== undefined) {
      e = { value: fixed[k.key]!, origin: 'fixed', source: 'the toolkit (fixed for EB)' };
    } else if (sameAsEa.has(k.key) && fromEa) {
      e = { value: fromEa.value, origin: 'from-ea', source: `EA (${fromEa.source})` };
      out.disagreements.push(...disagreementsOf(env, k.key, { value: fromEa.value, where: `EA's ${fromEa.source}` }, found));
    } else if (found.length) {
      const chosen = choose(env, k.key, found, i.logins ?? []);
      e = { value: chosen.value, origin: 'carried', source: chosen.where };
      out.disagreements.push(...disagreementsOf(env, k.key, chosen, found));
      if (k.secret) out.notes.push(...secretShapeProblems(k.key, chosen.value).map((p) => `${p} (${chosen.where}); kept, since EB runs with it.`));
      if (k.secret && fromEa?.value === chosen.value) {
        if (volumeBound.has(k.key)) out.notes.push(`${k.key}: EB's value (${chosen.where}) is EA's too and lives in EB's volume: change it there (ALTER ROLE) and in this file; make check fails until then.`);
        else {
          e = { ...fresh(k), source: `generated (EB's value in ${chosen.where} was EA's)` };
          out.notes.push(`${k.key}: EB's value (${chosen.where}) was EA's; a new one was generated.`);
        }
      }
    } else if (eaByDefault.has(k.key) && fromEa) {
      e = { value: fromEa.value, origin: 'from-ea', source: `EA (${fromEa.source})` };
    } else if (k.secret && k.default === undefined) {
      e = issuer(k.key) ? placeholder(k, env, i.templateName) : fresh(k);
    } else {
      e = derive(k.key, out.entries) ?? fallback(k, i) ?? placeholder(k, env, i.templateName);
    }
    out.entries.push({ key: k.key, secret: k.secret, ...e });
  }
  return out;
}

/** Both files from what was found. `random(n)` returns n random bytes as hex (injected for tests). */
export function planEnvFiles(keys: readonly KeySpec[], prod: EnvInputs, dev: EnvInputs, random: (bytes: number) => string): { prod: Planned; dev: Planned } {
  const p = planProd(keys, prod);
  return { prod: p, dev: planDev(keys, dev, p, random) };
}

// ---- reading `docker inspect` ------------------------------------------------------------------

export interface ContainerFacts {
  name: string;
  image: string;
  env: ReadonlyMap<string, string>;
  mounts: readonly { name?: string; source: string; destination: string }[];
  labels: Readonly<Record<string, string>>;
  /** The container's addresses on its networks (a login over one of them is a password login). */
  addresses: readonly string[];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The facts the merge needs from one element of `docker inspect`'s JSON array. */
export function containerFacts(inspected: unknown): ContainerFacts {
  const c = obj(inspected);
  const config = obj(c.Config);
  const env = new Map<string, string>();
  for (const line of list(config.Env)) {
    const s = String(line);
    const eq = s.indexOf('=');
    if (eq > 0) env.set(s.slice(0, eq), s.slice(eq + 1));
  }
  return {
    name: String(c.Name ?? '').replace(/^\//, ''),
    image: String(config.Image ?? ''),
    env,
    mounts: list(c.Mounts).map((m) => {
      const o = obj(m);
      return { ...(typeof o.Name === 'string' && o.Name && { name: o.Name }), source: String(o.Source ?? ''), destination: String(o.Destination ?? '') };
    }),
    labels: Object.fromEntries(Object.entries(obj(config.Labels)).map(([k, v]) => [k, String(v)])),
    addresses: Object.values(obj(obj(c.NetworkSettings).Networks))
      .map((n) => String(obj(n).IPAddress ?? ''))
      .filter(Boolean),
  };
}

export const pgDataDir = '/var/lib/postgresql/data';

/**
 * The image to write for a database whose data folder must keep its major version. An official
 * `postgres` image without the major in its tag (`latest`, `alpine`) is pinned to the running major,
 * keeping its variant: Alpine (musl) and Debian (glibc) sort text differently, so switching would
 * corrupt text indexes. Any other reference is kept as it is.
 */
export function pinnedPostgresImage(image: string, major: string | undefined): { image: string; note?: string } {
  const m = /^((?:docker\.io\/)?(?:library\/)?postgres)(?::([^@]+))?$/.exec(image);
  if (!m || !major) return { image };
  const tag = m[2] ?? 'latest';
  const tagMajor = /^(\d+)/.exec(tag)?.[1];
  if (tagMajor === major) return { image };
  const pinned = `${m[1]}:${major}${/alpine/.test(tag) ? '-alpine' : ''}`;
  return { image: pinned, note: tagMajor ? `the image ${image} says ${tagMajor} but the server runs ${major}: written as ${pinned}` : `${image} pinned to the running major version: ${pinned}` };
}

const sourceOf = (label: string, entries: [string, string | undefined][], where: string): Source => ({
  label,
  values: new Map(entries.filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '').map(([k, v]) => [k, { value: v, where }])),
});

/**
 * What the database container tells: the official image's POSTGRES_* as the app's DB_* names
 * (deploy/stack/docker-compose.yml of the app maps them), the volume on its data folder and its image.
 * Its environment is the one it was created with: the passwords are confirmed by logging in.
 */
export function dbContainerSource(f: ContainerFacts, dataMajor?: string): { source: Source; notes: string[] } {
  const where = `docker inspect ${f.name}`;
  const e = (k: string) => f.env.get(k);
  const volume = f.mounts.find((m) => m.destination === pgDataDir)?.name;
  // The data folder's own PG_VERSION is what a server must match; the image's PG_MAJOR says the same
  // of a running official image.
  const major = dataMajor ?? e('PG_MAJOR');
  const pinned = pinnedPostgresImage(f.image, major);
  const source = sourceOf(
    where,
    [
      ['DB_DATABASE', e('POSTGRES_DB') ?? e('POSTGRES_USER')],
      ['DB_ADMIN_USER', e('POSTGRES_USER')],
      ['DB_ADMIN_PASSWORD', e('POSTGRES_PASSWORD')],
      ['DB_API_WORKER_USER', e('DB_API_WORKER_USER')],
      ['DB_API_WORKER_PASSWORD', e('DB_API_WORKER_PASSWORD')],
      ['POSTGRES_IMAGE', f.image ? pinned.image : undefined],
    ],
    where,
  );
  const values = new Map(source.values);
  if (volume) values.set('DB_VOLUME_NAME', { value: volume, where: `${where} (the volume on ${pgDataDir})` });
  const notes = [...(pinned.note ? [`POSTGRES_IMAGE: ${pinned.note}.`] : [])];
  if (major && pinned.image === f.image && !/^(?:docker\.io\/)?(?:library\/)?postgres(?::|$)/.test(f.image)) {
    notes.push(`POSTGRES_IMAGE: ${f.image} is not an official postgres image and is kept as it is; the data folder needs PostgreSQL ${major}.`);
  }
  if (!volume) notes.push(`${f.name} keeps ${pgDataDir} in no named volume: DB_VOLUME_NAME could not be read.`);
  return { source: { label: where, values }, notes };
}

/**
 * What the api container tells: its whole environment under the same names (the app's api reads them
 * by these names), its database URL taken apart (the app's compose builds DATABASE_URL from the DB_*
 * values), the host folder of its vault mount, and the app checkout it was started from.
 */
export function apiContainerSource(f: ContainerFacts): Source {
  const where = `docker inspect ${f.name}`;
  const values = new Map<string, Found>();
  for (const [k, v] of f.env) if (v !== '') values.set(k, { value: v, where });
  // The api's own DB_* win (api/app/db.py builds its URL from them); DATABASE_URL fills the gaps.
  const url = f.env.get('DATABASE_URL');
  if (url) {
    try {
      const u = new URL(url);
      const add = (k: string, v: string) => v && !values.has(k) && values.set(k, { value: v, where: `${where} (DATABASE_URL)` });
      add('DB_API_WORKER_USER', decodeURIComponent(u.username));
      add('DB_API_WORKER_PASSWORD', decodeURIComponent(u.password));
      add('DB_DATABASE', decodeURIComponent(u.pathname.replace(/^\//, '')));
    } catch {
      // not a URL: nothing to read from it
    }
  }
  const vaultIn = f.env.get('VAULT_LOCATION');
  const vault = vaultIn && f.mounts.find((m) => m.destination === vaultIn);
  if (vault && !vault.name) values.set('VAULT_HOST_PATH', { value: vault.source, where: `${where} (the mount on ${vaultIn})` });
  // Compose records the folder it ran in: the app's deploy/stack, two levels below the checkout.
  const dir = f.labels['com.docker.compose.project.working_dir'];
  if (dir && /\/deploy\/stack\/?$/.test(dir)) values.set('APP_DIR', { value: dir.replace(/\/deploy\/stack\/?$/, ''), where: `${where} (label com.docker.compose.project.working_dir)` });
  return { label: where, values };
}

// ---- writing ------------------------------------------------------------------------------------

/** A value as the env-file parser (lib/core/config.ts) and Compose read it back unchanged. */
export function formatEnvValue(key: string, value: string): string {
  if (/^[A-Za-z0-9_.,:/@%+=~-]*$/.test(value)) return value;
  // Single quotes: taken literally by both, no `$` interpolation, no ` #` comment.
  if (!value.includes("'") && !/[\r\n]/.test(value)) return `'${value}'`;
  throw new Error(`${key} holds both a single quote and characters that need quoting; it cannot be written to an env file.`);
}

/** The file's text: a header, then each variable with where its value came from above it. */
export function renderEnvFile(p: Planned, header: readonly string[]): string {
  const lines = header.map((h) => `# ${h}`);
  for (const e of p.entries) {
    lines.push('', e.origin === 'placeholder' ? `# TO FILL: ${e.hint}` : `# ${e.source}`, `${e.key}=${formatEnvValue(e.key, e.value)}`);
  }
  return `${lines.join('\n')}\n`;
}
