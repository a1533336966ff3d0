// The MQTT PKI as the Makapix app runs it, as pure decisions: what a player certificate looks like,
// which names may become one, what a CRL says, which broker connections belong to a player.
// No I/O here; lib/tools/openssl.ts runs openssl and lib/jobs/mqtt-certs.ts does the work.
import { UsageError } from '../core/errors.ts';
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
