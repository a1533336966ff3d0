import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  evaluateOffsite, defaultOffsiteThresholds, forgetArgs, lockHolderGone, prepareOffsite, planIncludes, samplePaths, snapshotTags, tagValue, toolkitTag, vaultProblems, type OffsiteStatus,
} from '../../../lib/domain/offsite.ts';
import { classifyFailure, parseBackupOutput, parseCheckOutput, parseSnapshots, resticArgs, resticCommand } from '../../../lib/tools/restic.ts';
import { renderCommand } from '../../../lib/core/exec.ts';
import { Secret } from '../../../lib/core/secret.ts';
import { parseForgetOutput } from '../../../lib/jobs/backup.ts';
import { defaultThresholds, evaluateOffsiteCopy } from '../../../lib/domain/monitoring.ts';

test('tags name the toolkit, host, environment and dump; odd characters are refused', () => {
  const tags = snapshotTags({ host: 'vps-1', env: 'prod', stem: 'makapix-20261125-033000' });
  assert.equal(tags, [toolkitTag, 'host=vps-1', 'env=prod', 'dump=makapix-20261125-033000']);
  assert.is(tagValue(tags, 'dump'), 'makapix-20261125-033000');
  assert.is(tagValue(tags, 'nope'), undefined);
  assert.throws(() => snapshotTags({ host: 'a,b', env: 'prod', stem: 's' }), /plain/);
});

test('includes: the backup, the vault, the CA, both envs\' files and the app checkouts\', the edge credentials; EB\'s vault never; one path once', () => {
  const inc = planIncludes({
    backupFiles: ['/backups/makapix-20261125-033000.dump', '/backups/makapix-20261125-033000.manifest.json'],
    contentsFile: '/backups/offsite/contents.json',
    prodVault: '/mnt/vault-1',
    prodMqttCerts: '/opt/makapix/mqtt/certs',
    toolkitEnvFiles: [{ env: 'prod', file: '/opt/makapix-ops/compose/.env.prod' }, { env: 'dev', file: '/opt/makapix-ops/compose/.env.dev' }],
    appDirs: [{ env: 'prod', dir: '/opt/makapix' }, { env: 'dev', dir: '/opt/makapix' }],
    edgeCredentialsDir: '/opt/makapix-ops/caddy/credentials',
  });
  const byPath = Object.fromEntries(inc.map((i) => [i.path, i]));
  assert.is(byPath['/mnt/vault-1']!.required, true);
  assert.is(byPath['/opt/makapix/mqtt/certs']!.role, 'mqtt-certs');
  assert.is(byPath['/opt/makapix-ops/compose/.env.dev']!.required, false);
  for (const f of ['.env', '.env.prod', '.env.dev']) assert.ok(byPath[`/opt/makapix/deploy/stack/${f}`], f);
  assert.is(inc.filter((i) => i.path === '/opt/makapix/deploy/stack/.env').length, 1, 'the shared checkout .env twice');
  assert.not.ok(inc.some((i) => i.path.includes('vault-dev')));
  assert.throws(() => planIncludes({ backupFiles: ['relative.dump'], contentsFile: '/c', prodVault: '/v', prodMqttCerts: '/m', toolkitEnvFiles: [], appDirs: [], edgeCredentialsDir: '/e' }), /not absolute/);
});

test('retention: own snapshots only, grouped by host, then prune; a bad policy is refused', () => {
  assert.equal(forgetArgs({ daily: 7, weekly: 4, monthly: 12 }), ['--tag', toolkitTag, '--group-by', 'host', '--keep-daily', '7', '--keep-weekly', '4', '--keep-monthly', '12', '--prune']);
  assert.throws(() => forgetArgs({ daily: 0, weekly: 4, monthly: 12 }), /daily/);
});

test('a lock is stale only when its holder is gone: dead pid here, or not refreshed for 30 minutes', () => {
  const now = new Date('2026-11-25T03:40:00Z');
  const here = (alive: boolean) => ({ hostname: 'vps', now, isAlive: () => alive });
  const lock = (o: Partial<{ time: string; hostname: string }>) => ({ id: 'a'.repeat(64), time: '2026-11-25T03:35:00Z', exclusive: false, hostname: 'vps', pid: 42, ...o });
  assert.is(lockHolderGone(lock({}), here(false)), true, 'dead pid on this host');
  assert.is(lockHolderGone(lock({}), here(true)), false, 'live pid on this host');
  assert.is(lockHolderGone(lock({ hostname: 'laptop' }), here(false)), false, 'another host, fresh: its pid means nothing here');
  assert.is(lockHolderGone(lock({ hostname: 'laptop', time: '2026-11-25T03:05:00Z' }), here(true)), true, 'not refreshed for 35 minutes');
});

