/**
 * The project's data generator: a seeded, deterministic, Makapix-like data set at any scale, for
 * the sandbox, the tests, `make demo` and the benchmarks: one generator, so they all see the same
 * shapes of data.
 *
 * Determinism: every structural choice (how many posts a user has, who comments, reply parents,
 * ids, keys, times) is a pure function of (seed, kind, index) through hash32/Rng, so any table can
 * be generated on its own, in any order, without holding another table in memory: comment_likes
 * recompute a post's comments, auth_identities recompute a user's profile. Faker supplies the
 * realistic text (names, e-mail domains, user agents, titles, comment bodies) from pools built
 * once per seed, or sequentially within one table's pass. Nothing reads the clock: the data's
 * "now" is fixed (dataEnd), so the same seed gives byte-identical tables.
 *
 * Loading: each table is streamed row by row into COPY FROM STDIN (pg-copy-streams through
 * stream/promises pipeline) with the foreign-key triggers off (session_replication_role =
 * replica, so the users <-> posts cycle loads in one pass), then every foreign key is verified
 * set-wise from the catalog and the sequences are moved past the loaded ids.
 *
 * Vault layout written by seedVault (the app's sharded layout, see lib/domain/vault.ts):
 *   <vault>/<storage_shard>/<storage_key>.<format>   one file per post_files row; format is
 *                                                    png | gif | webp | bmp, size = file_bytes
 *   <vault>/<storage_shard>/<storage_key>_x4.png     an upscaled variant beside the original, for
 *                                                    some posts; in no post_files row
 *   <vault>/<aa>/<bb>/<uuid>.png                     orphans: files no post refers to
 * storage_shard is two hex components of a hash of storage_key ('24/07'); posts created before
 * oldShardLayoutUntil have three ('a4/47/ee'), like the app's older rows.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { Faker, en, base } from '@faker-js/faker';
import { JobError, UsageError } from '../lib/core/errors.ts';
import { foreignKeyViolations } from '../lib/tools/schema.ts';
import type { Ui } from '../lib/core/ui.ts';

// ---- deterministic randomness -------------------------------------------------------------

const fmix32 = (x: number): number => {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

/** One mixing step; for a fixed h it is a bijection of p (xor, odd multiply and fmix32 all are). */
const mix = (h: number, p: number): number => fmix32(Math.imul((h ^ p) >>> 0, 0x01000193));
const hashInit = 0x9e3779b9;

/** Mixes unsigned 32-bit parts into one; for a fixed prefix it is injective in the last part. */
export function hash32(...parts: number[]): number {
  let h = hashInit;
  for (const p of parts) h = mix(h, p);
  return h;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const hex8 = (w: number) => HEX[w >>> 24]! + HEX[(w >>> 16) & 255]! + HEX[(w >>> 8) & 255]! + HEX[w & 255]!;

/** sfc32: small, fast, 128-bit state, so streams of different entities do not overlap. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(...parts: number[]) {
    let h = hashInit;
    for (const p of parts) h = mix(h, p);
    this.#a = mix(h, 1);
    this.#b = mix(h, 2);
    this.#c = mix(h, 3);
    this.#d = mix(h, 4);
    for (let i = 0; i < 8; i++) this.next();
  }
  /** A uniform unsigned 32-bit integer. */
  next(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }
  float(): number {
    return this.next() / 4294967296;
  }
  /** 0 .. n-1 */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }
  /** lo .. hi, both included */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  hex(length: number): string {
    let s = '';
    while (s.length < length) s += hex8(this.next());
    return s.slice(0, length);
  }
  bytes(n: number): Buffer {
    const buf = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.next();
      for (let j = 0; j < 4 && i + j < n; j++) buf[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return buf;
  }
  /**
   * A skewed count with the given mean: Lomax (Pareto II, alpha 1.6) rounded, capped. Most draws
   * are 0-3, a few are large: the long tail (power users, viral posts) that makes sampling hard.
   */
  count(mean: number, cap: number): number {
    const alpha = 1.6;
    const x = mean * (alpha - 1) * (Math.pow(1 - this.float(), -1 / alpha) - 1);
    return Math.min(cap, Math.floor(x + 0.5));
  }
}

/** The independent random streams; a new kind of choice gets a new number (never reuse one). */
export const Stream = {
  pools: 1, user: 2, userKey: 3, postCount: 4, post: 5, postShape: 6, storageKey: 7, comments: 8, commentId: 9,
  likes: 10, reactions: 11, follows: 12, player: 13, playerId: 14, playerKey: 15, views: 16, viewId: 17,
  identityId: 18, refresh: 19, refreshId: 20, verification: 21, reset: 22, badges: 23, notificationId: 24,
  playlists: 25, reports: 26, audit: 27, code: 28, file: 29, orphan: 30, text: 31, notifications: 32,
} as const;
type StreamId = (typeof Stream)[keyof typeof Stream];

/** A version-4-shaped UUID that is a pure function of (seed, kind, index...). */
export function uuidFrom(seed: number, stream: StreamId, ...index: number[]): string {
  // The word number comes first so that the four words collide independently of each other.
  const prefix = mix(mix(hashInit, seed), stream);
  const w = [0, 0, 0, 0];
  for (let i = 0; i < 4; i++) {
    let h = mix(prefix, i);
    for (const x of index) h = mix(h, x);
    w[i] = h;
  }
  const [a, b, c, d] = w as [number, number, number, number];
  const b2 = ((b & 0xffff0fff) | 0x4000) >>> 0; // version 4
  const c2 = ((c & 0x3fffffff) | 0x80000000) >>> 0; // RFC 4122 variant
  const hb = hex8(b2);
  const hc = hex8(c2);
  return `${hex8(a)}-${hb.slice(0, 4)}-${hb.slice(4)}-${hc.slice(0, 4)}-${hc.slice(4)}${hex8(d)}`;
}

// ---- COPY text format ---------------------------------------------------------------------

export type Cell = string | number | boolean | null;

