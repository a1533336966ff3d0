import { readFile, writeFile, rm, mkdir, chmod, chown, stat, rename, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ConfigError, Exit, UsageError, type ExitCode } from '../core/errors.ts';
import { writeFileAtomic, temporaryName } from '../core/atomic-file.ts';
import { withLock } from '../core/lock.ts';
import type { EnvConfig, Environment } from '../core/config.ts';
import type { Confirm } from '../core/ui.ts';
import { openssl, opensslArgv } from '../tools/openssl.ts';
import { keyAlgorithm, defaultDays, warnDays, type CertKind, type CertsLayout, certsLayout, deviceFiles, validateDeviceName, subjects, serverSans, renderOpensslConfig, type IndexEntry, parseIndex, currentEntry, type InitStep, planInit, parseOpensslDate, renderBundle } from '../domain/pki.ts';

// ---- the runners ---------------------------------------------------------------------------

export interface CertsSettings {
  env: Environment;
  dir: string;
  publicHost: string;
  publicPort: number;
  /** The broker's uid in its container; server.key is handed to it (still 0600). */
  brokerUid: number;
}

export const certsSettings = (cfg: EnvConfig): CertsSettings => ({
  env: cfg.env,
  dir: cfg.vars.MQTT_CERTS_DIR,
  publicHost: cfg.vars.MQTT_PUBLIC_HOST,
  publicPort: cfg.vars.MQTT_PUBLIC_PORT,
  brokerUid: cfg.vars.MQTT_BROKER_UID,
});

const exists = (p: string) => existsSync(p);

async function writeIfChanged(file: string, text: string, mode: number): Promise<boolean> {
  if ((await readFile(file, 'utf8').catch(() => undefined)) === text) return false;
  await writeFileAtomic(file, text, mode);
  return true;
}

async function newKey(file: string): Promise<void> {
  await writeFileAtomic(file, await openssl(opensslArgv.genKey()), 0o600);
}

async function caEnd(layout: CertsLayout): Promise<number> {
  const info = await openssl(opensslArgv.certInfo(layout.caCrt));
  return Date.parse(parseOpensslDate(/notAfter=(.*)/.exec(info)![1]!));
}

/** Signs a fresh key for the server or a device; never beyond the CA's own end. Returns the certificate PEM. */
async function issueCert(layout: CertsLayout, kind: CertKind, subject: string, keyFile: string, days: number, now: Date): Promise<string> {
  await newKey(keyFile);
  const daysLeft = Math.floor(((await caEnd(layout)) - now.getTime()) / 86_400_000);
  const granted = Math.max(1, Math.min(days, daysLeft));
  const csr = temporaryName(path.join(layout.dir, 'request.csr'));
  const out = temporaryName(path.join(layout.dir, `${kind}.crt`));
  try {
    await writeFile(csr, await openssl(opensslArgv.csr(layout.cnf, keyFile, subject)), { mode: 0o600 });
    await openssl(opensslArgv.sign(layout.cnf, csr, kind, granted, out));
    return await readFile(out, 'utf8');
  } finally {
    await rm(csr, { force: true });
    await rm(out, { force: true });
  }
}

async function writeCrl(layout: CertsLayout, days: number): Promise<void> {
  const out = temporaryName(layout.crl);
  try {
    await openssl(opensslArgv.genCrl(layout.cnf, days, out));
    await chmod(out, 0o644);
    await rename(out, layout.crl);
  } finally {
    await rm(out, { force: true });
  }
}

/** The broker drops root before it reads its key, so server.key belongs to its uid (mode stays 0600). */
async function handServerKeyToBroker(s: CertsSettings, layout: CertsLayout): Promise<string | undefined> {
  const st = await stat(layout.serverKey);
  if (st.uid === s.brokerUid) return undefined;
  if (process.getuid?.() !== 0) return `server.key belongs to uid ${st.uid}, not the broker's ${s.brokerUid}: run as root, or chown ${s.brokerUid} ${layout.serverKey}`;
  await chown(layout.serverKey, s.brokerUid, -1);
  return undefined;
}