test('monitor: snapshot age against the thresholds, a failed or missing check', () => {
  const now = new Date('2026-11-26T04:00:00Z');
  const status = (o: Partial<OffsiteStatus>): OffsiteStatus => ({ version: 1, repository: 'b2:x', lastSnapshot: { id: 'abcd1234', time: '2026-11-26T03:31:00Z', dump: 'makapix-20261126-033000' }, lastCheck: { at: '2026-11-22T05:00:00Z', ok: true, subset: '10%', detail: 'no errors' }, ...o });
  const levels = (s: OffsiteStatus | undefined) => evaluateOffsite(s, now, defaultOffsiteThresholds).map((i) => i.status);
  assert.equal(levels(status({})), ['OK', 'OK']);
  assert.equal(levels(status({ lastSnapshot: { id: 'x', time: '2026-11-25T00:00:00Z', dump: 'd' } })), ['WARNING', 'OK']);
  assert.equal(levels(status({ lastSnapshot: { id: 'x', time: '2026-11-23T00:00:00Z', dump: 'd' } })), ['CRITICAL', 'OK']);
  assert.equal(levels(status({ lastCheck: { at: '2026-11-25T05:00:00Z', ok: false, subset: '10%', detail: 'pack abc damaged' } })), ['OK', 'CRITICAL']);
  assert.equal(levels(status({ lastCheck: undefined })), ['OK', 'WARNING']);
  assert.equal(levels(status({ lastCheck: { at: '2026-11-10T05:00:00Z', ok: true, subset: '10%', detail: 'no errors' } })), ['OK', 'WARNING']);
  assert.equal(levels(undefined), ['CRITICAL']);
  const failed = evaluateOffsite(status({ lastBackup: { at: '2026-11-26T03:40:00Z', ok: false, error: 'unreachable' } }), now, defaultOffsiteThresholds)[0]!;
  assert.match(failed.detail, /the last attempt .* failed: unreachable/);
});

test("monitor's offsite check: not configured is a WARNING; otherwise the worst of snapshot age and check", () => {
  const now = new Date('2026-11-26T04:00:00Z');
  const off = evaluateOffsiteCopy(false, undefined, now, defaultThresholds);
  assert.is(off.status, 'WARNING');
  assert.match(off.summary, /RESTIC_REPOSITORY/);
  const status: OffsiteStatus = { version: 1, repository: 'b2:x', lastSnapshot: { id: 'abcd1234', time: '2026-11-26T03:31:00Z', dump: 'd' }, lastCheck: { at: '2026-11-25T05:00:00Z', ok: false, subset: '10%', detail: 'pack 1f damaged' } };
  const bad = evaluateOffsiteCopy(true, status, now, defaultThresholds);
  assert.is(bad.status, 'CRITICAL');
  assert.match(bad.summary, /offsite check failed at .*pack 1f damaged/);
});

test('the drill: a sample without repeats; a differing or missing file fails, one gone from the live vault does not', () => {
  const items = Array.from({ length: 100 }, (_, i) => i);
  const s = samplePaths(items, 10, () => 0.5);
  assert.is(new Set(s).size, 10);
  assert.is(samplePaths(items, 500).length, 100);
  assert.equal(vaultProblems([{ path: 'a', restored: 'x', live: 'x' }, { path: 'b', restored: 'x', live: null }]), []);
  assert.is(vaultProblems([{ path: 'a', restored: 'x'.repeat(64), live: 'y'.repeat(64) }]).length, 1);
  assert.match(vaultProblems([{ path: 'a', restored: null, live: 'y' }])[0]!, /missing from the snapshot/);
});

test('restic commands: secrets in the environment only, rendered by name; argv for each operation', () => {
  const repo = { repository: 'b2:bucket:restic', passwordFile: '/etc/makapix-ops/restic-password', backendEnv: { B2_ACCOUNT_KEY: new Secret('K3y-very-secret') } };
  const c = resticCommand(repo, resticArgs.snapshots('makapix-ops'));
  assert.not.ok(c.argv.join(' ').includes('K3y-very-secret'));
  assert.is(c.env!.B2_ACCOUNT_KEY, 'K3y-very-secret');
  const line = renderCommand(c);
  assert.not.ok(line.includes('K3y-very-secret'));
  assert.match(line, /B2_ACCOUNT_KEY=… restic snapshots --json --no-lock --tag makapix-ops$/);
  assert.equal(resticArgs.backup({ paths: ['/a', '/b'], tags: ['t1'], host: 'h', excludes: ['lost+found'] }), ['backup', '--json', '--quiet', '--host', 'h', '--tag', 't1', '--exclude', 'lost+found', '--', '/a', '/b']);
  assert.equal(resticArgs.backup({ paths: ['/a'], tags: [], host: 'h', excludes: [], parent: 'abc' }).slice(0, 7), ['backup', '--json', '--quiet', '--host', 'h', '--parent', 'abc']);
  assert.equal(resticArgs.check('10%'), ['check', '--read-data-subset=10%']);
  assert.equal(resticCommand({ ...repo, sftpCommand: 'ssh -p 2222 u@h -s sftp' }, ['init']).argv, ['-o', 'sftp.command=ssh -p 2222 u@h -s sftp', 'init']);
});

