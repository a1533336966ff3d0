import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LeakFound, LeakGuard } from '../../../lib/domain/leak-guard.ts';
import { decodeCopyField } from '../../../lib/domain/demux.ts';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** What the heap and the typed arrays' buffers hold after a full collection. */
const retained = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const pem = ['-----BEGIN PRIVATE KEY-----', 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7', 'VJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDu', '-----END PRIVATE KEY-----'].join('\n');
const guard = () => {
  const g = new LeakGuard();
  g.add('Alice.Smith@Example.org', 'users.email');
  g.add('203.0.113.5', 'comments.author_ip');
  g.add('2001:db8::42', 'reactions.user_ip');
  g.add('5E0C2F6A-1B2C-4D5E-8F90-123456789ABC', 'players.player_key');
  g.add('12345678', 'auth_identities.provider_user_id');
  g.add(pem, 'players.key_pem');
  return g;
};
/** Rows of COPY text as the demux hands them over. */
const rows = (...lines: string[][]) => Buffer.from(lines.map((l) => l.join('\t')).join('\n') + '\n', 'utf8');
const where = (g: LeakGuard, data: Buffer) => {
  try {
    g.check(4, data);
    return undefined;
  } catch (err) {
    assert.instance(err, LeakFound);
    const { leak } = err as LeakFound;
    return `${leak.table}:${leak.column}:${leak.source}`;
  }
};

test('an EA secret anywhere in a row is found, whole or inside text or JSON, with its column and source', () => {
  const g = guard();
  const cases: [string[][], string | undefined][] = [
    [[['1', 'alice.smith@example.org']], '4:1:users.email'],
    [[['1', 'ping me: ALICE.SMITH@example.ORG, thanks']], '4:1:users.email'],
    // COPY text writes a newline inside a JSON string as \\n: the escape letter sticks to the address.
    [[['1', '2', '{"note": "line\\\\nalice.smith@example.org"}']], '4:2:users.email'],
    [[['1', 'from 203.0.113.5 today']], '4:1:comments.author_ip'],
    [[['1', 'x', 'y', '2001:DB8::42']], '4:3:reactions.user_ip'],
    [[['1', '{"player_key": "5e0c2f6a-1b2c-4d5e-8f90-123456789abc"}']], '4:1:players.player_key'],
    [[['1', 'https://avatars.githubusercontent.com/u/12345678?v=4']], '4:1:auth_identities.provider_user_id'],
    [[['1', '{"pem": "-----BEGIN PRIVATE KEY-----\\\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\\\\n"}']], '4:1:players.key_pem'],
    // The second row: the column is counted from that row's start.
    [[['1', 'clean'], ['2', 'a', 'alice.smith@example.org']], '4:2:users.email'],
    // Near misses are not hits: another address, a longer number, a number not in a URL.
    [[['1', 'bob@example.org 203.0.113.50 1203.0.113.5 /123456789 12345678']], undefined],
    [[['1', '2026-01-01 12:00:00+00', 'redacted@example.invalid', '192.0.2.0']], undefined],
  ];
  for (const [lines, expected] of cases) assert.is(where(g, rows(...lines)), expected, JSON.stringify(lines));
});

test('an empty guard checks nothing; a big clean stream passes', () => {
  assert.is(where(new LeakGuard(), rows(['alice.smith@example.org'])), undefined);
  const g = guard();
  assert.ok(g.size >= 6);
  const big = rows(...Array.from({ length: 20000 }, (_, i) => [String(i), `user${i}@example.net`, `10.0.${i % 250}.1`, 'a text with words, a link https://example.com/p/abc and 2026-01-01 12:00:00+00']));
  assert.is(where(g, big), undefined);
});

test('two hundred thousand secrets held as hashes: every one is found, none of as many others, in a few MiB', () => {
  const before = retained();
  const g = new LeakGuard();
  for (let i = 0; i < 200_000; i++) g.add(`member${i}@makapix.example`, i % 2 ? 'users.email' : 'auth_identities.email');
  const grew = retained() - before;
  assert.is(g.size, 200_000);
  for (let i = 0; i < 200_000; i += 997) assert.is(where(g, rows(['1', `hi member${i}@makapix.example`])), `4:1:${i % 2 ? 'users.email' : 'auth_identities.email'}`);
  const others = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `${i}\tmember${i}@makapix.example.org\tnonmember${i}@makapix.example\n`).join(''));
  assert.is(where(g, others), undefined);
  // 20 bytes a token in the table (a Map of the strings took about 100).
  assert.ok(grew < 12 * 1024 * 1024, `the guard took ${(grew / 1048576).toFixed(1)} MiB for 200,000 tokens`);
});

test('the fill reads COPY text: its escapes are undone before the value is cut into tokens', () => {
  assert.is(decodeCopyField('-----BEGIN KEY-----\\nMIIB\\tx\\\\y'), '-----BEGIN KEY-----\nMIIB\tx\\y');
  assert.is(decodeCopyField('alice@example.org'), 'alice@example.org');
  const g = new LeakGuard();
  g.add(decodeCopyField(pem.replaceAll('\n', '\\n')), 'players.key_pem');
  // As EB's COPY text carries it: the key's lines joined by `\n` escapes.
  assert.is(where(g, rows(['1', pem.replaceAll('\n', '\\n')])), '4:1:players.key_pem');
});

test.run();