async function ensureFolder(layout: CertsLayout): Promise<void> {
  // The folder is mounted into the broker, whose user must reach ca.crt, server.*, crl.pem; the
  // private keys inside are 0600 and devices/ is root's only.
  await mkdir(layout.dir, { recursive: true, mode: 0o755 });
  await mkdir(layout.devices, { recursive: true, mode: 0o700 });
  await mkdir(layout.newcerts, { recursive: true, mode: 0o700 });
}

async function loadIndex(layout: CertsLayout): Promise<IndexEntry[]> {
  return parseIndex(await readFile(layout.index, 'utf8'), layout.index);
}

function requireCa(layout: CertsLayout, env: Environment): void {
  if (!exists(layout.caKey) || !exists(layout.caCrt) || !exists(layout.index))
    throw new ConfigError(`There is no ${env} MQTT CA in ${layout.dir}.`, [], `Create it first: make mqtt-certs ENV=${env} ARGS="init".`);
}

export interface CertsOptions {
  dryRun: boolean;
  force: boolean;
  days: number | undefined;
  crlDays: number;
  confirm: Confirm;
  now?: () => Date;
}

export type CertsResult =
  | { command: 'init'; env: Environment; dir: string; done: string[]; notes: string[] }
  | { command: 'issue'; env: Environment; dir: string; device: string; serial: string; notAfter: string; files: string[]; done: string[] }
  | { command: 'revoke'; env: Environment; dir: string; device: string; serial: string; done: string[] }
  | { command: 'renew'; env: Environment; dir: string; serial: string; notAfter: string; done: string[] }
  | { command: 'list'; env: Environment; dir: string; algorithm: string; ca: { subject: string; serial: string; notAfter: string }; crl: { nextUpdate: string; revoked: number; expired: boolean }; certificates: IndexEntry[]; warnings: string[] };

const describe: Record<InitStep, string> = {
  database: 'create the CA database (index.txt, serial, crlnumber, newcerts/)',
  'ca-key': 'generate the CA key ca.key (ECDSA P-256, 0600)',
  'ca-cert': 'self-sign the CA certificate ca.crt',
  server: 'issue the broker certificate server.crt and key server.key',
  crl: 'generate an empty CRL crl.pem',
};

async function retireFolder(layout: CertsLayout, now: Date): Promise<string> {
  const target = path.join(layout.dir, 'retired', now.toISOString().replace(/[:.]/g, '-'));
  await mkdir(target, { recursive: true, mode: 0o700 });
  for (const name of await readdir(layout.dir)) {
    if (name === 'retired' || name === path.basename(layout.lock)) continue;
    await rename(path.join(layout.dir, name), path.join(target, name));
  }
  return target;
}