/** One value in COPY's text format: \N for NULL, backslash escapes for the separators. */
export function copyCell(v: Cell): string {
  if (v === null) return '\\N';
  if (typeof v === 'boolean') return v ? 't' : 'f';
  if (typeof v === 'number') return String(v);
  if (!/[\\\t\n\r]/.test(v)) return v;
  return v.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

export const copyLine = (cells: readonly Cell[]): string => `${cells.map(copyCell).join('\t')}\n`;

/** A PostgreSQL array literal ({a,"b c"}); copyCell then escapes it for COPY like any text. */
export function pgArrayLiteral(items: readonly (string | number)[]): string {
  const el = (x: string | number) => (typeof x === 'number' ? String(x) : /^[a-z0-9_-]+$/i.test(x) && x.toUpperCase() !== 'NULL' ? x : `"${x.replace(/[\\"]/g, '\\$&')}"`);
  return `{${items.map(el).join(',')}}`;
}

// ---- the data's shape -----------------------------------------------------------------------

/** The data's own timeline: fixed, so nothing depends on when the seed runs. */
export const dataStart = Date.UTC(2023, 0, 1);
export const dataEnd = Date.UTC(2025, 11, 31);
/** Posts created before this use the older three-component storage shard. */
export const oldShardLayoutUntil = Date.UTC(2023, 9, 1);
const DAY = 86_400_000;
const iso = (ms: number) => new Date(Math.round(ms)).toISOString();

export const formats = ['png', 'gif', 'webp', 'bmp'] as const;
export type FileFormat = (typeof formats)[number];

export const licenses = [
  ['CC-BY-4.0', 'Creative Commons Attribution 4.0', 'https://creativecommons.org/licenses/by/4.0/'],
  ['CC-BY-SA-4.0', 'Creative Commons Attribution-ShareAlike 4.0', 'https://creativecommons.org/licenses/by-sa/4.0/'],
  ['CC-BY-NC-4.0', 'Creative Commons Attribution-NonCommercial 4.0', 'https://creativecommons.org/licenses/by-nc/4.0/'],
  ['CC-BY-NC-SA-4.0', 'Creative Commons Attribution-NonCommercial-ShareAlike 4.0', 'https://creativecommons.org/licenses/by-nc-sa/4.0/'],
  ['CC0-1.0', 'Creative Commons Zero 1.0', 'https://creativecommons.org/publicdomain/zero/1.0/'],
  ['ARR', 'All rights reserved', null],
] as const;
const badges = ['early-adopter', 'top-artist', 'animator', 'palette-master', 'moderator', 'supporter', 'challenge-winner', 'player-owner'] as const;
const hashtagPool = ['pixelart', 'pixel', '8bit', '16bit', 'retro', 'gamedev', 'sprite', 'animation', 'isometric', 'landscape', 'portrait', 'fantasy', 'scifi', 'cute', 'dithering', 'lowres', 'tileset', 'gameboy', 'nes', 'snes', 'c64', 'zx', 'monochrome', 'palette', 'wip', 'cat', 'dragon', 'city', 'night', 'sea'];
const emojis = ['❤️', '🔥', '😍', '👍', '😂', '🎨', '✨', '👾'];
const countries = ['US', 'DE', 'FR', 'GB', 'JP', 'BR', 'CA', 'NL', 'SE', 'PL', 'ES', 'IT', 'KR', 'AU', 'MX', 'IN'];
const canvases: readonly [number, number][] = [[16, 16], [32, 32], [32, 32], [64, 64], [64, 64], [64, 32], [128, 128], [128, 64], [256, 256]];

/**
 * Lists faker draws once per seed; rows pick from them with their own Rng, so every row stays a
 * pure function of (seed, index) and no faker call sits in a per-row loop (faker costs µs a call).
 */
export interface Pools {
  firstNames: string[];
  lastNames: string[];
  /** The names reduced to a-z, for handles and e-mail addresses (same order as the names). */
  firstLetters: string[];
  lastLetters: string[];
  domains: string[];
  bios: string[];
  websites: string[];
  userAgents: string[];
  titles: string[];
  descriptions: string[];
  comments: string[];
  notes: string[];
}

function fakerFor(seed: number, stream: StreamId): Faker {
  const f = new Faker({ locale: [en, base] });
  f.seed(hash32(seed, stream));
  f.setDefaultRefDate(new Date(dataEnd));
  return f;
}

const letters = (s: string) => s.normalize('NFD').toLowerCase().replace(/[^a-z]/g, '');

const sentence = (f: Faker, min: number, max: number) => {
  const s = f.word.words({ count: { min, max } });
  return s[0]!.toUpperCase() + s.slice(1);
};

export function makePools(seed: number): Pools {
  const f = fakerFor(seed, Stream.pools);
  const times = <T>(n: number, fn: () => T) => Array.from({ length: n }, fn);
  const firstNames = times(400, () => f.person.firstName());
  const lastNames = times(400, () => f.person.lastName());
  return {
    firstNames,
    lastNames,
    firstLetters: firstNames.map((n) => letters(n) || 'pixel'),
    lastLetters: lastNames.map((n) => letters(n) || 'artist'),
    // Free mail providers dominate, as on any consumer site.
    domains: [...f.definitions.internet.free_email, ...f.definitions.internet.free_email, ...times(12, () => f.internet.domainName())],
    bios: times(300, () => (f.datatype.boolean() ? f.person.bio() : f.lorem.sentence())),
    websites: times(200, () => f.internet.url()),
    userAgents: times(150, () => f.internet.userAgent()),
    titles: times(3000, () => sentence(f, 1, 4)),
    descriptions: times(1500, () => (f.datatype.boolean() ? sentence(f, 4, 24) : f.lorem.sentences({ min: 1, max: 3 }))),
    comments: times(4000, () => (f.number.int(9) < 7 ? `${sentence(f, 2, 14)}${f.helpers.arrayElement(['!', '.', '', ' :)', '!!', '?'])}` : f.lorem.sentences({ min: 1, max: 3 }))),
    notes: times(200, () => sentence(f, 3, 20)),
  };
}

/** The scale of a data set and the few per-user facts every table needs, built once (not a table). */
export interface SeedPlan {
  readonly seed: number;
  readonly users: number;
  readonly posts: number;
  readonly players: number;
  /** firstPost[u] is user u's first post id; user u owns ids firstPost[u] .. firstPost[u+1]-1. */
  readonly firstPost: Int32Array;
  readonly pools: Pools;
}

export function validateSeedOptions(users: number, seed: number): void {
  if (!Number.isInteger(users) || users < 1 || users > 5_000_000) throw new UsageError(`users must be a whole number from 1 to 5,000,000, got ${users}.`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UsageError(`seed must be a whole number from 0 to 4294967295, got ${seed}.`);
}

export function planSeed(users: number, seed: number): SeedPlan {
  validateSeedOptions(users, seed);
  const firstPost = new Int32Array(users + 2);
  firstPost[1] = 1;
  for (let u = 1; u <= users; u++) firstPost[u + 1] = firstPost[u]! + new Rng(seed, Stream.postCount, u).count(4, 400);
  return { seed, users, posts: firstPost[users + 1]! - 1, players: Math.max(3, Math.round(users * 0.04)), firstPost, pools: makePools(seed) };
}

export const postsOf = (plan: SeedPlan, u: number): number => plan.firstPost[u + 1]! - plan.firstPost[u]!;

/** The owner of a post: binary search over firstPost. */
export function ownerOf(plan: SeedPlan, postId: number): number {
  let lo = 1;
  let hi = plan.users;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (plan.firstPost[mid]! <= postId) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Users sign up steadily over the first 85 % of the timeline; ids grow with time, as serials do. */
export const userCreatedAt = (plan: SeedPlan, u: number): number =>
  dataStart + ((u - 1) / plan.users) * 0.85 * (dataEnd - dataStart) + (hash32(plan.seed, Stream.user, u, 99) % DAY);

/** A random user, with a quarter of the picks going to the most active 2 % (a long tail). */
export function randomUser(plan: SeedPlan, r: Rng): number {
  if (r.chance(0.25)) return 1 + r.int(Math.max(1, Math.ceil(plan.users * 0.02)));
  return 1 + r.int(plan.users);
}

export interface Profile {
  id: number;
  handle: string;
  email: string;
  emailNormalized: string;
  firstName: string;
  lastName: string;
  verified: boolean;
  githubId: number | null;
  hasPassword: boolean;
  createdAt: number;
}

/**
 * A user's identity. Handles and e-mail local parts are letters (and . _) followed by the user id,
 * so they are unique without remembering which ones were taken.
 */
export function profileOf(plan: SeedPlan, u: number): Profile {
  const r = new Rng(plan.seed, Stream.user, u);
  const fi = r.int(plan.pools.firstNames.length);
  const li = r.int(plan.pools.lastNames.length);
  const [firstName, lastName] = [plan.pools.firstNames[fi]!, plan.pools.lastNames[li]!];
  const [f, l] = [plan.pools.firstLetters[fi]!, plan.pools.lastLetters[li]!];
  const handle = `${r.pick([f + l, `${f}_${l}`, f[0] + l, l, f, `${f}_px`])}`.slice(0, 30) + u;
  const local = `${r.pick([`${f}.${l}`, `${f}_${l}`, f + l, f[0] + l, f])}${u}`;
  const domain = r.pick(plan.pools.domains);
  // Some people type their address capitalised: email_normalized is what must be unique.
  const email = r.chance(0.15) ? `${firstName.replace(/[^A-Za-z]/g, '') || 'Pixel'}.${l}${u}@${domain}` : `${local}@${domain}`;
  const github = r.chance(0.3);
  // The GitHub id is a bijection of the user id (odd multiplier modulo 2^27), hence unique.
  const githubId = github ? 1_000_000 + ((Math.imul(u, 0x2c1b3c6d | 1) + hash32(plan.seed, Stream.user)) & 0x7ffffff) : null;
  return { id: u, handle, email, emailNormalized: email.toLowerCase(), firstName, lastName, verified: r.chance(0.8), githubId, hasPassword: !github || r.chance(0.3), createdAt: userCreatedAt(plan, u) };
}

export interface PostShape {
  id: number;
  owner: number;
  storageKey: string;
  storageShard: string;
  width: number;
  height: number;
  native: FileFormat;
  /** Stored formats, the native one first; 1 to 4 distinct. */
  files: { format: FileFormat; width: number; height: number; bytes: number }[];
  createdAt: number;
}

/** FNV-1a over a string, finished with fmix32: cheap, and spreads similar names apart. */
export function stringHash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** A hash of the key spreads shards evenly; old posts have one level more. */
export function storageShardFor(storageKey: string, createdAt: number): string {
  const h = hex8(stringHash32(storageKey));
  return createdAt < oldShardLayoutUntil ? `${h.slice(0, 2)}/${h.slice(2, 4)}/${h.slice(4, 6)}` : `${h.slice(0, 2)}/${h.slice(2, 4)}`;
}

export function postShape(plan: SeedPlan, p: number, owner = ownerOf(plan, p)): PostShape {
  const r = new Rng(plan.seed, Stream.postShape, p);
  const ownerSince = userCreatedAt(plan, owner);
  const createdAt = ownerSince + r.float() * (dataEnd - ownerSince);
  const [width, height] = r.pick(canvases);
  const x = r.float();
  const native: FileFormat = x < 0.65 ? 'png' : x < 0.95 ? 'gif' : 'webp';
  const wanted: FileFormat[] = [native];
  for (const [fmt, p2] of [['webp', 0.5], ['png', 0.6], ['gif', 0.15], ['bmp', 0.1]] as const) if (!wanted.includes(fmt) && r.chance(p2)) wanted.push(fmt);
  const storageKey = uuidFrom(plan.seed, Stream.storageKey, p);
  return {
    id: p,
    owner,
    storageKey,
    storageShard: storageShardFor(storageKey, createdAt),
    width,
    height,
    native,
    files: wanted.map((format) => ({ format, width, height, bytes: r.between(format === 'bmp' ? 1200 : 200, 4000) })),
    createdAt,
  };
}

export interface CommentShape {
  id: string;
  authorId: number | null;
  /** Index of the parent in the post's list, or -1 for a top-level comment. */
  parent: number;
  depth: number;
  createdAt: number;
}

/** A post's comments, replies after their parents, depth at most 2. Pure: recomputed by other tables. */
export function commentsOf(plan: SeedPlan, p: number, postCreatedAt: number): CommentShape[] {
  const r = new Rng(plan.seed, Stream.comments, p);
  const n = r.count(1.4, 120);
  const out: CommentShape[] = [];
  let t = postCreatedAt;
  for (let k = 0; k < n; k++) {
    t += r.float() * 3 * DAY;
    let parent = -1;
    if (k > 0 && r.chance(0.35)) {
      const candidate = r.int(k);
      if (out[candidate]!.depth < 2) parent = candidate;
    }
    out.push({ id: uuidFrom(plan.seed, Stream.commentId, p, k), authorId: r.chance(0.12) ? null : randomUser(plan, r), parent, depth: parent < 0 ? 0 : out[parent]!.depth + 1, createdAt: t });
  }
  return out;
}

export interface ReactionShape {
  userId: number | null;
  emoji: string;
  createdAt: number;
}

/** At most one (user, emoji) per post for signed-in users: the partial unique index holds. */
export function reactionsOf(plan: SeedPlan, p: number, postCreatedAt: number): ReactionShape[] {
  const r = new Rng(plan.seed, Stream.reactions, p);
  const n = r.count(2.2, 300);
  const seen = new Set<string>();
  const out: ReactionShape[] = [];
  for (let k = 0; k < n; k++) {
    const emoji = r.pick(emojis);
    const createdAt = postCreatedAt + r.float() * (dataEnd - postCreatedAt);
    if (r.chance(0.2)) {
      out.push({ userId: null, emoji, createdAt });
      continue;
    }
    const userId = randomUser(plan, r);
    const key = `${userId}:${emoji}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ userId, emoji, createdAt });
  }
  return out;
}

export function ipv4(r: Rng): string {
  return `${r.between(1, 223)}.${r.int(256)}.${r.int(256)}.${r.between(1, 254)}`;
}
export function ipv6(r: Rng): string {
  return `2${r.hex(3)}:${Array.from({ length: 7 }, () => r.hex(4).replace(/^0+(?=.)/, '')).join(':')}`;
}
const ipOf = (r: Rng) => (r.chance(0.1) ? ipv6(r) : ipv4(r));

const bcryptAlphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Looks like the app's bcrypt hashes ($2b$12$ + 53 chars); computing real ones would take hours. */
export function bcryptLike(r: Rng): string {
  let s = '$2b$12$';
  for (let i = 0; i < 53; i++) s += bcryptAlphabet[r.int(64)];
  return s;
}

const codeAlphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
/** A 6-character pairing code, unique per player: an odd-multiplier bijection on 32^6 = 2^30. */
export function registrationCode(seed: number, j: number): string {
  let x = (Math.imul(j, 0x2f0b4a1d) + hash32(seed, Stream.code)) & 0x3fffffff;
  let s = '';
  for (let i = 0; i < 6; i++) {
    s += codeAlphabet[x & 31];
    x >>>= 5;
  }
  return s;
}

function pemLike(r: Rng): string {
  const body = r.bytes(138).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${body.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

// ---- the tables ---------------------------------------------------------------------------

interface TableSpec {
  table: string;
  columns: readonly string[];
  rows(plan: SeedPlan): Iterable<Cell[]>;
}

function* eachPost(plan: SeedPlan): Generator<PostShape> {
  for (let u = 1; u <= plan.users; u++) for (let p = plan.firstPost[u]!; p < plan.firstPost[u + 1]!; p++) yield postShape(plan, p, u);
}

/** In load order; a table's rows are a pure function of the plan (plus sequential faker text). */
export const seedTables: readonly TableSpec[] = [
  {
    table: 'licenses',
    columns: ['id', 'identifier', 'title', 'canonical_url', 'badge_path'],
    *rows() {
      let id = 0;
      for (const [identifier, title, url] of licenses) yield [++id, identifier, title, url, `/static/licenses/${identifier.toLowerCase()}.svg`];
    },
  },
  {
    table: 'badge_definitions',
    columns: ['badge', 'label', 'description', 'icon_url_64', 'is_tag_badge'],
    *rows() {
      for (const b of badges) yield [b, b.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' '), `Awarded for ${b.replace(/-/g, ' ')}.`, `/static/badges/${b}_64.png`, b === 'animator'];
    },
  },
  {
    table: 'users',
    columns: ['id', 'user_key', 'handle', 'email', 'email_normalized', 'email_verified', 'bio', 'website', 'avatar_url', 'avatar_source_post_id', 'roles', 'reputation', 'hidden_by_user', 'banned_until', 'deactivated_at', 'created_at', 'updated_at'],
    *rows(plan) {
      const moderators = Math.max(1, Math.floor(plan.users * 0.002));
      for (let u = 1; u <= plan.users; u++) {
        const pr = profileOf(plan, u);
        const r = new Rng(plan.seed, Stream.user, u, 1);
        const own = postsOf(plan, u);
        // About 10 % of users (of those with posts, ~14 %) use one of their own artworks as avatar.
        const avatarPost = own > 0 && r.chance(0.14) ? plan.firstPost[u]! + r.int(own) : null;
        const roles = u === 1 ? ['user', 'moderator', 'owner'] : u <= moderators ? ['user', 'moderator'] : ['user'];
        const banned = r.chance(0.015) ? (r.chance(0.5) ? pr.createdAt + r.float() * (dataEnd - pr.createdAt) : Date.UTC(2099, 0, 1)) : null;
        const deactivated = r.chance(0.02) ? pr.createdAt + r.float() * (dataEnd - pr.createdAt) : null;
        yield [
          u,
          uuidFrom(plan.seed, Stream.userKey, u),
          pr.handle,
          pr.email,
          pr.emailNormalized,
          pr.verified,
          r.chance(0.55) ? r.pick(plan.pools.bios) : null,
          r.chance(0.15) ? r.pick(plan.pools.websites) : null,
          avatarPost ? null : r.chance(0.3) ? `https://vault.makapix.club/avatars/${uuidFrom(plan.seed, Stream.userKey, u, 1)}.png` : null,
          avatarPost,
          JSON.stringify(roles),
          r.count(40, 50_000),
          r.chance(0.01),
          banned === null ? null : iso(banned),
          deactivated === null ? null : iso(deactivated),
          iso(pr.createdAt),
          r.chance(0.3) ? iso(pr.createdAt + r.float() * (dataEnd - pr.createdAt)) : null,
        ];
      }
    },
  },
  {
    table: 'auth_identities',
    columns: ['id', 'user_id', 'provider', 'provider_user_id', 'email', 'secret_hash', 'provider_metadata', 'created_at', 'last_login_at'],
    *rows(plan) {
      for (let u = 1; u <= plan.users; u++) {
        const pr = profileOf(plan, u);
        const r = new Rng(plan.seed, Stream.identityId, u);
        const lastLogin = () => iso(pr.createdAt + r.float() * (dataEnd - pr.createdAt));
        if (pr.hasPassword) yield [uuidFrom(plan.seed, Stream.identityId, u, 0), u, 'password', pr.emailNormalized, pr.email, bcryptLike(r), null, iso(pr.createdAt), lastLogin()];
        if (pr.githubId !== null) {
          const meta = { id: pr.githubId, login: pr.handle.replace(/\d+$/, '') + (pr.githubId % 1000), name: `${pr.firstName} ${pr.lastName}`, email: r.chance(0.6) ? pr.email : null, avatar_url: `https://avatars.githubusercontent.com/u/${pr.githubId}?v=4`, access_token_prefix: `gho_${r.hex(8)}` };
          yield [uuidFrom(plan.seed, Stream.identityId, u, 1), u, 'github', String(pr.githubId), pr.email, null, JSON.stringify(meta), iso(pr.createdAt), lastLogin()];
        }
      }
    },
  },
  {
    table: 'refresh_tokens',
    columns: ['id', 'user_id', 'token_hash', 'user_agent', 'created_ip', 'created_at', 'expires_at', 'revoked'],
    *rows(plan) {
      for (let u = 1; u <= plan.users; u++) {
        const r = new Rng(plan.seed, Stream.refresh, u);
        const n = r.chance(0.45) ? r.between(1, 3) : 0;
        const since = userCreatedAt(plan, u);
        for (let k = 0; k < n; k++) {
          const created = since + r.float() * (dataEnd - since);
          yield [uuidFrom(plan.seed, Stream.refreshId, u, k), u, r.hex(64), r.pick(plan.pools.userAgents), ipOf(r), iso(created), iso(created + 30 * DAY), r.chance(0.2)];
        }
      }
    },
  },
  {
    table: 'email_verification_tokens',
    columns: ['id', 'user_id', 'token_hash', 'email', 'expires_at', 'used_at', 'created_at'],
    *rows(plan) {
      for (let u = 1; u <= plan.users; u++) {
        const pr = profileOf(plan, u);
        if (pr.verified) continue;
        const r = new Rng(plan.seed, Stream.verification, u);
        yield [uuidFrom(plan.seed, Stream.verification, u), u, r.hex(64), pr.email, iso(pr.createdAt + DAY), null, iso(pr.createdAt)];
      }
    },
  },
  {
    table: 'password_reset_tokens',
    columns: ['id', 'user_id', 'token_hash', 'expires_at', 'used_at', 'created_at'],
    *rows(plan) {
      for (let u = 1; u <= plan.users; u++) {
        const r = new Rng(plan.seed, Stream.reset, u);
        if (!r.chance(0.04)) continue;
        const since = userCreatedAt(plan, u);
        for (let k = 0, n = r.between(1, 2); k < n; k++) {
          const created = since + r.float() * (dataEnd - since);
          yield [uuidFrom(plan.seed, Stream.reset, u, k), u, r.hex(64), iso(created + 3_600_000), r.chance(0.6) ? iso(created + r.float() * 3_600_000) : null, iso(created)];
        }
      }
    },
  },
  {
    table: 'posts',
    columns: ['id', 'owner_id', 'kind', 'title', 'description', 'hashtags', 'storage_key', 'storage_shard', 'canvas_width', 'canvas_height', 'frame_count', 'license_id', 'visible', 'hidden_by_mod', 'created_at', 'updated_at'],
    *rows(plan) {
      for (const s of eachPost(plan)) {
        const r = new Rng(plan.seed, Stream.post, s.id);
        const tags = new Set<string>();
        for (let i = r.int(6); i > 0; i--) tags.add(r.pick(hashtagPool));
        yield [
          s.id,
          s.owner,
          'artwork',
          r.pick(plan.pools.titles),
          r.chance(0.5) ? r.pick(plan.pools.descriptions) : null,
          pgArrayLiteral([...tags]),
          s.storageKey,
          s.storageShard,
          s.width,
          s.height,
          s.native === 'gif' ? r.between(2, 24) : 1,
          r.chance(0.7) ? 1 + r.int(licenses.length) : null,
          r.chance(0.97),
          r.chance(0.01),
          iso(s.createdAt),
          r.chance(0.2) ? iso(s.createdAt + r.float() * (dataEnd - s.createdAt)) : null,
        ];
      }
    },
  },
  {
    table: 'post_files',
    columns: ['id', 'post_id', 'format', 'width', 'height', 'file_bytes', 'is_native', 'created_at'],
    *rows(plan) {
      let id = 0;
      for (const s of eachPost(plan)) for (const file of s.files) yield [++id, s.id, file.format, file.width, file.height, file.bytes, file.format === s.native, iso(s.createdAt)];
    },
  },
  {
    table: 'comments',
    columns: ['id', 'post_id', 'author_id', 'author_ip', 'parent_id', 'depth', 'body', 'hidden_by_mod', 'deleted_by_owner', 'created_at', 'updated_at'],
    *rows(plan) {
      for (const s of eachPost(plan)) {
        const list = commentsOf(plan, s.id, s.createdAt);
        const r = new Rng(plan.seed, Stream.text, s.id);
        for (const c of list) {
          yield [c.id, s.id, c.authorId, ipOf(r), c.parent < 0 ? null : list[c.parent]!.id, c.depth, r.pick(plan.pools.comments), r.chance(0.01), r.chance(0.02), iso(c.createdAt), r.chance(0.05) ? iso(c.createdAt + r.float() * DAY) : null];
        }
      }
    },
  },
  {
    table: 'reactions',
    columns: ['id', 'post_id', 'user_id', 'user_ip', 'emoji', 'created_at'],
    *rows(plan) {
      let id = 0;
      for (const s of eachPost(plan)) {
        const r = new Rng(plan.seed, Stream.reactions, s.id, 1);
        for (const x of reactionsOf(plan, s.id, s.createdAt)) yield [++id, s.id, x.userId, ipOf(r), x.emoji, iso(x.createdAt)];
      }
    },
  },
  {
    table: 'comment_likes',
    columns: ['id', 'comment_id', 'user_id', 'created_at'],
    *rows(plan) {
      let id = 0;
      for (const s of eachPost(plan)) {
        const list = commentsOf(plan, s.id, s.createdAt);
        for (let k = 0; k < list.length; k++) {
          const c = list[k]!;
          const r = new Rng(plan.seed, Stream.likes, s.id, k);
          const likers = new Set<number>();
          for (let i = r.count(0.8, 80); i > 0; i--) likers.add(randomUser(plan, r));
          for (const userId of likers) yield [++id, c.id, userId, iso(c.createdAt + r.float() * 7 * DAY)];
        }
      }
    },
  },
  {
    table: 'follows',
    columns: ['id', 'follower_id', 'following_id', 'created_at'],
    *rows(plan) {
      let id = 0;
      for (let u = 1; u <= plan.users; u++) {
        const r = new Rng(plan.seed, Stream.follows, u);
        const targets = new Set<number>();
        for (let i = r.count(3, 500); i > 0; i--) {
          const v = randomUser(plan, r);
          if (v !== u) targets.add(v);
        }
        const since = userCreatedAt(plan, u);
        for (const v of targets) yield [++id, u, v, iso(Math.max(since, userCreatedAt(plan, v)) + r.float() * 30 * DAY)];
      }
    },
  },
  {
    table: 'players',
    columns: ['id', 'player_key', 'owner_id', 'name', 'device_model', 'firmware_version', 'registration_status', 'registration_code', 'registration_code_expires_at', 'registered_at', 'cert_serial_number', 'cert_private_key_pem', 'cert_expires_at', 'current_post_id', 'connection_status', 'last_seen_at', 'created_at'],
    *rows(plan) {
      for (let j = 1; j <= plan.players; j++) {
        const r = new Rng(plan.seed, Stream.player, j);
        const created = dataStart + r.float() * (dataEnd - dataStart);
        const registered = r.chance(0.85);
        const owner = registered ? randomUser(plan, r) : null;
        const ownerName = owner ? profileOf(plan, owner).firstName : null;
        yield [
          uuidFrom(plan.seed, Stream.playerId, j),
          uuidFrom(plan.seed, Stream.playerKey, j),
          owner,
          ownerName ? `${ownerName}'s ${r.pick(['Pixel Frame', 'Matrix', 'Display', 'Desk Frame'])}` : null,
          r.pick(['p3a', 'p3a-pro', 'esp32-s3-matrix-64']),
          `1.${r.int(6)}.${r.int(10)}`,
          registered ? 'registered' : 'pending',
          registered ? null : registrationCode(plan.seed, j),
          registered ? null : iso(created + 15 * 60_000),
          registered ? iso(created + r.float() * DAY) : null,
          registered ? r.hex(32).toUpperCase() : null,
          registered ? pemLike(r) : null,
          registered ? iso(created + 365 * DAY) : null,
          registered && plan.posts > 0 && r.chance(0.7) ? 1 + r.int(plan.posts) : null,
          registered && r.chance(0.4) ? 'online' : 'offline',
          registered ? iso(created + r.float() * (dataEnd - created)) : null,
          iso(created),
        ];
      }
    },
  },
  {
    table: 'view_events',
    columns: ['id', 'post_id', 'viewer_user_id', 'player_id', 'viewer_ip_hash', 'user_agent_hash', 'country_code', 'device_type', 'view_source', 'created_at'],
    *rows(plan) {
      for (const s of eachPost(plan)) {
        const r = new Rng(plan.seed, Stream.views, s.id);
        for (let k = 0, n = r.count(2, 400); k < n; k++) {
          const player = r.chance(0.1) ? uuidFrom(plan.seed, Stream.playerId, 1 + r.int(plan.players)) : null;
          yield [
            uuidFrom(plan.seed, Stream.viewId, s.id, k),
            s.id,
            !player && r.chance(0.55) ? randomUser(plan, r) : null,
            player,
            r.hex(64),
            r.chance(0.95) ? r.hex(64) : null,
            r.pick(countries),
            player ? 'player' : r.pick(['desktop', 'mobile', 'mobile', 'tablet']),
            player ? 'player' : r.pick(['feed', 'post', 'profile', 'search', 'embed']),
            iso(s.createdAt + r.float() * (dataEnd - s.createdAt)),
          ];
        }
      }
    },
  },
  {
    table: 'badge_grants',
    columns: ['id', 'user_id', 'badge', 'granted_at'],
    *rows(plan) {
      let id = 0;
      for (let u = 1; u <= plan.users; u++) {
        const r = new Rng(plan.seed, Stream.badges, u);
        if (!r.chance(0.04)) continue;
        const since = userCreatedAt(plan, u);
        for (const b of new Set(Array.from({ length: r.between(1, 3) }, () => r.pick(badges)))) yield [++id, u, b, iso(since + r.float() * (dataEnd - since))];
      }
    },
  },
  {
    table: 'social_notifications',
    columns: ['id', 'user_id', 'actor_id', 'notification_type', 'post_id', 'comment_id', 'emoji', 'content_title', 'is_read', 'created_at'],
    *rows(plan) {
      for (const s of eachPost(plan)) {
        const r = new Rng(plan.seed, Stream.notifications, s.id);
        let k = 0;
        const id = () => uuidFrom(plan.seed, Stream.notificationId, s.id, k++);
        const comments = commentsOf(plan, s.id, s.createdAt);
        for (const c of comments) {
          const recipient = c.parent < 0 ? s.owner : comments[c.parent]!.authorId;
          if (recipient === null || recipient === c.authorId) continue;
          yield [id(), recipient, c.authorId, c.parent < 0 ? 'comment' : 'reply', s.id, c.id, null, null, r.chance(0.7), iso(c.createdAt)];
        }
        for (const x of reactionsOf(plan, s.id, s.createdAt)) {
          if (x.userId === null || x.userId === s.owner || !r.chance(0.5)) continue;
          yield [id(), s.owner, x.userId, 'reaction', s.id, null, x.emoji, null, r.chance(0.7), iso(x.createdAt)];
        }
      }
    },
  },
  {
    table: 'playlists',
    columns: ['id', 'owner_id', 'title', 'post_ids', 'dwell_seconds', 'created_at'],
    *rows(plan) {
      if (plan.posts === 0) return;
      let id = 0;
      for (let u = 1; u <= plan.users; u++) {
        const r = new Rng(plan.seed, Stream.playlists, u);
        if (!r.chance(0.02)) continue;
        // Post ids from the whole base (players show other people's art): a reference without a FK.
        const ids = Array.from({ length: r.between(3, 12) }, () => 1 + r.int(plan.posts));
        const since = userCreatedAt(plan, u);
        yield [++id, u, r.pick(plan.pools.titles), pgArrayLiteral(ids), r.pick([10, 30, 60, 300]), iso(since + r.float() * (dataEnd - since))];
      }
    },
  },
  {
    table: 'reports',
    columns: ['id', 'reporter_id', 'target_type', 'target_id', 'reason_code', 'notes', 'status', 'created_at'],
    *rows(plan) {
      const r = new Rng(plan.seed, Stream.reports);
      for (let id = 1, n = Math.ceil(plan.users * 0.005); id <= n; id++) {
        let type = r.pick(['post', 'comment', 'user']);
        let target = String(randomUser(plan, r));
        if (type !== 'user' && plan.posts > 0) {
          const p = 1 + r.int(plan.posts);
          const comments = type === 'comment' ? commentsOf(plan, p, postShape(plan, p).createdAt) : [];
          if (type === 'comment' && comments.length > 0) target = r.pick(comments).id;
          else [type, target] = ['post', String(p)];
        } else type = 'user';
        yield [id, r.chance(0.9) ? randomUser(plan, r) : null, type, target, r.pick(['spam', 'nsfw', 'harassment', 'stolen_art', 'other']), r.chance(0.5) ? r.pick(plan.pools.notes) : null, r.pick(['open', 'open', 'resolved', 'dismissed']), iso(dataStart + r.float() * (dataEnd - dataStart))];
      }
    },
  },
  {
    table: 'audit_logs',
    columns: ['id', 'actor_id', 'action', 'target_type', 'target_id', 'ip_address', 'details', 'created_at'],
    *rows(plan) {
      const r = new Rng(plan.seed, Stream.audit);
      const moderators = Math.max(1, Math.floor(plan.users * 0.002));
      let t = dataStart;
      for (let id = 1, n = Math.ceil(plan.users * 0.03); id <= n; id++) {
        t += r.float() * ((2 * (dataEnd - dataStart)) / n);
        const action = r.pick(['user.ban', 'user.unban', 'post.hide', 'post.unhide', 'comment.delete', 'user.role_change', 'login.failed', 'badge.grant']);
        const onPost = action.startsWith('post.');
        const target = onPost && plan.posts > 0 ? String(1 + r.int(plan.posts)) : String(randomUser(plan, r));
        const details = action === 'login.failed' ? { handle_tried: profileOf(plan, Number(target)).handle, attempts: r.between(1, 9) } : { reason: r.pick(['spam', 'abuse', 'appeal accepted', 'manual review']) };
        yield [id, action === 'login.failed' ? null : 1 + r.int(moderators), action, onPost ? 'post' : 'user', target, ipOf(r), JSON.stringify(details), iso(Math.min(t, dataEnd))];
      }
    },
  },
];

