// Preloaded into every test process by tests/run.ts. uvu 0.5 runs test.before hooks inside a
// try/finally whose `return` discards the hook's error: the file reports "(0 / N)" and no message.
// This wraps test.before so that error is printed, with its stack, before uvu drops it.
import { test, type Callback } from 'uvu';

const register = test.before;
test.before = Object.assign(
  (hook: Callback) =>
    register(async (state) => {
      try {
        await hook(state);
      } catch (err) {
        process.stderr.write(`\n  FAIL  test.before threw, so none of this file's tests ran:\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n\n`);
        process.exitCode = 1;
        throw err;
      }
    }),
  { each: register.each },
);
