// 20 processes start at the same instant on one stale lock: exactly one may hold it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ownRecord } from '../../lib/core/lock.ts';

const root = path.resolve(import.meta.dirname, '../..');
const racer = path.join(root, 'tests/fixtures/lock-racer/racer.ts');

test('20 racers on a stale lock: exactly one wins, the others name the winner and the file', async () => {
  const d = mkdtempSync(path.join(tmpdir(), 'lock-race-'));
  try {
    for (let round = 0; round < 1; round++) {
      const file = path.join(d, `stale-${round}.lock`);
      const go = path.join(d, `go-${round}`);
      const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
      writeFileSync(file, JSON.stringify({ ...ownRecord('backup'), pid: dead }));
      const outputs = Array.from({ length: 20 }, () => {
        const child = spawn(path.join(root, 'bin/ts'), [racer, file, go], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
        const ready = new Promise<void>((resolve) => child.stdout.on('data', () => out.includes('ready') && resolve()));
        const done = new Promise<string>((resolve) => child.on('close', () => resolve(out)));
        return { ready, done };
      });
      await Promise.all(outputs.map((o) => o.ready));
      writeFileSync(go, '');
      const results = (await Promise.all(outputs.map((o) => o.done))).map((o) => o.replace('ready\n', '').trim());
      const won = results.filter((r) => r === 'won');
      assert.is(won.length, 1, `round ${round}: ${results.join(' / ')}`);
      for (const r of results.filter((x) => x !== 'won')) assert.match(r, `lock ${file}`);
      assert.equal(readdirSync(d).filter((n) => n.startsWith(`stale-${round}`)), [], 'nothing left behind');
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test.run();