// ---- loading ------------------------------------------------------------------------------

/** Streams rows into COPY in ~64 KiB chunks; memory stays flat whatever the table size. */
export async function copyRows(client: pg.Client, table: string, columns: readonly string[], rows: Iterable<Cell[]>, onRows?: (n: number) => void): Promise<number> {
  let total = 0;
  function* chunks(): Generator<Buffer> {
    let buf = '';
    let n = 0;
    for (const row of rows) {
      buf += copyLine(row);
      n++;
      if (buf.length >= 65_536) {
        yield Buffer.from(buf);
        total += n;
        onRows?.(n);
        buf = '';
        n = 0;
      }
    }
    if (buf) yield Buffer.from(buf);
    total += n;
    onRows?.(n);
  }
  const cols = columns.map((c) => pg.escapeIdentifier(c)).join(', ');
  await pipeline(Readable.from(chunks()), client.query(copyFrom(`COPY ${pg.escapeIdentifier(table)} (${cols}) FROM STDIN`)));
  return total;
}

/** Moves every serial/identity sequence of the schema past the ids that were loaded explicitly. */
export async function resetSequences(client: pg.Client): Promise<void> {
  const { rows } = await client.query<{ tbl: string; col: string; seq: string }>(`
    SELECT c.relname AS tbl, a.attname AS col, pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid
    WHERE n.nspname = 'public' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
      AND pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL`);
  for (const { tbl, col, seq } of rows) {
    await client.query(`SELECT setval($1, COALESCE((SELECT max(${pg.escapeIdentifier(col)}) FROM ${pg.escapeIdentifier(tbl)}), 0) + 1, false)`, [seq]);
  }
}

