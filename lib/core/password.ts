// bcrypt hashing off the main thread: a cost-10 hash is a tenth of a second of pure JavaScript,
// which a worker runs beside the caller's network round trips instead of between them.
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import type { Secret } from './secret.ts';

const bcryptjs = createRequire(import.meta.url).resolve('bcryptjs');
const inWorker = `const { parentPort, workerData: w } = require('node:worker_threads');
const bcrypt = require(w.module);
parentPort.postMessage(w.hash === undefined ? bcrypt.hashSync(w.password, w.cost) : bcrypt.compareSync(w.password, w.hash));`;

function bcryptInWorker<T>(workerData: { password: string; cost?: number; hash?: string }): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(inWorker, { eval: true, workerData: { module: bcryptjs, ...workerData } });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the bcrypt worker exited with code ${code}`)));
  });
}

/** The bcrypt hash of password at this cost (4..31), computed on a worker thread. */
export const hashPassword = (password: Secret, cost: number): Promise<string> => bcryptInWorker({ password: password.reveal(), cost });

/**
 * Whether a password matches a bcrypt hash, on a worker thread: at cost 14 a check is about a second
 * of CPU, which must not stall a server answering other requests meanwhile. A plain string: what a
 * client sends is a guess, and wrapping each guess in a Secret would keep it in the redaction
 * registry for the life of the process.
 */
export const verifyPassword = (password: string, hash: string): Promise<boolean> => bcryptInWorker({ password, hash });
