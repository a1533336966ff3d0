#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { certsExitCode, runMqttCerts, renderCertsResult } from '../lib/jobs/mqtt-certs.ts';
import { defaultDays, keyAlgorithm } from '../lib/domain/pki.ts';

await runScript({
  name: 'mqtt-certs',
  summary: `Manage an environment's own MQTT PKI (${keyAlgorithm}) in its MQTT_CERTS_DIR: CA, broker certificate, player certificates, CRL.`,
  positionals: '<init|issue <device>|revoke <device>|renew|list>',
  details: `init makes the CA, the broker certificate and an empty CRL (again: changes nothing; --force replaces the CA).\nissue makes a player's certificate, key and bundle; revoke puts it on the CRL; renew replaces the broker\ncertificate and regenerates the CRL. Default validity (days): CA ${defaultDays.ca}, server ${defaultDays.server}, device ${defaultDays.device}, CRL ${defaultDays.crl}.`,
  common: ['env', 'dry-run', 'yes', 'json'],
  flags: {
    days: { type: 'int', min: 1, max: 36_500, value: 'N', description: 'validity of the certificate being made (init: the CA)' },
    'crl-days': { type: 'int', min: 1, max: 36_500, value: 'N', description: "days until the CRL's next update", default: defaultDays.crl },
    force: { type: 'boolean', description: 'init: replace the CA; issue: revoke and replace the device certificate' },
  },
  run: (ctx) => runMqttCerts({ cfg: ctx.config(ctx.env!), positionals: ctx.positionals, days: ctx.flags.days, crlDays: ctx.flags['crl-days'], force: ctx.flags.force, dryRun: ctx.dryRun, confirm: ctx.confirm }),
  render: (r) => renderCertsResult(r),
  exitCode: certsExitCode,
}, process.argv, process.env);