export interface SeedOptions {
  users: number;
  seed: number;
  /** Progress lines (rows per table, rate); silent when absent. */
  ui?: Ui;
  /** Check every foreign key after the load (default true). */
  verify?: boolean;
}

export interface SeedReport {
  seed: number;
  users: number;
  /** Rows loaded per table, in load order. */
  rows: Record<string, number>;
  totalRows: number;
  durationMs: number;
  /** pg_database_size after the load. */
  databaseBytes: number;
}

/**
 * Fills an empty Makapix schema (createMakapixSchema) with a deterministic data set. Needs a
 * superuser connection: the load runs with session_replication_role = replica.
 */
export async function seedDatabase(client: pg.Client, opts: SeedOptions): Promise<SeedReport> {
  const started = Date.now();
  const plan = planSeed(opts.users, opts.seed);
  const { rows: existing } = await client.query<{ any: boolean | null }>("SELECT CASE WHEN to_regclass('public.users') IS NOT NULL THEN EXISTS (SELECT 1 FROM users) END AS any");
  if (existing[0]!.any === null) throw new JobError(`Database ${client.database} has no Makapix schema (no users table).`, 'Create it first with createMakapixSchema (lib/tools/schema.ts).');
  if (existing[0]!.any) throw new JobError(`Database ${client.database} already holds users; the seed loads into an empty schema only.`, 'Recreate the database (sandbox down / up) and seed again.');
  const counts: Record<string, number> = {};
  await client.query('SET session_replication_role = replica');
  try {
    for (const spec of seedTables) {
      const progress = opts.ui?.progress(`seeding ${spec.table}`, 'rows');
      counts[spec.table] = await copyRows(client, spec.table, spec.columns, spec.rows(plan), (n) => progress?.tick(n));
      progress?.done(`${counts[spec.table]!.toLocaleString('en-US')} rows`);
    }
  } finally {
    await client.query('SET session_replication_role = DEFAULT');
  }
  await resetSequences(client);
  await client.query('ANALYZE');
  if (opts.verify !== false) {
    const bad = await (opts.ui ? opts.ui.run('checking every foreign key', () => foreignKeyViolations(client)) : foreignKeyViolations(client));
    if (bad.length) throw new JobError(`The seed broke ${bad.length} foreign key(s): ${bad.map((b) => `${b.constraint} (${b.rows} rows)`).join(', ')}.`, 'This is a bug in dev/seed.ts.');
  }
  const { rows } = await client.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size');
  return { seed: opts.seed, users: opts.users, rows: counts, totalRows: Object.values(counts).reduce((a, b) => a + b, 0), durationMs: Date.now() - started, databaseBytes: Number(rows[0]!.size) };
}

