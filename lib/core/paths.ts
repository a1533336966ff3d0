import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The checkout this toolkit runs from, wherever the caller's working directory is (cron). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const composeDir = path.join(projectRoot, 'compose');
export const caddyDir = path.join(projectRoot, 'caddy');
