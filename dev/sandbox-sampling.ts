// The sampling configuration of the sandbox's own schema (dev/sandbox-schema.sql), the one `make demo`,
// the sandbox and most tests run on. The real app's configuration is config/sampling.ts; the two
// differ where the schemas do (the sandbox marks a deactivated user with a date, the app with a flag).
import path from 'node:path';
import type { SamplingConfig } from '../lib/domain/sampling.ts';
import { hashed, ipAddress, keep, nulled, password, scrub, sql, userEmail } from '../lib/domain/anonymize.ts';

/** This file, for --config and sampleDataToDev's configFile. */
export const sandboxSamplingConfigFile = path.join(import.meta.dirname, 'sandbox-sampling.ts');

const config: SamplingConfig = {
  root: 'users',
  banned: [
    { column: 'banned_until', when: 'banned_until IS NOT NULL AND banned_until > now()' },
    { column: 'deactivated_at', when: 'deactivated_at IS NOT NULL' },
  ],
  tables: { alembic_version: 'keep' },
  // A view by someone outside the sample is an anonymous view, not a view by a stand-in.
  policies: { 'view_events.viewer_user_id': 'null' },
  implicitReferences: { 'playlists.post_ids': 'posts' },
  requireOneOf: { reactions: ['user_id', 'user_ip'] },
  secrets: [
    'users.email',
    'users.email_normalized',
    'auth_identities.email',
    'auth_identities.provider_user_id',
    'comments.author_ip',
    'reactions.user_ip',
    'audit_logs.ip_address',
    'players.player_key',
    'players.cert_private_key_pem',
  ],
  rules: {
    emptyTables: ['refresh_tokens', 'email_verification_tokens', 'password_reset_tokens'],
    credentialTables: ['auth_identities', 'players'],
    identityUrlHosts: ['avatars\\.githubusercontent\\.com', '[a-z0-9-]+\\.googleusercontent\\.com', '(www\\.)?gravatar\\.com'],
    columns: {
      'users.email': userEmail('id'),
      'users.email_normalized': userEmail('id'),
      'users.email_verified': keep,
      // The public id in profile URLs, not a credential.
      'users.user_key': keep,
      // Free text people fill with links and addresses: replaced, the handle stays.
      'users.bio': sql(`'Bio of user ' || id::text`),
      'users.website': nulled,
      'auth_identities.id': keep,
      'auth_identities.user_id': keep,
      'auth_identities.provider': keep,
      'auth_identities.provider_user_id': hashed,
      'auth_identities.email': userEmail('user_id'),
      'auth_identities.secret_hash': password,
      'auth_identities.provider_metadata': sql(`'{}'::jsonb`),
      'auth_identities.created_at': keep,
      'auth_identities.last_login_at': keep,
      'posts.storage_key': keep,
      'posts.hashtags': keep,
      'posts.description': scrub(),
      'comments.author_ip': ipAddress,
      'comments.body': scrub(),
      'reactions.user_ip': ipAddress,
      'players.id': keep,
      'players.player_key': hashed,
      'players.owner_id': keep,
      'players.name': keep,
      'players.device_model': keep,
      'players.firmware_version': keep,
      'players.registration_status': keep,
      // A pairing code is short: hashing could make two equal, and the unique index would refuse.
      'players.registration_code': nulled,
      'players.registration_code_expires_at': keep,
      'players.registered_at': keep,
      'players.cert_serial_number': hashed,
      'players.cert_private_key_pem': nulled,
      'players.cert_expires_at': keep,
      'players.current_post_id': keep,
      'players.connection_status': keep,
      'players.last_seen_at': keep,
      'players.created_at': keep,
      'view_events.viewer_ip_hash': hashed,
      'view_events.user_agent_hash': hashed,
      'audit_logs.ip_address': ipAddress,
    },
  },
  statementTimeoutMs: 30 * 60_000,
};
export default config;
