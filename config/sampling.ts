// The sampling configuration of the real Makapix Club schema at its Alembic head (the app's
// api/alembic/versions, head d4e5f6a7b8c9: 46 tables, 62 foreign keys): what sample-data-to-dev copies
// from EA to EB and how it hides who people are. The default of `--config`; docs/sample-data.md
// explains every field. A typed module, not YAML: `tsc -p tsconfig.json` checks it against
// SamplingConfig like the code that reads it, and each rule is a helper call the editor completes.
//
// When the app gains a migration: run `sample-data-to-dev --dry-run`; it stops on any column that
// looks sensitive and has no rule here, and on any name here the schema no longer has.
import type { SamplingConfig } from '../lib/domain/sampling.ts';
import { hashed, ipAddress, keep, nulled, password, scrub, sql, userEmail } from '../lib/domain/anonymize.ts';

const config: SamplingConfig = {
  // Users are picked at random; every other row follows them through the foreign keys.
  root: 'users',
  // --exclude-banned (api/app/models.py: User.banned_until, User.deactivated is a boolean).
  banned: [
    { column: 'banned_until', when: 'banned_until IS NOT NULL AND banned_until > now()' },
    { column: 'deactivated', when: 'deactivated' },
  ],
  tables: {
    // EB's own migration state.
    alembic_version: 'keep',
    // Per-user export zips (the vault's bdr/ files): personal data, never sent to EB. EB gets the
    // table empty, and sync-vault-to-dev never copies bdr/.
    batch_download_requests: 'skip',
  },
  policies: {
    // A view by someone outside the sample is an anonymous view, not a view by a stand-in.
    'view_events.viewer_user_id': 'null',
    'blog_post_view_events.viewer_user_id': 'null',
  },
  // Post ids kept in an array without a foreign key (api/app/models.py: Playlist.post_ids).
  implicitReferences: { 'playlists.post_ids': 'posts' },
  // The app keeps a reaction only with a user or an IP (api/app/routers/reactions: anonymous
  // reactions are counted per IP); the schema has no CHECK for it.
  requireOneOf: { reactions: ['user_id', 'user_ip'], blog_post_reactions: ['user_id', 'user_ip'] },
  // The leak guard's sources: no value of these may reach EB, whole or inside text or JSON.
  secrets: [
    'users.email',
    'users.email_normalized',
    'auth_identities.email',
    'auth_identities.provider_user_id',
    'comments.author_ip',
    'blog_post_comments.author_ip',
    'reactions.user_ip',
    'blog_post_reactions.user_ip',
    'reports.reporter_ip',
    'players.player_key',
    'players.cert_serial_number',
    'players.cert_pem',
    'players.key_pem',
  ],
  rules: {
    // Rows that are secrets as a whole: EB gets these tables empty.
    emptyTables: ['refresh_tokens', 'email_verification_tokens', 'password_reset_tokens', 'player_tokens'],
    // Every column of these needs a rule, whatever its name.
    credentialTables: ['auth_identities', 'players'],
    // Avatar URLs of the login providers carry the provider's user id (api/app/routers/auth.py
    // stores GitHub's avatar_url as is).
    identityUrlHosts: ['avatars\\.githubusercontent\\.com', '[a-z0-9-]+\\.googleusercontent\\.com', '(www\\.|secure\\.)?gravatar\\.com'],
    columns: {
      // ---- users
      'users.email': userEmail('id'),
      'users.email_normalized': userEmail('id'),
      'users.email_verified': keep,
      // The public id in profile and vault URLs, not a credential.
      'users.user_key': keep,
      'users.bio': scrub(),
      'users.tagline': scrub(),
      'users.website': nulled,
      // Tags, not digests ("hash" is in the name).
      'users.approved_hashtags': keep,
      // A provider's avatar URL names the person there; the app's own (vault) avatars stay.
      'users.avatar_url': sql(`CASE WHEN avatar_url ~* '^https?://([a-z0-9-]+\\.)*(githubusercontent|googleusercontent|gravatar)\\.com' THEN NULL ELSE avatar_url END`),
      // ---- auth_identities (a credential table: every column)
      'auth_identities.id': keep,
      'auth_identities.user_id': keep,
      'auth_identities.provider': keep,
      'auth_identities.provider_user_id': hashed,
      'auth_identities.secret_hash': password,
      'auth_identities.email': userEmail('user_id'),
      'auth_identities.provider_metadata': sql(`'{}'::json`),
      'auth_identities.created_at': keep,
      'auth_identities.updated_at': keep,
      // ---- content: kept, scrubbed of addresses
      'posts.storage_key': keep,
      // The artwork file's digest (duplicate detection), not a secret.
      'posts.hash': keep,
      'posts.hashtags': keep,
      'posts.mod_hashtags': keep,
      'posts.title': scrub(),
      'posts.description': scrub(),
      'posts.source_details': scrub(),
      'retired_artworks.storage_key': keep,
      'blog_posts.blog_post_key': keep,
      'blog_posts.title': scrub(),
      'blog_posts.body': scrub(),
      'playlists.title': scrub(),
      'playlists.description': scrub(),
      'comments.author_ip': ipAddress,
      'comments.body': scrub(),
      'comments.original_body': scrub(),
      'blog_post_comments.author_ip': ipAddress,
      'blog_post_comments.body': scrub(),
      'blog_post_comments.original_body': scrub(),
      'reactions.user_ip': ipAddress,
      'blog_post_reactions.user_ip': ipAddress,
      'social_notifications.comment_preview': scrub(),
      'social_notifications.actor_avatar_url': scrub(),
      // ---- moderation: free text moderators and reporters type
      'reports.reporter_ip': ipAddress,
      'reports.notes': scrub(),
      'reports.mod_notes': scrub(),
      'admin_notes.note': scrub(),
      'audit_logs.note': scrub(),
      'violations.reason': scrub(),
      // ---- analytics: per-visitor hashes re-hashed with this run's salt
      'view_events.viewer_ip_hash': hashed,
      'view_events.user_agent_hash': hashed,
      'blog_post_view_events.viewer_ip_hash': hashed,
      'blog_post_view_events.user_agent_hash': hashed,
      'site_events.visitor_ip_hash': hashed,
      'site_events.event_data': scrub(),
      'site_events.page_path': scrub(),
      // ---- players (a credential table: every column)
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
      'players.connection_status': keep,
      'players.last_seen_at': keep,
      'players.current_post_id': keep,
      'players.cert_serial_number': hashed,
      'players.cert_issued_at': keep,
      'players.cert_expires_at': keep,
      // The device's client certificate and private key: EB's broker issues its own.
      'players.cert_pem': nulled,
      'players.key_pem': nulled,
      'players.created_at': keep,
      'players.updated_at': keep,
      'players.capabilities': keep,
      'players.capabilities_updated_at': keep,
      'players.is_paused': keep,
      'players.brightness': keep,
      'players.rotation': keep,
      'players.mirror': keep,
      'players.state_updated_at': keep,
      // Commands sent to devices: their JSON payloads carry device keys (UUIDs) and addresses.
      'player_command_logs.payload': scrub({ uuids: true }),
    },
  },
  statementTimeoutMs: 30 * 60_000,
};
export default config;
