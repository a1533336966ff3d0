// The layouts a production host can be in, as Docker reports them, and what up-prod does with each.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classifyLayout, edgeVolumes, managedLabel, upDecision, type SeenContainer } from '../../../lib/domain/layout.ts';
import { parseInspect } from '../../../lib/tools/docker.ts';

const ours = ['db', 'cache', 'broker', 'api', 'worker', 'web', 'mqtt', 'vault'];
const opts = { project: 'makapix-prod', planProject: 'makapix', edgeProject: 'makapix-edge', ourServices: ours };
const c = (name: string, project: string | undefined, service: string | undefined, extra: Partial<SeenContainer> & { managed?: boolean } = {}): SeenContainer => ({
  name,
  running: extra.running ?? true,
  image: extra.image ?? 'x:1',
  labels: { ...(project && { 'com.docker.compose.project': project }), ...(service && { 'com.docker.compose.service': service }), ...(extra.managed && { [managedLabel]: 'true' }) },
  volumes: extra.volumes ?? [],
});

/** The app's production today (deploy/stack/ of fabkury/makapix, run with -p makapix-prod). */
const appProd = (running = true) => [
  c('caddy', 'makapix-prod', 'caddy', { running, image: 'lucaslorentz/caddy-docker-proxy:2.9-alpine', volumes: ['makapix-stack_caddy_data', 'makapix-stack_caddy_config'] }),
  c('makapix-prod-db', 'makapix-prod', 'db', { running, volumes: ['makapix_pg_data'] }),
  c('makapix-prod-api', 'makapix-prod', 'api', { running }),
  c('makapix-prod-broker-1', 'makapix-prod', 'broker', { running, volumes: ['makapix-prod_broker_data'] }),
  c('makapix-prod-www-redirect', 'makapix-prod', 'www-redirect', { running }),
  c('makapix-prod-redis', 'makapix-prod', 'redis', { running }),
];

test("the app's makapix-prod with Caddy inside is recognised by its Caddy's volumes, and up-prod refuses listing it", () => {
  const l = classifyLayout(appProd(), opts);
  assert.is(l.kind, 'app-prod-with-caddy');
  assert.is(l.caddy?.name, 'caddy');
  assert.equal(l.foreign.map((x) => x.name).sort(), ['makapix-prod-redis', 'makapix-prod-www-redirect']);
  const d = upDecision(l);
  assert.is(d.ok, false);
  if (d.ok) return;
  for (const name of ['caddy', 'makapix-prod-db', 'makapix-prod-www-redirect', 'makapix-prod-redis']) assert.match(d.reason, name);
  assert.match(d.reason, 'makapix-stack_caddy_data');
  assert.match(d.next, 'cutover-prod');
});

test('the same, recognised by labels and volumes, not by the project name or the container name', () => {
  const renamed = appProd().map((x) => (x.name === 'caddy' ? { ...x, name: 'edge-proxy', labels: {} } : x));
  assert.is(classifyLayout(renamed, opts).kind, 'app-prod-with-caddy');
  const byImageOnly = appProd().map((x) => (x.name === 'caddy' ? { ...x, volumes: [] } : x));
  assert.is(classifyLayout(byImageOnly, opts).kind, 'app-prod-with-caddy');
});

test("the migration plan's single project makapix: up-prod refuses while it runs", () => {
  const l = classifyLayout([c('makapix_db_1', 'makapix', 'db', { volumes: ['makapix_pg_data'] }), c('makapix_api_1', 'makapix', 'api')], opts);
  assert.is(l.kind, 'plan-single');
  const d = upDecision(l);
  assert.ok(!d.ok && /makapix_db_1/.test(d.reason) && /cutover-prod/.test(d.next));
});

test("a host with only the toolkit's containers (and the edge Caddy reusing the app's certificates) goes on", () => {
  const mine = ours.map((s) => c(`makapix-prod-${s}`, 'makapix-prod', s, { managed: true }));
  const edge = c('makapix-edge-caddy', 'makapix-edge', 'caddy', { volumes: ['makapix-stack_caddy_data', 'makapix-stack_caddy_config'] });
  const l = classifyLayout([...mine, edge], opts);
  assert.is(l.kind, 'toolkit');
  assert.equal(upDecision(l), { ok: true, notes: [] });
  assert.is(classifyLayout([], opts).kind, 'empty');
});

test('after a cutover the stopped old containers are listed as left alone, never a reason to refuse', () => {
  const mine = ours.map((s) => c(`makapix-prod-${s}`, 'makapix-prod', s, { managed: true }));
  const stopped = appProd(false).filter((x) => ['caddy', 'makapix-prod-www-redirect', 'makapix-prod-redis'].includes(x.name));
  const l = classifyLayout([...mine, ...stopped, c('makapix_db_1', 'makapix', 'db', { running: false })], opts);
  assert.is(l.kind, 'toolkit');
  const d = upDecision(l);
  assert.ok(d.ok && d.notes.length === 1 && /left alone/.test(d.notes[0]!) && /makapix-prod-www-redirect/.test(d.notes[0]!) && /makapix_db_1/.test(d.notes[0]!));
});

test('running containers of makapix-prod the toolkit did not create, without a Caddy: refused, listed', () => {
  const l = classifyLayout([c('makapix-prod-db', 'makapix-prod', 'db'), c('makapix-prod-redis', 'makapix-prod', 'redis', { managed: true })], opts);
  assert.is(l.kind, 'unknown');
  const d = upDecision(l);
  assert.ok(!d.ok && /makapix-prod-db/.test(d.reason) && /makapix-prod-redis/.test(d.reason) && /never removes/.test(d.next));
});

test('parseInspect reads names, state, labels (commas included) and named volumes only', () => {
  const json = JSON.stringify([
    {
      Name: '/caddy',
      State: { Running: true },
      Config: { Image: 'lucaslorentz/caddy-docker-proxy:2.9-alpine', Labels: { 'com.docker.compose.project.config_files': '/a.yml,/b.yml' } },
      Mounts: [
        { Type: 'volume', Name: 'makapix-stack_caddy_data' },
        { Type: 'bind', Source: '/var/log/caddy' },
      ],
    },
    { Name: '/bare', State: { Running: false }, Config: { Image: 'alpine', Labels: null }, Mounts: null },
  ]);
  assert.equal(parseInspect(json), [
    { name: 'caddy', running: true, image: 'lucaslorentz/caddy-docker-proxy:2.9-alpine', labels: { 'com.docker.compose.project.config_files': '/a.yml,/b.yml' }, volumes: ['makapix-stack_caddy_data'] },
    { name: 'bare', running: false, image: 'alpine', labels: {}, volumes: [] },
  ]);
});

test("the edge reuses the app's certificate volumes (no re-issuance), and keeps its own once it has them", () => {
  assert.equal(edgeVolumes(['makapix-stack_caddy_data', 'makapix-stack_caddy_config', 'other']), { data: 'makapix-stack_caddy_data', config: 'makapix-stack_caddy_config', reused: true });
  assert.equal(edgeVolumes([]), { data: 'makapix-edge-caddy-data', config: 'makapix-edge-caddy-config', reused: false });
  assert.equal(edgeVolumes(['makapix-edge-caddy-data', 'makapix-stack_caddy_data']).data, 'makapix-edge-caddy-data');
});

test.run();
