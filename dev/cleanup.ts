import { spawnSync } from 'node:child_process';

/** Synchronous cleanups that run however the test process ends (pass, fail, uncaught error, SIGTERM). */
const cleanups: (() => void)[] = [];
let installed = false;

export function onExit(fn: () => void): void {
  cleanups.push(fn);
  if (installed) return;
  installed = true;
  const runAll = () => {
    for (const f of cleanups.splice(0).reverse()) {
      try {
        f();
      } catch {
        // keep cleaning the rest
      }
    }
  };
  process.on('exit', runAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
}

/** Runs a command synchronously at exit; failures are ignored because the process is going away. */
export const runAtExit = (cmd: string, args: string[]) => onExit(() => void spawnSync(cmd, args, { stdio: 'ignore' }));
