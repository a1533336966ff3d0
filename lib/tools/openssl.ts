// The one place that builds and runs openssl command lines.
import { JobError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import type { CertKind } from '../domain/pki.ts';

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


/** Runs openssl; its stderr names files and reasons, never key material (keys only ever sit in files). */
export async function openssl(argv: readonly string[]): Promise<string> {
  const r = await run({ cmd: 'openssl', argv }, { nothrow: true });
  if (r.exitCode !== 0) {
    // stderr of openssl names files and reasons, never key material (keys only ever sit in files).
    const why = `${r.stderr}`.trim().split('\n').slice(-3).join(' / ').slice(0, 600);
    throw new JobError(`openssl ${argv[0]} failed: ${why || `exit ${r.exitCode}`}.`, 'Run again with --verbose; check the certificates folder is intact.');
  }
  return `${r.stdout}`;
}

