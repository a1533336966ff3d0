#!/usr/bin/env -S sh -c 'exec "$(dirname "$0")/../bin/ts" "$0" "$@"'
import { runScript } from '../lib/core/cli.ts';
import { certsExitCode, runMqttCerts, renderCertsResult } from '../lib/jobs/mqtt-certs.ts';
import { defaultDays, keyAlgorithm } from '../lib/domain/pki.ts';

await runScript({
  name: 'mqtt-certs',
  summary: `Manage an environment's MQTT PKI in its MQTT_CERTS_DIR the way the app does (${keyAlgorithm}): CA, broker certificate, player certificates, CRL.`,
  positionals: '<adopt|init|issue <player-key>|revoke <player-key>|renew|list>',
  details: `adopt registers the CA the app's broker made (ca.crt, ca.key, server.crt, crl.pem) where it is; init makes a CA
only where there is none (exit 3 otherwise). issue mints a player's certificate as the app's api does (CN = player key);
revoke puts it on the CRL (keeping every entry already there), reloads the broker and closes the player's live sessions;
renew re-signs the CRL (--server: also a new broker certificate). Default validity (days): CA ${defaultDays.ca}, server ${defaultDays.server}, player ${defaultDays.device}, CRL ${defaultDays.crl}.`,
  common: ['env', 'dry-run', 'yes', 'json'],
  flags: {
    days: { type: 'int', min: 1, max: 36_500, value: 'N', description: 'validity of the certificate being made (init: the CA)' },
    'crl-days': { type: 'int', min: 1, max: 36_500, value: 'N', description: "days until the CRL's next update", default: defaultDays.crl },
    force: { type: 'boolean', description: 'issue: revoke and replace the player certificate' },
    server: { type: 'boolean', description: "renew: also replace the broker's certificate" },
    serial: { type: 'string', value: 'N', multiple: true, description: 'revoke: a serial the app issued (players.cert_serial_number), repeatable' },
  },
  run: (ctx) => runMqttCerts({ cfg: ctx.config(ctx.env!), positionals: ctx.positionals, days: ctx.flags.days, crlDays: ctx.flags['crl-days'], force: ctx.flags.force, server: ctx.flags.server, serials: ctx.flags.serial ?? [], dryRun: ctx.dryRun, confirm: ctx.confirm }),
  render: (r) => renderCertsResult(r),
  exitCode: certsExitCode,
}, process.argv, process.env);
