import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Rng,
  Stream,
  bcryptLike,
  commentsOf,
  copyCell,
  copyLine,
  dataEnd,
  hasUpscaledVariant,
  hash32,
  oldShardLayoutUntil,
  ownerOf,
  pgArrayLiteral,
  planSeed,
  postShape,
  postsOf,
  profileOf,
  reactionsOf,
  registrationCode,
  seedTables,
  storageShardFor,
  uuidFrom,
  validateSeedOptions,
  vaultFileContent,
  vaultFilePath,
  vaultVariantPath,
} from '../../../dev/seed.ts';
import { UsageError } from '../../../lib/core/errors.ts';

test('copyCell writes COPY text format: NULL, booleans, numbers and escaped separators', () => {
  const cases: [Parameters<typeof copyCell>[0], string][] = [
    [null, '\\N'],
    [true, 't'],
    [false, 'f'],
    [42, '42'],
    ['plain', 'plain'],
    ['tab\there', 'tab\\there'],
    ['line\nbreak', 'line\\nbreak'],
    ['cr\rx', 'cr\\rx'],
    ['back\\slash', 'back\\\\slash'],
    ['\\N', '\\\\N'],
    ['{"a":"b\\"c"}', '{"a":"b\\\\"c"}'],
  ];
  for (const [input, expected] of cases) assert.is(copyCell(input), expected, JSON.stringify(input));
  assert.is(copyLine([1, null, 'a\tb']), '1\t\\N\ta\\tb\n');
});

test('pgArrayLiteral quotes what PostgreSQL would misread', () => {
  const cases: [(string | number)[], string][] = [
    [[], '{}'],
    [[1, 2, 3], '{1,2,3}'],
    [['pixelart', '8bit'], '{pixelart,8bit}'],
    [['two words'], '{"two words"}'],
    [['a,b'], '{"a,b"}'],
    [['null'], '{"null"}'],
    [['q"uote', 'back\\'], '{"q\\"uote","back\\\\"}'],
  ];
  for (const [input, expected] of cases) assert.is(pgArrayLiteral(input), expected);
});

test('hash32 is deterministic and injective in its last part', () => {
  assert.is(hash32(1, 2, 3), hash32(1, 2, 3));
  assert.is.not(hash32(1, 2, 3), hash32(1, 2, 4));
  const seen = new Set<number>();
  for (let i = 0; i < 100_000; i++) seen.add(hash32(42, 7, i));
  assert.is(seen.size, 100_000);
});

test('Rng is deterministic per key, in range, and its count() is skewed around the mean', () => {
  const a = new Rng(1, 2, 3);
  const b = new Rng(1, 2, 3);
  const c = new Rng(1, 2, 4);
  const xs = Array.from({ length: 50 }, () => a.next());
  assert.equal(Array.from({ length: 50 }, () => b.next()), xs);
  assert.not.equal(Array.from({ length: 50 }, () => c.next()), xs);
  const r = new Rng(9);
  let sum = 0;
  let zeros = 0;
  let max = 0;
  for (let i = 0; i < 50_000; i++) {
    const v = r.between(3, 7);
    assert.ok(v >= 3 && v <= 7);
    const n = r.count(4, 400);
    sum += n;
    if (n === 0) zeros++;
    max = Math.max(max, n);
  }
  const mean = sum / 50_000;
  assert.ok(mean > 3 && mean < 5, `mean ${mean}`);
  assert.ok(zeros > 5_000, 'many zeros (lurkers)');
  assert.ok(max > 40, 'a long tail (power users)');
});

test('uuidFrom gives version-4-shaped UUIDs, deterministic and unique', () => {
  const re = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  assert.is(uuidFrom(42, Stream.storageKey, 1), uuidFrom(42, Stream.storageKey, 1));
  assert.is.not(uuidFrom(42, Stream.storageKey, 1), uuidFrom(43, Stream.storageKey, 1));
  assert.is.not(uuidFrom(42, Stream.storageKey, 1), uuidFrom(42, Stream.playerId, 1));
  const seen = new Set<string>();
  for (let p = 0; p < 2_000; p++) {
    for (let k = 0; k < 20; k++) {
      const id = uuidFrom(42, Stream.commentId, p, k);
      assert.ok(re.test(id), id);
      seen.add(id);
    }
  }
  assert.is(seen.size, 40_000);
});

test('validateSeedOptions rejects what COPY or the plan cannot take', () => {
  for (const [users, seed] of [[0, 1], [1.5, 1], [10, -1], [10, 2 ** 32], [Number.NaN, 1]] as const) {
    assert.throws(() => validateSeedOptions(users, seed), (e: unknown) => e instanceof UsageError, `${users}/${seed}`);
  }
  validateSeedOptions(1, 0);
});

const plan = planSeed(3000, 42);

test('the plan is deterministic, skewed, and ownerOf inverts firstPost', () => {
  const again = planSeed(3000, 42);
  assert.equal(Array.from(again.firstPost), Array.from(plan.firstPost));
  assert.not.equal(Array.from(planSeed(3000, 43).firstPost), Array.from(plan.firstPost));
  const perUser = plan.posts / plan.users;
  assert.ok(perUser > 2.5 && perUser < 6, `posts per user ${perUser}`);
  for (let u = 1; u <= plan.users; u += 37) {
    for (let p = plan.firstPost[u]!; p < plan.firstPost[u + 1]!; p++) assert.is(ownerOf(plan, p), u);
  }
  assert.is(ownerOf(plan, plan.posts), [...Array(plan.users).keys()].map((i) => i + 1).filter((u) => postsOf(plan, u) > 0).pop());
});

