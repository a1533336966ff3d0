// The MQTT PKI as the Makapix app runs it, as pure decisions: the certificate folder, what a player
// certificate looks like, which names may become one, the toolkit's CA database, what a CRL keeps.
// No I/O here; lib/tools/openssl.ts runs openssl and lib/jobs/mqtt-certs.ts does the work.
import path from 'node:path';
import { projectName, type Environment } from '../core/config.ts';
import { ConfigError, UsageError } from '../core/errors.ts';
import type { CrlFacts, Revocation } from '../tools/openssl.ts';

/**
 * A player's certificate, exactly as the app mints it (api/app/mqtt/cert_generator.py,
 * generate_client_certificate; the validity is CERT_VALIDITY_DAYS in api/app/routers/player.py):
 * RSA-2048, 1095 days, subject C=US/O=Makapix/CN=<player_key>, SAN DNS:player-<player_key>, a random
 * serial. The CN is the MQTT user name (use_identity_as_username), which the ACL's %u patterns match.
 */
export const appDeviceCert = {
  keyBits: 2048,
  days: 1095,
  subject: (playerKey: string) => `/C=US/O=Makapix/CN=${playerKey}`,
  san: (playerKey: string) => `DNS:player-${playerKey}`,
} as const;

/** A new CA as the app's broker makes one on a fresh checkout (mqtt/config/scripts/gen-certs.sh): RSA-4096, 10 years. */
export const appCa = { keyBits: 4096, days: 3650 } as const;

/** The app signs every CRL for 30 days and its worker renews it when 7 or fewer are left (api/app/mqtt/crl_init.py, api/app/tasks.py renew_crl_if_needed). */
export const appCrl = { days: 30, renewWithinDays: 7 } as const;

/** MQTT accounts of services (mqtt/config/scripts/gen-passwd.sh): no device certificate may carry their name. */
export const appServiceUsers = ['svc_backend', 'player_client'] as const;

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * A player key as the CN of a device certificate: the lowercase UUID the app stores (str(UUID)).
 * A service account's name is refused first, with its own reason: under the ACL it would let a
 * device act as the backend.
 */
export function validatePlayerKey(name: string | undefined, serviceUsers: readonly string[] = appServiceUsers): string {
  if (name !== undefined && serviceUsers.includes(name)) {
    throw new UsageError(`${JSON.stringify(name)} is the MQTT account of a service: a device certificate with that CN would act as that service under the broker's ACL.`, 'Issue device certificates for player keys only (the UUID the app stores as players.player_key).');
  }
  if (name !== undefined && uuid.test(name)) return name;
  throw new UsageError(`${JSON.stringify(name ?? '')} is not a player key: the CN of a device certificate is the player's player_key, a lowercase UUID.`, 'Use the player_key from the app (players.player_key), e.g. 3f2b6c1e-8d4a-4e7b-9c1d-2a5e6f708192.');
}

/** Every revocation already in the CRL, plus the new ones (a serial already there keeps its first date). */
export function mergeRevocations(existing: readonly Revocation[], added: readonly Revocation[]): Revocation[] {
  const out = new Map(existing.map((r) => [r.serial, r]));
  for (const r of added) if (!out.has(r.serial)) out.set(r.serial, r);
  return [...out.values()];
}

/** An ASN.1 time as openssl's index.txt wants it: UTCTime up to 2049, GeneralizedTime after. */
export function indexDate(d: Date): string {
  const iso = d.toISOString();
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return d.getUTCFullYear() < 2050 ? digits.slice(2) : digits;
}

/**
 * A throwaway openssl CA database holding exactly `revoked`: `openssl ca -gencrl` over it signs a CRL
 * with those entries and no other. (openssl needs an expiry and subject per line; a CRL uses neither.)
 */
export function revocationIndex(revoked: readonly Revocation[]): string {
  return revoked.map((r) => `R\t20991231235959Z\t${indexDate(r.revokedAt)}${r.reason ? `,${r.reason}` : ''}\t${r.serial}\tunknown\t/CN=unknown\n`).join('');
}

/** The next CRL number: one past the current CRL's (the app's CRLs carry none: start at 1). */
export const nextCrlNumber = (current: CrlFacts | undefined) => ((current?.number ?? 0n) + 1n).toString(16).toUpperCase().padStart(2, '0');

export type CrlLoad = 'loaded' | 'pending' | 'not-loaded' | 'unknown';

/**
 * Whether the broker runs the CRL on disk: its watcher records the hash of the CRL it last loaded
 * (compose/mosquitto/watch-crl.sh). A file younger than `graceMs` may simply not have been seen yet.
 */
export function crlLoadState(o: { fileSha: string; loadedSha: string | undefined; fileAgeMs: number; graceMs: number }): CrlLoad {
  if (o.loadedSha === undefined) return 'unknown';
  if (o.loadedSha === o.fileSha) return 'loaded';
  return o.fileAgeMs < o.graceMs ? 'pending' : 'not-loaded';
}

// ---- the certificate folder (an environment's MQTT_CERTS_DIR) -------------------------------------

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
  /** The toolkit's record that it manages this CA (made by init, or by adopt for the app's). */
  registration: string;
  lock: string;
}

/** The folder's files. Those the broker config reads (compose/mosquitto/mosquitto.conf, and the app's mqtt/config/mosquitto.conf): ca.crt, server.crt, server.key, crl.pem. */
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
    registration: f('makapix-ops.json'),
    lock: f('.mqtt-certs.lock'),
  };
}

