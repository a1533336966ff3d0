// The reading side of combinedCopy's stream (lib/domain/sampling.ts): one COPY of every table from EA,
// split back into one COPY FROM per table on EB, through a bounded queue.
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { once } from 'node:events';

/** What the demux counted of one table's rows. */
export interface TableCounts {
  rows: number;
  bytes: number;
  /** Rows with flag bit 0 (in the sample by the rules, not pulled in). */
  sampled: number;
  /** Count per flag bit (index 1.. as in TablePlan.query). */
  bits: number[];
  /** Rows an app invariant left out (flags -2): read, counted, not loaded. */
  invariantDropped: number;
}

export interface DemuxHooks {
  /** A table's first row came: its sink receives its rows (EB's COPY FROM, or nothing). */
  open(table: number): Writable;
  rows?(table: number, n: number): void;
  /** A table is complete: its end row came and its sink, if it had rows, has finished. In table order. */
  done?(table: number, counts: TableCounts): void;
  /** Reads each run of a table's rows (COPY text, its own fields only) before it is queued; throwing fails the stream. */
  inspect?(table: number, rows: Buffer): void;
  /** Between tables, while EA computes the next one: one piece of deferred work on the sinks' connection; false when none is ready. */
  idle?(): Promise<boolean>;
}

const copyEscapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v' };

/** One field of COPY text as its value: COPY TO writes a backslash before these characters. */
export const decodeCopyField = (field: string): string => (field.includes('\\') ? field.replace(/\\(.)/g, (_, c: string) => copyEscapes[c] ?? c) : field);

/** Rows read from EA but not yet loaded into EB, at most: EA runs ahead while EB digests, in bounded memory. */
const QUEUE_BYTES = 32 * 1024 * 1024;

type Queued = { table: number; rows: number; data: Buffer } | { table: number; end: true };

/**
 * Splits combinedCopy's stream back into tables: reads each row's table index and flags, counts
 * them, cuts the padding past the table's own fields, and writes each table's rows to its own sink,
 * opened at its first row and finished at its end row. Between EA and the sinks sits a queue of at
 * most `queueBytes`, so that EA computes the next tables' sets while EB still loads the last rows;
 * beyond it, a slow sink pauses the reading of EA.
 */
export class TableDemux extends Writable {
  readonly counts: TableCounts[];
  readonly #fields: readonly number[];
  readonly #width: number;
  readonly #hooks: DemuxHooks;
  readonly #queueBytes: number;
  readonly #queue: Queued[] = [];
  #queued = 0;
  /** The _write callback held back while the queue is full. */
  #held: (() => void) | undefined;
  #pumping: Promise<void> | undefined;
  #failed: Error | undefined;
  /** The last table whose end row was read. */
  #ended = -1;
  #rest: Buffer | undefined;
  #sink: { table: number; stream: Writable } | undefined;
  /** Whether idle work may be ready: set when a table completes, cleared when the hook has none. */
  #idleReady = false;

