// The last guard of sample-data-to-dev: before EB commits, no exact value of EA's secrets (e-mails,
// IP addresses, provider ids, device keys, key material) may appear in what the run sent to EB, as a
// whole value or inside text or JSON. The rules that should have hidden them run in EA's COPY; this
// checks their result independently, on the bytes EB receives.
//
// How: EA's secret values are cut into tokens by the same tokenizer that reads the outgoing stream,
// and held as keyed hashes in a table; every token of every outgoing row is looked up in it. Tokens
// are found from anchors the engine searches natively (an `@`, the dashes of a UUID, the dots of an
// IPv4 address, the colons of an IPv6 one, a `/` before digits, a PEM header) and widened to the
// whole address, which keeps the scan a fraction of the COPY's own cost. docs/sample-data.md says
// what it covers and what it cannot.

import { randomInt } from 'node:crypto';

/** The kinds of token; the guard only looks for the kinds its secrets have. */
type Kind = 'email' | 'uuid' | 'ipv4' | 'ipv6' | 'digits' | 'pem';

const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
const isDigit = (c: number) => c >= 48 && c <= 57;
const isLocal = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 95 || c === 37 || c === 43 || c === 45;
const isDomain = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 46 || c === 45;
const isIp6 = (c: number) => isHex(c) || c === 58 || c === 46;

const uuidAnchor = /-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-/g;
const ipv4Anchor = /[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}/g;
const ipv6Anchor = /::|:[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:/g;
const digitsAnchor = /\/([0-9]{3,})/g;
const base64Line = /[A-Za-z0-9+/=]{24,}/g;

/** Every match of a global pattern in s, from the start. */
function* matches(re: RegExp, s: string): Generator<RegExpExecArray> {
  re.lastIndex = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) yield m;
}

/** Calls found(kind, token, offset) for each token of the kinds asked for; stops when it returns true. */
function scanTokens(s: string, kinds: ReadonlySet<Kind>, found: (kind: Kind, token: string, at: number) => boolean): boolean {
  if (kinds.has('email'))
    for (let p = s.indexOf('@'); p >= 0; p = s.indexOf('@', p + 1)) {
      let a = p;
      while (a > 0 && isLocal(s.charCodeAt(a - 1))) a--;
      let b = p + 1;
      while (b < s.length && isDomain(s.charCodeAt(b))) b++;
      while (b > p + 1 && (s.charCodeAt(b - 1) === 46 || s.charCodeAt(b - 1) === 45)) b--;
      if (a === p || b === p + 1) continue;
      const token = s.slice(a, b).toLowerCase();
      if (found('email', token, a)) return true;
      // COPY text writes a newline inside a value as `\n`: `\nalice@x.org` holds alice's address.
      if (a > 0 && s.charCodeAt(a - 1) === 92 && found('email', token.slice(1), a)) return true;
    }
  if (kinds.has('uuid'))
    for (const m of matches(uuidAnchor, s)) {
      const a = m.index - 8;
      const b = m.index + m[0].length + 12;
      uuidAnchor.lastIndex = m.index + 1;
      if (a < 0 || b > s.length) continue;
      let ok = true;
      for (let i = a; i < m.index && ok; i++) ok = isHex(s.charCodeAt(i));
      for (let i = m.index + m[0].length; i < b && ok; i++) ok = isHex(s.charCodeAt(i));
      if (ok && found('uuid', s.slice(a, b).toLowerCase(), a)) return true;
    }
  if (kinds.has('ipv4'))
    for (const m of matches(ipv4Anchor, s)) {
      const end = m.index + m[0].length;
      if ((m.index > 0 && isDigit(s.charCodeAt(m.index - 1))) || (end < s.length && isDigit(s.charCodeAt(end)))) continue;
      if (found('ipv4', m[0], m.index)) return true;
    }
  if (kinds.has('ipv6'))
    for (const m of matches(ipv6Anchor, s)) {
      let a = m.index;
      while (a > 0 && isIp6(s.charCodeAt(a - 1))) a--;
      let b = m.index + m[0].length;
      while (b < s.length && isIp6(s.charCodeAt(b))) b++;
      ipv6Anchor.lastIndex = b;
      if (found('ipv6', s.slice(a, b).toLowerCase(), a)) return true;
    }
  if (kinds.has('digits'))
    for (const m of matches(digitsAnchor, s)) {
      // Digits that end a path segment (`/u/12345678?v=4`), not the start of a word (`/5230e1…`).
      const next = m.index + m[0].length < s.length ? s.charCodeAt(m.index + m[0].length) : 0;
      if (isDigit(next) || isLocal(next)) continue;
      if (found('digits', m[1]!, m.index + 1)) return true;
    }
  if (kinds.has('pem'))
    for (let p = s.indexOf('-----BEGIN'); p >= 0; p = s.indexOf('-----BEGIN', p + 1)) {
      const end = s.indexOf('-----END', p);
      const body = s.slice(p, end < 0 ? s.length : end);
      for (const m of matches(base64Line, body)) {
        if (found('pem', m[0], p + m.index)) return true;
        // Lines joined by `\n` inside JSON: the escape's letter sticks to the line after it.
        if (m.index > 0 && body.charCodeAt(m.index - 1) === 92 && found('pem', m[0].slice(1), p + m.index)) return true;
      }
    }
  return false;
}

/** The kinds read out of an EA value; a numeric id is only ever a whole value (see add). */
const valueKinds: ReadonlySet<Kind> = new Set(['email', 'uuid', 'ipv4', 'ipv6']);
const pemOnly: ReadonlySet<Kind> = new Set(['pem']);

