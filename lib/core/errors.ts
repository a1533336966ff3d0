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
