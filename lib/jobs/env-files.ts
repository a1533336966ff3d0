// `make env-files`: phase 1's two env files made from what runs today instead of by hand. Reads the
// app's env files and, when a stack runs, its containers (`docker inspect`), confirms the database
// passwords by logging in, lets lib/domain/env-files.ts decide every value, writes both files
// atomically (0600), then validates them and runs the isolation audit (`make check`).
// Values are never printed: only names and where each came from.
import { mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { envFilePath, parseEnvFile, validateEnv, appEnvironmentName, type Environment } from '../core/config.ts';
import { ConfigError, OpsError, SafetyError, Exit, type ExitCode } from '../core/errors.ts';
import { writeFileAtomic } from '../core/atomic-file.ts';
import { run, tail } from '../core/exec.ts';
import { redact } from '../core/secret.ts';
import type { Ui } from '../core/ui.ts';
import { docker, dockerReachable, inspectContainer, passwordLoginCommand, serviceContainers } from '../tools/docker.ts';
import {
  apiContainerSource,
  candidatesOf,
  containerFacts,
  dbContainerSource,
  dbPasswords,
  isTemplatePlaceholder,
  pgDataDir,
  planEnvFiles,
  renderEnvFile,
  schemaKeys,
  type ContainerFacts,
  type Disagreement,
  type EnvInputs,
  type LoginCheck,
  type Origin,
  type Planned,
  type Source,
} from '../domain/env-files.ts';

/** One row of `make check`, as the audit returns it (the audit is passed in: a job never imports another). */
export interface AuditRow {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
}
export type Audit = (envDir: string) => Promise<{ ok: boolean; rows: AuditRow[] }>;

export interface EnvFilesOptions {
  /** EA's app checkout: its deploy/stack/.env.prod (the app's Makefile interpolates with it) and .env (its containers read it). */
  appDir: string;
  /** EB's app checkout: its deploy/stack/.env.dev is read when it exists (EB already runs). */
  devAppDir: string;
  /** EA's env files instead of the app checkout's two (in the order they win). */
  from?: readonly string[];
  /** EB's env files instead of the EB checkout's .env.dev. */
  devFrom?: readonly string[];
  /** The Compose projects production may run as, tried in order (the old stack, then EA). */
  prodProjects: readonly string[];
  devProject: string;
  /** Read running containers (false: the env files only). */
  docker: boolean;
  /** Where .env.prod and .env.dev are written. */
  envDir: string;
  /** Where the committed examples are (compose/). */
  templateDir: string;
  force: boolean;
  dryRun: boolean;
  ui: Ui;
  audit?: Audit;
  now?: Date;
  /** n random bytes as hex (tests make it deterministic). */
  random?: (bytes: number) => string;
}

export interface FileReport {
  env: Environment;
  file: string;
  written: boolean;
  /** The dated copy of the file it replaced (--force). */
  backup?: string;
  entries: { key: string; origin: Origin; source: string; hint?: string }[];
}

export interface EnvFilesResult {
  dryRun: boolean;
  files: FileReport[];
  /** Every place looked at, and what was found there. */
  sources: { env: Environment; label: string; found: boolean; detail?: string }[];
  placeholders: { env: Environment; key: string; hint: string }[];
  disagreements: Disagreement[];
  logins: (LoginCheck & { user: string })[];
  notes: string[];
  /** What the validator (lib/core/config.ts) says of the files; [] when both are valid. */
  problems: string[];
  check?: { ok: boolean; rows: AuditRow[] } | { ok: false; error: string };
}

const randomHex = (bytes: number) => randomBytes(bytes).toString('hex');

/** Exit 2 while a value is missing or invalid, 1 when a database password logs in nowhere or the audit fails. */
export function envFilesExitCode(r: EnvFilesResult): ExitCode {
  if (r.placeholders.length || r.problems.length) return Exit.usage;
  const failedKeys = new Set(r.logins.filter((l) => !l.ok).map((l) => `${l.env} ${l.key}`));
  const unconfirmed = [...failedKeys].some((k) => !r.logins.some((l) => l.ok && `${l.env} ${l.key}` === k));
  if (unconfirmed || (r.check && !r.check.ok)) return Exit.failed;
  return Exit.ok;
}

/** An env file as a source: each value with its file and line. */
async function fileSource(file: string, required: boolean, notes: string[]): Promise<Source | undefined> {
  if (!existsSync(file)) {
    if (required) throw new ConfigError(`${file} (given with --from) does not exist.`, [], 'Give an existing env file, or leave --from out to read the app checkout.');
    return undefined;
  }
  const { entries, problems } = parseEnvFile(await readFile(file, 'utf8'), file);
  notes.push(...problems);
  return { label: file, values: new Map([...entries].map(([k, e]) => [k, { value: e.value, where: `${file}:${e.line}` }])) };
}

async function templateOf(dir: string, env: Environment): Promise<{ map: Map<string, string>; name: string }> {
  const file = path.join(dir, `.env.${env}.example`);
  const { entries } = parseEnvFile(await readFile(file, 'utf8'), file);
  return { map: new Map([...entries].map(([k, e]) => [k, e.value])), name: path.relative(path.dirname(dir), file) || file };
}

interface Live {
  project: string;
  db: ContainerFacts;
  sources: Source[];
}

/** The first of the projects with a running db container: its db, api and web containers as sources. */
async function readLive(projects: readonly string[], notes: string[]): Promise<Live | undefined> {
  for (const project of projects) {
    const [dbId] = await serviceContainers(project, 'db');
    if (!dbId) continue;
    const db = containerFacts(await inspectContainer(dbId));
    const version = await docker(['exec', db.name, 'cat', `${pgDataDir}/PG_VERSION`], { nothrow: true });
    const fromDb = dbContainerSource(db, version.ok && /^\d+$/.test(version.stdout) ? version.stdout : undefined);
    notes.push(...fromDb.notes);
    const sources: Source[] = [fromDb.source];
    for (const service of ['api', 'web']) {
      const [id] = await serviceContainers(project, service);
      if (id) sources.push(apiContainerSource(containerFacts(await inspectContainer(id))));
    }
    return { project, db, sources };
  }
  return undefined;
}

/**
 * Tries each distinct candidate of each database password against the running server. `docker inspect`
 * shows the environment a container was created with, not a role's current password: only a login says.
 */
async function confirmPasswords(env: Environment, live: Live, sources: readonly Source[], notes: string[]): Promise<(LoginCheck & { user: string })[]> {
  const out: (LoginCheck & { user: string })[] = [];
  const address = live.db.addresses[0];
  if (!address) {
    notes.push(`${env}: ${live.db.name} has no network address; its passwords could not be confirmed by a login.`);
    return out;
  }
  if (live.db.env.get('POSTGRES_HOST_AUTH_METHOD') === 'trust') {
    notes.push(`${env}: ${live.db.name} trusts every connection (POSTGRES_HOST_AUTH_METHOD=trust); a login cannot confirm a password.`);
    return out;
  }
  const database = candidatesOf('DB_DATABASE', sources)[0]?.value;
  for (const [key, userKey] of Object.entries(dbPasswords)) {
    const user = candidatesOf(userKey, sources)[0]?.value;
    if (!user || !database) continue;
    const tried = new Map<string, { ok: boolean; reason?: string }>();
    for (const c of candidatesOf(key, sources)) {
      let verdict = tried.get(c.value);
      if (!verdict) {
        const r = await run(passwordLoginCommand(live.db.name, address, user, database), { input: `${c.value}\n`, nothrow: true, timeoutMs: 20_000 });
        verdict = r.exitCode === 0 ? { ok: true } : { ok: false, reason: redact(tail(r.stderr || r.stdout, 2), [c.value]) || `psql exited ${r.exitCode}` };
        tried.set(c.value, verdict);
      }
      out.push({ env, key, user, where: c.where, ...verdict });
    }
  }
  return out;
}

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

export async function makeEnvFiles(o: EnvFilesOptions): Promise<EnvFilesResult> {
  const now = o.now ?? new Date();
  const targets = { prod: envFilePath('prod', o.envDir), dev: envFilePath('dev', o.envDir) };
  const existing = Object.values(targets).filter((f) => existsSync(f));
  if (existing.length && !o.force && !o.dryRun) {
    throw new SafetyError(`${existing.join(' and ')} already exist${existing.length === 1 ? 's' : ''}; nothing was written.`, 'Run again with --force to replace them (a dated copy of each is kept), or move them away.');
  }
  const notes: string[] = [];
  const report: EnvFilesResult['sources'] = [];
  if (existing.length && !o.force) notes.push(`${existing.join(' and ')} exist${existing.length === 1 ? 's' : ''}: the real run refuses (exit 3) unless given --force.`);

  // The env files, in the order they win after the live containers.
  const stack = (dir: string) => path.join(dir, 'deploy', 'stack');
  const prodFiles = o.from?.length ? o.from : [path.join(stack(o.appDir), '.env.prod'), path.join(stack(o.appDir), '.env')];
  const devFiles = o.devFrom?.length ? o.devFrom : [path.join(stack(o.devAppDir), '.env.dev')];
  const readFiles = async (env: Environment, files: readonly string[], required: boolean) => {
    const out: Source[] = [];
    for (const f of files.map((x) => path.resolve(x))) {
      const s = await fileSource(f, required, notes);
      report.push({ env, label: f, found: Boolean(s), ...(s && { detail: `${s.values.size} variables` }) });
      if (s) out.push(s);
    }
    return out;
  };
  const prodFileSources = await readFiles('prod', prodFiles, Boolean(o.from?.length));
  const devFileSources = await readFiles('dev', devFiles, Boolean(o.devFrom?.length));

  // The running stacks.
  let prodLive: Live | undefined;
  let devLive: Live | undefined;
  if (o.docker && (await dockerReachable())) {
    prodLive = await o.ui.run(`read the running production stack (${o.prodProjects.join(' or ')})`, () => readLive(o.prodProjects, notes), (l) => (l ? `project ${l.project}` : 'none runs'));
    devLive = await o.ui.run(`read the running development stack (${o.devProject})`, () => readLive([o.devProject], notes), (l) => (l ? `project ${l.project}` : 'none runs'));
    for (const [env, live, projects] of [['prod', prodLive, o.prodProjects], ['dev', devLive, [o.devProject]]] as const) {
      if (live) for (const s of live.sources) report.push({ env, label: s.label, found: true, detail: `project ${live.project}` });
      else report.push({ env, label: `docker: project ${projects.join(' or ')}`, found: false, detail: 'no running db container' });
    }
  } else {
    notes.push(o.docker ? 'No Docker engine answers: only the env files were read (no container, volume or login was checked).' : 'Containers were not read (--no-docker): only the env files.');
  }

  // Last come the checkouts named on the command line (each environment's APP_DIR) and the file being
  // replaced (--force): a value filled by hand there, or a secret EB may already use, is kept.
  const checkout = (dir: string, flag: string): Source => ({ label: flag, values: new Map([['APP_DIR', { value: path.resolve(dir), where: flag }]]) });
  const replaced = async (env: Environment): Promise<Source[]> => {
    const s = existsSync(targets[env]) ? await fileSource(targets[env], false, notes) : undefined;
    if (!s) return [];
    report.push({ env, label: `${targets[env]} (the file being replaced)`, found: true });
    return [{ label: s.label, values: new Map([...s.values].filter(([, f]) => !isTemplatePlaceholder(f.value)).map(([k, f]) => [k, { ...f, where: `${f.where} (the file being replaced)` }])) }];
  };
  const prodSources = [...(prodLive?.sources ?? []), ...prodFileSources, checkout(o.appDir, '--app-dir'), ...(await replaced('prod'))];
  const devSources = [...(devLive?.sources ?? []), ...devFileSources, checkout(o.devAppDir, '--dev-app-dir'), ...(await replaced('dev'))];
  const logins = [
    ...(prodLive ? await o.ui.run("confirm EA's database passwords by logging in", () => confirmPasswords('prod', prodLive, prodSources, notes)) : []),
    ...(devLive ? await o.ui.run("confirm EB's database passwords by logging in", () => confirmPasswords('dev', devLive, devSources, notes)) : []),
  ];
  if (!prodLive) notes.push("EA's database passwords were not confirmed by a login (no running production database was read).");

  // The new stacks pass on only the schema's variables (compose/docker-compose.yml lists them):
  // whatever else the app's files set is named, so nothing is dropped unnoticed.
  const known = new Set(schemaKeys().map((k) => k.key));
  for (const s of [...prodFileSources, ...devFileSources]) {
    const unknown = [...s.values.keys()].filter((k) => !known.has(k));
    if (unknown.length) notes.push(`${s.label} sets ${unknown.length} variable${unknown.length > 1 ? 's' : ''} the schema (lib/core/config.ts) does not know, not carried: ${unknown.join(', ')}.`);
  }

  const templates = { prod: await templateOf(o.templateDir, 'prod'), dev: await templateOf(o.templateDir, 'dev') };
  const inputs = (env: Environment, sources: Source[]): EnvInputs => ({ sources, template: templates[env].map, templateName: templates[env].name, logins });
  const plan = planEnvFiles(schemaKeys(), inputs('prod', prodSources), inputs('dev', devSources), o.random ?? randomHex);

  const files: FileReport[] = [];
  const problems: string[] = [];
  for (const p of [plan.prod, plan.dev] as Planned[]) {
    notes.push(...p.notes.map((n) => `${p.env}: ${n}`));
    const file = targets[p.env];
    const header = [
      `${p.env === 'prod' ? 'EA: production' : 'EB: development'} (ENVIRONMENT=${appEnvironmentName[p.env]}), written by \`make env-files\` at ${now.toISOString()}.`,
      'Above each variable: where its value came from. Git-ignored, mode 0600: it holds secrets.',
    ];
    const text = renderEnvFile(p, header);
    // The validator, on exactly the text that is written (a placeholder shows up here as empty).
    const { entries, problems: syntax } = parseEnvFile(text, file);
    problems.push(...syntax, ...validateEnv(file, entries).problems.filter((x) => !p.entries.some((e) => e.origin === 'placeholder' && x.endsWith(`${e.key} is empty`))));
    const r: FileReport = { env: p.env, file, written: false, entries: p.entries.map((e) => ({ key: e.key, origin: e.origin, source: e.source, ...(e.hint && { hint: e.hint }) })) };
    if (!o.dryRun) {
      await mkdir(path.dirname(file), { recursive: true });
      if (existsSync(file)) {
        r.backup = `${file}.bak-${stamp(now)}`;
        await writeFileAtomic(r.backup, await readFile(file), 0o600);
      }
      await writeFileAtomic(file, text, 0o600);
      r.written = true;
    }
    files.push(r);
  }

  const result: EnvFilesResult = {
    dryRun: o.dryRun,
    files,
    sources: report,
    placeholders: [plan.prod, plan.dev].flatMap((p) => p.entries.filter((e) => e.origin === 'placeholder').map((e) => ({ env: p.env, key: e.key, hint: e.hint ?? '' }))),
    disagreements: [...plan.prod.disagreements, ...plan.dev.disagreements],
    logins,
    notes,
    problems,
  };
  // `make check` needs two complete files: it runs once nothing is left to fill.
  if (!o.dryRun && o.audit && !result.placeholders.length && !problems.length) {
    try {
      result.check = await o.audit(o.envDir);
    } catch (err) {
      if (!(err instanceof OpsError)) throw err;
      result.check = { ok: false, error: err.message };
    }
  }
  return result;
}

const pad = (s: string, n: number) => s.padEnd(n);

/** The human report: names and sources only, never a value. */
export function renderEnvFilesReport(r: EnvFilesResult): string {
  const out: string[] = [];
  for (const f of r.files) {
    out.push(`${r.dryRun ? 'Would write' : 'Wrote'} ${f.file}${f.written ? ' (mode 0600)' : ''}${f.backup ? `; the previous one is kept as ${f.backup}` : ''}`);
    const w = Math.max(...f.entries.map((e) => e.key.length));
    for (const e of f.entries) out.push(`  ${pad(e.key, w)}  ${pad(e.origin, 11)}  ${e.origin === 'placeholder' ? 'TO FILL (below)' : e.source}`);
    out.push('');
  }
  const missing = r.sources.filter((s) => !s.found);
  if (missing.length) out.push('Not found (skipped):', ...missing.map((s) => `  ${s.env}: ${s.label}${s.detail ? ` (${s.detail})` : ''}`), '');
  if (r.disagreements.length) {
    out.push('Disagreements (the first place was written):', ...r.disagreements.map((d) => `  ${d.env} ${d.key}: ${d.chosen} differs from ${d.other}`), '');
  }
  if (r.logins.length) {
    out.push('Database passwords confirmed by logging in:', ...r.logins.map((l) => `  ${l.env} ${l.key} (role ${l.user}) from ${l.where}: ${l.ok ? 'logs in' : `FAILS: ${l.reason}`}`), '');
  }
  if (r.notes.length) out.push('Notes:', ...r.notes.map((n) => `  ${n}`), '');
  if (r.placeholders.length) {
    out.push(`To fill before anything runs (the files are not valid until then; exit 2):`, ...r.placeholders.map((p) => `  ${p.env} ${p.key}: ${p.hint}`), '');
  }
  if (r.problems.length) out.push('The validator (lib/core/config.ts) refuses:', ...r.problems.map((p) => `  ${p}`), '');
  else if (!r.placeholders.length) out.push('The validator accepts both files.');
  if (r.check && 'error' in r.check) out.push(`make check could not run: ${r.check.error}`);
  else if (r.check) {
    const bad = r.check.rows.filter((x) => x.status !== 'ok');
    out.push(r.check.ok ? `make check: all ${r.check.rows.length} checks pass${bad.length ? ` (${bad.length} warning${bad.length > 1 ? 's' : ''})` : ''}.` : 'make check FAILS:', ...bad.map((x) => `  ${x.status} ${x.check}: ${x.detail}`));
  }
  return `${out.join('\n').trimEnd()}\n`;
}