/** Where a leaked value was found: the table's index in the stream, its column, the kind of value. */
export interface Leak {
  table: number;
  column: number;
  /** The EA column the value came from (`table.column` of SamplingConfig.secrets). */
  source: string;
}

/** Thrown out of the stream when a row holds an EA secret: the load stops before EB commits. */
export class LeakFound extends Error {
  readonly leak: Leak;
  constructor(leak: Leak) {
    super(`an EA secret value (from ${leak.source}) is in column ${leak.column + 1} of table ${leak.table}`);
    this.leak = leak;
  }
}

/** A 32-bit hash of a token, murmur3's mixing per character and its finaliser; `seed` keys it. */
function hash32(s: string, seed: number, k: number): number {
  let h = seed ^ s.length;
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), k);
    h = (h << 13) | (h >>> 19);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * EA's secret tokens as keyed 64-bit hashes in one open-addressing table: about 20 bytes a token,
 * where a Map of strings took five times that, so the guard's memory stays small as EA grows (a
 * million secret tokens: 20 MiB). The key is random per run. Two tokens sharing a hash (odds about
 * 1e-7 at a million secrets and ten million lookups) could only stop a run, never let a value by.
 */
class TokenTable {
  readonly #seeds: [number, number];
  #hi = new Uint32Array(1024);
  #lo = new Uint32Array(1024);
  #source = new Uint16Array(1024);
  #size = 0;

  constructor(seeds: [number, number]) {
    this.#seeds = seeds;
  }

  get size(): number {
    return this.#size;
  }

  #hash(token: string): [number, number] {
    const hi = hash32(token, this.#seeds[0], 0xcc9e2d51);
    const lo = hash32(token, this.#seeds[1], 0x1b873593);
    return hi === 0 && lo === 0 ? [0, 1] : [hi, lo]; // (0, 0) marks an empty slot
  }

  /** The slot holding (hi, lo), or the empty one where it would go. */
  #slot(hi: number, lo: number): number {
    const mask = this.#hi.length - 1;
    let i = (hi ^ lo) & mask;
    while ((this.#hi[i] !== 0 || this.#lo[i] !== 0) && (this.#hi[i] !== hi || this.#lo[i] !== lo)) i = (i + 1) & mask;
    return i;
  }

  add(token: string, source: number): void {
    const [hi, lo] = this.#hash(token);
    const i = this.#slot(hi, lo);
    if (this.#hi[i] === 0 && this.#lo[i] === 0) {
      this.#hi[i] = hi;
      this.#lo[i] = lo;
      if (++this.#size * 2 > this.#hi.length) this.#grow();
    }
    this.#source[this.#slot(hi, lo)] = source;
  }

  /** The source index of a token, or -1. */
  get(token: string): number {
    const [hi, lo] = this.#hash(token);
    const i = this.#slot(hi, lo);
    return this.#hi[i] === 0 && this.#lo[i] === 0 ? -1 : this.#source[i]!;
  }

  #grow(): void {
    const [hi, lo, source] = [this.#hi, this.#lo, this.#source];
    this.#hi = new Uint32Array(hi.length * 2);
    this.#lo = new Uint32Array(hi.length * 2);
    this.#source = new Uint16Array(hi.length * 2);
    for (let j = 0; j < hi.length; j++) {
      if (hi[j] === 0 && lo[j] === 0) continue;
      const i = this.#slot(hi[j]!, lo[j]!);
      this.#hi[i] = hi[j]!;
      this.#lo[i] = lo[j]!;
      this.#source[i] = source[j]!;
    }
  }
}

/** The guard's memory: EA's secret tokens (as keyed hashes, never the values), each with the column it came from. */
export class LeakGuard {
  readonly #tokens = new TokenTable([randomInt(2 ** 32), randomInt(2 ** 32)]);
  readonly #sources: string[] = [];
  readonly #kinds = new Set<Kind>();

  #sourceIndex(source: string): number {
    const i = this.#sources.indexOf(source);
    return i >= 0 ? i : this.#sources.push(source) - 1;
  }

  /** Adds one EA value of the secret column `source` (`table.column`). */
  add(value: string, source: string): void {
    const from = this.#sourceIndex(source);
    let any = false;
    // Key material gives its base64 lines only: what else its text happens to hold (`/123` in
    // base64) would match innocent rows.
    scanTokens(value, value.includes('-----BEGIN') ? pemOnly : valueKinds, (kind, token) => {
      any = true;
      this.#kinds.add(kind);
      this.#tokens.add(token, from);
      return false;
    });
    // A value with no shape of its own (a numeric provider id) is looked for after a `/` (in a URL).
    const whole = value.trim();
    if (!any && /^[0-9]{3,}$/.test(whole)) {
      this.#kinds.add('digits');
      this.#tokens.add(whole, from);
    }
  }

  get size(): number {
    return this.#tokens.size;
  }

  /**
   * Scans rows of COPY text (the fields of one table, tab-separated, one row per line) and throws
   * LeakFound at the first token that is an EA secret, naming the column it sits in.
   */
  check(table: number, rows: Buffer): void {
    if (!this.#tokens.size) return;
    // latin1: one byte, one character, so offsets are byte offsets; every token is ASCII.
    const s = rows.toString('latin1');
    let hit: { source: string; at: number } | undefined;
    scanTokens(s, this.#kinds, (_kind, token, at) => {
      const source = this.#tokens.get(token);
      if (source < 0) return false;
      hit = { source: this.#sources[source]!, at };
      return true;
    });
    if (!hit) return;
    let column = 0;
    for (let i = hit.at - 1; i >= 0 && s.charCodeAt(i) !== 10; i--) if (s.charCodeAt(i) === 9) column++;
    throw new LeakFound({ table, column, source: hit.source });
  }
}
