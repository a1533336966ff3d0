import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { composeCommand, composeFiles } from '../../../lib/tools/compose.ts';

const dir = '/ops/compose';
const table = [
  {
    name: 'v2 for dev',
    cfg: { env: 'dev' as const, file: '/ops/compose/.env.dev' },
    flavor: 'v2' as const,
    args: ['up', '-d'],
    cmd: 'docker',
    argv: ['compose', '-f', '/ops/compose/docker-compose.yml', '-f', '/ops/compose/docker-compose.dev.yml', '--env-file', '/ops/compose/.env.dev', '-p', 'makapix-dev', 'up', '-d'],
  },
  {
    name: 'v1 for prod',
    cfg: { env: 'prod' as const, file: '/etc/makapix/.env.prod' },
    flavor: 'v1' as const,
    args: ['exec', '-T', 'db', 'pg_dump'],
    cmd: 'docker-compose',
    argv: ['-f', '/ops/compose/docker-compose.yml', '-f', '/ops/compose/docker-compose.prod.yml', '--env-file', '/etc/makapix/.env.prod', '-p', 'makapix-prod', 'exec', '-T', 'db', 'pg_dump'],
  },
];

for (const t of table) {
  test(`builds the compose command line: ${t.name}`, () => {
    assert.equal(composeCommand(t.cfg, t.args, t.flavor, dir), { cmd: t.cmd, argv: t.argv });
  });
}

test('arguments stay separate argv entries, never re-split or quoted', () => {
  const { argv } = composeCommand({ env: 'dev', file: '/x/.env dev' }, ['logs', 'api; rm -rf /'], 'v2', dir);
  assert.ok(argv.includes('/x/.env dev'));
  assert.is(argv.at(-1), 'api; rm -rf /');
});

test('an environment has the base file first, then its override', () => {
  assert.equal(composeFiles('prod', dir), ['/ops/compose/docker-compose.yml', '/ops/compose/docker-compose.prod.yml']);
});

test.run();
