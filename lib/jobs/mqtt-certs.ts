import { readFile, writeFile, rm, mkdir, chmod, chown, stat, rename, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { $ } from 'zx';
import { ConfigError, JobError, UsageError } from '../core/errors.ts';
import { writeFileAtomic, temporaryName } from '../core/atomic-file.ts';
import { withLock } from '../core/lock.ts';
import { projectName } from '../tools/compose.ts';
import { loadEnvConfig, type EnvConfig, type Environment } from '../core/config.ts';
import type { Confirm } from '../core/ui.ts';

/**
 * Each environment's own MQTT PKI: a CA, the broker's server certificate and one client certificate
 * per player, kept in the env's MQTT_CERTS_DIR (mounted into its broker at /mosquitto/certs).
 *
 * Algorithm: ECDSA on P-256 (secp256r1) with SHA-256 everywhere. ESP32 players run mbedTLS, whose
 * default build handles P-256 and ECDHE-ECDSA in hardware-friendly time and memory; RSA 3072 would
 * cost them seconds per handshake and several KiB of RAM, for no gain in strength (P-256 ≈ RSA 3072).
 */
export const keyAlgorithm = 'ECDSA P-256, SHA-256';

/** Validity in days. The CA outlives everything it signs; a device certificate is rarely replaced
 *  in the field, so it lasts long; the server certificate is renewed by us (`renew`), so it is shorter;
 *  the CRL's next update is far away because Mosquitto refuses EVERY client once it has passed. */
export const defaultDays = { ca: 7300, server: 825, device: 3650, crl: 3650 } as const;
/** `list` warns when the CRL or the server certificate gets this close to its date. */
export const warnDays = 60;

export type CertKind = 'server' | 'device';

export interface CertsLayout {
  dir: string;
  caKey: string;
  caCrt: string;
  serverKey: string;
  serverCrt: string;
  crl: string;
  devices: string;
  revoked: string;
  cnf: string;
  index: string;
  serial: string;
  crlnumber: string;
  newcerts: string;
  lock: string;
}

/** File names the Mosquitto config relies on (compose/mosquitto/mosquitto.conf): ca.crt, server.crt, server.key, crl.pem. */
export function certsLayout(dir: string): CertsLayout {
  const f = (...p: string[]) => path.join(dir, ...p);
  return {
    dir,
    caKey: f('ca.key'),
    caCrt: f('ca.crt'),
    serverKey: f('server.key'),
    serverCrt: f('server.crt'),
    crl: f('crl.pem'),
    devices: f('devices'),
    revoked: f('devices', 'revoked'),
    cnf: f('openssl.cnf'),
    index: f('index.txt'),
    serial: f('serial'),
    crlnumber: f('crlnumber'),
    newcerts: f('newcerts'),
    lock: f('.mqtt-certs.lock'),
  };
}

export const deviceFiles = (layout: CertsLayout, device: string) => ({
  crt: path.join(layout.devices, `${device}.crt`),
  key: path.join(layout.devices, `${device}.key`),
  bundle: path.join(layout.devices, `${device}.bundle.pem`),
});

export function validateDeviceName(name: string | undefined): string {
  if (name !== undefined && /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) return name;
  throw new UsageError(`The device name ${JSON.stringify(name ?? '')} is not allowed: use 1 to 64 characters from A-Z, a-z, 0-9, ".", "_" and "-", starting with a letter or digit.`, 'It becomes the certificate CN and the MQTT user name, e.g. player-0017.');
}

export function parseDays(value: string | undefined, fallback: number, flag: string): number {
  if (value === undefined) return fallback;
  if (/^\d+$/.test(value) && +value >= 1 && +value <= 36500) return +value;
  throw new UsageError(`${flag} must be a whole number of days from 1 to 36500, got ${JSON.stringify(value)}.`);
}

const envLabel = (env: Environment) => (env === 'prod' ? 'EA' : 'EB');

/** Subjects (openssl -subj form). OU tells broker and devices apart in the CA database. */
export function subjects(env: Environment, publicHost: string) {
  const o = `/O=Makapix Club/OU=${projectName(env)}`;
  return {
    ca: `${o} mqtt ca/CN=Makapix ${envLabel(env)} MQTT CA`,
    server: `${o} mqtt broker/CN=${publicHost}`,
    device: (name: string) => `${o} mqtt devices/CN=${validateDeviceName(name)}`,
  };
}

/** The names players and services reach the broker by: the public host, the container, the network alias. */
export function serverSans(env: Environment, publicHost: string): string[] {
  return [...new Set([publicHost, `${projectName(env)}-mqtt`, 'mqtt'])].map((h) => `DNS:${h}`);
}

/** The openssl configuration of this CA; written into the folder so an operator can use it by hand too. */
export function renderOpensslConfig(layout: CertsLayout, env: Environment, publicHost: string): string {
  return `# The ${envLabel(env)} (${env}) MQTT CA. Written by scripts/mqtt-certs.ts from compose/.env.${env}; rewritten on each run.
[ ca ]
default_ca = makapix_ca

[ makapix_ca ]
dir = ${layout.dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.crt
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = ${defaultDays.crl}
policy = policy_makapix
# A device can be issued again under the same name once its old certificate is revoked.
unique_subject = no
copy_extensions = none
preserve = yes
email_in_dn = no
crl_extensions = crl_ext

[ policy_makapix ]
organizationName = supplied
organizationalUnitName = supplied
commonName = supplied

[ req ]
distinguished_name = req_dn
string_mask = utf8only

[ req_dn ]

[ ca_ext ]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${serverSans(env, publicHost).join(', ')}

[ device_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ crl_ext ]
authorityKeyIdentifier = keyid
`;
}

/**
 * The one openssl argv builder. Private keys are only ever named by file path (-key, config's
 * private_key) or come back on stdout (genpkey); none is ever an argument.
 */
export const opensslArgv = {
  /** A new P-256 key in PKCS#8 PEM on stdout (mbedTLS reads PKCS#8). */
  genKey: () => ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-pkeyopt', 'ec_param_enc:named_curve'],
  selfSignCa: (cnf: string, key: string, subject: string, days: number) => ['req', '-new', '-x509', '-config', cnf, '-extensions', 'ca_ext', '-key', key, '-subj', subject, '-days', String(days), '-sha256'],
  csr: (cnf: string, key: string, subject: string) => ['req', '-new', '-config', cnf, '-key', key, '-subj', subject, '-sha256'],
  sign: (cnf: string, csr: string, kind: CertKind, days: number, out: string) => ['ca', '-batch', '-config', cnf, '-extensions', `${kind}_ext`, '-days', String(days), '-notext', '-in', csr, '-out', out],
  revoke: (cnf: string, crt: string) => ['ca', '-batch', '-config', cnf, '-revoke', crt, '-crl_reason', 'cessationOfOperation'],
  genCrl: (cnf: string, days: number, out: string) => ['ca', '-batch', '-config', cnf, '-gencrl', '-crldays', String(days), '-out', out],
  certInfo: (crt: string) => ['x509', '-in', crt, '-noout', '-subject', '-serial', '-enddate', '-nameopt', 'compat'],
  crlInfo: (crl: string) => ['crl', '-in', crl, '-noout', '-nextupdate'],
} as const;

// ---- the CA database (index.txt) ------------------------------------------------------------

export interface IndexEntry {
  status: 'valid' | 'revoked' | 'expired';
  notAfter: string;
  revokedAt?: string;
  serial: string;
  subject: string;
  kind: CertKind | 'other';
  name: string;
}

/** openssl's index dates: UTCTime YYMMDDHHMMSSZ (years 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ. */
export function parseIndexDate(text: string): string {
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) throw new ConfigError(`"${text}" is not a date in the CA database.`);
  const year = m[1]!.length === 4 ? m[1]! : String(+m[1]! < 50 ? 2000 + +m[1]! : 1900 + +m[1]!);
  return `${year}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}

/** Parses openssl's index.txt (tab-separated: status, expiry, revocation, serial, file, subject). */
export function parseIndex(text: string, file = 'index.txt'): IndexEntry[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line, i) => {
      const cols = line.split('\t');
      if (cols.length !== 6 || !['V', 'R', 'E'].includes(cols[0]!)) throw new ConfigError(`${file}:${i + 1}: not a line of an openssl CA database.`, [], 'Restore the certificates folder from a backup.');
      const [status, expiry, revocation, serial, , subject] = cols as [string, string, string, string, string, string];
      const ou = /\/OU=([^/]*)/.exec(subject)?.[1] ?? '';
      const kind: IndexEntry['kind'] = ou.endsWith(' mqtt broker') ? 'server' : ou.endsWith(' mqtt devices') ? 'device' : 'other';
      return {
        status: status === 'V' ? 'valid' : status === 'R' ? 'revoked' : 'expired',
        notAfter: parseIndexDate(expiry),
        ...(status === 'R' && { revokedAt: parseIndexDate(revocation.split(',')[0]!) }),
        serial,
        subject,
        kind,
        name: /\/CN=([^/]*)/.exec(subject)?.[1] ?? '',
      };
    });
}

/** The certificate currently in force for a device or the server: valid in the database and not past its date. */
export function currentEntry(entries: readonly IndexEntry[], kind: CertKind, name: string | undefined, now: Date): IndexEntry | undefined {
  return entries.filter((e) => e.kind === kind && (name === undefined || e.name === name) && e.status === 'valid' && Date.parse(e.notAfter) > now.getTime()).at(-1);
}

/** What `init` still has to do, in order, given which files exist. */
export type InitStep = 'database' | 'ca-key' | 'ca-cert' | 'server' | 'crl';
export function planInit(has: { database: boolean; caKey: boolean; caCrt: boolean; server: boolean; crl: boolean }): InitStep[] {
  if (has.caCrt && !has.caKey) throw new ConfigError('The CA certificate ca.crt is there but its key ca.key is missing.', [], 'Restore ca.key from a backup, or start a new CA with init --force (every device certificate must then be issued again).');
  const steps: InitStep[] = [];
  if (!has.database) steps.push('database');
  if (!has.caKey) steps.push('ca-key');
  if (!has.caCrt) steps.push('ca-cert');
  if (!has.server || !has.caCrt) steps.push('server');
  if (!has.crl || !has.caCrt) steps.push('crl');
  return steps;
}

/** "Nov 25 20:06:15 2036 GMT" (openssl's default date form) → ISO. */
export function parseOpensslDate(text: string): string {
  const t = Date.parse(text.trim().replace(/ GMT$/, ' UTC'));
  if (Number.isNaN(t)) throw new JobError(`openssl printed a date this tool cannot read: "${text.trim()}".`);
  return new Date(t).toISOString().replace(/\.000Z$/, 'Z');
}

/** The bundle a player loads: its key, its certificate and the CA that signed the broker's. */
export function renderBundle(o: { device: string; env: Environment; host: string; port: number; key: string; crt: string; ca: string }): string {
  return [
    `# Makapix ${envLabel(o.env)} (${o.env}) MQTT client bundle for ${o.device}: broker ${o.host}:${o.port}, mutual TLS.`,
    '# Contains the PRIVATE KEY of this device: keep it secret. Order: device key, device certificate, CA certificate.',
    o.key.trim(),
    o.crt.trim(),
    o.ca.trim(),
    '',
  ].join('\n');
}

