// bcrypt hashing off the main thread: a cost-10 hash is a tenth of a second of pure JavaScript,
// which a worker runs beside the caller's network round trips instead of between them.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type { Secret } from './secret.ts';

const bcryptjs = createRequire(import.meta.url).resolve('bcryptjs');
const hashInWorker = `const { parentPort, workerData } = require('node:worker_threads');
parentPort.postMessage(require(workerData.module).hashSync(workerData.password, workerData.cost));`;

/** The bcrypt hash of password at this cost (4..31), computed on a worker thread. */
export function hashPassword(password: Secret, cost: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(hashInWorker, { eval: true, workerData: { module: bcryptjs, password: password.reveal(), cost } });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the bcrypt worker exited with code ${code}`)));
  });
}
