#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { Exit } from '../lib/core/errors.ts';
import { runIsolationAudit } from '../lib/jobs/check.ts';
import { parseResolve, readCaFiles } from '../lib/tools/probe.ts';
import { verifyPlayerKey } from '../lib/domain/pki.ts';
import { credentialsFromEnvironment, parseTarget, parseVaultFiles, renderChecklist, runPreChecks, runVerify, type CheckLine, type VerifyResult } from '../lib/jobs/verify.ts';

await runScript({
  name: 'verify',
  summary: "Smoke-tests the live environments (DNS, EA, EB's auth and noindex, vaults, MQTT mTLS) and prints a checklist; --pre runs the pre-migration checklist instead.",
  details: 'EB credentials come from the environment: VERIFY_EB_USER/VERIFY_EB_PASSWORD (a developer) and VERIFY_DEVICE_USER/VERIFY_DEVICE_PASSWORD (vault-dev).',
  exitCodesHelp: 'Exit codes: 0 every check passed, 1 a check failed, 2 usage or configuration error.',
  common: ['json'],
  flags: {
    env: { type: 'string', value: 'prod|dev|all', default: 'all', description: 'the environments to check' },
    pre: { type: 'boolean', description: 'the pre-migration checklist: env files, make check, backup age, credentials files' },
    'https-port': { type: 'int', min: 1, max: 65_535, value: 'N', default: 443, description: 'HTTPS port of the proxy' },
    'http-port': { type: 'int', min: 1, max: 65_535, value: 'N', default: 80, description: 'plain-HTTP port of the proxy (vaults)' },
    resolve: { type: 'string', multiple: true, value: 'host:address', description: 'connect to address for host (like curl --resolve)' },
    'ca-file': { type: 'string', multiple: true, value: 'PEM', description: 'also trust this CA for HTTPS (a sandbox proxy)' },
    device: { type: 'string', value: 'KEY', default: verifyPlayerKey, description: 'player key of the certificate (make mqtt-certs issue KEY) for the MQTT checks' },
    'vault-file': { type: 'string', multiple: true, value: 'env=path', description: "a known vault file instead of a sample from the env's database" },
    'vault-sample': { type: 'int', min: 1, max: 1000, value: 'N', default: 3, description: 'vault files sampled from the database' },
    'min-cert-days': { type: 'int', min: 0, max: 3650, value: 'N', default: 14, description: 'days a TLS certificate must still be valid' },
  },
  run: async (ctx): Promise<VerifyResult> => {
    const f = ctx.flags;
    // Every flag is checked before the first probe, so a typo never leaves a half-run checklist.
    const options = f.pre
      ? undefined
      : {
          prod: ctx.config('prod'),
          dev: ctx.config('dev'),
          targets: parseTarget(f.env),
          httpsPort: f['https-port'],
          httpPort: f['http-port'],
          resolve: parseResolve(f.resolve ?? []),
          ca: readCaFiles(f['ca-file'] ?? []),
          ebCredentials: credentialsFromEnvironment(process.env, 'VERIFY_EB'),
          deviceCredentials: credentialsFromEnvironment(process.env, 'VERIFY_DEVICE'),
          device: f.device,
          vaultFiles: parseVaultFiles(f['vault-file'] ?? []),
          vaultSample: f['vault-sample'],
          minCertDays: f['min-cert-days'],
        };
    const progress = ctx.ui.progress(f.pre ? 'pre-migration checks' : 'checks', 'steps');
    const onLine = (l: CheckLine) => {
      ctx.ui.debug(`${l.check}: ${l.result}`);
      progress.tick();
    };
    const result = options
      ? await runVerify({ ...options, onLine })
      : await runPreChecks({ envDir: ctx.settings.envDir, credentialsDir: ctx.settings.credentialsDir, audit: () => runIsolationAudit({ settings: ctx.settings, ui: ctx.ui }), maxBackupHours: 24, onLine });
    progress.done(`${result.checks.filter((c) => c.result === 'fail').length} of ${result.checks.length} failed`);
    return result;
  },
  render: (r) => console.log(renderChecklist(r)),
  exitCode: (r) => (r.ok ? Exit.ok : Exit.failed),
}, process.argv, process.env);