// ---- the vault ----------------------------------------------------------------------------

const magic: Record<FileFormat, (size: number) => Buffer> = {
  png: () => Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  gif: () => Buffer.from('GIF89a', 'latin1'),
  webp: (size) => {
    const b = Buffer.from('RIFF\0\0\0\0WEBP', 'latin1');
    b.writeUInt32LE(Math.max(0, size - 8), 4);
    return b;
  },
  bmp: (size) => {
    const b = Buffer.from('BM\0\0\0\0', 'latin1');
    b.writeUInt32LE(size, 2);
    return b;
  },
};

/** A file's bytes: the format's magic number, then noise that is a pure function of its name. */
export function vaultFileContent(seed: number, name: string, format: FileFormat, size: number): Buffer {
  const h = stringHash32(name);
  const head = magic[format](size);
  return Buffer.concat([head, new Rng(seed, Stream.file, h).bytes(Math.max(0, size - head.length))]).subarray(0, size);
}

/** Where a post_files row's artwork lives, relative to the vault root. */
export const vaultFilePath = (storageShard: string, storageKey: string, format: string): string => `${storageShard}/${storageKey}.${format}`;
/** The upscaled variant beside an original: same folder, same storage_key prefix. */
export const vaultVariantPath = (storageShard: string, storageKey: string): string => `${storageShard}/${storageKey}_x4.png`;
/** Which posts get an upscaled variant: a pure function of (seed, post id). */
export const hasUpscaledVariant = (seed: number, postId: number): boolean => hash32(seed, Stream.file, postId) % 100 < 15;

