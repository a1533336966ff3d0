// Keeps the operator documentation true: every make target and script flag it tells people to
// type must exist, so a renamed flag breaks the build instead of the operator at 3 a.m.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runEntry } from '../harness/server.ts';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';
import { commandsInMarkdown, makeTargets } from '../harness/docs.ts';

const docs = ['README.md', ...readdirSync(path.join(projectRoot, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const targets = makeTargets(readFileSync(path.join(projectRoot, 'Makefile'), 'utf8'));
const helpCache = new Map<string, string>();
function helpOf(script: string): string {
  if (!helpCache.has(script)) {
    const r = runEntry(script, ['--help']);
    helpCache.set(script, r.status === 0 ? r.stdout : '');
  }
  return helpCache.get(script)!;
}

test('the runbook exists and is linked from the README', () => {
  assert.ok(existsSync(path.join(projectRoot, 'docs/RUNBOOK.md')));
  assert.match(readFileSync(path.join(projectRoot, 'README.md'), 'utf8'), '(docs/RUNBOOK.md)');
});

for (const doc of docs) {
  test(`every command in ${doc} exists`, () => {
    const problems: string[] = [];
    for (const c of commandsInMarkdown(readFileSync(path.join(projectRoot, doc), 'utf8'), doc)) {
      const where = `${c.file}:${c.line} \`${c.text}\``;
      let script = c.script;
      if (c.target !== undefined) {
        if (!targets.has(c.target)) problems.push(`${where}: no make target ${c.target}`);
        script = targets.get(c.target);
        if (c.flags.length && !script) problems.push(`${where}: ${c.target} runs no script that takes ARGS`);
      }
      if (!script) continue;
      const help = helpOf(script);
      if (!help) {
        problems.push(`${where}: scripts/${script} --help failed`);
        continue;
      }
      for (const flag of c.flags) if (!new RegExp(`${flag}(?![a-z0-9-])`).test(help)) problems.push(`${where}: scripts/${script} has no ${flag}`);
    }
    assert.equal(problems, []);
  });
}

test.run();
