import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { IncomingHttpHeaders } from 'node:http';
import {
  credentialsFromEnvironment,
  judgeAnswers,
  judgeCertDays,
  judgeDns,
  judgeHealth,
  judgeIndexable,
  judgeMqtt,
  judgeNoindex,
  judgeRobots,
  judgeSameAddress,
  judgeStatus,
  parseTarget,
  parseVaultFiles,
  renderChecklist,
  type Judgement,
} from '../../../lib/jobs/verify.ts';
import { UsageError } from '../../../lib/core/errors.ts';

const answer = (status: number, headers: IncomingHttpHeaders = {}, body = '') => ({ status, headers, body, ms: 5 });
const check = (j: Judgement, result: 'pass' | 'fail', detail: RegExp, name: string) => {
  assert.is(j.result, result, `${name}: ${j.detail}`);
  assert.match(j.detail, detail, name);
};

test('targets and known vault files from flags', () => {
  assert.equal(parseTarget('all'), ['prod', 'dev']);
  assert.equal(parseTarget('dev'), ['dev']);
  assert.throws(() => parseTarget('staging'), (e: Error) => e instanceof UsageError && /prod, dev or all/.test(e.message));
  assert.equal(parseVaultFiles(['dev=24/07/a.png', 'prod=a4/47/ee/b.gif']), { dev: '24/07/a.png', prod: 'a4/47/ee/b.gif' });
  for (const bad of ['24/07/a.png', 'dev=/etc/passwd', 'dev=24/../../x', 'qa=24/07/a.png', 'dev=24//a.png']) {
    assert.throws(() => parseVaultFiles([bad]), (e: Error) => e instanceof UsageError, bad);
  }
});

test('DNS: each host resolves, and all of them to one address', () => {
  const good = new Map<string, string[] | { error: string }>([
    ['makapix.club', ['203.0.113.7']],
    ['vault.makapix.club', ['203.0.113.7', '2001:db8::7']],
  ]);
  assert.equal(judgeDns(good).map((l) => l.judgement.result), ['pass', 'pass']);
  check(judgeSameAddress(good), 'pass', /all 2 hosts on 203\.0\.113\.7/, 'shared');
  const split = new Map<string, string[] | { error: string }>([
    ['makapix.club', ['203.0.113.7']],
    ['development.makapix.club', ['198.51.100.9']],
  ]);
  check(judgeSameAddress(split), 'fail', /makapix\.club → 203\.0\.113\.7; development\.makapix\.club → 198\.51\.100\.9/, 'split');
  const missing = new Map<string, string[] | { error: string }>([
    ['makapix.club', ['203.0.113.7']],
    ['vault-dev.makapix.club', { error: 'ENOTFOUND' }],
  ]);
  assert.equal(judgeDns(missing).map((l) => [l.host, l.judgement.result, l.judgement.detail]), [['makapix.club', 'pass', '203.0.113.7'], ['vault-dev.makapix.club', 'fail', 'ENOTFOUND']]);
  check(judgeSameAddress(missing), 'fail', /not every host resolves \(vault-dev\.makapix\.club\)/, 'missing');
});

test('HTTP statuses: 401 wanted without credentials, redirects named', () => {
  const cases: [string, Judgement, 'pass' | 'fail', RegExp][] = [
    ['401 as wanted', judgeStatus(answer(401), 401), 'pass', /^HTTP 401$/],
    ['open without credentials', judgeStatus(answer(200), 401), 'fail', /HTTP 200, expected 401 \(open without credentials\)/],
    ['vault redirect to https', judgeStatus(answer(308, { location: 'https://vault.makapix.club/x.png' }), 200), 'fail', /HTTP 308 → https:\/\/vault\.makapix\.club\/x\.png, expected 200/],
    ['missing file', judgeStatus(answer(404), 200), 'fail', /HTTP 404, expected 200/],
    ['web root 200', judgeAnswers(answer(200)), 'pass', /HTTP 200/],
    ['web root 204', judgeAnswers(answer(204)), 'pass', /HTTP 204/],
    ['web root 502', judgeAnswers(answer(502)), 'fail', /HTTP 502/],
    ['healthy', judgeHealth(answer(200, {}, '{"status":"ok"}')), 'pass', /HTTP 200 \{"status":"ok"\}/],
    ['200 but unhealthy', judgeHealth(answer(200, {}, '{"status":"error","db":"down"}')), 'fail', /HTTP 200 but/],
    ['health 503', judgeHealth(answer(503)), 'fail', /HTTP 503, expected 200/],
  ];
  for (const [name, j, result, detail] of cases) check(j, result, detail, name);
});

