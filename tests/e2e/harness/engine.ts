// The Docker engine the e2e tier runs on: used when it answers, started here (dockerd in the
// background, its own log) when it does not. A machine where it cannot start gets one clear line.
import { spawn } from 'node:child_process';
import { openSync, readFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { $ } from 'zx';

/** Outside the repo, so images and the base tarball survive `git clean` and fresh checkouts. */
export const cacheDir = process.env.MAKAPIX_E2E_CACHE ?? '/var/cache/makapix-e2e';
export const dockerdLog = path.join(cacheDir, 'dockerd.log');

export class EngineUnavailable extends Error {}

const answers = async () => (await $({ nothrow: true, quiet: true, timeout: '20s' })`docker info --format {{.ServerVersion}}`).exitCode === 0;

/** Last meaningful line of dockerd's log: why it died. */
function lastError(): string {
  if (!existsSync(dockerdLog)) return 'no log written';
  const lines = readFileSync(dockerdLog, 'utf8').trim().split('\n');
  const bad = lines.filter((l) => /level=(error|fatal)|failed|error/i.test(l)).pop() ?? lines.pop() ?? '';
  return bad.replace(/^time="[^"]*"\s*/, '').slice(0, 300);
}

/** Resolves when `docker info` answers; starts dockerd (bounded wait) if needed. */
export async function ensureEngine(timeoutMs = 60_000): Promise<void> {
  if (await answers()) return;
  if ((await $({ nothrow: true, quiet: true })`command -v dockerd`).exitCode !== 0) {
    throw new EngineUnavailable('dockerd is not installed (run make setup-e2e).');
  }
  mkdirSync(cacheDir, { recursive: true });
  const log = openSync(dockerdLog, 'a');
  const child = spawn('dockerd', ['--host', 'unix:///var/run/docker.sock'], { detached: true, stdio: ['ignore', log, log] });
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.unref();
  writeFileSync(path.join(cacheDir, 'dockerd.pid'), `${child.pid}\n`);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new EngineUnavailable(`dockerd exited with code ${exited}: ${lastError()} (log: ${dockerdLog}).`);
    if (await answers()) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new EngineUnavailable(`dockerd did not answer within ${timeoutMs / 1000}s: ${lastError()} (log: ${dockerdLog}).`);
}