export async function initCa(s: CertsSettings, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  const sub = subjects(s.env, s.publicHost);
  const state = () => ({ database: exists(layout.index), caKey: exists(layout.caKey), caCrt: exists(layout.caCrt), server: exists(layout.serverCrt) && exists(layout.serverKey), crl: exists(layout.crl) });
  const replacing = o.force && (exists(layout.caKey) || exists(layout.caCrt));
  const steps = replacing ? planInit({ database: false, caKey: false, caCrt: false, server: false, crl: false }) : planInit(state());
  const done = [...(replacing ? ['move the current CA and every certificate it signed to retired/<time>/'] : []), ...steps.map((st) => describe[st])];
  if (o.dryRun) return { command: 'init', env: s.env, dir: s.dir, done: done.map((d) => `would ${d}`), notes: [] };
  if (replacing) await o.confirm(`Replace the ${s.env} MQTT CA in ${s.dir}? Every device certificate it signed stops working.`);
  await mkdir(s.dir, { recursive: true, mode: 0o755 });
  return withLock(layout.lock, 'mqtt-certs', async () => {
    const notes: string[] = [];
    if (replacing) notes.push(`the previous CA is kept in ${await retireFolder(layout, now)}`);
    await ensureFolder(layout);
    await writeIfChanged(layout.cnf, renderOpensslConfig(layout, s.env, s.publicHost), 0o644);
    for (const step of replacing ? steps : planInit(state())) {
      if (step === 'database') {
        if (!exists(layout.index)) await writeFileAtomic(layout.index, '', 0o644);
        // Random starting serials: two CAs made the same day never hand out the same numbers.
        if (!exists(layout.serial)) await writeFileAtomic(layout.serial, `${(randomBytes(8)[0]! & 0x7f).toString(16).padStart(2, '0')}${randomBytes(7).toString('hex')}\n`.toUpperCase(), 0o644);
        if (!exists(layout.crlnumber)) await writeFileAtomic(layout.crlnumber, '01\n', 0o644);
      } else if (step === 'ca-key') await newKey(layout.caKey);
      else if (step === 'ca-cert') await writeFileAtomic(layout.caCrt, await openssl(opensslArgv.selfSignCa(layout.cnf, layout.caKey, sub.ca, o.days ?? defaultDays.ca)), 0o644);
      else if (step === 'server') await writeFileAtomic(layout.serverCrt, await issueCert(layout, 'server', sub.server, layout.serverKey, defaultDays.server, now), 0o644);
      else if (step === 'crl') await writeCrl(layout, o.crlDays);
    }
    if (exists(layout.serverKey)) {
      const note = await handServerKeyToBroker(s, layout);
      if (note) notes.push(note);
    }
    const current = currentEntry(await loadIndex(layout), 'server', undefined, now);
    if (current && current.name !== s.publicHost) notes.push(`the server certificate is for ${current.name}, but MQTT_PUBLIC_HOST is ${s.publicHost}: run renew`);
    return { command: 'init', env: s.env, dir: s.dir, done: steps.length ? done : ['nothing: the CA, server certificate and CRL are in place'], notes };
  });
}

export async function issueDevice(s: CertsSettings, device: string, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const name = validateDeviceName(device);
  const files = deviceFiles(layout, name);
  const now = o.now?.() ?? new Date();
  requireCa(layout, s.env);
  return withLock(layout.lock, 'mqtt-certs', async () => {
    const existing = currentEntry(await loadIndex(layout), 'device', name, now);
    if (existing && !o.force) throw new UsageError(`The ${s.env} device ${name} already has a certificate (serial ${existing.serial}).`, 'Revoke it first, or add --force to revoke it and issue a new one.');
    const done = [...(existing ? [`revoke the current certificate ${existing.serial} and regenerate crl.pem`] : []), `issue ${files.crt}, ${files.key} (0600) and ${files.bundle} (0600)`];
    if (o.dryRun) return { command: 'issue', env: s.env, dir: s.dir, device: name, serial: '', notAfter: '', files: [files.crt, files.key, files.bundle], done: done.map((d) => `would ${d}`) };
    if (existing) await revokeEntry(layout, existing, name, o.crlDays);
    await ensureFolder(layout);
    await writeIfChanged(layout.cnf, renderOpensslConfig(layout, s.env, s.publicHost), 0o644);
    const crt = await issueCert(layout, 'device', subjects(s.env, s.publicHost).device(name), files.key, o.days ?? defaultDays.device, now);
    await writeFileAtomic(files.crt, crt, 0o644);
    const bundle = renderBundle({ device: name, env: s.env, host: s.publicHost, port: s.publicPort, key: await readFile(files.key, 'utf8'), crt, ca: await readFile(layout.caCrt, 'utf8') });
    await writeFileAtomic(files.bundle, bundle, 0o600);
    const entry = currentEntry(await loadIndex(layout), 'device', name, now)!;
    return { command: 'issue', env: s.env, dir: s.dir, device: name, serial: entry.serial, notAfter: entry.notAfter, files: [files.crt, files.key, files.bundle], done };
  });
}

/** Revokes in the database, publishes the new CRL, then retires the device's files. */
async function revokeEntry(layout: CertsLayout, entry: IndexEntry, name: string, crlDays: number): Promise<void> {
  await openssl(opensslArgv.revoke(layout.cnf, path.join(layout.newcerts, `${entry.serial}.pem`)));
  await writeCrl(layout, crlDays);
  const files = deviceFiles(layout, name);
  await mkdir(layout.revoked, { recursive: true, mode: 0o700 });
  if (exists(files.crt)) await rename(files.crt, path.join(layout.revoked, `${name}.${entry.serial}.crt`));
  await rm(files.key, { force: true });
  await rm(files.bundle, { force: true });
}

