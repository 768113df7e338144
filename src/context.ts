import { type AbortReason, JobAborted } from "./errors.ts";

/** What a handler learns about the job it runs. */
export interface JobDescriptor {
  id: string;
  /** The task name. */
  name: string;
  queue: string;
  /** This attempt's number, from 1. */
  attempt: number;
  maxAttempts: number;
  createdAt: number;
  /** Times this job was recovered from a worker that stopped heartbeating. */
  stalls: number;
}

/**
 * The second argument of every handler.
 *
 * @example
 * ```ts
 * const tasks = {
 *   async crawl(data: { url: string }, ctx: JobContext) {
 *     const res = await fetch(data.url, { signal: ctx.signal }); // aborts on cancel, timeout, shutdown
 *     await ctx.progress(50);
 *     return res.status;
 *   },
 * };
 * ```
 */
export interface JobContext {
  /** Aborts when the job must stop; `signal.reason` is a `JobAborted` whose `reason` says why. */
  readonly signal: AbortSignal;
  readonly job: JobDescriptor;
  /** Why the signal aborted, or undefined while it has not. */
  readonly abortReason: AbortReason | undefined;
  /** True once the signal aborted: synchronous code checks it and throws `JobAborted`. */
  shouldAbort(): boolean;
  /** Throws the abort's `JobAborted` if the signal aborted; a short way to honour it. */
  throwIfAborted(): void;
  /** Stores a progress value (any JSON) with the job, for `getJob` and the admin app. */
  progress(value: unknown): Promise<void>;
  /**
   * Appends a line to the job's log (`queue.getJobLog(id)`, the admin app's job page): the newest
   * 100 lines of at most 2,000 characters each are kept, for 7 days after the last one.
   */
  log(message: string): Promise<void>;
  /** The id of the worker running the job. */
  readonly workerId: string;
}

/** @internal */
export class Context implements JobContext {
  /** Made on first use: most jobs never look at their signal, and never abort. */
  #controller: AbortController | undefined;
  readonly job: JobDescriptor;
  readonly workerId: string;
  readonly #progress: (value: unknown) => Promise<void>;
  readonly #log: ((message: string) => Promise<void>) | undefined;
  constructor(job: JobDescriptor, workerId: string, progress: (value: unknown) => Promise<void>, log?: (message: string) => Promise<void>) {
    this.job = job;
    this.workerId = workerId;
    this.#progress = progress;
    this.#log = log;
  }
  get controller(): AbortController {
    return (this.#controller ??= new AbortController());
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  get abortReason(): AbortReason | undefined {
    const s = this.#controller?.signal;
    return s?.aborted ? (s.reason as JobAborted).reason : undefined;
  }
  shouldAbort(): boolean {
    return this.#controller?.signal.aborted ?? false;
  }
  throwIfAborted(): void {
    this.#controller?.signal.throwIfAborted();
  }
  progress(value: unknown): Promise<void> {
    return this.#progress(value);
  }
  log(message: string): Promise<void> {
    if (!this.#log) return Promise.resolve();
    const p = this.#log(typeof message === "string" ? message : String(message));
    p.catch(() => {}); // a log line nobody awaited that failed is the handler's business
    return p;
  }
  /** Aborts with `reason` unless already aborted. Returns true when this call aborted it. */
  abort(reason: AbortReason): boolean {
    if (this.controller.signal.aborted) return false;
    this.controller.abort(new JobAborted(reason));
    return true;
  }
}
