import { test } from 'uvu';
import * as assert from 'uvu/assert';
import path from 'node:path';
import { loadEnvConfig } from '../../../lib/core/config.ts';
import { composeDir } from '../../../lib/core/paths.ts';
import { containerPassword, dumpArgs, globalsArgs, pgCommand, restoreArchiveArgs, restoreScriptArgs, verifyArgs, type PgPlace } from '../../../lib/tools/pgtools.ts';

const prod = loadEnvConfig('prod', path.join(composeDir, '.env.prod.example'));
const local: PgPlace = { kind: 'local', connection: { host: '127.0.0.1', port: 5433, user: 'owner', password: 's3cret-pass', database: 'makapix' } };
const container: PgPlace = { kind: 'container', cfg: prod, user: 'owner' };

test('local tools get host, port and user as flags, and the password only through PGPASSWORD', () => {
  const table: [Parameters<typeof pgCommand>[0], string | undefined, string[]][] = [
    ['pg_dump', 'makapix', ['--host=127.0.0.1', '--port=5433', '--username=owner', '--dbname=makapix', '--no-password', '--format=custom']],
    ['pg_dumpall', undefined, ['--host=127.0.0.1', '--port=5433', '--username=owner', '--no-password', '--globals-only']],
    ['pg_dumpall', 'postgres', ['--host=127.0.0.1', '--port=5433', '--username=owner', '--database=postgres', '--no-password', '--globals-only']],
  ];
  for (const [tool, database, argv] of table) {
    const args = tool === 'pg_dump' ? dumpArgs('custom') : globalsArgs();
    const c = pgCommand(tool, local, { ...(database && { database }), args });
    assert.is(c.cmd, tool);
    assert.equal(c.argv, argv);
    assert.equal(c.env, { PGPASSWORD: 's3cret-pass' });
    assert.not.ok(c.argv.join(' ').includes('s3cret-pass'), 'the password reached argv');
  }
});

test('in the container the server\'s own binary runs through docker compose exec -T db, over the socket', () => {
  const v2 = pgCommand('pg_dump', container, { database: 'makapix', args: dumpArgs('plain') }, 'v2');
  assert.is(v2.cmd, 'docker');
  const exec = v2.argv.indexOf('exec');
  assert.equal(v2.argv.slice(0, 1), ['compose']);
  assert.equal(v2.argv.slice(exec), ['exec', '-T', 'db', 'sh', '-c', containerPassword, 'pg_dump', '--username=owner', '--dbname=makapix', '--no-password', '--format=plain']);
  assert.ok(v2.argv.includes('makapix-prod'), 'the project name is missing');
  assert.equal(v2.env, {});
  assert.not.ok(v2.argv.some((a) => a.startsWith('--host')), 'a container tool must use the socket');
  assert.not.ok(v2.argv.join(' ').includes('change-me-prod-db-admin'), 'the password reached argv');
  const v1 = pgCommand('pg_restore', container, { args: verifyArgs() }, 'v1');
  assert.is(v1.cmd, 'docker-compose');
  assert.equal(v1.argv.slice(v1.argv.indexOf('exec')), ['exec', '-T', 'db', 'sh', '-c', containerPassword, 'pg_restore', '--username=owner', '--no-password', '--file=/dev/null']);
});

test('verification reads every block; restores stop at the first error', () => {
  assert.equal(verifyArgs(), ['--file=/dev/null']);
  assert.ok(!verifyArgs().includes('--list'), '--list reads only the table of contents');
  assert.ok(restoreArchiveArgs().includes('--exit-on-error'));
  assert.ok(restoreScriptArgs().includes('--set=ON_ERROR_STOP=1'));
  assert.ok(restoreScriptArgs().includes('--single-transaction'));
});

test('a connection without a password sets no PGPASSWORD', () => {
  const c = pgCommand('psql', { kind: 'local', connection: { host: '127.0.0.1', port: 1, user: 'u' } }, { database: 'd', args: [] });
  assert.equal(c.env, {});
});

test.run();