// ---- the runners ---------------------------------------------------------------------------

async function openssl(argv: readonly string[]): Promise<string> {
  const r = await $({ quiet: true, nothrow: true })`openssl ${argv}`;
  if (r.exitCode !== 0) {
    // stderr of openssl names files and reasons, never key material (keys only ever sit in files).
    const why = `${r.stderr}`.trim().split('\n').slice(-3).join(' / ').slice(0, 600);
    throw new JobError(`openssl ${argv[0]} failed: ${why || `exit ${r.exitCode}`}.`, 'Run again with --verbose; check the certificates folder is intact.');
  }
  return `${r.stdout}`;
}

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
  | { command: 'list'; env: Environment; dir: string; algorithm: string; ca: { subject: string; serial: string; notAfter: string }; crl: { nextUpdate: string; revoked: number }; certificates: IndexEntry[]; warnings: string[] };

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
  if (!nextUpdate) warnings.push('crl.pem is missing: the broker will not start; run renew');
  else if (soon(nextUpdate)) warnings.push(`the CRL's next update (${nextUpdate}) is near: past it the broker refuses EVERY device; run renew`);
  const server = currentEntry(certificates, 'server', undefined, now);
  if (!server) warnings.push('there is no valid server certificate: run renew');
  else if (soon(server.notAfter)) warnings.push(`the server certificate expires ${server.notAfter}: run renew`);
  if (soon(ca.notAfter)) warnings.push(`the CA expires ${ca.notAfter}: plan a new CA (init --force) and re-issue every device`);
  return { command: 'list', env: s.env, dir: s.dir, algorithm: keyAlgorithm, ca, crl: { nextUpdate, revoked: certificates.filter((c) => c.status === 'revoked').length }, certificates, warnings };
}