export async function revokeDevice(s: CertsSettings, device: string, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const name = validateDeviceName(device);
  const now = o.now?.() ?? new Date();
  requireCa(layout, s.env);
  const entry = currentEntry(await loadIndex(layout), 'device', name, now);
  if (!entry) throw new UsageError(`The ${s.env} device ${name} has no certificate in force.`, `See make mqtt-certs ENV=${s.env} ARGS="list".`);
  const done = [`revoke ${name} (serial ${entry.serial})`, `regenerate crl.pem (next update in ${o.crlDays} days)`, `move its certificate to devices/revoked/ and delete its key and bundle`];
  if (o.dryRun) return { command: 'revoke', env: s.env, dir: s.dir, device: name, serial: entry.serial, done: done.map((d) => `would ${d}`) };
  await o.confirm(`Revoke the ${s.env} device ${name} (serial ${entry.serial})? It can no longer connect once the broker has read the new CRL.`);
  return withLock(layout.lock, 'mqtt-certs', async () => {
    await writeIfChanged(layout.cnf, renderOpensslConfig(layout, s.env, s.publicHost), 0o644);
    await revokeEntry(layout, entry, name, o.crlDays);
    return { command: 'revoke', env: s.env, dir: s.dir, device: name, serial: entry.serial, done };
  });
}

/** A new server key and certificate (with today's SANs), and a fresh CRL with a new far next-update. */
export async function renewServer(s: CertsSettings, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  requireCa(layout, s.env);
  const done = [`issue a new server.key and server.crt (${o.days ?? defaultDays.server} days, SANs ${serverSans(s.env, s.publicHost).join(', ')})`, `regenerate crl.pem (next update in ${o.crlDays} days)`];
  if (o.dryRun) return { command: 'renew', env: s.env, dir: s.dir, serial: '', notAfter: '', done: done.map((d) => `would ${d}`) };
  return withLock(layout.lock, 'mqtt-certs', async () => {
    await writeIfChanged(layout.cnf, renderOpensslConfig(layout, s.env, s.publicHost), 0o644);
    // The new key is made beside the live one and swapped in only with its certificate.
    const key = temporaryName(layout.serverKey);
    try {
      const crt = await issueCert(layout, 'server', subjects(s.env, s.publicHost).server, key, o.days ?? defaultDays.server, now);
      await rename(key, layout.serverKey);
      await writeFileAtomic(layout.serverCrt, crt, 0o644);
    } finally {
      await rm(key, { force: true });
    }
    const note = await handServerKeyToBroker(s, layout);
    await writeCrl(layout, o.crlDays);
    const entry = currentEntry(await loadIndex(layout), 'server', undefined, now)!;
    return { command: 'renew', env: s.env, dir: s.dir, serial: entry.serial, notAfter: entry.notAfter, done: note ? [...done, note] : done };
  });
}

export async function listCerts(s: CertsSettings, o: Pick<CertsOptions, 'now'>): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  requireCa(layout, s.env);
  const info = await openssl(opensslArgv.certInfo(layout.caCrt));
  const ca = { subject: /subject=\s*(.*)/.exec(info)![1]!.trim(), serial: /serial=(\S+)/.exec(info)![1]!, notAfter: parseOpensslDate(/notAfter=(.*)/.exec(info)![1]!) };
  const nextUpdate = exists(layout.crl) ? parseOpensslDate(/nextUpdate=(.*)/.exec(await openssl(opensslArgv.crlInfo(layout.crl)))![1]!) : '';
  const certificates = (await loadIndex(layout)).map((e) => (e.status === 'valid' && Date.parse(e.notAfter) <= now.getTime() ? { ...e, status: 'expired' as const } : e));
  const soon = (iso: string) => Date.parse(iso) - now.getTime() < warnDays * 86_400_000;
  const warnings: string[] = [];
  const expired = nextUpdate !== '' && Date.parse(nextUpdate) <= now.getTime();
  if (!nextUpdate) warnings.push('crl.pem is missing: the broker will not start; run renew');
  else if (expired) warnings.push(`the CRL expired: its next update (${nextUpdate}) has passed, so the broker refuses EVERY device; run renew now`);
  else if (soon(nextUpdate)) warnings.push(`the CRL's next update (${nextUpdate}) is near: past it the broker refuses EVERY device; run renew`);
  const server = currentEntry(certificates, 'server', undefined, now);
  if (!server) warnings.push('there is no valid server certificate: run renew');
  else if (soon(server.notAfter)) warnings.push(`the server certificate expires ${server.notAfter}: run renew`);
  if (soon(ca.notAfter)) warnings.push(`the CA expires ${ca.notAfter}: plan a new CA (init --force) and re-issue every device`);
  return { command: 'list', env: s.env, dir: s.dir, algorithm: keyAlgorithm, ca, crl: { nextUpdate, revoked: certificates.filter((c) => c.status === 'revoked').length, expired }, certificates, warnings };
}

