// Each environment's MQTT PKI as pure decisions: where its files live, the subjects, the openssl
// configuration, the CA database (index.txt) and what `init` still has to make.
import path from 'node:path';
import { projectName, type Environment } from '../core/config.ts';
import { ConfigError, JobError, UsageError } from '../core/errors.ts';

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

