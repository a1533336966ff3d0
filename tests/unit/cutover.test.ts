import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cutoverPlan, cutoverRollbackCommand } from '../../lib/jobs/cutover.ts';
import type { EnvConfig } from '../../lib/core/config.ts';

test('cutover plan and its rollback command', () => {
  const cfg = { env: 'prod', file: '/x/.env.prod', vars: { DB_VOLUME_NAME: 'makapix_pg_data', BACKUP_DIR: '/backups' } } as unknown as EnvConfig;
  const p = cutoverPlan(cfg, 'makapix', ['makapix_db_1', 'makapix_api_1']);
  assert.is(p.rollback, 'make down-prod && docker start makapix_db_1 makapix_api_1');
  assert.match(p.steps[0]!, 'makapix_pg_data');
  assert.match(p.steps[1]!, 'stop the old stack makapix (2 running container(s)');
  assert.match(cutoverRollbackCommand([]), '<the old containers>');
});

test.run();
