/**
 * Runs handlers: starts an attempt from a fetched job, aborts it (timeout, user, end condition,
 * shutdown, lost), and turns how it settled into the outcome the completer writes. One job's
 * failure never touches another's: whatever a handler throws, returns or does to its context
 * ends that attempt only.
 * @module
 */
import { Context } from "../context.ts";
import { parseDuration } from "../duration.ts";
import { type AbortReason, JobAborted, UnknownTaskError, UnrecoverableError } from "../errors.ts";
import { safeJson, storeError } from "../job.ts";
import { backoffDelay, DEFAULT_BACKOFF, type StoredOptions } from "../options.ts";
import { setLongTimeout } from "../timers.ts";
import type { ResolvedTask } from "../worker-options.ts";
import type { Pool, PoolResult } from "../pool/pool.ts";
import { attemptSpan, endAttemptSpan, tracingActive } from "../tracing.ts";
import type { QueueState, WorkerCore } from "./core.ts";
import type { Running, RunningJobs } from "./running-jobs.ts";
import * as scripts from "./scripts.ts";
import type { FetchedJob, OutcomeKind } from "./scripts.ts";

/** How an attempt ended, waiting to be written. */
export interface Outcome {
  r: Running;
  kind: OutcomeKind;
  /** The result or the stored error, as JSON. */
  payload: string;
  retryAt: number;
  value?: unknown;
  error?: unknown;
  /** Re-queued because the worker stopped without waiting for it (counted as abandoned). */
  abandoned?: boolean;
}

const NO_OPTIONS: StoredOptions = Object.freeze({});

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === "object" || typeof x === "function") && typeof (x as { then?: unknown }).then === "function";
}

/** Lines kept in a job's log, their longest length, and how long the log outlives its last line. */
export const LOG_LINES = 100;
const LOG_LINE_CHARS = 2000;
const LOG_TTL_MS = 7 * 86_400_000;

/** Appends a line to a job's log (capped, with a TTL; three commands the client pipelines). */
export async function appendLog(send: WorkerCore["send"], k: QueueState["keys"], id: string, attempt: number, message: string): Promise<void> {
  const line = JSON.stringify({ t: Date.now(), attempt, message: message.length > LOG_LINE_CHARS ? message.slice(0, LOG_LINE_CHARS) + "…" : message });
  const key = k.log(id);
  await Promise.all([send("RPUSH", [key, line]), send("LTRIM", [key, -LOG_LINES, -1]), send("PEXPIRE", [key, LOG_TTL_MS])]);
}

export class Executor {
  readonly #core: WorkerCore;
  readonly #running: RunningJobs;
  readonly #tasks: Map<string, ResolvedTask>;
  /** Runs the tasks with `execution` (there is one when a task has it). */
  readonly #pool: Pool | undefined;
  /** Called with each attempt's outcome once it settled, or undefined for an attempt that was lost. */
  readonly #settled: (o: Outcome | undefined) => void;
  /** A retry becomes due at this time: promote then. */
  readonly #retryAt: (at: number) => void;
  /** Jobs started, for `maxJobs`. */
  started = 0;
  /** Told of each inline handler that starts, to name it if the event loop blocks. */
  watchdog: { inline(task: string): void } | undefined;

  constructor(core: WorkerCore, running: RunningJobs, tasks: Map<string, ResolvedTask>, pool: Pool | undefined, hooks: {
    settled(o: Outcome | undefined): void;
    retryAt(at: number): void;
  }) {
    this.#core = core;
    this.#pool = pool;
    this.#running = running;
    this.#tasks = tasks;
    this.#settled = hooks.settled;
    this.#retryAt = hooks.retryAt;
  }

