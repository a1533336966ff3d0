import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseStackAction, stackPlan } from '../../lib/jobs/stack.ts';

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

test.run();