test('profiles: handles and normalized e-mails are unique, some addresses are capitalised', () => {
  const handles = new Set<string>();
  const emails = new Set<string>();
  let capitalised = 0;
  for (let u = 1; u <= plan.users; u++) {
    const p = profileOf(plan, u);
    assert.ok(/^[a-z_]+\d+$/.test(p.handle), p.handle);
    assert.ok(/^[^@\s]+@[^@\s]+\.[a-z]+$/i.test(p.email), p.email);
    assert.is(p.emailNormalized, p.email.toLowerCase());
    if (p.email !== p.emailNormalized) capitalised++;
    handles.add(p.handle);
    emails.add(p.emailNormalized);
  }
  assert.is(handles.size, plan.users);
  assert.is(emails.size, plan.users);
  assert.ok(capitalised > 0);
  assert.equal(profileOf(plan, 17), profileOf(planSeed(3000, 42), 17));
});

test('comments: replies come after their parent, depth at most 2, some anonymous', () => {
  let replies = 0;
  let deep = 0;
  let anonymous = 0;
  for (let p = 1; p <= plan.posts; p++) {
    const list = commentsOf(plan, p, 0);
    list.forEach((c, i) => {
      assert.ok(c.depth >= 0 && c.depth <= 2);
      if (c.parent >= 0) {
        assert.ok(c.parent < i);
        assert.is(c.depth, list[c.parent]!.depth + 1);
        assert.ok(c.createdAt > list[c.parent]!.createdAt);
        replies++;
      } else assert.is(c.depth, 0);
      if (c.depth === 2) deep++;
      if (c.authorId === null) anonymous++;
      else assert.ok(c.authorId >= 1 && c.authorId <= plan.users);
    });
  }
  assert.ok(replies > 0 && deep > 0 && anonymous > 0, `${replies} replies, ${deep} at depth 2, ${anonymous} anonymous`);
});

test('reactions respect the partial unique index (one emoji per signed-in user per post)', () => {
  let anonymous = 0;
  for (let p = 1; p <= plan.posts; p++) {
    const keys = new Set<string>();
    for (const r of reactionsOf(plan, p, 0)) {
      if (r.userId === null) {
        anonymous++;
        continue;
      }
      const key = `${r.userId}/${r.emoji}`;
      assert.not.ok(keys.has(key), `post ${p} ${key}`);
      keys.add(key);
    }
  }
  assert.ok(anonymous > 0);
});

test('post shapes: 1-4 distinct formats, native first, shard layout by age', () => {
  let old = 0;
  let recent = 0;
  for (let p = 1; p <= plan.posts; p += 3) {
    const s = postShape(plan, p);
    assert.ok(s.files.length >= 1 && s.files.length <= 4);
    assert.is(s.files[0]!.format, s.native);
    assert.is(new Set(s.files.map((f) => f.format)).size, s.files.length);
    for (const f of s.files) assert.ok(f.bytes >= 200 && f.bytes <= 4000);
    assert.ok(s.createdAt <= dataEnd);
    if (s.storageShard.split('/').length === 3) old++;
    else recent++;
  }
  assert.ok(old > 0 && recent > 0, `${old} old, ${recent} recent shards`);
  const key = uuidFrom(1, Stream.storageKey, 1);
  assert.match(storageShardFor(key, oldShardLayoutUntil), /^[0-9a-f]{2}\/[0-9a-f]{2}$/);
  assert.match(storageShardFor(key, oldShardLayoutUntil - 1), /^[0-9a-f]{2}\/[0-9a-f]{2}\/[0-9a-f]{2}$/);
});

test('secrets look like the real ones; registration codes are unique', () => {
  const r = new Rng(5);
  assert.match(bcryptLike(r), /^\$2b\$12\$[./A-Za-z0-9]{53}$/);
  const codes = new Set<string>();
  for (let j = 1; j <= 20_000; j++) {
    const c = registrationCode(42, j);
    assert.match(c, /^[A-Z2-9]{6}$/);
    codes.add(c);
  }
  assert.is(codes.size, 20_000);
});

test('vault paths and contents: <shard>/<key>.<ext>, variants share the key prefix, bytes are deterministic', () => {
  assert.is(vaultFilePath('24/07', 'abc', 'png'), '24/07/abc.png');
  assert.is(vaultVariantPath('a4/47/ee', 'abc'), 'a4/47/ee/abc_x4.png');
  const png = vaultFileContent(1, 'k.png', 'png', 500);
  assert.is(png.length, 500);
  assert.equal([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.ok(png.equals(vaultFileContent(1, 'k.png', 'png', 500)));
  assert.not.ok(png.equals(vaultFileContent(2, 'k.png', 'png', 500)));
  assert.is(vaultFileContent(1, 'k.gif', 'gif', 300).subarray(0, 6).toString('latin1'), 'GIF89a');
  const webp = vaultFileContent(1, 'k.webp', 'webp', 300);
  assert.is(webp.subarray(8, 12).toString('latin1'), 'WEBP');
  assert.is(webp.readUInt32LE(4), 292);
  const variants = Array.from({ length: 1000 }, (_, i) => hasUpscaledVariant(42, i + 1)).filter(Boolean).length;
  assert.ok(variants > 80 && variants < 250, `${variants} of 1000 posts have a variant`);
});

test('every table spec yields rows as wide as its column list', () => {
  const small = planSeed(40, 3);
  for (const spec of seedTables) {
    for (const row of spec.rows(small)) assert.is(row.length, spec.columns.length, spec.table);
  }
});

test.run();