export const deviceFiles = (layout: CertsLayout, device: string) => ({
  crt: path.join(layout.devices, `${device}.crt`),
  key: path.join(layout.devices, `${device}.key`),
  bundle: path.join(layout.devices, `${device}.bundle.pem`),
});

export const keyAlgorithm = `RSA as the app: CA ${appCa.keyBits} bits, players ${appDeviceCert.keyBits} bits`;

/** Validity in days: the CA and players as the app makes them; the CRL as the app signs it (its worker renews it nightly when 7 days are left). */
export const defaultDays = { ca: appCa.days, server: 825, device: appDeviceCert.days, crl: appCrl.days } as const;
/** `list` warns when the CRL or the server certificate gets this close to its date. */
export const warnDays = 14;

export type CertKind = 'server' | 'device';


const envLabel = (env: Environment) => (env === 'prod' ? 'EA' : 'EB');

/** Subjects (openssl -subj form) of what `init` makes; players get the app's subject (appDeviceCert). */
export function subjects(env: Environment, publicHost: string) {
  const o = `/O=Makapix Club/OU=${projectName(env)}`;
  return { ca: `${o} mqtt ca/CN=Makapix ${envLabel(env)} MQTT CA`, server: `${o} mqtt broker/CN=${publicHost}` };
}

/** The names players and services reach the broker by: the public host, the container, the network alias. */
export function serverSans(env: Environment, publicHost: string): string[] {
  return [...new Set([publicHost, `${projectName(env)}-mqtt`, 'mqtt'])].map((h) => `DNS:${h}`);
}

/** The openssl configuration of the toolkit's side of this CA; written into the folder so an operator can use it by hand too. */
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
# A player can be issued again under the same key once its old certificate is revoked.
unique_subject = no
copy_extensions = none
preserve = yes
email_in_dn = no
crl_extensions = crl_ext

[ policy_makapix ]
countryName = optional
organizationName = optional
organizationalUnitName = optional
commonName = supplied

[ req ]
distinguished_name = req_dn
string_mask = utf8only

[ req_dn ]

[ ca_ext ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${serverSans(env, publicHost).join(', ')}

[ crl_ext ]
authorityKeyIdentifier = keyid
`;
}

/** A player's only extension, as the app's: its SAN (written per player into a throwaway file). */
export const deviceExtensions = (playerKey: string) => `[ device_ext ]\nsubjectAltName = ${appDeviceCert.san(playerKey)}\n# openssl ca adds these by itself; the app's certificates carry neither.\nsubjectKeyIdentifier = none\nauthorityKeyIdentifier = none\n`;

// ---- the CA database (index.txt): the certificates the toolkit itself signed ------------------

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

const isPlayerKey = (cn: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(cn);

/** Parses openssl's index.txt (tab-separated: status, expiry, revocation, serial, file, subject). */
export function parseIndex(text: string, file = 'index.txt'): IndexEntry[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line, i) => {
      const cols = line.split('\t');
      if (cols.length !== 6 || !['V', 'R', 'E'].includes(cols[0]!)) throw new ConfigError(`${file}:${i + 1}: not a line of an openssl CA database.`, [], 'Restore the certificates folder from a backup.');
      const [status, expiry, revocation, serial, , subject] = cols as [string, string, string, string, string, string];
      const name = /\/CN=([^/]*)/.exec(subject)?.[1] ?? '';
      const ou = /\/OU=([^/]*)/.exec(subject)?.[1] ?? '';
      const kind: IndexEntry['kind'] = ou.endsWith(' mqtt broker') ? 'server' : isPlayerKey(name) ? 'device' : 'other';
      return {
        status: status === 'V' ? 'valid' : status === 'R' ? 'revoked' : 'expired',
        notAfter: parseIndexDate(expiry),
        ...(status === 'R' && { revokedAt: parseIndexDate(revocation.split(',')[0]!) }),
        serial,
        subject,
        kind,
        name,
      };
    });
}

/** The certificate currently in force for a device or the server: valid in the database and not past its date. */
export function currentEntry(entries: readonly IndexEntry[], kind: CertKind, name: string | undefined, now: Date): IndexEntry | undefined {
  return entries.filter((e) => e.kind === kind && (name === undefined || e.name === name) && e.status === 'valid' && Date.parse(e.notAfter) > now.getTime()).at(-1);
}

/** Where an environment's CA stands, from which files exist: what init and adopt may do. */
export type CaState = 'none' | 'partial' | 'unregistered' | 'registered';
export function caState(has: { caKey: boolean; caCrt: boolean; registration: boolean }): CaState {
  if (!has.caKey && !has.caCrt) return 'none';
  if (has.caKey !== has.caCrt) return 'partial';
  return has.registration ? 'registered' : 'unregistered';
}

/** The bundle a player loads: its key, its certificate and the CA that signed the broker's. */
export function renderBundle(o: { device: string; env: Environment; host: string; port: number; key: string; crt: string; ca: string }): string {
  return [
    `# Makapix ${envLabel(o.env)} (${o.env}) MQTT client bundle for player ${o.device}: broker ${o.host}:${o.port}, mutual TLS.`,
    '# Contains the PRIVATE KEY of this player: keep it secret. Order: player key, player certificate, CA certificate.',
    o.key.trim(),
    o.crt.trim(),
    o.ca.trim(),
    '',
  ].join('\n');
}

/** The player key of the certificate `make verify` connects with (issue it once per environment). */
export const verifyPlayerKey = 'e2e00000-0000-4000-8000-00000000e2e0';