test('noindex on every EB response; none on EA', () => {
  const tagged = answer(401, { 'x-robots-tag': 'noindex, nofollow' });
  check(judgeNoindex([{ url: 'https://eb/', answer: tagged }, { url: 'https://eb/api/health', answer: tagged }]), 'pass', /"noindex, nofollow" on 2 responses/, 'all tagged');
  check(judgeNoindex([{ url: 'https://eb/', answer: tagged }, { url: 'https://eb/robots.txt', answer: answer(200, { 'x-robots-tag': 'nofollow' }) }]), 'fail', /no X-Robots-Tag: noindex on https:\/\/eb\/robots\.txt \(HTTP 200\)/, 'one without noindex');
  check(judgeIndexable([{ url: 'https://ea/', answer: answer(200) }]), 'pass', /no X-Robots-Tag on 1 responses/, 'EA clean');
  check(judgeIndexable([{ url: 'https://ea/', answer: answer(200, { 'x-robots-tag': 'noindex' }) }]), 'fail', /X-Robots-Tag "noindex" on https:\/\/ea\//, 'EA noindexed');
});

test('robots.txt must disallow everything for every agent', () => {
  const cases: [string, string, 'pass' | 'fail'][] = [
    ['the Caddyfile one', 'User-agent: *\nDisallow: /\n', 'pass'],
    ['comments and CRLF', '# dev\r\nUser-agent: *   \r\nDisallow: /  # all\r\n', 'pass'],
    ['disallow nothing', 'User-agent: *\nDisallow:\n', 'fail'],
    ['only one bot', 'User-agent: badbot\nDisallow: /\n', 'fail'],
    ['a subtree only', 'User-agent: *\nDisallow: /admin\n', 'fail'],
    ['an HTML page', '<html>login</html>', 'fail'],
  ];
  for (const [name, body, result] of cases) assert.is(judgeRobots(answer(200, {}, body)).result, result, name);
  check(judgeRobots(answer(401)), 'fail', /HTTP 401, expected 200/, 'behind auth without credentials');
});

test('TLS certificates need the minimum days left', () => {
  const now = new Date('2026-11-25T00:00:00Z');
  const c = (days: number) => ({ subject: 'makapix.club', notAfter: new Date(now.getTime() + days * 86_400_000) });
  check(judgeCertDays(c(60), now, 14), 'pass', /makapix\.club, 60 days left \(until 2027-01-24\)/, '60');
  check(judgeCertDays(c(14), now, 14), 'pass', /14 days left/, '14');
  check(judgeCertDays(c(13.5), now, 14), 'fail', /13 days left .*fewer than 14/, '13.5');
  check(judgeCertDays(c(-2), now, 14), 'fail', /-2 days left/, 'expired');
});

test('MQTT: the own device must round-trip; others must be refused', () => {
  check(judgeMqtt('accept', { connected: true, roundTrip: true, ms: 42 }), 'pass', /connected, published and received in 42 ms/, 'ok');
  check(judgeMqtt('accept', { connected: true, roundTrip: false, ms: 42 }), 'fail', /did not come back/, 'no echo');
  check(judgeMqtt('accept', { connected: false, error: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }), 'fail', /refused: ERR_SSL_TLSV1_ALERT_UNKNOWN_CA/, 'refused own');
  check(judgeMqtt('refuse', { connected: false, error: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' }), 'pass', /refused \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\)/, 'refused other');
  check(judgeMqtt('refuse', { connected: true, roundTrip: true, ms: 3 }), 'fail', /the broker ACCEPTED it/, 'accepted other');
});

test('credentials come from the environment, in pairs', () => {
  assert.is(credentialsFromEnvironment({}, 'VERIFY_EB'), undefined);
  const c = credentialsFromEnvironment({ VERIFY_EB_USER: 'alice', VERIFY_EB_PASSWORD: 'pw-123456789012' }, 'VERIFY_EB')!;
  assert.is(c.user, 'alice');
  assert.is(String(c.password), '[redacted]');
  assert.throws(() => credentialsFromEnvironment({ VERIFY_DEVICE_USER: 'tv1' }, 'VERIFY_DEVICE'), /VERIFY_DEVICE_USER and VERIFY_DEVICE_PASSWORD must be set together/);
});

test('the checklist: one line per check with result, detail and time, then a verdict', () => {
  const text = renderChecklist({
    ok: false,
    targets: ['dev'],
    checks: [
      { check: 'dns a', result: 'pass', detail: '127.0.0.1', ms: 1 },
      { check: 'dev X-Robots-Tag noindex', result: 'fail', detail: 'no X-Robots-Tag', ms: 1500 },
    ],
  });
  assert.equal(text.split('\n'), ['PASS  dns a                     127.0.0.1  (1ms)', 'FAIL  dev X-Robots-Tag noindex  no X-Robots-Tag  (1.5s)', '', '1 of 2 checks FAILED']);
});

test.run();
