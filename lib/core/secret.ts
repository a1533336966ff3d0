import { inspect } from 'node:util';

const MASK = '[redacted]';

/** Every secret value this process has seen, so the runner can scrub them from any error text. */
const known = new Set<string>();

/** A value that never prints itself: logs, JSON, template strings and util.inspect all see a mask. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
    if (value.length >= 4) known.add(value);
  }
  /** The only way to the real value; grep for it to audit where secrets go. */
  reveal(): string {
    return this.#value;
  }
  get isEmpty(): boolean {
    return this.#value.length === 0;
  }
  equals(other: Secret): boolean {
    return this.#value === other.#value;
  }
  toString(): string {
    return MASK;
  }
  toJSON(): string {
    return MASK;
  }
  [inspect.custom](): string {
    return `Secret(${MASK})`;
  }
}

/** Replaces every occurrence of each secret's value in text (error output of child processes, URLs). */
export function redact(text: string, secrets: Iterable<Secret | string> = known): string {
  let out = text;
  for (const s of secrets) {
    const value = typeof s === 'string' ? s : s.reveal();
    if (value.length >= 4) out = out.split(value).join(MASK);
  }
  // Credentials embedded in connection URLs, whatever they are.
  return out.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, `$1${MASK}@`);
}