test("restic's output: backup summary and errors, snapshots, check figures, forget counts, failure kinds", () => {
  const out = [
    '{"message_type":"error","error":{"message":"lstat /mnt/vault-1/a.png: no such file or directory"},"during":"archival","item":"/mnt/vault-1/a.png"}',
    '{"message_type":"summary","files_new":5,"files_changed":1,"files_unmodified":2,"data_added":2422,"total_files_processed":8,"total_bytes_processed":10,"total_duration":0.21,"snapshot_id":"11a0c8b0"}',
  ].join('\n');
  const b = parseBackupOutput(out);
  assert.is(b.summary?.snapshotId, '11a0c8b0');
  assert.is(b.summary?.filesChanged, 1);
  assert.equal(b.errors, ['/mnt/vault-1/a.png: lstat /mnt/vault-1/a.png: no such file or directory']);
  const snaps = parseSnapshots('[{"time":"2026-12-03T08:10:53Z","paths":["/a"],"hostname":"h","id":"bb","short_id":"b"},{"time":"2026-12-03T08:10:48Z","paths":["/a"],"hostname":"h","tags":["x"],"id":"aa"}]');
  assert.equal(snaps.map((s) => s.id), ['aa', 'bb']);
  assert.is(snaps[0]!.shortId, 'aa');
  const check = parseCheckOutput('check snapshots, trees and blobs\n[0:00] 100.00%  3 / 3 snapshots\n\nread 50.0% of data packs\n[0:00] 100.00%  1 / 1 packs\n\nno errors were found\n');
  assert.equal(check, { ok: true, figures: '3 snapshots, read 50.0% of data packs, 1 packs read' });
  assert.is(parseCheckOutput('Fatal: repository contains errors').ok, false);
  assert.equal(parseForgetOutput('[{"tags":["makapix-ops"],"host":"h","keep":[{},{}],"remove":[{}]}]\n3 snapshots have been removed'), { kept: 2, removed: 1 });
  assert.is(classifyFailure('Fatal: wrong password or no key found'), 'wrong-password');
  assert.is(classifyFailure('Fatal: unable to open config file: stat /x/config: no such file or directory\nIs there a repository at the following location?'), 'no-repository');
  assert.is(classifyFailure('subprocess ssh: ssh: connect to host 127.0.0.1 port 2222: Connection refused\nFatal: unable to open repository at sftp:...: unable to start the sftp session, error: EOF'), 'unreachable');
  assert.is(classifyFailure('Fatal: unable to create lock in backend: repository is already locked exclusively by PID 7'), 'locked');
  assert.is(classifyFailure('Fatal: unable to create lock in backend: Save(<lock/1f2e>): connection lost'), 'unreachable');
  assert.is(classifyFailure('Fatal: invalid id "0a1b2c3d": no matching ID found for prefix "0a1b2c3d"'), 'unknown-snapshot');
});

test("before the snapshot: after a clean run nothing is asked of the repository; after a failed or killed one, stale locks are cleared", () => {
  const clean: OffsiteStatus = {
    version: 1, repository: '/srv/restic',
    lastSnapshot: { id: 'aa11', time: '2026-11-24T03:30:00Z', dump: 'makapix-20261124-033000' },
    lastBackup: { at: '2026-11-24T03:31:00Z', ok: true },
  };
  const failed = { at: clean.lastBackup!.at, ok: false, error: 'killed' };
  const cases: [string, OffsiteStatus | undefined, ReturnType<typeof prepareOffsite>][] = [
    ['the last run ended cleanly', clean, { parent: 'aa11', lookUpParent: false, clearLocks: false }],
    ['no status file yet (nothing of ours can be left there)', undefined, { lookUpParent: true, clearLocks: false }],
    ['another repository', { ...clean, repository: 'sftp:backup@host:/restic' }, { lookUpParent: true, clearLocks: false }],
    ['the last run failed (its restic may have left a lock)', { ...clean, lastBackup: failed }, { lookUpParent: true, clearLocks: true }],
    ['a run was killed while it ran', { ...clean, running: { since: '2026-11-25T03:30:00Z', pid: 4242 } }, { lookUpParent: true, clearLocks: true }],
    ['only a check recorded', { version: 1, repository: '/srv/restic', lastCheck: { at: clean.lastBackup!.at, ok: true, subset: '10%', detail: '' } }, { lookUpParent: true, clearLocks: false }],
  ];
  for (const [what, status, expected] of cases) assert.equal(prepareOffsite(status, '/srv/restic'), expected, what);
});

test.run();
