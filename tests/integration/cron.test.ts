// Cron runs scripts by absolute path, from /, with PATH=/usr/bin:/bin, no TTY and no HOME setup.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runEntry } from '../harness/server.ts';
import { readdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';

const scripts = readdirSync(path.join(projectRoot, 'scripts')).filter((f) => f.endsWith('.ts'));

const cron = (script: string, args: string[], extraEnv: Record<string, string> = {}) => runEntry(script, args, { cwd: '/', env: { PATH: '/usr/bin:/bin', ...extraEnv } });

test('there are scripts to check', () => {
  assert.ok(scripts.length > 0);
});

for (const script of scripts) {
  let help = '';
  test(`${script} runs by absolute path from / under cron's environment`, () => {
    const r = cron(script, ['--help']);
    assert.is(r.status, 0, `${script} --help exited ${r.status}: ${r.stderr}`);
    assert.match(r.stdout, /^Usage: /);
    assert.match(r.stdout, /Exit codes/);
    help = r.stdout;
  });

  test(`${script} rejects an unknown flag with its documented usage exit code and points at --help`, () => {
    // Nagios plugins (monitor) report a usage error as UNKNOWN (3); every other script uses 2.
    const usageCode = /UNKNOWN/.test(help) ? 3 : 2;
    const r = cron(script, ['--no-such-flag']);
    assert.is(r.status, usageCode, `${script} exited ${r.status}: ${r.stderr}`);
    assert.match(r.stderr, /--no-such-flag/);
    assert.match(r.stderr, /--help/);
    assert.is(r.stderr.trim().split('\n').length, 1, 'the error is one line');
  });
}

test('a script that needs an env file names the missing path and the example to copy (exit 2)', () => {
  const empty = mkdtempSync(path.join(tmpdir(), 'noenv-'));
  const r = cron('check.ts', [], { MAKAPIX_ENV_DIR: empty });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, path.join(empty, '.env.'));
  assert.match(r.stderr, /compose\/\.env\.(prod|dev)\.example/);
});

test.run();
