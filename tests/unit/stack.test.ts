import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseStackAction, stackPlan } from '../../lib/jobs/stack.ts';

test('stackPlan: rebuild builds before it recreates; down keeps volumes; rebuild refuses prod', () => {
  assert.equal(stackPlan('dev', 'rebuild').map((s) => s.args), [['build'], ['up', '-d', '--remove-orphans']]);
  assert.equal(stackPlan('dev', 'rebuild', 'api').map((s) => s.args), [['build', 'api'], ['up', '-d', '--remove-orphans', 'api']]);
  assert.equal(stackPlan('prod', 'down')[0]!.args, ['down', '--remove-orphans']);
  assert.ok(!stackPlan('prod', 'down')[0]!.args.includes('-v'));
  assert.equal(stackPlan('dev', 'logs', 'api')[0]!.args, ['logs', '--follow', '--tail', '200', 'api']);
  assert.throws(() => stackPlan('prod', 'rebuild'), /development environment only/);
});

test('parseStackAction names the valid actions', () => {
  assert.is(parseStackAction('up'), 'up');
  assert.throws(() => parseStackAction('start'), /one of up, down, logs, ps, rebuild/);
});

test.run();