export function renderCertsResult(r: CertsResult, out: NodeJS.WritableStream = process.stdout): void {
  if (r.command === 'list') {
    out.write(`${r.env} MQTT CA in ${r.dir} (${r.algorithm})\n  CA       ${r.ca.subject}, serial ${r.ca.serial}, expires ${r.ca.notAfter}\n  CRL      next update ${r.crl.nextUpdate || 'MISSING'}${r.crl.expired ? ' (EXPIRED)' : ''}, ${r.crl.revoked} revoked\n`);
    for (const c of r.certificates) out.write(`  ${c.kind.padEnd(7)}  ${c.subject}\n           serial ${c.serial}, ${c.status}, expires ${c.notAfter}${c.revokedAt ? `, revoked ${c.revokedAt}` : ''}\n`);
    for (const w of r.warnings) out.write(`WARNING: ${w}\n`);
    return;
  }
  for (const d of r.done) out.write(`- ${d}\n`);
  if (r.command === 'init') for (const n of r.notes) out.write(`note: ${n}\n`);
  if (r.command === 'issue' && r.serial) out.write(`Device ${r.device}: serial ${r.serial}, expires ${r.notAfter}. Give the player ${r.files[2]} (it holds its private key).\n`);
  if ((r.command === 'revoke' || r.command === 'renew') && !r.done[0]?.startsWith('would')) out.write(`Tell the ${r.env} broker to read the new ${r.command === 'renew' ? 'certificate and CRL' : 'CRL'} (no client is dropped): docker kill --signal HUP makapix-${r.env}-mqtt\n`);
}

/** list fails (exit 1) when the CRL has expired: every device is refused until renew. */
export const certsExitCode = (r: CertsResult): ExitCode => (r.command === 'list' && r.crl.expired ? Exit.failed : Exit.ok);

/** What `make mqtt-certs` does, from parsed flags. */
export async function runMqttCerts(o: { cfg: EnvConfig; positionals: readonly string[]; days: number | undefined; crlDays: number; force: boolean; dryRun: boolean; confirm: Confirm }): Promise<CertsResult> {
  const [command, device, ...extra] = o.positionals;
  const takesDevice = command === 'issue' || command === 'revoke';
  if (!['init', 'issue', 'revoke', 'renew', 'list'].includes(command ?? '')) throw new UsageError(`Unknown command ${JSON.stringify(command ?? '')}.`, 'Use init, issue <device>, revoke <device>, renew or list.');
  if (extra.length || (!takesDevice && device !== undefined)) throw new UsageError(`Too many arguments for ${command}.`, takesDevice ? `${command} takes one device name.` : `${command} takes no name.`);
  if (takesDevice) validateDeviceName(device);
  const opts: CertsOptions = { dryRun: o.dryRun, force: o.force, days: o.days, crlDays: o.crlDays, confirm: o.confirm };
  const s = certsSettings(o.cfg);
  switch (command) {
    case 'init':
      return initCa(s, opts);
    case 'issue':
      return issueDevice(s, device!, opts);
    case 'revoke':
      return revokeDevice(s, device!, opts);
    case 'renew':
      return renewServer(s, opts);
    default:
      return listCerts(s, opts);
  }
}
