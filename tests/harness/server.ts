import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { rmSync } from 'node:fs';
import { onExit } from './cleanup.ts';

export interface ServerProcess {
  child: ChildProcess;
  /** The tail of what the server printed, for failure messages. */
  log(): string;
  /** Kills the server and removes its scratch folder. */
  stop(): void;
}

/** Starts a server binary owning the scratch folder `dir`; both go away when the test process ends. */
export function spawnServer(cmd: string, args: string[], dir: string, options: SpawnOptions = {}, keepChars = 6000): ServerProcess {
  const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (d: Buffer) => (log = (log + d).slice(-keepChars));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const stop = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  onExit(stop);
  return { child, log: () => log, stop };
}
