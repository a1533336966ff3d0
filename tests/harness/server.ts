import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../../lib/core/paths.ts';
import { rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { onExit } from '../../dev/cleanup.ts';

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

/** Resolves once something accepts TCP connections on 127.0.0.1:port; fails early if the server died. */
export async function waitForPort(port: number, child: ChildProcess, log: () => string, name = child.spawnfile): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1', () => (s.end(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not listen on 127.0.0.1:${port}: ${log()}`);
}

export interface CommandResult {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a command as an operator would (an entry script, say), with optional stdin; killed after a minute. */
export function runCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; stdin?: string } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
    child.stdin!.end(opts.stdin ?? '');
  });
}

/** Runs an entry script by its path, as cron or an operator would: no TTY, its own environment and folder. */
export function runEntry(script: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}) {
  return spawnSync(path.join(projectRoot, 'scripts', script), [...args], {
    cwd: opts.cwd ?? projectRoot,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
  });
}
