import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Readable, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { TableDemux } from '../../../lib/domain/demux.ts';

test('the combined COPY is split back into tables: flags counted, padding cut, whatever the chunk boundaries', async () => {
  // Three tables of 2, 3 and 2 fields; table 1 has no rows. A NULL among a table's own fields stays.
  const end = (t: number) => `${t}\t-1\t\\N\t\\N\t\\N\n`;
  // A row flagged -2 (an app invariant drops it) is counted and never loaded.
  const rows = ['0\t1\ta\tb\t\\N\n', '0\t5\tc\\td\t\\N\t\\N\n', end(0), end(1), '2\t9\t\\N\tf\t\\N\n', '2\t-2\tx\ty\t\\N\n', '2\t0\tg\th\t\\N\n', end(2)];
  const text = rows.join('');
  for (const size of [1, 3, 7, text.length]) {
    const chunks: Buffer[] = [];
    for (let i = 0; i < text.length; i += size) chunks.push(Buffer.from(text.slice(i, i + size)));
    const got: string[] = ['', '', ''];
    const inspected: string[] = ['', '', ''];
    const events: string[] = [];
    const demux = new TableDemux([2, 3, 2], {
      inspect: (t, data) => void (inspected[t] += data),
      open: (t) => (events.push(`open ${t}`), new Writable({ write: (c, _e, cb) => ((got[t] += c), cb()) })),
      done: (t) => events.push(`done ${t}`),
    });
    await pipeline(Readable.from(chunks), demux);
    assert.equal(got, ['a\tb\nc\\td\t\\N\n', '', '\\N\tf\ng\th\n'], `chunks of ${size}`);
    assert.equal(inspected, got, 'the leak guard reads exactly what EB receives');
    assert.equal(demux.counts.map((c) => c.invariantDropped), [0, 0, 1]);
    assert.equal(events, ['open 0', 'done 0', 'done 1', 'open 2', 'done 2'], 'a table without rows gets no COPY, but is done in its turn');
    assert.equal(demux.counts.map((c) => [c.rows, c.sampled]), [[2, 2], [0, 0], [2, 1]]);
    // 5 = 0b101 (sampled, first reference re-pointed), 9 = 0b1001 (sampled, second nulled).
    assert.is(demux.counts[0]!.bits[2], 1);
    assert.is(demux.counts[2]!.bits[3], 1);
    assert.is(demux.counts[0]!.bits[1], undefined);
  }
});

test('between tables, with nothing to load, the idle work runs on the free connection; a full queue holds EA back', async () => {
  const events: string[] = [];
  let idleLeft = 2;
  let release: () => void = () => undefined;
  const slow = new Promise<void>((r) => (release = r));
  const demux = new TableDemux(
    [1, 1],
    {
      open: (t) => new Writable({ highWaterMark: 1, write: (_c, _e, cb) => (t === 1 ? slow.then(() => cb()) : cb()) }),
      done: (t) => events.push(`done ${t}`),
      idle: async () => (events.push('idle'), --idleLeft > 0),
    },
    8,
  );
  // Table 0 ends; EA then computes (a pause) before table 1's rows, which the slow sink holds.
  demux.write(Buffer.from('0\t1\ta\n0\t-1\t\\N\n'));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(events, ['done 0', 'idle', 'idle'], 'idle work runs until it has none');
  for (let i = 0; i < 6; i++) demux.write(Buffer.from('1\t1\tbbbbbbbb\n'));
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(demux.writableLength >= 5 * 14, 'past its bound the queue takes nothing more: EA\'s rows wait in the stream (and its socket)');
  release();
  demux.end(Buffer.from('1\t-1\t\\N\n'));
  await finished(demux);
  assert.equal(events, ['done 0', 'idle', 'idle', 'done 1', 'idle']);
});

test('a combined COPY out of table order, or cut short, fails', async () => {
  const sink = () => new Writable({ write: (_c, _e, cb) => cb() });
  const failure = (text: string, fields: number[]) => pipeline(Readable.from([Buffer.from(text)]), new TableDemux(fields, { open: sink })).then(() => 'no error', (e: Error) => e.message);
  assert.match(await failure('1\t1\ta\n', [1, 1]), /row of table 1 while table 0 was open/);
  assert.match(await failure('0\t1\ta\n0\t-1\t\\N\n0\t1\tb\n', [1, 1]), /row of table 0 while table 1 was open/);
  assert.match(await failure('0\t1\ta', [1]), /middle of a row/);
  assert.match(await failure('0\t1\ta\n', [1]), /ended before table 0 was complete/);
  assert.match(await failure('0\t-1\t\\N\n1\t1\ta\n', [1]), /row of table 1 while table 1 was open/);
});

test.run();
