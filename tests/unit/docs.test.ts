import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commandsInMarkdown, makeTargets } from '../harness/docs.ts';

test('finds make and script commands only inside code blocks, with their flags', () => {
  const md = ['Run `make nothing` here.', '```sh', '$ make sample-data PCT=10 ARGS="--seed 7 --yes"', '0 3 * * * /opt/makapix-ops/scripts/backup-prod.ts --json # nightly', './scripts/restore.ts --env dev --file x', 'docker ps --all', '```'].join('\n');
  const found = commandsInMarkdown(md, 'RUNBOOK.md').map(({ target, script, flags, line }) => ({ target, script, flags, line }));
  assert.equal(found, [
    { target: 'sample-data', script: undefined, flags: ['--seed', '--yes'], line: 3 },
    { target: undefined, script: 'backup-prod.ts', flags: ['--json'], line: 4 },
    { target: undefined, script: 'restore.ts', flags: ['--env', '--file'], line: 5 },
  ]);
});

test('reads targets and the script each recipe runs', () => {
  const mk = ['S := ./scripts', 'up-dev up-prod: setup ## x', '\t$(TS) $(S)/stack.ts up', 'test: setup', '\t$(TS) tests/run.ts', 'X ?= 1'].join('\n');
  assert.equal([...makeTargets(mk)], [['up-dev', 'stack.ts'], ['up-prod', 'stack.ts'], ['test', undefined]]);
});

test.run();
