import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appCutoverPlan, appRollbackCommand, cutoverPlan, cutoverRollbackCommand, edgeHttpAddress } from '../../../lib/jobs/cutover.ts';
import { classifyLayout, type SeenContainer } from '../../../lib/domain/layout.ts';
import type { EnvConfig } from '../../../lib/core/config.ts';

test('cutover plan and its rollback command', () => {
  const cfg = { env: 'prod', file: '/x/.env.prod', vars: { DB_VOLUME_NAME: 'makapix_pg_data', BACKUP_DIR: '/backups' } } as unknown as EnvConfig;
  const p = cutoverPlan(cfg, 'makapix', ['makapix_db_1', 'makapix_api_1']);
  assert.is(p.rollback, 'make down-prod && docker start makapix_db_1 makapix_api_1');
  assert.match(p.steps[0]!, 'makapix_pg_data');
  assert.match(p.steps[1]!, 'stop the old stack makapix (2 running container(s)');
  assert.match(cutoverRollbackCommand([]), '<the old containers>');
});

const c = (name: string, service: string, extra: Partial<SeenContainer> = {}): SeenContainer => ({
  name,
  running: true,
  image: 'x',
  labels: {
    'com.docker.compose.project': 'makapix-prod',
    'com.docker.compose.service': service,
    'com.docker.compose.project.working_dir': '/opt/makapix/deploy/stack',
    'com.docker.compose.project.config_files': '/opt/makapix/deploy/stack/docker-compose.yml,/opt/makapix/deploy/stack/docker-compose.prod.yml',
  },
  volumes: [],
  ...extra,
});

test("the app's layout: plan in order (build and edge first, handover last), nothing of the app removed, its own compose as the rollback", () => {
  const cfg = { env: 'prod', file: '/x/.env.prod', vars: { DB_VOLUME_NAME: 'makapix_pg_data', BACKUP_DIR: '/backups' } } as unknown as EnvConfig;
  const layout = classifyLayout(
    [c('caddy', 'caddy', { volumes: ['makapix-stack_caddy_data'] }), c('makapix-prod-db', 'db', { volumes: ['makapix_pg_data'] }), c('makapix-prod-api', 'api'), c('makapix-prod-www-redirect', 'www-redirect'), c('makapix-prod-redis', 'redis', { running: false })],
    { project: 'makapix-prod', planProject: 'makapix', edgeProject: 'makapix-edge', ourServices: ['db', 'api', 'broker'] },
  );
  const p = appCutoverPlan(cfg, layout, { data: 'makapix-stack_caddy_data', config: 'makapix-stack_caddy_config', reused: true }, 'makapix-edge-caddy');
  assert.is(p.layout, 'app-prod-with-caddy');
  const at = (re: RegExp) => p.steps.findIndex((s) => re.test(s));
  assert.ok(at(/^build EA's images/) < at(/^stop the app's containers/), 'images are built before anything stops');
  assert.ok(at(/^create the edge Caddy/) < at(/^stop the app's containers/));
  assert.match(p.steps[at(/^create the edge Caddy/)]!, "the app's certificate volumes makapix-stack_caddy_data, makapix-stack_caddy_config (no re-issuance)");
  assert.match(p.steps[at(/^stop the app's containers/)]!, 'makapix-prod-api, makapix-prod-db');
  assert.is(at(/^Caddy handover: stop caddy \(kept, not removed/), p.steps.length - 2, 'the handover is last but one: only the Caddy stops in the gap');
  assert.match(p.steps.at(-1)!, /^stop makapix-prod-www-redirect \(kept, not removed; they hold no port, so after the handover\)/);
  assert.not.match(p.steps.filter((x) => /stop/.test(x) && !/^found/.test(x)).join('\n'), 'makapix-prod-redis', 'a stopped container is not touched');
  assert.match(p.steps[0]!, 'makapix-prod-redis', 'but it is listed');
  assert.is(p.rollback, 'make down-prod && docker rm -f makapix-edge-caddy && (cd /opt/makapix/deploy/stack && docker compose -f /opt/makapix/deploy/stack/docker-compose.yml -f /opt/makapix/deploy/stack/docker-compose.prod.yml -p makapix-prod up -d)');
  assert.match(appRollbackCommand(undefined, 'makapix-prod', 'e'), "the app's own");
});

test('EDGE_HTTP_BIND -> where the handover is timed', () => {
  assert.equal(edgeHttpAddress(undefined), { host: '127.0.0.1', port: 80 });
  assert.equal(edgeHttpAddress('127.0.0.1:18080'), { host: '127.0.0.1', port: 18080 });
  assert.equal(edgeHttpAddress('0.0.0.0:8080'), { host: '127.0.0.1', port: 8080 });
});

test.run();
