/** Exit codes shared by every script: 0 done, 1 the job failed, 2 usage or configuration, 3 refused for safety. */
export const Exit = { ok: 0, failed: 1, usage: 2, refused: 3 } as const;
export type ExitCode = (typeof Exit)[keyof typeof Exit];

/** An error that knows how the process should end and what the operator should do next. */
export class OpsError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;
  constructor(message: string, exitCode: ExitCode, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = hint;
  }
}

/** Bad flags or arguments: exit 2. */
export class UsageError extends OpsError {
  constructor(message: string, hint?: string) {
    super(message, Exit.usage, hint);
  }
}

/** A missing or invalid configuration file: exit 2. */
export class ConfigError extends OpsError {
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = [], hint?: string) {
    super(message, Exit.usage, hint);
    this.problems = problems;
  }
}

/** Refused for safety (a write aimed at production, an unconfirmed destructive step): exit 3. */
export class SafetyError extends OpsError {
  constructor(message: string, hint?: string) {
    super(message, Exit.refused, hint);
  }
}

/** The job itself failed: exit 1. */
export class JobError extends OpsError {
  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, Exit.failed, hint, options);
  }
}

/** The system errors an operator meets on a folder the configuration names: one sentence and a next step each. */
const systemErrors: Record<string, { says: (where: string) => string; hint: string }> = {
  ENOSPC: { says: (w) => `the disk holding ${w} is full`, hint: 'Free space on that disk (df -h shows it), then run again.' },
  EDQUOT: { says: (w) => `the disk quota for ${w} is used up`, hint: 'Free space within the quota (or raise it), then run again.' },
  EACCES: { says: (w) => `permission denied on ${w}`, hint: 'Run as the owner of that folder (or root), or fix its owner and mode.' },
  EPERM: { says: (w) => `the operation is not permitted on ${w}`, hint: 'Run as the owner of that folder (or root), or fix its owner and mode.' },
  EROFS: { says: (w) => `${w} is on a read-only filesystem`, hint: 'Remount it read-write (dmesg tells why it went read-only), then run again.' },
  ENOENT: { says: (w) => `${w} does not exist`, hint: 'Create it, or fix the setting (env file or flag) that names it.' },
};

/**
 * A system error (ENOSPC, EDQUOT, EACCES, EPERM, EROFS, ENOENT) as one sentence naming the place,
 * with what was being done when given; undefined for any other error (or one without a path).
 */
export function systemError(err: unknown, where?: string, doing?: string): JobError | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  const known = e?.code ? systemErrors[e.code] : undefined;
  const place = where ?? e?.path;
  if (!known || !place) return undefined;
  const sentence = known.says(place);
  return new JobError(`${doing ? `${doing[0]!.toUpperCase()}${doing.slice(1)} failed: ${sentence}` : `${sentence[0]!.toUpperCase()}${sentence.slice(1)}`}.`, known.hint, { cause: err });
}