  /** fields[i]: how many fields table i has; the stream carries max(fields) per row. */
  constructor(fields: readonly number[], hooks: DemuxHooks, queueBytes = QUEUE_BYTES) {
    super();
    this.#fields = fields;
    this.#width = Math.max(...fields);
    this.#hooks = hooks;
    this.#queueBytes = queueBytes;
    this.counts = fields.map(() => ({ rows: 0, bytes: 0, sampled: 0, bits: [], invariantDropped: 0 }));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    try {
      this.#split(chunk);
    } catch (err) {
      return done(err as Error);
    }
    this.#pump();
    if (this.#queued <= this.#queueBytes) return done(this.#failed);
    this.#held = () => done(this.#failed);
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.#rest) return done(new Error('the COPY stream ended in the middle of a row'));
    if (this.#ended !== this.#fields.length - 1) return done(new Error(`the COPY stream ended before table ${this.#ended + 1} was complete`));
    this.#pump();
    (async () => {
      while (this.#pumping) await this.#pumping;
      if (this.#failed) throw this.#failed;
    })().then(() => done(), done);
  }

  /** Cuts a chunk into per-table runs of whole rows, counted, and queues them with each table's end. */
  #split(chunk: Buffer): void {
    const buf = this.#rest ? Buffer.concat([this.#rest, chunk]) : chunk;
    const open = () => this.#ended + 1;
    let start = 0;
    // Rows are compacted in place, each moved down over the cut bytes: a run of rows of one table
    // becomes one slice of the chunk, with no allocation per row.
    let runStart = 0;
    let w = 0;
    let rows = 0;
    const endRun = () => {
      if (!rows) return;
      const data = buf.subarray(runStart, w);
      this.#hooks.inspect?.(open(), data);
      this.counts[open()]!.bytes += data.length;
      this.#queue.push({ table: open(), rows, data });
      this.#queued += data.length;
      runStart = w;
      rows = 0;
    };
    for (let nl = buf.indexOf(10, start); nl >= 0; nl = buf.indexOf(10, start)) {
      // The table index and the flags are digits, each ended by a tab; COPY text escapes tabs and
      // newlines inside values, and every padding field is `\t\N`, so the table's fields end 3 bytes
      // per padding field before the newline.
      let i = start;
      let table = 0;
      for (; buf[i] !== 9 && i < nl; i++) table = table * 10 + (buf[i]! - 48);
      if (table !== open() || table >= this.#fields.length || i >= nl) throw new Error(`the combined COPY sent a row of table ${table} while table ${open()} was open`);
      if (buf[i + 1] === 45 && buf[i + 2] === 50) {
        // A row an app invariant drops (flags -2): counted, never loaded.
        this.counts[table]!.invariantDropped++;
        start = nl + 1;
        continue;
      }
      if (buf[i + 1] === 45) {
        // The end row (flags -1): the table is complete.
        endRun();
        this.#queue.push({ table, end: true });
        this.#ended = table;
        start = nl + 1;
        continue;
      }
      let flags = 0;
      for (i++; buf[i] !== 9 && i < nl; i++) flags = flags * 10 + (buf[i]! - 48);
      const first = i + 1;
      const end = nl - 3 * (this.#width - this.#fields[table]!);
      if (end < first || (end < nl && buf[end] !== 9)) throw new Error(`the combined COPY sent a row of table ${table} without its padding`);
      buf.copyWithin(w, first, end);
      w += end - first;
      buf[w++] = 10;
      rows++;
      const c = this.counts[table]!;
      c.rows++;
      if (flags & 1) c.sampled++;
      for (let f = Math.floor(flags / 2), bit = 1; f > 0; f = Math.floor(f / 2), bit++) if (f % 2) c.bits[bit] = (c.bits[bit] ?? 0) + 1;
      start = nl + 1;
    }
    endRun();
    this.#rest = start < buf.length ? buf.subarray(start) : undefined;
  }

  /** Feeds the queue to the sinks, one at a time, in order; releases EA's stream when the queue has room. */
  #pump(): void {
    if (this.#pumping || !this.#queue.length || this.#failed) return;
    this.#pumping = this.#drain().finally(() => {
      this.#pumping = undefined;
      this.#pump();
    });
  }

  async #drain(): Promise<void> {
    try {
      for (;;) {
        if (this.#failed) return;
        const item = this.#queue.shift();
        if (!item) {
          // Nothing to load and no COPY open: the sinks' connection is free until EA sends more.
          if (!this.#sink && this.#idleReady && this.#hooks.idle) {
            this.#idleReady = await this.#hooks.idle();
            continue;
          }
          return;
        }
        if ('end' in item) {
          await this.#close(item.table);
          continue;
        }
        if (!this.#sink) {
          const stream = this.#hooks.open(item.table);
          // A sink that fails (EB refused a row) fails the whole stream, and is never written or
          // ended again: its connection may already be gone.
          stream.on('error', (err) => {
            this.#failed ??= err;
            this.destroy(this.#failed);
          });
          this.#sink = { table: item.table, stream };
        }
        this.#hooks.rows?.(item.table, item.rows);
        if (!this.#sink.stream.write(item.data)) await once(this.#sink.stream, 'drain');
        this.#queued -= item.data.length;
        if (this.#held && this.#queued <= this.#queueBytes / 2) {
          const release = this.#held;
          this.#held = undefined;
          release();
        }
      }
    } catch (err) {
      this.#failed = err as Error;
      this.destroy(this.#failed);
    }
  }

  async #close(table: number): Promise<void> {
    if (this.#failed) return;
    if (this.#sink) {
      this.#sink.stream.end();
      await finished(this.#sink.stream);
      this.#sink = undefined;
    }
    this.#hooks.done?.(table, this.counts[table]!);
    this.#idleReady = true;
  }
}
