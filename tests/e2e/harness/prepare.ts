// `make test-e2e` runs this first: the engine up and every image built (or reused from the cache),
// so the test files only start stacks. A machine without a working engine gets one clear line.
import { ensureEngine, EngineUnavailable } from './engine.ts';
import { ensureStandInImages } from './images.ts';

const started = Date.now();
const log = (m: string) => process.stdout.write(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${m}\n`);
try {
  await ensureEngine();
  const images = await ensureStandInImages(log);
  log(`images ready: ${Object.values(images).join(' ')}`);
} catch (err) {
  const why = err instanceof EngineUnavailable ? `the Docker engine cannot start on this machine: ${err.message}` : `preparing the e2e images failed: ${(err as Error).message}`;
  process.stderr.write(`test-e2e: ${why}\n`);
  process.exit(1);
}
