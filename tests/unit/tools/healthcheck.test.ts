import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pingUrl } from '../../../lib/tools/healthcheck.ts';
import { OpsError } from '../../../lib/core/errors.ts';

test('healthchecks-style URLs: base for success, /start and /fail beside it', () => {
  const table: [string, Parameters<typeof pingUrl>[1], string][] = [
    ['https://hc-ping.com/1234', 'success', 'https://hc-ping.com/1234'],
    ['https://hc-ping.com/1234', 'start', 'https://hc-ping.com/1234/start'],
    ['https://hc-ping.com/1234/', 'fail', 'https://hc-ping.com/1234/fail'],
    ['http://127.0.0.1:8000/ping/abc?rid=1', 'start', 'http://127.0.0.1:8000/ping/abc/start?rid=1'],
  ];
  for (const [base, kind, expected] of table) assert.is(pingUrl(base, kind), expected);
});

test('a malformed or non-http URL is a usage error (exit 2)', () => {
  for (const bad of ['not a url', 'ftp://example.org/x', 'file:///etc/passwd']) {
    try {
      pingUrl(bad, 'start');
      assert.unreachable(bad);
    } catch (err) {
      assert.is((err as OpsError).exitCode, 2, bad);
    }
  }
});

test.run();
