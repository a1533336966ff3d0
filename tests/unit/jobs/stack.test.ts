import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseStackAction, stackPlan, stackSteps } from '../../../lib/jobs/stack.ts';
import { renderPlan } from '../../../lib/core/exec.ts';
import { Ui } from '../../../lib/core/ui.ts';
import type { EnvConfig } from '../../../lib/core/config.ts';

test('stackPlan: rebuild builds before it recreates; down keeps volumes; rebuild refuses prod', () => {
  assert.equal(stackPlan('dev', 'rebuild').map((s) => s.args), [['build'], ['up', '-d']]);
  assert.equal(stackPlan('dev', 'rebuild', 'api').map((s) => s.args), [['build', 'api'], ['up', '-d', 'api']]);
  assert.equal(stackPlan('prod', 'down')[0]!.args, ['down']);
  assert.ok(!stackPlan('prod', 'down')[0]!.args.includes('-v'));
  assert.equal(stackPlan('dev', 'logs', 'api')[0]!.args, ['logs', '--follow', '--tail', '200', 'api']);
  assert.throws(() => stackPlan('prod', 'rebuild'), /development environment only/);
});

test('no action ever removes containers the toolkit does not define (no --remove-orphans)', () => {
  for (const env of ['prod', 'dev'] as const)
    for (const action of ['up', 'down', 'logs', 'ps', 'rebuild'] as const) {
      if (env === 'prod' && action === 'rebuild') continue;
      for (const step of stackPlan(env, action)) assert.not.ok(step.args.includes('--remove-orphans'), `${env} ${action}`);
    }
});

test('parseStackAction names the valid actions', () => {
  assert.is(parseStackAction('up'), 'up');
  assert.throws(() => parseStackAction('start'), /one of up, down, logs, ps, rebuild/);
});

test('the dry-run plan is the steps that run: the layout check, then the full compose command lines', () => {
  const cfg = { env: 'dev', file: '/opt/ops/compose/.env.dev', vars: { VAULT_HOST_PATH: '/mnt/vault-dev' }, warnings: [] } as unknown as EnvConfig;
  const steps = stackSteps(cfg, 'rebuild', 'v1', { service: 'api', ui: new Ui({ tty: false, verbose: false }), created: [] });
  assert.equal(steps.map((s) => s.kind), ['task', 'task', 'command', 'command']);
  const plan = renderPlan(steps);
  assert.match(plan[1]!, 'network caddy_net and the vault folder /mnt/vault-dev (uid 1000) when missing');
  assert.match(plan[2]!, /^3\. build dev images: docker-compose -f \S+\/compose\/docker-compose\.yml -f \S+\/compose\/docker-compose\.dev\.yml --env-file \/opt\/ops\/compose\/\.env\.dev -p makapix-dev build api$/);
  assert.match(plan[3]!, / -p makapix-dev up -d api$/);
  assert.equal(renderPlan(stackSteps(cfg, 'ps', 'v2', { ui: new Ui({ tty: false, verbose: false }), created: [] })).length, 1);
});

test.run();
