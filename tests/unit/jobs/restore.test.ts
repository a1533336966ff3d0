import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createDatabaseStatements, drillProblems, formatOfFile, productionConsent, restoreDatabaseNames, scratchDatabaseName, swapStatements } from '../../../lib/jobs/restore.ts';

test('production needs typed consent or both flags; --yes alone is refused; dev needs none', () => {
  const table: [Parameters<typeof productionConsent>[0], boolean, boolean, ReturnType<typeof productionConsent>][] = [
    ['prod', false, false, 'ask'],
    ['prod', true, false, 'refuse'],
    ['prod', false, true, 'ask'],
    ['prod', true, true, 'given'],
    ['dev', false, false, 'not-needed'],
    ['dev', true, false, 'not-needed'],
  ];
  for (const [env, yes, iKnowThisIsProduction, expected] of table) assert.is(productionConsent(env, { yes, iKnowThisIsProduction }), expected, `${env} yes=${yes} iknow=${iKnowThisIsProduction}`);
});

test('databases beside the live one: distinct, stamped, within 63 bytes', () => {
  const at = new Date('2026-11-25T03:04:05Z');
  assert.equal(restoreDatabaseNames('makapix', at), { incoming: 'makapix_restore_20261125_030405', outgoing: 'makapix_replaced_20261125_030405' });
  assert.is(scratchDatabaseName('makapix', at), 'makapix_drill_20261125_030405');
  const long = 'x'.repeat(63);
  const n = restoreDatabaseNames(long, at);
  for (const name of [n.incoming, n.outgoing, scratchDatabaseName(long, at)]) {
    assert.ok(name.length <= 63, name);
    assert.is.not(name, long);
  }
});

test('the new database copies owner, encoding, collation and explicit privileges', () => {
  const shape = { owner: 'owner', encoding: 'UTF8', collate: 'C.UTF-8', ctype: 'C.UTF-8', acl: null };
  assert.equal(createDatabaseStatements('new"db', shape), [`CREATE DATABASE "new""db" WITH TEMPLATE template0 OWNER "owner" ENCODING 'UTF8' LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'`]);
  const withAcl = createDatabaseStatements('n', { ...shape, acl: [{ grantee: 'owner', privilege: 'CREATE', grantable: false }, { grantee: 'api_worker', privilege: 'CONNECT', grantable: false }, { grantee: null, privilege: 'TEMPORARY', grantable: false }] });
  assert.equal(withAcl.slice(1), ['REVOKE ALL ON DATABASE "n" FROM PUBLIC', 'GRANT CREATE ON DATABASE "n" TO "owner"', 'GRANT CONNECT ON DATABASE "n" TO "api_worker"', 'GRANT TEMPORARY ON DATABASE "n" TO PUBLIC']);
});

test('the swap is one transaction of two renames', () => {
  assert.equal(swapStatements('makapix', 'in', 'out'), ['BEGIN', 'ALTER DATABASE "makapix" RENAME TO "out"', 'ALTER DATABASE "in" RENAME TO "makapix"', 'COMMIT']);
});

test('the drill fails only for tables that came back empty though they had rows', () => {
  const problems = drillProblems([
    { table: 'public.users', restored: 0, live: 10, atBackup: 9 },
    { table: 'public.posts', restored: 5, live: 7, atBackup: 5 },
    { table: 'public.reports', restored: 0, live: 0, atBackup: 0 },
    { table: 'public.new_table', restored: 0, live: 3, atBackup: null },
  ]);
  assert.equal(problems, ['public.users came back empty, but had about 9 rows at backup time']);
});

test('the format follows the file name', () => {
  assert.is(formatOfFile('/b/makapix-20260101-000000.sql'), 'plain');
  assert.is(formatOfFile('/b/makapix-20260101-000000.dump'), 'custom');
  assert.is(formatOfFile('/b/old-manual-backup.sql'), 'plain');
});

test.run();