export function renderCertsResult(r: CertsResult, out: NodeJS.WritableStream = process.stdout): void {
  if (r.command === 'list') {
    out.write(`${r.env} MQTT CA in ${r.dir} (${r.algorithm})\n  CA       ${r.ca.subject}, serial ${r.ca.serial}, expires ${r.ca.notAfter}\n  CRL      next update ${r.crl.nextUpdate || 'MISSING'}, ${r.crl.revoked} revoked\n`);
    for (const c of r.certificates) out.write(`  ${c.kind.padEnd(7)}  ${c.subject}\n           serial ${c.serial}, ${c.status}, expires ${c.notAfter}${c.revokedAt ? `, revoked ${c.revokedAt}` : ''}\n`);
    for (const w of r.warnings) out.write(`WARNING: ${w}\n`);
    return;
  }
  for (const d of r.done) out.write(`- ${d}\n`);
  if (r.command === 'init') for (const n of r.notes) out.write(`note: ${n}\n`);
  if (r.command === 'issue' && r.serial) out.write(`Device ${r.device}: serial ${r.serial}, expires ${r.notAfter}. Give the player ${r.files[2]} (it holds its private key).\n`);
  if ((r.command === 'revoke' || r.command === 'renew') && !r.done[0]?.startsWith('would')) out.write(`Tell the ${r.env} broker to read the new ${r.command === 'renew' ? 'certificate and CRL' : 'CRL'} (no client is dropped): docker kill --signal HUP makapix-${r.env}-mqtt\n`);
}

/** What `make mqtt-certs` does, from parsed flags. */
export async function runMqttCerts(o: { env: Environment; positionals: readonly string[]; days: string | undefined; crlDays: string; force: boolean; dryRun: boolean; confirm: Confirm }): Promise<CertsResult> {
  const [command, device, ...extra] = o.positionals;
  const takesDevice = command === 'issue' || command === 'revoke';
  if (!['init', 'issue', 'revoke', 'renew', 'list'].includes(command ?? '')) throw new UsageError(`Unknown command ${JSON.stringify(command ?? '')}.`, 'Use init, issue <device>, revoke <device>, renew or list.');
  if (extra.length || (!takesDevice && device !== undefined)) throw new UsageError(`Too many arguments for ${command}.`, takesDevice ? `${command} takes one device name.` : `${command} takes no name.`);
  if (takesDevice) validateDeviceName(device);
  const opts: CertsOptions = { dryRun: o.dryRun, force: o.force, days: o.days === undefined ? undefined : parseDays(o.days, 0, '--days'), crlDays: parseDays(o.crlDays, defaultDays.crl, '--crl-days'), confirm: o.confirm };
  const s = certsSettings(loadEnvConfig(o.env));
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
