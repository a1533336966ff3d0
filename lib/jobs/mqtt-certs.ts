// Each environment's MQTT PKI, run the way the Makapix app runs it. Both environments already have a
// CA in the field (the app's broker made it on first start: mqtt/config/scripts/gen-certs.sh) and
// players whose certificates the api minted: `adopt` registers that CA where it is, `init` exists only
// for an environment with none, `issue` mints a player certificate exactly as the api does, and
// `revoke`/`renew` rewrite crl.pem keeping every entry already in it (the app's own revocations
// live only there). A revocation also cuts the device's live session off.
import { readFile, writeFile, rm, mkdir, chmod, chown, stat, rename, mkdtemp } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ConfigError, Exit, JobError, SafetyError, UsageError, type ExitCode } from '../core/errors.ts';
import { writeFileAtomic, temporaryName } from '../core/atomic-file.ts';
import { withLock } from '../core/lock.ts';
import { run } from '../core/exec.ts';
import { certFacts, keyMatchesCert, normalizeSerial, openssl, opensslArgv, readCrl, signedBy, type CrlFacts, type Revocation } from '../tools/openssl.ts';
import { containerBroker, disconnectUser, type BrokerAccess, type ClientAddress } from '../tools/mosquitto.ts';
import { appCa, appDeviceCert, appServiceUsers, caState, certsLayout, currentEntry, defaultDays, deviceExtensions, deviceFiles, keyAlgorithm, mergeRevocations, nextCrlNumber, parseIndex, renderBundle, renderOpensslConfig, revocationIndex, serverSans, subjects, validatePlayerKey, warnDays, type CertsLayout, type IndexEntry } from '../domain/pki.ts';
import { projectName, type EnvConfig, type Environment } from '../core/config.ts';
import type { Confirm } from '../core/ui.ts';

// ---- the runners ---------------------------------------------------------------------------

export interface CertsSettings {
  env: Environment;
  dir: string;
  publicHost: string;
  publicPort: number;
  /** The broker's uid in its container; server.key is handed to it (still 0600). */
  brokerUid: number;
  /** MQTT accounts of services: no device certificate may carry their names (default: the app's). */
  serviceUsers?: readonly string[];
}

export const certsSettings = (cfg: EnvConfig): CertsSettings => ({
  env: cfg.env,
  dir: cfg.vars.MQTT_CERTS_DIR,
  publicHost: cfg.vars.MQTT_PUBLIC_HOST,
  publicPort: cfg.vars.MQTT_PUBLIC_PORT,
  brokerUid: cfg.vars.MQTT_BROKER_UID,
  serviceUsers: [...new Set([cfg.vars.MQTT_BACKEND_USER, ...appServiceUsers])],
});

const exists = (p: string) => existsSync(p);

async function writeIfChanged(file: string, text: string, mode: number): Promise<boolean> {
  if ((await readFile(file, 'utf8').catch(() => undefined)) === text) return false;
  await writeFileAtomic(file, text, mode);
  return true;
}

async function newKey(file: string, bits: number): Promise<void> {
  await writeFileAtomic(file, await openssl(opensslArgv.genRsa(bits)), 0o600);
}

/** Signs a fresh key for the server or a player; never beyond the CA's own end. Returns the certificate PEM. */
async function issueCert(layout: CertsLayout, o: { subject: string; keyFile: string; keyBits: number; days: number; extensions: string; extfile?: string; now: Date }): Promise<string> {
  await newKey(o.keyFile, o.keyBits);
  const daysLeft = Math.floor(((await certFacts(layout.caCrt)).notAfter.getTime() - o.now.getTime()) / 86_400_000);
  const granted = Math.max(1, Math.min(o.days, daysLeft));
  const csr = temporaryName(path.join(layout.dir, 'request.csr'));
  const out = temporaryName(path.join(layout.dir, 'issued.crt'));
  const ext = o.extfile === undefined ? undefined : temporaryName(path.join(layout.dir, 'extensions.cnf'));
  try {
    await writeFile(csr, await openssl(opensslArgv.csr(layout.cnf, o.keyFile, o.subject)), { mode: 0o600 });
    if (ext) await writeFile(ext, o.extfile!, { mode: 0o600 });
    await openssl([...opensslArgv.sign(layout.cnf, csr, o.extensions, granted, out), ...(ext ? ['-extfile', ext] : [])]);
    return await readFile(out, 'utf8');
  } finally {
    for (const f of [csr, out, ext]) if (f) await rm(f, { force: true });
  }
}

