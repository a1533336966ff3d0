import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import { startTestCluster } from '../../dev/scratch-cluster.ts';

test('a test cluster is a real PostgreSQL 15 on loopback that requires its password', async () => {
  const cluster = await startTestCluster();
  const client = new pg.Client(cluster.connection());
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
    assert.is(Math.floor(Number(rows[0]!.v) / 10000), 15);
  } finally {
    await client.end();
  }
  const wrong = new pg.Client({ ...cluster.connection(), password: 'not-it' });
  const refused = await wrong.connect().then(() => false, () => true);
  assert.ok(refused, 'a wrong password was accepted');
  await cluster.stop();
});

test('two clusters never share a port', async () => {
  const [a, b] = await Promise.all([startTestCluster(), startTestCluster()]);
  assert.is.not(a.port, b.port);
  await Promise.all([a.stop(), b.stop()]);
});

test.run();
