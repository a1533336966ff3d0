// openssl, the one tool the MQTT PKI runs: every argv is built here, and private keys are only ever
// named by file path (or come back on stdout from a key generation), never passed as an argument.
import { ConfigError, JobError, UsageError } from '../core/errors.ts';
import { run, tail, type Command } from '../core/exec.ts';

export const opensslCommand = (argv: readonly string[], env?: Record<string, string>): Command => ({ cmd: 'openssl', argv, ...(env && { env }) });

export const opensslArgv = {
  /** An RSA key in PKCS#8 PEM on stdout (what the app's cryptography code writes too). */
  genRsa: (bits: number) => ['genpkey', '-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${bits}`],
  selfSignCa: (cnf: string, key: string, subject: string, days: number) => ['req', '-new', '-x509', '-config', cnf, '-extensions', 'ca_ext', '-key', key, '-subj', subject, '-days', String(days), '-sha256'],
  csr: (cnf: string, key: string, subject: string) => ['req', '-new', '-config', cnf, '-key', key, '-subj', subject, '-sha256'],
  /** Random 159-bit serials, as the app's x509.random_serial_number(). */
  sign: (cnf: string, csr: string, extensions: string, days: number, out: string) => ['ca', '-batch', '-config', cnf, '-rand_serial', '-extensions', extensions, '-days', String(days), '-notext', '-in', csr, '-out', out],
  /** Marks a certificate revoked in the toolkit's own CA database (index.txt); the CRL is made separately. */
  revoke: (cnf: string, crt: string) => ['ca', '-batch', '-config', cnf, '-revoke', crt, '-crl_reason', 'cessationOfOperation'],
  genCrl: (cnf: string, days: number, out: string) => ['ca', '-batch', '-config', cnf, '-gencrl', '-crldays', String(days), '-out', out],
  certInfo: (crt: string) => ['x509', '-in', crt, '-noout', '-subject', '-serial', '-enddate', '-nameopt', 'compat'],
  certPublicKey: (crt: string) => ['x509', '-in', crt, '-noout', '-pubkey'],
  keyPublicKey: (key: string) => ['pkey', '-in', key, '-pubout'],
  verify: (ca: string, crt: string) => ['verify', '-CAfile', ca, crt],
  crlText: (crl: string) => ['crl', '-in', crl, '-noout', '-text'],
  crlVerify: (ca: string, crl: string) => ['crl', '-in', crl, '-CAfile', ca, '-noout'],
  crlNextUpdate: (crl: string) => ['crl', '-in', crl, '-noout', '-nextupdate'],
} as const;

/** Runs openssl; stderr names files and reasons, never key material (keys only ever sit in files). */
export async function openssl(argv: readonly string[], env?: Record<string, string>): Promise<string> {
  const r = await run(opensslCommand(argv, env), { nothrow: true });
  if (r.exitCode !== 0) throw new JobError(`openssl ${argv[0]} failed: ${tail(r.stderr || r.stdout, 3).slice(0, 600) || `exit ${r.exitCode}`}.`, 'Run again with --verbose; check the certificates folder is intact.');
  return r.stdout;
}

export async function readCrl(file: string): Promise<CrlFacts> {
  return parseCrlText(await openssl(opensslArgv.crlText(file)), file);
}

export async function crlNextUpdate(file: string): Promise<Date> {
  const out = await openssl(opensslArgv.crlNextUpdate(file));
  return parseOpensslDate(/nextUpdate=(.*)/.exec(out)?.[1] ?? out);
}

export interface CertFacts {
  subject: string;
  serial: string;
  notAfter: Date;
}

export async function certFacts(crt: string): Promise<CertFacts> {
  const info = await openssl(opensslArgv.certInfo(crt));
  return { subject: /subject=\s*(.*)/.exec(info)![1]!.trim(), serial: /serial=(\S+)/.exec(info)![1]!, notAfter: parseOpensslDate(/notAfter=(.*)/.exec(info)![1]!) };
}

/** Whether a private key belongs to a certificate (the app's own guard against a swapped ca.key). */
export async function keyMatchesCert(key: string, crt: string): Promise<boolean> {
  const [a, b] = await Promise.all([openssl(opensslArgv.keyPublicKey(key)), openssl(opensslArgv.certPublicKey(crt))]);
  return a.trim() === b.trim();
}

/** `openssl verify` / `crl -CAfile`: true when the CA signed it. */
export async function signedBy(ca: string, what: { crt: string } | { crl: string }): Promise<boolean> {
  const argv = 'crt' in what ? opensslArgv.verify(ca, what.crt) : opensslArgv.crlVerify(ca, what.crl);
  return (await run(opensslCommand(argv), { nothrow: true })).exitCode === 0;
}

/** openssl prints dates as "Jan  2 08:09:54 2027 GMT". */
export function parseOpensslDate(text: string): Date {
  const t = Date.parse(text.trim().replace(/ GMT$/, ' UTC'));
  if (Number.isNaN(t)) throw new ConfigError(`openssl printed a date this tool cannot read: "${text.trim()}".`);
  return new Date(t);
}

/** A serial as openssl's index.txt and CRL listings write it: uppercase hex, even length, no leading zero pairs. */
export function normalizeSerial(serial: string): string {
  const s = serial.trim();
  let n: bigint;
  if (/^0x[0-9a-f]+$/i.test(s)) n = BigInt(s);
  else if (/^[0-9]+$/.test(s)) n = BigInt(s); // the app stores serials in decimal (players.cert_serial_number)
  else if (/^[0-9a-f:]+$/i.test(s)) n = BigInt(`0x${s.replaceAll(':', '')}`);
  else throw new UsageError(`${JSON.stringify(serial)} is not a certificate serial.`, 'Give it in decimal, as the app stores it (players.cert_serial_number), or as 0x-prefixed hex.');
  const hex = n.toString(16).toUpperCase();
  return hex.length % 2 ? `0${hex}` : hex;
}

/** Serials in `openssl crl -text` are hex without a prefix; decimal digits only would be misread, so they go through here. */
export const crlSerial = (hex: string) => normalizeSerial(`0x${hex}`);

export interface Revocation {
  serial: string;
  revokedAt: Date;
  /** openssl's name (keyCompromise, cessationOfOperation, ...); the app sets none. */
  reason?: string;
}

export interface CrlFacts {
  issuer: string;
  lastUpdate: Date;
  nextUpdate: Date;
  number?: bigint;
  revoked: Revocation[];
}

const reasonNames: Record<string, string> = {
  Unspecified: 'unspecified',
  'Key Compromise': 'keyCompromise',
  'CA Compromise': 'CACompromise',
  'Affiliation Changed': 'affiliationChanged',
  Superseded: 'superseded',
  'Cessation Of Operation': 'cessationOfOperation',
  'Certificate Hold': 'certificateHold',
  'Remove From CRL': 'removeFromCRL',
};

/** Reads `openssl crl -noout -text`: dates, number and every revoked serial with its date and reason. */
export function parseCrlText(text: string, file = 'crl.pem'): CrlFacts {
  const field = (re: RegExp) => re.exec(text)?.[1]?.trim();
  const next = field(/Next Update:\s*(.+)/);
  const last = field(/Last Update:\s*(.+)/);
  if (!next || !last) throw new ConfigError(`${file} is not a CRL openssl can read (no Last/Next Update).`, [], 'Restore it from a backup, or let the app write a new one.');
  const number = /CRL Number:\s*\n?\s*([0-9A-Fa-f]+)/.exec(text)?.[1];
  const revoked: Revocation[] = [];
  const body = text.split(/Revoked Certificates:/)[1]?.split(/\n\s*Signature Algorithm:/)[0] ?? '';
  for (const block of body.split(/\n\s*Serial Number:\s*/).slice(1)) {
    const serial = crlSerial(block.split('\n')[0]!.trim());
    const date = /Revocation Date:\s*(.+)/.exec(block)?.[1];
    if (!date) throw new ConfigError(`${file}: the revoked serial ${serial} has no revocation date.`);
    const reasonText = /CRL Reason Code:\s*\n\s*(.+)/.exec(block)?.[1]?.trim();
    const reason = reasonText ? reasonNames[reasonText] : undefined;
    revoked.push({ serial, revokedAt: parseOpensslDate(date), ...(reason && { reason }) });
  }
  return { issuer: field(/Issuer:\s*(.+)/) ?? '', lastUpdate: parseOpensslDate(last), nextUpdate: parseOpensslDate(next), ...(number !== undefined && { number: BigInt(`0x${number}`) }), revoked };
}