/**
 * Writes crl.pem holding every revocation already in it (the app's included: it keeps them nowhere
 * else), the toolkit's own, and `added`; signed by the CA for `days`. The entries go through a
 * throwaway CA database, never the toolkit's index.txt, so nothing the app revoked can be lost.
 */
export async function writeCrl(layout: CertsLayout, added: readonly Revocation[], days: number): Promise<{ crl: CrlFacts; kept: number }> {
  const current = exists(layout.crl) ? await readCrl(layout.crl) : undefined;
  const ours: Revocation[] = exists(layout.index)
    ? parseIndex(await readFile(layout.index, 'utf8'), layout.index)
        .filter((e) => e.status === 'revoked')
        .map((e) => ({ serial: normalizeSerial(`0x${e.serial}`), revokedAt: new Date(e.revokedAt!), reason: 'cessationOfOperation' }))
    : [];
  const entries = mergeRevocations(mergeRevocations(current?.revoked ?? [], ours), added);
  const tmp = await mkdtemp(path.join(layout.dir, '.crl-'));
  const out = temporaryName(layout.crl);
  try {
    await writeFile(path.join(tmp, 'index.txt'), revocationIndex(entries));
    await writeFile(path.join(tmp, 'crlnumber'), `${nextCrlNumber(current)}\n`);
    const cnf = path.join(tmp, 'openssl.cnf');
    await writeFile(cnf, `[ ca ]\ndefault_ca = crl\n[ crl ]\ndatabase = ${tmp}/index.txt\ncrlnumber = ${tmp}/crlnumber\ncertificate = ${layout.caCrt}\nprivate_key = ${layout.caKey}\ndefault_md = sha256\ncrl_extensions = crl_ext\n[ crl_ext ]\nauthorityKeyIdentifier = keyid\n`);
    await openssl(opensslArgv.genCrl(cnf, days, out));
    const written = await readCrl(out);
    const missing = entries.filter((e) => !written.revoked.some((w) => w.serial === e.serial));
    if (missing.length) throw new JobError(`The new CRL lacks ${missing.length} revocation(s) (${missing.map((m) => m.serial).join(', ')}); crl.pem was left as it was.`, 'Report this; do not hand-edit crl.pem.');
    await chmod(out, 0o644);
    await rename(out, layout.crl);
    return { crl: written, kept: current?.revoked.length ?? 0 };
  } finally {
    await rm(out, { force: true });
    await rm(tmp, { recursive: true, force: true });
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

/** The toolkit's CA database beside the CA, created once (random first serial, though issue uses -rand_serial). */
async function ensureDatabase(s: CertsSettings, layout: CertsLayout): Promise<void> {
  await ensureFolder(layout);
  if (!exists(layout.index)) await writeFileAtomic(layout.index, '', 0o644);
  if (!exists(layout.serial)) await writeFileAtomic(layout.serial, `${(randomBytes(8)[0]! & 0x7f).toString(16).padStart(2, '0')}${randomBytes(7).toString('hex')}\n`.toUpperCase(), 0o644);
  if (!exists(layout.crlnumber)) await writeFileAtomic(layout.crlnumber, '01\n', 0o644);
  await writeIfChanged(layout.cnf, renderOpensslConfig(layout, s.env, s.publicHost), 0o644);
}

async function loadIndex(layout: CertsLayout): Promise<IndexEntry[]> {
  return exists(layout.index) ? parseIndex(await readFile(layout.index, 'utf8'), layout.index) : [];
}

const stateOf = (layout: CertsLayout) => caState({ caKey: exists(layout.caKey), caCrt: exists(layout.caCrt), registration: exists(layout.registration) });

/** The CA must be there, registered, and its key must match its certificate (the app's own guard: a mismatched key signs certificates the broker rejects). */
async function requireCa(layout: CertsLayout, env: Environment): Promise<void> {
  const state = stateOf(layout);
  if (state === 'none') throw new ConfigError(`There is no ${env} MQTT CA in ${layout.dir}.`, [], `Point MQTT_CERTS_DIR at the app's mqtt/certs and run make mqtt-certs ENV=${env} ARGS="adopt", or create one: ARGS="init".`);
  if (state === 'partial') throw new SafetyError(`Only one of ca.crt and ca.key is in ${layout.dir}.`, 'Restore the missing file from a backup; a new CA would lock out every player.');
  if (state === 'unregistered') throw new SafetyError(`The ${env} MQTT CA in ${layout.dir} is not registered with the toolkit yet.`, `Register it where it is: make mqtt-certs ENV=${env} ARGS="adopt".`);
  if (!(await keyMatchesCert(layout.caKey, layout.caCrt))) throw new SafetyError(`${layout.caKey} does not belong to ${layout.caCrt}: a certificate it signs would be refused by the broker.`, 'Restore the ca.key that matches ca.crt; do not make a new CA.');
}

export interface CertsOptions {
  dryRun: boolean;
  force: boolean;
  days: number | undefined;
  crlDays: number;
  confirm: Confirm;
  now?: () => Date;
  /** The running broker: told to re-read the CRL, and a revoked player's sessions are cut. Absent: not running. */
  broker?: BrokerAccess;
  /** revoke: serials the app issued (players.cert_serial_number, decimal) to revoke besides the toolkit's own. */
  serials?: readonly string[];
  /** renew: replace the broker's certificate too. */
  server?: boolean;
}

export interface Registration {
  adoptedAt: string;
  origin: 'adopted' | 'init';
  ca: { subject: string; serial: string; notAfter: string };
}

export type CertsResult =
  | { command: 'init' | 'adopt'; env: Environment; dir: string; done: string[]; notes: string[] }
  | { command: 'issue'; env: Environment; dir: string; device: string; serial: string; notAfter: string; files: string[]; done: string[] }
  | { command: 'revoke'; env: Environment; dir: string; device: string; serials: string[]; done: string[]; cutOff?: { closed: ClientAddress[]; ms: number }; notes: string[] }
  | { command: 'renew'; env: Environment; dir: string; serial: string; notAfter: string; nextUpdate: string; kept: number; done: string[]; notes: string[] }
  | { command: 'list'; env: Environment; dir: string; algorithm: string; origin: string; ca: { subject: string; serial: string; notAfter: string }; crl: { nextUpdate: string; revoked: number; expired: boolean }; certificates: IndexEntry[]; warnings: string[] };

async function register(layout: CertsLayout, origin: Registration['origin'], now: Date): Promise<Registration> {
  const ca = await certFacts(layout.caCrt);
  const reg: Registration = { adoptedAt: now.toISOString(), origin, ca: { subject: ca.subject, serial: ca.serial, notAfter: ca.notAfter.toISOString() } };
  await writeFileAtomic(layout.registration, `${JSON.stringify(reg, null, 2)}\n`, 0o644);
  return reg;
}

/** Tells the running broker to re-read the CRL (and server certificate): a SIGHUP, which keeps every connected client. */
async function reloadBroker(o: CertsOptions, notes: string[]): Promise<void> {
  if (!o.broker) notes.push('the broker is not running: it reads the new files when it starts');
  else await o.broker.reload();
}

/** `init`: a new CA, only for an environment that has none (a second CA would lock out every player in the field). */
export async function initCa(s: CertsSettings, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  const sub = subjects(s.env, s.publicHost);
  const found = [layout.caCrt, layout.caKey].filter(exists);
  if (found.length) {
    throw new SafetyError(`The ${s.env} MQTT CA already exists: ${found.join(' and ')}; a new one would lock out every player it signed.`, stateOf(layout) === 'registered' ? `Keep it: issue players with make mqtt-certs ENV=${s.env} ARGS="issue <player-key>".` : `Register it where it is: make mqtt-certs ENV=${s.env} ARGS="adopt".`);
  }
  const done = [
    `create the CA database (index.txt, serial, crlnumber, newcerts/) in ${s.dir}`,
    `generate the CA key ca.key (RSA ${appCa.keyBits}, 0600) and self-sign ca.crt (${o.days ?? defaultDays.ca} days)`,
    `issue the broker certificate server.crt and key server.key (${defaultDays.server} days, SANs ${serverSans(s.env, s.publicHost).join(', ')})`,
    `sign an empty CRL crl.pem (next update in ${o.crlDays} days)`,
  ];
  if (o.dryRun) return { command: 'init', env: s.env, dir: s.dir, done: done.map((d) => `would ${d}`), notes: [] };
  await mkdir(s.dir, { recursive: true, mode: 0o755 });
  return withLock(layout.lock, 'mqtt-certs', async () => {
    const notes: string[] = [];
    await ensureDatabase(s, layout);
    await newKey(layout.caKey, appCa.keyBits);
    await writeFileAtomic(layout.caCrt, await openssl(opensslArgv.selfSignCa(layout.cnf, layout.caKey, sub.ca, o.days ?? defaultDays.ca)), 0o644);
    await writeFileAtomic(layout.serverCrt, await issueCert(layout, { subject: sub.server, keyFile: layout.serverKey, keyBits: appCa.keyBits, days: defaultDays.server, extensions: 'server_ext', now }), 0o644);
    await writeCrl(layout, [], o.crlDays);
    await register(layout, 'init', now);
    const note = await handServerKeyToBroker(s, layout);
    if (note) notes.push(note);
    return { command: 'init', env: s.env, dir: s.dir, done, notes };
  });
}

/**
 * `adopt`: registers the CA the app's broker made (ca.crt + ca.key, server certificate, CRL) where
 * it is. Nothing is re-keyed or copied; the toolkit only adds its own database beside it. The key
 * must match the certificate, and the server certificate and CRL must be the CA's.
 */
export async function adoptCa(s: CertsSettings, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  const state = stateOf(layout);
  if (state === 'none') throw new ConfigError(`There is no CA to adopt in ${s.dir} (no ca.crt, no ca.key).`, [], `Point MQTT_CERTS_DIR in compose/.env.${s.env} at the app's mqtt/certs folder, or create a CA with init.`);
  if (state === 'partial') throw new SafetyError(`Only one of ca.crt and ca.key is in ${s.dir}.`, 'Restore the missing file from a backup (the app refuses to start its broker like this too).');
  if (!(await keyMatchesCert(layout.caKey, layout.caCrt))) throw new SafetyError(`${layout.caKey} does not belong to ${layout.caCrt}.`, 'Restore the ca.key that matches ca.crt (the players trust ca.crt); do not make a new CA.');
  if (exists(layout.serverCrt) && !(await signedBy(layout.caCrt, { crt: layout.serverCrt }))) throw new SafetyError(`${layout.serverCrt} was not signed by ${layout.caCrt}.`, 'Players would refuse that broker; sort the folder out by hand first.');
  if (exists(layout.crl) && !(await signedBy(layout.caCrt, { crl: layout.crl }))) throw new SafetyError(`${layout.crl} was not signed by ${layout.caCrt}.`, 'The broker would refuse every player with it; sort the folder out by hand first.');
  const ca = await certFacts(layout.caCrt);
  const revoked = exists(layout.crl) ? (await readCrl(layout.crl)).revoked.length : 0;
  if (state === 'registered') return { command: 'adopt', env: s.env, dir: s.dir, done: [`nothing: the CA ${ca.subject} (serial ${ca.serial}) is registered already`], notes: [] };
  const done = [
    `register the CA ${ca.subject} (serial ${ca.serial}, expires ${ca.notAfter.toISOString()}) where it is: ${layout.caCrt}, ${layout.caKey} (not copied, not re-keyed)`,
    exists(layout.serverCrt) ? `keep the broker certificate ${layout.serverCrt}` : `note: there is no server.crt (the app's broker makes one on start)`,
    exists(layout.crl) ? `keep ${layout.crl} with its ${revoked} revocation(s)` : `sign an empty CRL ${layout.crl} (next update in ${o.crlDays} days)`,
    `add the toolkit's database beside it (index.txt, serial, crlnumber, newcerts/, devices/, openssl.cnf, makapix-ops.json)`,
  ];
  if (o.dryRun) return { command: 'adopt', env: s.env, dir: s.dir, done: done.map((d) => `would ${d}`), notes: [] };
  return withLock(layout.lock, 'mqtt-certs', async () => {
    await ensureDatabase(s, layout);
    if (!exists(layout.crl)) await writeCrl(layout, [], o.crlDays);
    await register(layout, 'adopted', now);
    return { command: 'adopt', env: s.env, dir: s.dir, done, notes: [] };
  });
}

/** `issue <player-key>`: a player certificate exactly as the app's api mints one (appDeviceCert). */
export async function issueDevice(s: CertsSettings, device: string, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const name = validatePlayerKey(device, s.serviceUsers);
  const files = deviceFiles(layout, name);
  const now = o.now?.() ?? new Date();
  await requireCa(layout, s.env);
  return withLock(layout.lock, 'mqtt-certs', async () => {
    const existing = currentEntry(await loadIndex(layout), 'device', name, now);
    if (existing && !o.force) throw new UsageError(`The ${s.env} player ${name} already has a certificate (serial ${existing.serial}).`, 'Revoke it first, or add --force to revoke it and issue a new one.');
    const days = o.days ?? defaultDays.device;
    const done = [
      ...(existing ? [`revoke the current certificate ${existing.serial} and re-sign crl.pem keeping every entry`] : []),
      `issue ${files.crt} (RSA ${appDeviceCert.keyBits}, ${days} days, CN=${name}, SAN ${appDeviceCert.san(name)}), ${files.key} (0600) and ${files.bundle} (0600)`,
    ];
    if (o.dryRun) return { command: 'issue', env: s.env, dir: s.dir, device: name, serial: '', notAfter: '', files: [files.crt, files.key, files.bundle], done: done.map((d) => `would ${d}`) };
    await ensureDatabase(s, layout);
    if (existing) await revokeEntries(layout, [existing], name, o.crlDays, now);
    const crt = await issueCert(layout, { subject: appDeviceCert.subject(name), keyFile: files.key, keyBits: appDeviceCert.keyBits, days, extensions: 'device_ext', extfile: deviceExtensions(name), now });
    await writeFileAtomic(files.crt, crt, 0o644);
    const bundle = renderBundle({ device: name, env: s.env, host: s.publicHost, port: s.publicPort, key: await readFile(files.key, 'utf8'), crt, ca: await readFile(layout.caCrt, 'utf8') });
    await writeFileAtomic(files.bundle, bundle, 0o600);
    const entry = currentEntry(await loadIndex(layout), 'device', name, now)!;
    return { command: 'issue', env: s.env, dir: s.dir, device: name, serial: entry.serial, notAfter: entry.notAfter, files: [files.crt, files.key, files.bundle], done };
  });
}

/** Marks the toolkit's own entries revoked, re-signs the CRL with them (and `extra`, the app's serials), then retires the player's files. */
async function revokeEntries(layout: CertsLayout, entries: readonly IndexEntry[], name: string, crlDays: number, now: Date, extra: readonly string[] = []): Promise<{ kept: number }> {
  for (const e of entries) await openssl(opensslArgv.revoke(layout.cnf, path.join(layout.newcerts, `${e.serial}.pem`)));
  const { kept } = await writeCrl(layout, extra.map((serial) => ({ serial, revokedAt: now })), crlDays);
  const files = deviceFiles(layout, name);
  if (entries.length) {
    await mkdir(layout.revoked, { recursive: true, mode: 0o700 });
    if (exists(files.crt)) await rename(files.crt, path.join(layout.revoked, `${name}.${entries.at(-1)!.serial}.crt`));
    await rm(files.key, { force: true });
    await rm(files.bundle, { force: true });
  }
  return { kept };
}

/**
 * `revoke <player-key>`: the player's certificates go on the CRL (every entry already there stays),
 * the broker re-reads it, and the player's live sessions are cut (disconnectUser): revoke returns
 * only once none is left.
 */
export async function revokeDevice(s: CertsSettings, device: string, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const name = validatePlayerKey(device, s.serviceUsers);
  const now = o.now?.() ?? new Date();
  await requireCa(layout, s.env);
  const ours = (await loadIndex(layout)).filter((e) => e.kind === 'device' && e.name === name && e.status === 'valid');
  const appSerials = (o.serials ?? []).map(normalizeSerial).filter((x) => !ours.some((e) => e.serial === x));
  if (!ours.length && !appSerials.length) throw new UsageError(`The toolkit issued no certificate in force for the ${s.env} player ${name}.`, `A certificate the app issued is revoked by its serial: add --serial <players.cert_serial_number>; see make mqtt-certs ENV=${s.env} ARGS="list".`);
  const serials = [...ours.map((e) => e.serial), ...appSerials];
  const done = [
    `revoke ${name}: serial(s) ${serials.join(', ')}`,
    `re-sign crl.pem keeping every entry already in it (next update in ${o.crlDays} days)`,
    o.broker ? `reload ${o.broker.name} (SIGHUP) and close every live session of ${name} (ss -K)` : 'the broker is not running: it reads the CRL when it starts',
    ...(ours.length ? ['move its certificate to devices/revoked/ and delete its key and bundle'] : []),
  ];
  if (o.dryRun) return { command: 'revoke', env: s.env, dir: s.dir, device: name, serials, done: done.map((d) => `would ${d}`), notes: [] };
  await o.confirm(`Revoke the ${s.env} player ${name} (serial ${serials.join(', ')})? It is disconnected now and can no longer connect.`);
  return withLock(layout.lock, 'mqtt-certs', async () => {
    await ensureDatabase(s, layout);
    const notes: string[] = [];
    const { kept } = await revokeEntries(layout, ours, name, o.crlDays, now, appSerials);
    notes.push(`${kept} revocation(s) already in crl.pem kept`);
    await reloadBroker(o, notes);
    const cutOff = o.broker ? await disconnectUser(o.broker, name) : undefined;
    return { command: 'revoke', env: s.env, dir: s.dir, device: name, serials, done, notes, ...(cutOff && { cutOff }) };
  });
}

/** `renew`: re-signs the CRL for `crlDays` keeping every entry (what the app's worker does nightly); `--server` also replaces the broker's certificate. */
export async function renewCerts(s: CertsSettings, o: CertsOptions): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  await requireCa(layout, s.env);
  const done = [
    ...(o.server ? [`issue a new server.key and server.crt (${o.days ?? defaultDays.server} days, SANs ${serverSans(s.env, s.publicHost).join(', ')})`] : []),
    `re-sign crl.pem keeping every entry (next update in ${o.crlDays} days)`,
    o.broker ? `reload ${o.broker.name} (SIGHUP: no client is dropped)` : 'the broker is not running: it reads the files when it starts',
  ];
  if (o.dryRun) return { command: 'renew', env: s.env, dir: s.dir, serial: '', notAfter: '', nextUpdate: '', kept: 0, done: done.map((d) => `would ${d}`), notes: [] };
  return withLock(layout.lock, 'mqtt-certs', async () => {
    await ensureDatabase(s, layout);
    const notes: string[] = [];
    if (o.server) {
      // The new key is made beside the live one and swapped in only with its certificate.
      const key = temporaryName(layout.serverKey);
      try {
        const crt = await issueCert(layout, { subject: subjects(s.env, s.publicHost).server, keyFile: key, keyBits: appCa.keyBits, days: o.days ?? defaultDays.server, extensions: 'server_ext', now });
        await rename(key, layout.serverKey);
        await writeFileAtomic(layout.serverCrt, crt, 0o644);
      } finally {
        await rm(key, { force: true });
      }
      const note = await handServerKeyToBroker(s, layout);
      if (note) notes.push(note);
    }
    const { crl, kept } = await writeCrl(layout, [], o.crlDays);
    await reloadBroker(o, notes);
    const server = await certFacts(layout.serverCrt).catch(() => undefined);
    return { command: 'renew', env: s.env, dir: s.dir, serial: server?.serial ?? '', notAfter: server?.notAfter.toISOString() ?? '', nextUpdate: crl.nextUpdate.toISOString(), kept, done, notes };
  });
}

export async function listCerts(s: CertsSettings, o: Pick<CertsOptions, 'now'>): Promise<CertsResult> {
  const layout = certsLayout(s.dir);
  const now = o.now?.() ?? new Date();
  await requireCa(layout, s.env);
  const reg = JSON.parse(await readFile(layout.registration, 'utf8')) as Registration;
  const caInfo = await certFacts(layout.caCrt);
  const ca = { subject: caInfo.subject, serial: caInfo.serial, notAfter: caInfo.notAfter.toISOString() };
  const crl = exists(layout.crl) ? await readCrl(layout.crl) : undefined;
  const certificates = (await loadIndex(layout)).map((e) => (e.status === 'valid' && Date.parse(e.notAfter) <= now.getTime() ? { ...e, status: 'expired' as const } : e));
  const soon = (d: Date | string) => new Date(d).getTime() - now.getTime() < warnDays * 86_400_000;
  const warnings: string[] = [];
  const expired = crl !== undefined && crl.nextUpdate.getTime() <= now.getTime();
  if (!crl) warnings.push('crl.pem is missing: the broker will not start; run renew');
  else if (expired) warnings.push(`the CRL expired: its next update (${crl.nextUpdate.toISOString()}) has passed, so the broker refuses EVERY player; run renew now`);
  else if (soon(crl.nextUpdate)) warnings.push(`the CRL's next update (${crl.nextUpdate.toISOString()}) is near: past it the broker refuses EVERY player; run renew`);
  const server = exists(layout.serverCrt) ? await certFacts(layout.serverCrt) : undefined;
  if (!server) warnings.push('there is no server certificate: run renew --server');
  else if (soon(server.notAfter)) warnings.push(`the server certificate expires ${server.notAfter.toISOString()}: run renew --server`);
  if (soon(ca.notAfter)) warnings.push(`the CA expires ${ca.notAfter}: plan a new CA and re-issue every player`);
  return { command: 'list', env: s.env, dir: s.dir, algorithm: keyAlgorithm, origin: reg.origin, ca, crl: { nextUpdate: crl?.nextUpdate.toISOString() ?? '', revoked: crl?.revoked.length ?? 0, expired }, certificates, warnings };
}

export function renderCertsResult(r: CertsResult, out: NodeJS.WritableStream = process.stdout): void {
  if (r.command === 'list') {
    out.write(`${r.env} MQTT CA in ${r.dir} (${r.origin}; ${r.algorithm})\n  CA       ${r.ca.subject}, serial ${r.ca.serial}, expires ${r.ca.notAfter}\n  CRL      next update ${r.crl.nextUpdate || 'MISSING'}${r.crl.expired ? ' (EXPIRED)' : ''}, ${r.crl.revoked} revoked (the app's revocations included)\n`);
    for (const c of r.certificates) out.write(`  ${c.kind.padEnd(7)}  ${c.subject}\n           serial ${c.serial}, ${c.status}, expires ${c.notAfter}${c.revokedAt ? `, revoked ${c.revokedAt}` : ''}\n`);
    for (const w of r.warnings) out.write(`WARNING: ${w}\n`);
    return;
  }
  for (const d of r.done) out.write(`- ${d}\n`);
  if ('notes' in r) for (const n of r.notes) out.write(`note: ${n}\n`);
  if (r.command === 'issue' && r.serial) out.write(`Player ${r.device}: serial ${r.serial}, expires ${r.notAfter}. Give the player ${r.files[2]} (it holds its private key).\n`);
  if (r.command === 'revoke' && r.cutOff) out.write(`${r.device}: ${r.cutOff.closed.length} live session(s) closed; none left after ${r.cutOff.ms} ms.\n`);
}

/** list fails (exit 1) when the CRL has expired: every player is refused until renew. */
export const certsExitCode = (r: CertsResult): ExitCode => (r.command === 'list' && r.crl.expired ? Exit.failed : Exit.ok);

/** The environment's broker container when it runs; undefined when it does not (it reads the CRL when it starts). */
async function runningBroker(env: Environment): Promise<BrokerAccess | undefined> {
  const container = `${projectName(env)}-mqtt`;
  const r = await run({ cmd: 'docker', argv: ['inspect', '--format', '{{.State.Running}}', container] }, { nothrow: true });
  return r.exitCode === 0 && r.stdout.trim() === 'true' ? containerBroker(container) : undefined;
}

const commands = ['init', 'adopt', 'issue', 'revoke', 'renew', 'list'] as const;

/** What `make mqtt-certs` does, from parsed flags. */
export async function runMqttCerts(o: { cfg: EnvConfig; positionals: readonly string[]; days: number | undefined; crlDays: number; force: boolean; server: boolean; serials: readonly string[]; dryRun: boolean; confirm: Confirm }): Promise<CertsResult> {
  const [command, device, ...extra] = o.positionals;
  const takesDevice = command === 'issue' || command === 'revoke';
  if (!commands.includes(command as (typeof commands)[number])) throw new UsageError(`Unknown command ${JSON.stringify(command ?? '')}.`, 'Use init, adopt, issue <player-key>, revoke <player-key>, renew or list.');
  if (extra.length || (!takesDevice && device !== undefined)) throw new UsageError(`Too many arguments for ${command}.`, takesDevice ? `${command} takes one player key.` : `${command} takes no name.`);
  const s = certsSettings(o.cfg);
  if (takesDevice) validatePlayerKey(device, s.serviceUsers);
  const serials = o.serials.map(normalizeSerial);
  const opts: CertsOptions = { dryRun: o.dryRun, force: o.force, days: o.days, crlDays: o.crlDays, confirm: o.confirm, server: o.server, serials };
  if ((command === 'revoke' || command === 'renew') && !o.dryRun) {
    const broker = await runningBroker(o.cfg.env);
    if (broker) opts.broker = broker;
  }
  switch (command) {
    case 'init':
      return initCa(s, opts);
    case 'adopt':
      return adoptCa(s, opts);
    case 'issue':
      return issueDevice(s, device!, opts);
    case 'revoke':
      return revokeDevice(s, device!, opts);
    case 'renew':
      return renewCerts(s, opts);
    default:
      return listCerts(s, opts);
  }
}
