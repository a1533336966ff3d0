// A dead-man's switch for cron jobs, healthchecks.io style: `<url>/start` when the job starts,
// `<url>` when it succeeded, `<url>/fail` when it failed. The monitoring side alerts when the
// success ping does not arrive in time, which also catches a cron that never ran at all.
import { UsageError } from '../core/errors.ts';
import { redact } from '../core/secret.ts';
import type { Ui } from '../core/ui.ts';

export type PingKind = 'start' | 'success' | 'fail';

/** The three URLs of a check; the base must be http(s) (the scheme healthchecks-style services use). */
export function pingUrl(base: string, kind: PingKind): string {
  let u: URL;
  try {
    u = new URL(base);
  } catch {
    throw new UsageError(`--ping ${JSON.stringify(base)} is not a URL.`, 'Give the check URL, e.g. https://hc-ping.com/<uuid>.');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new UsageError(`--ping ${base} must be an http(s) URL.`);
  if (kind === 'success') return u.toString();
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/${kind}`;
  return u.toString();
}

/**
 * Sends one ping. A ping that cannot be delivered is a warning, never the job's failure: the
 * monitoring service notices the missing ping by itself.
 */
export async function sendPing(base: string, kind: PingKind, ui: Ui, body = ''): Promise<boolean> {
  const url = pingUrl(base, kind);
  try {
    const res = await fetch(url, { method: 'POST', body: redact(body).slice(0, 10_000), signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    if (!res.ok) ui.warn(`Ping ${kind} answered HTTP ${res.status}.`);
    return res.ok;
  } catch (err) {
    ui.warn(`Ping ${kind} could not be sent: ${(err as Error).message}.`);
    return false;
  }
}

/** Runs a job between a start ping and a success or fail ping (each only when a URL is given). */
export async function withPings<T>(base: string | undefined, ui: Ui, job: () => Promise<T>, summary: (result: T) => string): Promise<T> {
  if (base === undefined) return job();
  pingUrl(base, 'start'); // a malformed URL is a usage error before any work
  await sendPing(base, 'start', ui);
  try {
    const result = await job();
    await sendPing(base, 'success', ui, summary(result));
    return result;
  } catch (err) {
    await sendPing(base, 'fail', ui, err instanceof Error ? err.message : String(err));
    throw err;
  }
}