export interface VaultOptions {
  seed: number;
  /** Files that no post refers to (default 5). */
  orphans?: number;
  /** Files written at once (default 32). */
  concurrency?: number;
  ui?: Ui;
}

export interface VaultReport {
  /** Every file written: originals, variants and orphans. */
  files: number;
  bytes: number;
  variants: number;
  orphans: number;
  /** The orphans' paths relative to the vault root, so tests can tell them apart. */
  orphanPaths: string[];
}

/**
 * Writes the vault for a seeded database: one file per post_files row, upscaled variants and a
 * few orphans. Rows stream out of COPY TO (never loaded whole); at most `concurrency` writes are
 * in flight, and the stream is not read further while they are.
 */
export async function seedVault(client: pg.Client, vaultRoot: string, opts: VaultOptions): Promise<VaultReport> {
  const root = path.resolve(vaultRoot);
  const limit = opts.concurrency ?? 32;
  const madeDirs = new Set<string>();
  const inFlight = new Set<Promise<void>>();
  const report: VaultReport = { files: 0, bytes: 0, variants: 0, orphans: 0, orphanPaths: [] };
  const { rows: totalRows } = await client.query<{ n: string }>('SELECT count(*) AS n FROM post_files');
  const progress = opts.ui?.progress('writing vault files', 'files', Number(totalRows[0]!.n));
  let failure: unknown;
  const write = async (rel: string, data: Buffer) => {
    const dir = path.dirname(path.join(root, rel));
    if (!madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      madeDirs.add(dir);
    }
    await writeFile(path.join(root, rel), data);
    report.files++;
    report.bytes += data.length;
    progress?.tick();
  };
  const failed = () => new JobError(`Writing the vault in ${root} failed: ${(failure as Error).message}.`, 'Check free space and permissions there.');
  const schedule = async (rel: string, data: Buffer) => {
    if (failure) throw failed();
    const job: Promise<void> = write(rel, data).catch((err) => {
      failure ??= err;
    });
    inFlight.add(job);
    void job.finally(() => inFlight.delete(job));
    while (inFlight.size >= limit) await Promise.race(inFlight);
  };

  await mkdir(root, { recursive: true });
  const stream = client.query(copyTo(`COPY (SELECT p.id, p.storage_shard, p.storage_key, f.format, f.file_bytes FROM post_files f JOIN posts p ON p.id = f.post_id ORDER BY f.id) TO STDOUT`));
  let carry = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    const lines = (carry + chunk.toString('utf8')).split('\n');
    carry = lines.pop()!;
    for (const line of lines) {
      const [id, shard, key, format, bytes] = line.split('\t') as [string, string, string, FileFormat, string];
      await schedule(vaultFilePath(shard, key, format), vaultFileContent(opts.seed, `${key}.${format}`, format, Number(bytes)));
      if (format === 'png' && hasUpscaledVariant(opts.seed, Number(id))) {
        report.variants++;
        await schedule(vaultVariantPath(shard, key), vaultFileContent(opts.seed, `${key}_x4.png`, 'png', Math.min(16_384, Number(bytes) * 4)));
      }
    }
  }
  for (let i = 0; i < (opts.orphans ?? 5); i++) {
    const key = uuidFrom(opts.seed, Stream.orphan, i);
    const h = hash32(opts.seed, Stream.orphan, i, 1).toString(16).padStart(8, '0');
    const rel = vaultFilePath(`${h.slice(0, 2)}/${h.slice(2, 4)}`, key, 'png');
    report.orphans++;
    report.orphanPaths.push(rel);
    await schedule(rel, vaultFileContent(opts.seed, `${key}.png`, 'png', 300 + (hash32(opts.seed, Stream.orphan, i, 2) % 2000)));
  }
  await Promise.all(inFlight);
  if (failure) throw failed();
  progress?.done(`${report.files.toLocaleString('en-US')} files`);
  return report;
}
