/**
 * Error classes of sluice. Each has a `name` and a static type guard, so code can tell them apart
 * across module copies without `instanceof`.
 */

/** One field that failed validation: its dotted path, the value received and what was expected. */
export interface ValidationIssue {
  field: string;
  value: unknown;
  message: string;
}

/**
 * Thrown when options or arguments are invalid. Nothing is written to Redis when it is thrown.
 *
 * @example
 * ```ts
 * try { await queue.enqueue("email", {}, { attempts: 0 }); }
 * catch (e) { if (ValidationError.is(e)) console.error(e.issues[0].field); } // "attempts"
 * ```
 */
export class ValidationError extends TypeError {
  override name = "ValidationError";
  readonly issues: ValidationIssue[];
  constructor(context: string, issues: ValidationIssue[]) {
    super(
      `${context}: ` +
        issues.map((i) => `'${i.field}' ${i.message}: current value is ${show(i.value)}`).join("; "),
    );
    this.issues = issues;
  }
  static is(e: unknown): e is ValidationError {
    return isNamed(e, "ValidationError");
  }
}

/** Why a running job's `ctx.signal` was aborted. See DESIGN section 3. */
export type AbortReason = "user" | "timeout" | "end-condition" | "shutdown" | "lost";

/**
 * The reason carried by `ctx.signal` when a job is aborted, and the error a handler throws from
 * synchronous code after `ctx.shouldAbort()` returned true.
 *
 * @example
 * ```ts
 * for (const row of rows) {
 *   if (ctx.shouldAbort()) throw new JobAborted(ctx.abortReason!);
 *   work(row);
 * }
 * ```
 */
export class JobAborted extends Error {
  override name = "JobAborted";
  readonly reason: AbortReason;
  constructor(reason: AbortReason, message?: string) {
    super(message ?? `Job aborted: ${reason}`);
    this.reason = reason;
  }
  static is(e: unknown): e is JobAborted {
    return isNamed(e, "JobAborted");
  }
}

/**
 * Throw it from a handler to fail the job at once, without the retries left.
 *
 * @example
 * ```ts
 * if (!data.email) throw new UnrecoverableError("no address");
 * ```
 */
export class UnrecoverableError extends Error {
  override name = "UnrecoverableError";
  static is(e: unknown): e is UnrecoverableError {
    return isNamed(e, "UnrecoverableError");
  }
}

/**
 * The worker that fetched a job has no handler for its task. It is a failed attempt like any other
 * and goes through the retry policy: during a rolling deploy an old worker can fetch a new task's
 * job, and a worker that knows the task takes the retry.
 */
export class UnknownTaskError extends Error {
  override name = "UnknownTaskError";
  /** The task name the job carries. */
  readonly task: string;
  constructor(task: string, workerId: string) {
    super(`no handler for task '${task}' on worker ${workerId}; the attempt goes through the retry policy`);
    this.task = task;
  }
  static is(e: unknown): e is UnknownTaskError {
    return isNamed(e, "UnknownTaskError");
  }
}

/**
 * `Queue.enqueueMany` stopped on an error after storing part of the jobs: `stored` lists the jobs
 * written (in the order given), `cause` is the error that stopped it. Nothing after the first
 * failed batch was sent.
 */
export class EnqueueManyError extends Error {
  override name = "EnqueueManyError";
  /** The jobs that were stored before the error. */
  readonly stored: { id: string; queue: string; state: string; duplicate: boolean }[];
  constructor(cause: unknown, stored: EnqueueManyError["stored"], total: number) {
    super(`enqueueMany stopped after storing ${stored.length} of ${total} jobs: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.stored = stored;
  }
  static is(e: unknown): e is EnqueueManyError {
    return isNamed(e, "EnqueueManyError");
  }
}

/**
 * Whether `e` is an Error named `name`. Never throws: a thrown Proxy whose traps throw, or an
 * object whose `name` getter throws, is simply not one.
 */
/**
 * The thread or process that ran a job (`execution: "thread" | "process"`) exited before the job
 * settled: an uncaught error, out of memory, an exit called by the job. The attempt fails with it
 * and goes through the retry policy; the worker replaces the child and carries on.
 */
export class PoolChildError extends Error {
  override name = "PoolChildError";
  static is(e: unknown): e is PoolChildError {
    return isNamed(e, "PoolChildError");
  }
}

function isNamed(e: unknown, name: string): boolean {
  try {
    return e instanceof Error && e.name === name;
  } catch {
    return false;
  }
}

/** Shows a value in an error message: strings quoted, the rest as JSON where possible. */
export function show(value: unknown): string {
  const clip = (s: string) => (s.length > 80 ? s.slice(0, 77) + "..." : s);
  if (typeof value === "string") return clip(JSON.stringify(value));
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (typeof value === "symbol") return "a Symbol";
  try {
    const s = JSON.stringify(value);
    if (s !== undefined) return clip(s);
  } catch {
    // a cycle, a BigInt inside, a throwing toJSON: described below
  }
  try {
    return clip(String(value));
  } catch {
    return "a value that cannot be shown";
  }
}