  /**
   * Starts the attempt a fetch activated. Never throws: a job that cannot start fails alone, and
   * the other jobs of its batch start as if nothing happened.
   */
  start(q: QueueState, f: FetchedJob): void {
    const core = this.#core;
    const job = { id: f.id, name: f.name, queue: q.name, attempt: f.attempt, maxAttempts: f.maxAttempts, createdAt: f.createdAt, stalls: f.stalls };
    const ctx = new Context(job, core.id, (value) => {
      const p = this.#progress(r, value);
      p.catch(() => {}); // a rejected progress nobody awaited is the handler's business, not the process's
      return p;
    }, (message) => appendLog(core.send, q.keys, f.id, f.attempt, message));
    // most jobs store no options (every default): no parse for them
    let opts: StoredOptions = NO_OPTIONS;
    if (f.opts) {
      try {
        opts = JSON.parse(f.opts);
      } catch {
        // unreadable options: run with the defaults rather than not at all
      }
    }
    const r: Running = { q, id: f.id, token: f.token, group: f.group, packed: f.packed, ctx, opts, settled: false, lost: false, task: this.#tasks.get(f.name), startedAt: Date.now(), readyAt: f.createdAt };
    if (core.otel && tracingActive(core.otel)) r.span = attemptSpan(core.otel, job, opts.tp);
    const previous = this.#running.add(r, f.stalls > 0);
    try {
      this.#begin(q, f, r, previous);
    } catch (e) {
      this.#settle(r, false, e);
    }
  }

  #begin(q: QueueState, f: FetchedJob, r: Running, previous: Running | undefined): void {
    const core = this.#core;
    const { ctx, opts } = r;
    const job = ctx.job;
    if (previous && !previous.lost) {
      // another worker recovered the job and this worker fetched it again while its old attempt
      // still runs here: the old attempt is over (nothing is written for it)
      this.markLost(previous);
      core.log("warn", "job-lost", `job ${f.id} was fetched again while an older attempt ran here; aborting the older one`, { job: f.id, queue: q.name });
      this.abort(previous, "lost");
    }
    if (core.shutdown.phase !== "running") {
      // fetched by a pass that was in flight when the stop began: hand it back without running it
      // (interrupted: re-queued at once, its attempt not counted)
      r.ctx.abort("shutdown");
      this.#settle(r, false, new JobAborted("shutdown", `job ${r.id} was fetched as the worker began to stop; re-queued`));
      return;
    }
    this.started++;
    if (this.started >= core.settings.maxJobs && core.shutdown.phase === "running") {
      queueMicrotask(() => core.shutdown.request({ source: "maxJobs" }));
    }
    core.emit("active", { job });
    if (!r.task) {
      this.#settle(r, false, new UnknownTaskError(f.name, core.id));
      return;
    }
    let p: unknown;
    try {
      const timeout = opts.timeout ?? (r.task.timeout !== undefined ? parseDuration(r.task.timeout) : core.settings.timeout);
      if (timeout !== undefined) r.timer = setLongTimeout(() => this.abort(r, "timeout"), timeout);
      if (r.task.pooled) {
        // in a thread or process: the pool settles it (after the ladder, if it is aborted)
        this.#pool!.run(r.token, ctx, r.task.pooled, f.data).then((res: PoolResult) => this.#settle(r, res.ok, res.ok ? res.value : res.error));
        return;
      }
      this.watchdog?.inline(f.name);
      p = r.task.handler!(JSON.parse(f.data), ctx);
      if (isThenable(p)) {
        // any thenable, not only a native promise; a hostile `then` rejects instead of throwing
        Promise.resolve(p).then((v) => this.#settle(r, true, v), (e) => this.#settle(r, false, e));
        return;
      }
    } catch (e) {
      this.#settle(r, false, e);
      return;
    }
    queueMicrotask(() => this.#settle(r, true, p));
  }

  /** Aborts an attempt's signal with `reason` (once; later reasons are ignored). */
  abort(r: Running, reason: AbortReason): void {
    if (r.settled) return;
    if (r.ctx.abort(reason)) {
      // counted by reason for /metrics (what the outcome counters cannot tell apart)
      this.#core.send("HINCRBY", [r.q.keys.base + "stats", `abort:${reason}`, 1]).catch(() => {});
      this.#core.log(reason === "user" || reason === "shutdown" ? "info" : "warn", "job-abort", `job ${r.id} aborted: ${reason}`, { job: r.id, queue: r.q.name, reason });
    }
  }

  /** The attempt no longer holds its job: it writes nothing when it settles. Counted once, in Redis too. */
  markLost(r: Running): void {
    if (r.lost) return;
    r.lost = true;
    this.#core.send("HINCRBY", [r.q.keys.base + "stats", "lost", 1]).catch(() => {});
  }

  /**
   * The jobs still running ignored their abort and the worker stops without them: each is
   * re-queued (interrupted, not counted) and left to run on until the process ends.
   */
  abandonAll(): Outcome[] {
    const out: Outcome[] = [];
    // a job in a thread or process is not left behind: its child is ended now, and it settles
    // as its abort says (interrupted for a stop)
    this.#pool?.hurry();
    for (const r of [...this.#running.values()]) {
      if (r.task?.pooled) continue;
      r.settled = true;
      r.timer?.clear();
      this.#running.remove(r);
      this.#core.summary.abandoned++;
      this.#core.log("warn", "job-abandoned", `job ${r.id} ignored its abort; re-queued and left behind`, { job: r.id, queue: r.q.name });
      out.push({ r, kind: "interrupted", payload: storeError(new JobAborted("shutdown", "abandoned at shutdown"), "shutdown"), retryAt: 0, abandoned: true });
    }
    return out;
  }

  #settle(r: Running, ok: boolean, value: unknown): void {
    if (r.settled) return;
    r.settled = true;
    r.timer?.clear();
    this.#running.remove(r);
    if (r.span) {
      const outcome = r.lost ? "lost" : ok ? "completed" : r.ctx.abortReason === "user" ? "aborted" : r.ctx.abortReason === "shutdown" ? "interrupted" : "failed";
      endAttemptSpan(r.span, outcome, r.ctx.abortReason, ok ? undefined : value);
    }
    if (r.lost) {
      this.#running.release(r);
      this.#core.summary.lost++;
      this.#core.emit("lost", { job: r.ctx.job });
      this.#settled(undefined);
      return;
    }
    let o: Outcome;
    if (ok) {
      const payload = value === undefined ? "null" : safeJson(value);
      o = payload === undefined
        ? this.#failure(r, new UnrecoverableError(`result of job ${r.id} is not JSON-serialisable`))
        : { r, kind: "completed", payload, retryAt: 0, value };
    } else {
      o = this.#failure(r, value);
    }
    this.#settled(o);
  }

  /** What a failed attempt leads to: its abort reason first, then the retry policy. */
  #failure(r: Running, error: unknown): Outcome {
    const reason = r.ctx.abortReason;
    let payload: string;
    try {
      payload = storeError(error, reason);
    } catch {
      payload = JSON.stringify({ name: "Error", message: "the handler threw a value that cannot be stored", abortReason: reason });
    }
    if (reason === "user") return { r, kind: "aborted", payload, retryAt: 0, error };
    if (reason === "shutdown") return { r, kind: "interrupted", payload, retryAt: 0, error };
    const job = r.ctx.job;
    if (UnrecoverableError.is(error) || job.attempt >= job.maxAttempts) return { r, kind: "failed", payload, retryAt: 0, error };
    const delay = backoffDelay(r.opts.backoff ?? { ...DEFAULT_BACKOFF }, job.attempt);
    const retryAt = Date.now() + delay;
    if (delay > 0) this.#retryAt(retryAt);
    return { r, kind: "retry", payload, retryAt, error };
  }

  async #progress(r: Running, value: unknown): Promise<void> {
    const payload = safeJson(value);
    if (payload === undefined) throw new TypeError(`progress of job ${r.id} must be JSON-serialisable`);
    if (r.settled || r.lost) return; // the attempt is over: its progress no longer matters
    // fenced in Redis too: a stale attempt never overwrites the new owner's progress, nor
    // re-creates a hash that retention deleted
    await scripts.progress(this.#core.send, r.q.keys, { id: r.id, token: r.token, payload });
  }
}
