import { abortable, deadline } from "./async.ts";
import { Context } from "./context.ts";
import { parseDuration } from "./duration.ts";
import { type AbortReason, JobAborted, UnknownTaskError, UnrecoverableError } from "./errors.ts";
import { safeJson, storeError, type StoredError } from "./job.ts";
import { globalKeys, GROUP, type QueueKeys, queueKeys } from "./keys.ts";
import { ACTIVATE, CHECK, FINISH_AND_FETCH, PROGRESS, PROMOTE, RECONCILE, RECOVER, RELEASE_CONSUMER, SWEEP, TRIM } from "./lua.ts";
import { backoffDelay, DEFAULT_BACKOFF, type StoredOptions } from "./options.ts";
import { connect, duplicate, type IORedis, Script, type Send, toSend } from "./redis.ts";
import { type Phase, ShutdownController } from "./shutdown.ts";
import { type LogEntry, resolveSettings, type Settings, type TaskDefinition, type WorkerOptions } from "./worker-options.ts";

/** Options of `Worker.run`. */
export interface RunOptions {
  /** Aborting it starts a graceful stop. */
  signal?: AbortSignal;
  /** Aborting it starts (or escalates to) a hard stop. */
  hardSignal?: AbortSignal;
}

/** What `run()` resolves with. */
export interface RunSummary {
  /** Jobs this worker completed. */
  completed: number;
  /** Jobs that failed for good (attempts exhausted or unrecoverable). */
  failed: number;
  /** Failed attempts that were scheduled for a retry. */
  retried: number;
  /** Jobs aborted at a user's request. */
  aborted: number;
  /** Jobs stopped by a hard shutdown and re-queued, their attempt not counted. */
  interrupted: number;
  /** Jobs that ignored their abort and were re-queued when the worker was told to stop without them. */
  abandoned: number;
  /** Jobs found reclaimed by another worker; nothing was written for them. */
  lost: number;
  /** Stalled jobs of other workers this worker recovered. */
  recovered: number;
  /** Milliseconds from run() to stopped. */
  durationMs: number;
}

/** Detail of a worker's job events. */
export interface JobEventDetail {
  job: Context["job"];
  result?: unknown;
  error?: unknown;
  abortReason?: AbortReason;
}

interface QueueState {
  name: string;
  keys: QueueKeys;
  outcomes: Outcome[];
}

interface Running {
  /** `<queue> NUL <job id>`: one job can have an old attempt here while its new one starts. */
  key: string;
  q: QueueState;
  id: string;
  token: string;
  ctx: Context;
  opts: StoredOptions;
  timer?: ReturnType<typeof setTimeout>;
  task?: TaskDefinition;
  settled: boolean;
  lost: boolean;
}

type OutcomeKind = "c" | "f" | "a" | "r" | "i";
interface Outcome {
  r: Running;
  kind: OutcomeKind;
  payload: string;
  retryAt: number;
  value?: unknown;
  error?: unknown;
  /** Re-queued because the worker stopped without waiting for it (counted as abandoned). */
  abandoned?: boolean;
}

const scripts = {
  finish: new Script(FINISH_AND_FETCH),
  activate: new Script(ACTIVATE),
  check: new Script(CHECK),
  recover: new Script(RECOVER),
  promote: new Script(PROMOTE),
  release: new Script(RELEASE_CONSUMER),
  reconcile: new Script(RECONCILE),
  progress: new Script(PROGRESS),
  trim: new Script(TRIM),
  sweep: new Script(SWEEP),
};

const NO_OPTIONS: StoredOptions = Object.freeze({});
/** How long each clean-up step of a stopping worker may wait for Redis. */
const CLEANUP_MS = 3000;

/**
 * Runs the jobs of one or more queues. Fetches in batches up to `concurrency`, heartbeats its jobs
 * on one timer, recovers the jobs of workers that died, and stops the way it is asked: see
 * `ShutdownController` and DESIGN section 3.
 *
 * @example
 * ```ts
 * const worker = new Worker({
 *   redis: "redis://localhost:6379",
 *   queues: ["high", "default"],
 *   concurrency: 20,
 *   tasks: { async sendEmail(data, ctx) { await send(data, { signal: ctx.signal }); } },
 * });
 * const summary = await worker.run({ signal: AbortSignal.timeout(60_000) });
 * ```
 */
export class Worker extends EventTarget {
  readonly id: string;
  readonly shutdown = new ShutdownController();
  readonly concurrency: number;
  readonly options: Readonly<WorkerOptions>;
  readonly #queues: QueueState[];
  readonly #byName = new Map<string, QueueState>();
  readonly #tasks: Map<string, TaskDefinition>;
  readonly #s: Settings;

  #cmd!: IORedis;
  #send!: Send;
  #block: IORedis | undefined;
  #sub: IORedis | undefined;
  #ownsCmd = false;
  /** Running attempts by token: the only attempts whose handlers run here. */
  readonly #running = new Map<string, Running>();
  /** The newest attempt running here of each job, by `<queue> NUL <id>` (for abort messages). */
  readonly #byJob = new Map<string, Running>();
  /**
   * `<job id> <token>` of the attempts this worker holds: running, or settled with an outcome not yet
   * written. Whatever else its pending lists hold was delivered by a call whose reply was lost.
   */
  readonly #held = new Set<string>();
  /** Set when a connection came back: hand back what a lost reply delivered, once quiet. */
  #needReconcile = false;
  /** No stalled recovery before this time: after a reconnect the others' heartbeats need a full stalledTimeout. */
  #recoverNotBefore = 0;
  #cleanups: (() => void)[] = [];
  /** Startup finished: there is something to release at stop. */
  #began = false;
  #started = 0;
  #wakePending = false;
  #wakeResolve: (() => void) | undefined;
  #blocking = false;
  /** Passes in flight, the slots they may fill, whether the last fetch found the queues empty. */
  #inflight = 0;
  #reserved = 0;
  #empty = false;
  #errors = 0;
  /** Set once an abandoning stop has waited CLEANUP_MS for Redis. */
  #giveUp = false;
  #sideFlush: Promise<void> | undefined;
  #timers: ReturnType<typeof setTimeout>[] = [];
  #promoteTimer: ReturnType<typeof setTimeout> | undefined;
  #nextPromoteAt = Infinity;
  #runPromise: Promise<RunSummary> | undefined;
  #listening = new Set<string>();
  #startedAt = 0;
  #recoverCursor = new Map<string, string>();
  readonly #summary: RunSummary = {
    completed: 0, failed: 0, retried: 0, aborted: 0, interrupted: 0, abandoned: 0, lost: 0, recovered: 0, durationMs: 0,
  };

  constructor(options: WorkerOptions) {
    super();
    const settings = resolveSettings(options);
    this.options = options;
    this.#s = settings;
    this.id = settings.id;
    this.concurrency = settings.concurrency;
    this.#tasks = settings.tasks;
    this.#queues = settings.queues.map((name) => {
      const q = { name, keys: queueKeys(settings.prefix, name), outcomes: [] };
      this.#byName.set(name, q);
      return q;
    });
  }

  /** The current phase: running, draining, aborting or stopped. */
  get phase(): Phase {
    return this.shutdown.phase;
  }

  /** Ids of the jobs running now, by queue. */
  get activeJobs(): { queue: string; id: string }[] {
    return [...this.#running.values()].map((r) => ({ queue: r.q.name, id: r.id }));
  }

  override addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void {
    this.#listening.add(type);
    super.addEventListener(type, listener, options);
  }

  #emit(type: string, detail: unknown): void {
    if (this.#listening.has(type)) this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #log(level: LogEntry["level"], event: string, message: string, fields: Record<string, unknown> = {}): void {
    this.options.logger?.({ level, event, message, worker: this.id, ...fields });
  }

  /**
   * Starts the worker; resolves with a summary once it has stopped. Calling it again returns the
   * same promise.
   */
  run(options: RunOptions = {}): Promise<RunSummary> {
    this.#runPromise ??= this.#run(options);
    return this.#runPromise;
  }

  /**
   * Asks the worker to stop and resolves once it has. Graceful by default: fetching stops at once
   * and running jobs finish (up to `shutdownGracefulTimeout`). `{ hard: true }` aborts running jobs
   * with reason `shutdown`; they are re-queued with their attempt not counted. Calling it again
   * escalates.
   */
  stop(options: { hard?: boolean } = {}): Promise<RunSummary> {
    this.shutdown.request({ hard: options.hard, source: options.hard ? "stop({ hard: true })" : "stop()" });
    return this.#runPromise ?? Promise.resolve({ ...this.#summary });
  }

  /**
   * Re-queues the jobs still running (they ignored their abort) and stops without waiting for them.
   * For a process about to exit: their handlers keep running until it does.
   */
  abandon(): Promise<RunSummary> {
    this.shutdown.request({ hard: true, source: "abandon()" });
    this.shutdown.request({ source: "abandon()" });
    return this.stop();
  }

  /**
   * The whole life of a worker, as named steps: connect, start (bounded by the stop), fetch and run
   * until told to stop, wait for the running jobs, then clean up (each step bounded) and report.
   */
  async #run(options: RunOptions): Promise<RunSummary> {
    this.#startedAt = Date.now();
    this.#connect();
    this.#listenForStop(options);
    const before = this.shutdown.phase; // a stop() before run(): its phase change had no listener yet
    let started = false;
    try {
      started = this.#began = await this.#start();
    } catch (e) {
      this.#log("error", "error", `worker could not start: ${(e as Error).message}`);
      await this.#finalize();
      throw e;
    }
    try {
      if (started) {
        this.#log("info", "started", `worker ${this.id} started`, {
          queues: this.#queues.map((q) => q.name), concurrency: this.concurrency,
        });
        this.#startTimers();
        if (before !== "running") this.#onPhase({ phase: before, previous: "running", source: "before run()" });
        await this.#promoteAll().catch((e) => this.#failed(e));
        await this.#pump();
      }
    } finally {
      await this.#finalize();
    }
    return { ...this.#summary };
  }

  /** Opens the connections; a connection that comes back after a drop asks for a reconcile. */
  #connect(): void {
    const redis = this.options.redis ?? "redis://127.0.0.1:6379";
    if (typeof redis === "string") {
      this.#cmd = connect(redis);
      this.#ownsCmd = true;
    } else {
      this.#cmd = redis;
    }
    this.#send = toSend(this.#cmd);
    this.#block = duplicate(this.#cmd, { enableAutoPipelining: false });
    for (const c of [this.#cmd, this.#block]) {
      let dropped = false;
      const onClose = () => (dropped = true);
      const onReady = () => {
        if (!dropped) return;
        dropped = false;
        this.#reconnected();
      };
      c.on("close", onClose);
      c.on("ready", onReady);
      this.#cleanups.push(() => {
        c.off("close", onClose);
        c.off("ready", onReady);
      });
    }
  }

  /**
   * A connection came back. Replies lost with the old one may have delivered jobs this worker never
   * learnt of (the client re-sends unanswered commands, and the server may have run them already):
   * they are handed back once no fetching call is in flight. Other workers' heartbeats may not have
   * got through either, so recovery waits a full stalledTimeout.
   */
  #reconnected(): void {
    if (this.shutdown.phase === "stopped") return;
    this.#log("info", "reconnected", "connection to Redis restored; reconciling this worker's pending jobs");
    this.#needReconcile = true;
    this.#recoverNotBefore = Date.now() + this.#s.stalledTimeout;
    this.#wake();
  }

  /** The run() signals feed the shutdown controller; their listeners are removed at stop. */
  #listenForStop(options: RunOptions): void {
    const sd = this.shutdown;
    const onPhase = (e: Event) => this.#onPhase((e as CustomEvent).detail);
    sd.addEventListener("phase", onPhase);
    this.#cleanups.push(() => sd.removeEventListener("phase", onPhase));
    sd.abandon.addEventListener("abort", () => {
      this.#wake();
      // abandoning means not waiting: writing what is left gets CLEANUP_MS, then the worker stops
      this.#timers.push(setTimeout(() => {
        this.#giveUp = true;
        this.#wake();
      }, CLEANUP_MS));
    }, { once: true });
    const listen = (signal: AbortSignal | undefined, hard: boolean) => {
      if (!signal) return;
      const fn = () => sd.request({ hard, source: hard ? "hardSignal" : "signal" });
      if (signal.aborted) return fn();
      signal.addEventListener("abort", fn, { once: true });
      this.#cleanups.push(() => signal.removeEventListener("abort", fn));
    };
    listen(options.signal, false);
    listen(options.hardSignal, true);
  }

  /**
   * Startup: the streams and groups, the abort and control subscription, the registry, and a
   * reconcile of what this consumer name owned before. Raced with the stop: a worker asked to stop
   * while Redis is unreachable stops instead of waiting for it. Returns false when stopped first.
   */
  async #start(): Promise<boolean> {
    const waiting = setTimeout(() => {
      this.#log("warn", "waiting", `waiting for Redis to answer before starting (stop() or a signal stops the worker)`);
    }, 1000);
    try {
      const stopping = this.shutdown.graceful;
      const steps = (async () => {
        await this.#ensureGroups();
        if (stopping.aborted) return; // no new connection once the stop has closed them
        await this.#subscribe();
        await this.#register().catch((e) => this.#log("warn", "error", `could not register in the worker registry: ${(e as Error).message}`));
        for (const q of this.#queues) await this.#reconcile(q, "start");
      })();
      steps.catch(() => {}); // abandoned by a stop, its connections closed under it: nothing to tell
      await abortable(steps, this.shutdown.graceful);
    } catch (e) {
      if (this.shutdown.graceful.aborted) {
        this.#log("warn", "stopped", "stopped before Redis answered; nothing was started");
        return false;
      }
      throw e;
    } finally {
      clearTimeout(waiting);
    }
    this.#checkEvictionPolicy();
    return true;
  }

  /**
   * Any `maxmemory-policy` but `noeviction` lets Redis evict streams and job hashes: jobs vanish or
   * are left half-written. Said loudly at start (a managed Redis that refuses CONFIG is not asked twice).
   */
  #checkEvictionPolicy(): void {
    deadline(Promise.resolve(this.#send("CONFIG", ["GET", "maxmemory-policy"])), CLEANUP_MS).then((reply) => {
      const policy = configValue(reply);
      if (policy !== undefined && policy !== "noeviction") {
        const message = `Redis maxmemory-policy is '${policy}': Redis may evict queue keys and lose jobs. Set it to 'noeviction'.`;
        this.#log("error", "eviction-policy", message, { policy });
        this.#emit("warning", { message, policy });
      }
    }, () => {});
  }

  /** Clean-up, each step bounded: with Redis unreachable, commands would wait for a reconnect forever. */
  async #finalize(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#promoteTimer);
    const bounded = (p: Promise<unknown> | undefined) => deadline(Promise.resolve(p), CLEANUP_MS).catch(() => {});
    if (!this.#giveUp) {
      await bounded(this.#sideFlush);
      if (this.#began) await bounded(this.#releaseConsumers());
      await bounded(this.#unregister());
      await bounded(this.#close());
    }
    for (const c of [this.#block, this.#sub]) if (c && c.status !== "end") c.disconnect();
    if (this.#ownsCmd && this.#cmd && this.#cmd.status !== "end") this.#cmd.disconnect();
    this.#summary.durationMs = Date.now() - this.#startedAt;
    this.shutdown.markStopped();
    for (const f of this.#cleanups.splice(0)) f();
    this.#log("info", "stopped", `worker ${this.id} stopped`, { ...this.#summary });
  }

  #onPhase(detail: { phase: Phase; previous: Phase; source: string }): void {
    const { phase, source } = detail;
    this.#emit("phase", detail);
    if (phase === "draining") {
      this.#log("info", "draining", `draining (${source}): no new jobs; ${this.#running.size} running`, { source, running: this.#running.size });
      // a blocked XREADGROUP must not delay the stop: drop its connection. Anything the server
      // delivered on it meanwhile stays in this consumer's pending list and is released at stop.
      this.#block?.disconnect();
      if (this.#s.gracefulTimeout !== undefined) {
        const t = setTimeout(() => this.shutdown.escalate("shutdownGracefulTimeout"), this.#s.gracefulTimeout);
        this.#timers.push(t);
      }
    } else if (phase === "aborting") {
      this.#log("warn", "aborting", `aborting ${this.#running.size} running job(s) (${source})`, { source, running: this.#running.size });
      for (const r of this.#running.values()) this.#abortJob(r, "shutdown");
    }
    // the registry (and the admin app) shows the new phase now, not at the next heartbeat; its
    // commands go out before the unregistering at stop, on the same connection
    if (phase === "draining" || phase === "aborting") this.#register().catch(() => {});
    this.#wake();
  }

  // ---- the pump: one loop that flushes outcomes and fetches, one round trip per queue per pass

  #wake(): void {
    const r = this.#wakeResolve;
    if (r) {
      this.#wakeResolve = undefined;
      r();
    } else {
      this.#wakePending = true;
    }
  }

  #sleep(): Promise<void> {
    if (this.#wakePending) {
      this.#wakePending = false;
      return Promise.resolve();
    }
    return new Promise((r) => (this.#wakeResolve = r));
  }

  #hasOutcomes(): boolean {
    for (const q of this.#queues) if (q.outcomes.length > 0) return true;
    return false;
  }

  #free(): number {
    if (this.shutdown.phase !== "running") return 0;
    const slots = this.concurrency - this.#running.size - this.#reserved;
    return Math.max(0, Math.min(slots, this.#s.maxJobs - this.#started - this.#reserved));
  }

  /**
   * The main loop. A pass flushes the queues' outcomes and fetches ready jobs in one script per
   * queue, in priority order. Two passes may be in flight, each fetching up to half the
   * concurrency, so the handlers of one batch run while Redis works on the next: the client and
   * the server overlap instead of waiting on each other. When no queue has a ready job, the loop
   * waits in a blocking read (outcomes are then flushed aside).
   */
  async #pump(): Promise<void> {
    const batch = Math.max(1, Math.ceil(this.concurrency / 2));
    while (true) {
      if (this.shutdown.abandon.aborted) this.#abandonAll();
      if (this.shutdown.phase !== "running" && this.#running.size === 0 && !this.#hasOutcomes() && this.#inflight === 0) break;
      if (this.#giveUp) {
        // told to stop without waiting, and Redis did not take the last outcomes in time (it is
        // unreachable, and commands wait for a reconnect): those outcomes are lost, their jobs are
        // not: still pending under this consumer, another worker recovers them after stalledTimeout
        const left = this.#queues.reduce((n, q) => n + q.outcomes.splice(0).length, 0) + this.#inflight;
        this.#log("error", "stopped", `Redis did not answer: stopping without writing ${left} outcome batch(es); their jobs will be recovered as stalled`);
        break;
      }
      this.#wakePending = false;
      if (this.#errors > 0 && this.#inflight === 0) {
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(this.#errors, 6))));
      }
      if (this.#needReconcile && this.shutdown.phase !== "stopped") {
        // nothing that fetches may be in flight while the pending lists are compared with what runs
        if (this.#inflight > 0) {
          await this.#sleep();
          continue;
        }
        try {
          for (const q of this.#queues) await this.#reconcile(q, "reconnect");
          this.#needReconcile = false;
          this.#errors = 0;
        } catch (e) {
          this.#failed(e);
        }
        continue;
      }
      const free = this.#free();
      const want = this.#empty ? 0 : Math.min(free, batch);
      if (this.#inflight < 2 && (want > 0 || this.#hasOutcomes())) {
        this.#pass(want);
        continue;
      }
      if (free > 0 && this.#empty && this.#inflight === 0 && !this.#hasOutcomes()) {
        // nothing ready in any queue
        if (!this.#s.wait) {
          if (this.#running.size === 0) {
            this.shutdown.request({ source: "drained" });
            continue;
          }
          // drain mode: no blocking read (it would hold the stop for up to blockTimeout after the
          // last job); look again without blocking each time a running job settles
          await this.#sleep();
          this.#empty = false;
          continue;
        }
        try {
          await this.#blockingRead(free);
          this.#errors = 0;
        } catch (e) {
          this.#failed(e);
        }
        this.#empty = false;
        continue;
      }
      await this.#sleep();
    }
  }

  /** One pass over the queues, not awaited by the loop; it wakes the loop when done. */
  #pass(want: number): void {
    this.#inflight++;
    this.#reserved += want;
    (async () => {
      let fetched = 0;
      try {
        for (const q of this.#queues) {
          const n = want - fetched;
          if (q.outcomes.length === 0 && n <= 0) continue;
          fetched += await this.#finishAndFetch(q, n);
        }
        this.#errors = 0;
        if (want > 0 && fetched < want) this.#empty = true;
      } catch (e) {
        this.#failed(e);
      } finally {
        this.#reserved -= want;
        this.#inflight--;
        this.#wake();
      }
    })();
  }

  #failed(e: unknown): void {
    this.#errors++;
    this.#emit("error", e);
    this.#log("error", "error", `redis error: ${(e as Error).message}`);
    // the stream or its group is gone (a Redis restarted without persistence, a FLUSHALL, a
    // deleted key): make them again, so the worker takes the jobs enqueued from now on
    if (String((e as Error)?.message).includes("NOGROUP")) {
      this.#ensureGroups().catch(() => {});
    }
  }

  /**
   * Creates each queue's stream and consumer group where missing (at `0`, with MKSTREAM). A group
   * that exists is success, also when Redis refused the create for another reason (at maxmemory it
   * answers OOM before it looks).
   */
  async #ensureGroups(): Promise<void> {
    for (const q of this.#queues) {
      await this.#send("XGROUP", ["CREATE", q.keys.stream, GROUP, "0", "MKSTREAM"]).catch(async (e) => {
        if (String(e?.message).includes("BUSYGROUP")) return;
        const groups = await this.#send("XINFO", ["GROUPS", q.keys.stream]).catch(() => []);
        const exists = Array.isArray(groups) && groups.some((g) => Array.isArray(g) && g[0] === "name" && g[1] === GROUP);
        if (!exists) throw e;
      });
    }
  }

  /**
   * Hands back what `q`'s pending list holds for this consumer that no attempt here holds: jobs a
   * call whose reply was lost activated or delivered. They go back to the stream at once, with no
   * stall and no attempt counted. Run at start (a previous process with the same id) and after a
   * reconnect, while nothing that fetches is in flight.
   */
  async #reconcile(q: QueueState, why: "start" | "reconnect"): Promise<void> {
    const k = q.keys;
    const ids = (await scripts.reconcile.run(this.#send, [k.stream, k.events], [
      k.base, GROUP, this.id, Date.now(), this.#s.eventsMaxLen, ...this.#held,
    ])) as string[];
    if (ids.length > 0) {
      this.#log("warn", "job-requeued", `${ids.length} job(s) delivered to this worker without its knowing (${why === "start" ? "a previous worker with this id" : "a reply lost with a connection"}) went back to ${q.name}`, { queue: q.name, jobs: ids });
      this.#emit("requeued", { queue: q.name, ids });
    }
  }

  /** Flushes `q`'s outcomes and fetches up to `want` jobs in one script. Returns jobs started. */
  async #finishAndFetch(q: QueueState, want: number): Promise<number> {
    const outs = q.outcomes.splice(0);
    const k = q.keys;
    const now = Date.now();
    const argv: (string | number)[] = [
      k.base, GROUP, this.id, now, want, crypto.randomUUID().slice(0, 8) + ":",
      this.#s.keep.completed.count, this.#s.keep.completed.age, this.#s.keep.failed.count, this.#s.keep.failed.age,
      this.#s.eventsMaxLen, outs.length,
    ];
    for (const o of outs) argv.push(o.r.id, o.r.token, o.kind, o.payload, o.retryAt);
    let reply: unknown[];
    try {
      reply = (await scripts.finish.run(this.#send, [k.stream, k.delayed, k.completed, k.failed, k.aborted, k.events], argv)) as unknown[];
    } catch (e) {
      q.outcomes.unshift(...outs); // try them again; a repeat of an applied outcome is fenced out
      throw e;
    }
    const flags = reply[0] as string;
    for (let i = 0; i < outs.length; i++) {
      const o = outs[i]!;
      // '2': a retry or an interruption that ended `aborted`, since an abort was requested for the job
      if (flags[i] === "2" && !o.abandoned) o.kind = "a";
      this.#held.delete(o.r.id + " " + o.r.token);
      this.#reported(o, flags[i] !== "0");
    }
    for (let i = 1; i < reply.length; i++) this.#startJob(q, reply[i] as string);
    // a retry due at once or an interrupted job went back to the stream after the last fetch that
    // found it empty: look again before the pump (in drain mode) concludes there is nothing to do
    if (want === 0 && outs.some((o, i) => flags[i] === "1" && (o.kind === "i" || (o.kind === "r" && o.retryAt <= now)))) this.#empty = false;
    return reply.length - 1;
  }

  /** While the pump is blocked on a read, outcomes are flushed on the command connection. */
  #flushAside(): void {
    if (this.#sideFlush || !this.#blocking || !this.#hasOutcomes()) return;
    this.#sideFlush = (async () => {
      await null; // let the assignment above happen before `finally` clears it
      try {
        while (this.#blocking && this.#hasOutcomes()) {
          for (const q of this.#queues) if (q.outcomes.length > 0) await this.#finishAndFetch(q, 0);
        }
      } catch (e) {
        this.#emit("error", e);
        this.#log("error", "error", `redis error: ${(e as Error).message}`);
      } finally {
        this.#sideFlush = undefined;
        this.#wake();
      }
    })();
  }

  async #blockingRead(free: number): Promise<void> {
    const block = this.#block;
    if (!block || this.shutdown.graceful.aborted) return;
    const isCluster = "nodes" in block && typeof (block as { nodes?: unknown }).nodes === "function";
    // one XREADGROUP over all streams where they can share it (not across cluster slots)
    const qs = isCluster && this.#queues.length > 1 ? [this.#queues[this.#started % this.#queues.length]!] : this.#queues;
    const count = qs.length === 1 ? free : 1;
    const blockMs = isCluster && this.#queues.length > 1 ? Math.min(this.#s.blockTimeout, 250) : this.#s.blockTimeout;
    this.#blocking = true;
    this.#flushAside();
    let reply: unknown;
    try {
      // raced with the graceful signal: a read queued on a connection that lost Redis does not
      // settle when the connection is dropped, and must not hold the stop
      reply = await abortable(
        block.call(
          "XREADGROUP", "GROUP", GROUP, this.id, "COUNT", count, "BLOCK", blockMs,
          "STREAMS", ...qs.map((q) => q.keys.stream), ...qs.map(() => ">"),
        ),
        this.shutdown.graceful,
      );
    } catch (e) {
      if (this.shutdown.graceful.aborted) return; // the connection was dropped to stop fetching
      throw e;
    } finally {
      this.#blocking = false;
    }
    if (!reply) return;
    let room = this.#free();
    for (const [stream, entries] of streamEntries(reply)) {
      const q = this.#queues.find((x) => x.keys.stream === stream)!;
      const argv: (string | number)[] = [q.keys.base, GROUP, this.id, Date.now(), crypto.randomUUID().slice(0, 8) + ":", room, this.#s.eventsMaxLen];
      for (const [sid, fields] of entries) argv.push(sid, fields[1]!);
      const rows = (await scripts.activate.run(this.#send, [q.keys.stream, q.keys.events], argv)) as string[];
      for (const row of rows) this.#startJob(q, row);
      room -= rows.length;
    }
  }

  // ---- jobs

  /** Starts a job from a fetched row: id sid token attempt stalls name data opts max created, NUL-joined. */
  #startJob(q: QueueState, row: string): void {
    const [id, , token, attempt, stalls, name, data, opts, max, created] = row.split("\0");
    const job = {
      id: id!, name: name!, queue: q.name, attempt: Number(attempt), maxAttempts: Number(max),
      createdAt: Number(created), stalls: Number(stalls ?? 0),
    };
    const key = q.name + "\u0000" + id;
    const ctx = new Context(job, this.id, (value) => this.#progress(q, id!, token!, value));
    const previous = this.#byJob.get(key);
    if (previous && !previous.settled && !previous.lost) {
      // another worker recovered the job and this worker fetched it again while its old attempt
      // still runs here: the old attempt is over (nothing is written for it)
      this.#markLost(previous);
      this.#log("warn", "job-lost", `job ${id} was fetched again while an older attempt ran here; aborting the older one`, { job: id, queue: q.name });
      this.#abortJob(previous, "lost");
    }
    // most jobs store no options (every default): no parse for them
    let parsedOpts: StoredOptions = NO_OPTIONS;
    if (opts) {
      try {
        parsedOpts = JSON.parse(opts);
      } catch {
        // unreadable options: run with the defaults rather than not at all
      }
    }
    const r: Running = { key, q, id: id!, token: token!, ctx, opts: parsedOpts, settled: false, lost: false, task: this.#tasks.get(name!) };
    this.#running.set(r.token, r);
    this.#byJob.set(key, r);
    this.#held.add(r.id + " " + r.token);
    if (this.shutdown.phase !== "running") {
      // fetched by a pass that was in flight when the stop began: hand it back without running it
      // (interrupted: re-queued at once, its attempt not counted)
      r.ctx.abort("shutdown");
      this.#settle(r, false, new JobAborted("shutdown", `job ${r.id} was fetched as the worker began to stop; re-queued`));
      return;
    }
    this.#started++;
    if (this.#started >= this.#s.maxJobs && this.shutdown.phase === "running") {
      queueMicrotask(() => this.shutdown.request({ source: "maxJobs" }));
    }
    this.#emit("active", { job });
    if (!r.task) {
      this.#settle(r, false, new UnknownTaskError(name!, this.id));
      return;
    }
    const timeout = parsedOpts.timeout ?? (r.task.timeout !== undefined ? parseDuration(r.task.timeout) : this.#s.timeout);
    if (timeout !== undefined) r.timer = setTimeout(() => this.#abortJob(r, "timeout"), timeout);
    let p: unknown;
    try {
      p = r.task.handler(JSON.parse(data!), ctx);
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

  #abortJob(r: Running, reason: AbortReason): void {
    if (r.settled) return;
    if (r.ctx.abort(reason)) {
      this.#log(reason === "user" || reason === "shutdown" ? "info" : "warn", "job-abort", `job ${r.id} aborted: ${reason}`, { job: r.id, queue: r.q.name, reason });
    }
  }

  #settle(r: Running, ok: boolean, value: unknown): void {
    if (r.settled) return;
    r.settled = true;
    if (r.timer !== undefined) clearTimeout(r.timer);
    this.#forget(r);
    if (r.lost) {
      this.#held.delete(r.id + " " + r.token);
      this.#summary.lost++;
      this.#emit("lost", { job: r.ctx.job });
      this.#wake();
      return;
    }
    let o: Outcome;
    if (ok) {
      const payload = value === undefined ? "null" : safeJson(value);
      if (payload === undefined) {
        o = this.#failure(r, new UnrecoverableError(`result of job ${r.id} is not JSON-serialisable`));
      } else {
        o = { r, kind: "c", payload, retryAt: 0, value };
      }
    } else {
      o = this.#failure(r, value);
    }
    r.q.outcomes.push(o);
    if (this.#blocking) this.#flushAside();
    this.#wake();
  }

  /** The attempt no longer holds its job: it writes nothing when it settles. Counted once, in Redis too. */
  #markLost(r: Running): void {
    r.lost = true;
    this.#send("HINCRBY", [r.q.keys.base + "stats", "lost", 1]).catch(() => {});
  }

  /** Removes a settled attempt from the running ones; a newer attempt of the same job stays. */
  #forget(r: Running): void {
    this.#running.delete(r.token);
    if (this.#byJob.get(r.key) === r) this.#byJob.delete(r.key);
  }

  #failure(r: Running, error: unknown): Outcome {
    const reason = r.ctx.abortReason;
    const payload = storeError(error, reason);
    if (reason === "user") return { r, kind: "a", payload, retryAt: 0, error };
    if (reason === "shutdown") return { r, kind: "i", payload, retryAt: 0, error };
    const job = r.ctx.job;
    if (UnrecoverableError.is(error) || job.attempt >= job.maxAttempts) return { r, kind: "f", payload, retryAt: 0, error };
    const delay = backoffDelay(r.opts.backoff ?? { ...DEFAULT_BACKOFF }, job.attempt);
    const retryAt = Date.now() + delay;
    if (delay > 0) this.#schedulePromote(retryAt);
    return { r, kind: "r", payload, retryAt, error };
  }

  /** After the outcome's script ran: count it and tell listeners. */
  #reported(o: Outcome, accepted: boolean): void {
    const job = o.r.ctx.job;
    if (!accepted) {
      this.#summary.lost++;
      this.#emit("lost", { job });
      return;
    }
    const s = this.#summary;
    switch (o.kind) {
      case "c":
        s.completed++;
        this.#emit("completed", { job, result: o.value });
        break;
      case "f":
        s.failed++;
        this.#emit("failed", { job, error: o.error, abortReason: o.r.ctx.abortReason });
        break;
      case "a":
        s.aborted++;
        this.#emit("aborted", { job, error: o.error, abortReason: "user" });
        break;
      case "r":
        s.retried++;
        this.#emit("retrying", { job, error: o.error, abortReason: o.r.ctx.abortReason, retryAt: o.retryAt });
        break;
      case "i":
        if (o.abandoned) break;
        s.interrupted++;
        this.#log("info", "job-interrupted", `job ${job.id} interrupted and re-queued (attempt ${job.attempt} not counted)`, { job: job.id, queue: job.queue });
        this.#emit("interrupted", { job, error: o.error, abortReason: "shutdown" });
        break;
    }
  }

  #abandonAll(): void {
    for (const r of [...this.#running.values()]) {
      r.settled = true;
      if (r.timer !== undefined) clearTimeout(r.timer);
      this.#forget(r);
      this.#summary.abandoned++;
      this.#log("warn", "job-abandoned", `job ${r.id} ignored its abort; re-queued and left behind`, { job: r.id, queue: r.q.name });
      r.q.outcomes.push({ r, kind: "i", payload: storeError(new JobAborted("shutdown", "abandoned at shutdown"), "shutdown"), retryAt: 0, abandoned: true });
    }
  }

  async #progress(q: QueueState, id: string, token: string, value: unknown): Promise<void> {
    const payload = safeJson(value);
    if (payload === undefined) throw new TypeError(`progress of job ${id} must be JSON-serialisable`);
    const r = this.#running.get(token);
    if (!r || r.settled) return; // the attempt is over: its progress no longer matters
    // fenced in Redis too: a stale attempt never overwrites the new owner's progress, nor
    // re-creates a hash that retention deleted
    await scripts.progress.run(this.#send, [q.keys.job(id)], [this.id, token, payload]);
  }

  // ---- timers: one heartbeat (with stalled recovery and registry), promotion, abort poll, end conditions

  #startTimers(): void {
    const every = (ms: number, fn: () => Promise<void> | void) => {
      let busy = false;
      const t = setInterval(async () => {
        if (busy) return;
        busy = true;
        try {
          await fn();
        } catch (e) {
          this.#emit("error", e);
          this.#log("error", "error", `${(e as Error).message}`);
        } finally {
          busy = false;
        }
      }, ms);
      this.#timers.push(t);
    };
    // heartbeats, recovery and the registry each have a timer: a slow recovery scan never delays
    // a heartbeat (which would let other workers take this worker's jobs)
    every(this.#s.heartbeatInterval, () => this.#check(true));
    every(this.#s.heartbeatInterval, () => this.#register());
    every(this.#s.heartbeatInterval, async () => {
      if (this.shutdown.phase !== "running" || Date.now() < this.#recoverNotBefore) return;
      await this.#recover();
      await this.#trim();
    });
    every(this.#s.abortPollInterval, () => this.#check(false));
    if ([...this.#tasks.values()].some((t) => t.endCondition)) {
      every(this.#s.endConditionInterval, () => {
        const now = new Date();
        for (const r of this.#running.values()) {
          if (r.task?.endCondition?.(now)) this.#abortJob(r, "end-condition");
        }
      });
    }
    every(this.#s.promoteInterval, () => this.#promoteAll());
  }

  async #check(claim: boolean): Promise<void> {
    const byQueue = new Map<QueueState, Running[]>();
    // a heartbeat goes to every queue, also without jobs: it tells recovery this worker lives
    if (claim) for (const q of this.#queues) byQueue.set(q, []);
    for (const r of this.#running.values()) {
      if (r.settled) continue;
      let list = byQueue.get(r.q);
      if (!list) byQueue.set(r.q, (list = []));
      list.push(r);
    }
    for (const [q, list] of byQueue) {
      const argv: (string | number)[] = [q.keys.base, GROUP, this.id, claim ? 1 : 0, Date.now()];
      for (const r of list) argv.push(r.id, r.token);
      const flags = (await scripts.check.run(this.#send, [q.keys.stream], argv)) as number[];
      list.forEach((r, i) => {
        if (flags[i] === 1 && !r.settled && !r.lost) {
          this.#markLost(r);
          this.#log("warn", "job-lost", `job ${r.id} was reclaimed by another worker; aborting it here`, { job: r.id, queue: q.name });
          this.#abortJob(r, "lost");
        } else if (flags[i] === 2) {
          this.#abortJob(r, "user");
        }
      });
    }
  }

  /**
   * Stalled recovery, one cursor per queue: pending entries idle for stalledTimeout whose owner
   * has not heartbeated for as long go back to the stream (or fail past maxStalled). An owner that
   * heartbeats keeps its entries, however idle they look.
   */
  async #recover(): Promise<void> {
    for (const q of this.#queues) {
      let cursor = this.#recoverCursor.get(q.name) ?? "0-0";
      for (let step = 0; step < 10; step++) {
        const k = q.keys;
        const [next, recovered, failed, deleted] = (await scripts.recover.run(this.#send, [k.stream, k.failed, k.events], [
          k.base, GROUP, this.id, Date.now(), this.#s.stalledTimeout, cursor, 100, this.#s.maxStalled, this.#s.eventsMaxLen,
        ])) as [string, string[], string[], string[], number];
        for (const id of recovered) {
          this.#summary.recovered++;
          this.#log("warn", "job-stalled", `recovered stalled job ${id}; re-queued`, { job: id, queue: q.name });
          this.#emit("stalled", { id, queue: q.name, failed: false });
        }
        for (const id of failed) {
          this.#log("warn", "job-stalled", `job ${id} stalled more than ${this.#s.maxStalled} time(s); failed`, { job: id, queue: q.name });
          this.#emit("stalled", { id, queue: q.name, failed: true });
        }
        if (deleted.length > 0) {
          this.#log("error", "entry-deleted", `${deleted.length} pending stream entr(ies) of ${q.name} were deleted outside sluice; looking for their jobs`, { queue: q.name, entries: deleted });
          await this.#sweep(q, deleted);
        }
        cursor = next;
        if (cursor === "0-0") break;
      }
      this.#recoverCursor.set(q.name, cursor);
    }
  }

  /** Re-queues the jobs whose pending entries were deleted (rare: only something outside sluice deletes them). */
  async #sweep(q: QueueState, deleted: string[]): Promise<void> {
    const k = q.keys;
    let cursor = "0";
    do {
      const [next, ids] = (await scripts.sweep.run(this.#send, [k.stream, k.events], [k.base, cursor, 1000, Date.now(), this.#s.eventsMaxLen, ...deleted])) as [string, string[]];
      for (const id of ids) {
        this.#summary.recovered++;
        this.#log("warn", "job-stalled", `job ${id} lost its stream entry; re-queued`, { job: id, queue: q.name });
        this.#emit("stalled", { id, queue: q.name, failed: false });
      }
      cursor = String(next);
    } while (cursor !== "0");
  }

  /** Retention of every finished state, also for queues whose jobs are only cancelled. */
  async #trim(): Promise<void> {
    const keep = this.#s.keep;
    for (const q of this.#queues) {
      const k = q.keys;
      await scripts.trim.run(this.#send, [k.completed, k.failed, k.aborted, k.cancelled], [
        k.base, Date.now(), keep.completed.count, keep.completed.age, keep.failed.count, keep.failed.age, keep.cancelled.count, keep.cancelled.age,
      ]);
    }
  }

  async #promoteAll(): Promise<void> {
    let next = Infinity;
    for (const q of this.#queues) {
      const [, due] = (await scripts.promote.run(this.#send, [q.keys.stream, q.keys.delayed, q.keys.events], [
        q.keys.base, Date.now(), 1000, this.#s.eventsMaxLen,
      ])) as [number, string];
      const d = Number(due);
      if (d >= 0) next = Math.min(next, d);
    }
    this.#nextPromoteAt = Infinity;
    if (next !== Infinity) this.#schedulePromote(next);
  }

  /** Promotes again at `at` when that is before the next promotion already planned. */
  #schedulePromote(at: number): void {
    if (at >= this.#nextPromoteAt || this.shutdown.phase === "stopped") return;
    const wait = at - Date.now();
    if (wait > this.#s.promoteInterval) return; // the regular interval comes first
    this.#nextPromoteAt = at;
    clearTimeout(this.#promoteTimer);
    this.#promoteTimer = setTimeout(() => {
      this.#nextPromoteAt = Infinity;
      this.#promoteAll().catch((e) => this.#emit("error", e));
    }, Math.max(0, wait));
  }

  // ---- connections, subscription, registry

  async #subscribe(): Promise<void> {
    const sub = duplicate(this.#cmd);
    this.#sub = sub;
    const control = globalKeys(this.#s.prefix).control;
    sub.on("message", (channel: string, message: string) => {
      if (channel === control) return this.#onControl(message);
      const q = this.#queues.find((x) => x.keys.abortChannel === channel);
      const r = q && this.#byJob.get(q.name + "\u0000" + message);
      if (r) this.#abortJob(r, "user");
    });
    await sub.subscribe(control, ...this.#queues.map((q) => q.keys.abortChannel));
  }

  #onControl(message: string): void {
    let m: { action?: string; worker?: string; queue?: string; hard?: boolean };
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (m.action !== "shutdown") return;
    // both filters must match when both are given; none given: every worker under the prefix
    const forMe = (m.worker === undefined || m.worker === this.id) && (m.queue === undefined || this.#byName.has(m.queue));
    if (!forMe) return;
    this.#log("info", "remote-shutdown", `remote ${m.hard ? "hard" : "graceful"} shutdown requested`);
    this.shutdown.request({ hard: !!m.hard, source: "remote" });
  }

  async #register(): Promise<void> {
    const g = globalKeys(this.#s.prefix);
    const now = Date.now();
    const info = {
      id: this.id,
      host: this.options.identity?.host ?? "",
      pid: this.options.identity?.pid ?? 0,
      runtime: this.options.identity?.runtime ?? "",
      queues: this.#queues.map((q) => q.name),
      concurrency: this.concurrency,
      phase: this.shutdown.phase,
      startedAt: this.#startedAt,
      heartbeatAt: now,
      active: this.activeJobs,
    };
    const ttl = Math.max(this.#s.stalledTimeout, this.#s.heartbeatInterval * 3);
    await Promise.all([
      this.#send("ZADD", [g.workers, now, this.id]),
      // workers killed without unregistering: forget them after a day without a heartbeat
      this.#send("ZREMRANGEBYSCORE", [g.workers, "-inf", now - 86_400_000]),
      this.#send("SET", [g.worker(this.id), JSON.stringify(info), "PX", ttl]),
    ]);
  }

  async #unregister(): Promise<void> {
    const g = globalKeys(this.#s.prefix);
    await Promise.all([this.#send("ZREM", [g.workers, this.id]), this.#send("DEL", [g.worker(this.id)])]).catch(() => {});
  }

  async #releaseConsumers(): Promise<void> {
    for (const q of this.#queues) {
      try {
        const left = await scripts.release.run(this.#send, [q.keys.stream], [q.keys.base, GROUP, this.id]);
        if (Number(left) > 0) {
          this.#log("warn", "stopped", `consumer kept on ${q.name}: it still owns ${left} pending job(s), recoverable after stalledTimeout`);
        }
      } catch (e) {
        this.#emit("error", e);
      }
    }
  }

  async #close(): Promise<void> {
    // a second disconnect() of an ioredis client that has ended arms a 2 s timer that waits for a
    // "close" already emitted: it would hold the process open that long after the worker stopped
    for (const c of [this.#block, this.#sub]) if (c && c.status !== "end") c.disconnect();
    if (this.#ownsCmd) await this.#cmd.quit().catch(() => this.#cmd.disconnect());
  }
}

export type { StoredError };
export type { Handler, LogEntry, RetentionPolicy, TaskDefinition, Tasks, WorkerOptions } from "./worker-options.ts";

type Entry = [string, string[]];

function isThenable(x: unknown): x is PromiseLike<unknown> {
  return x !== null && (typeof x === "object" || typeof x === "function") && typeof (x as { then?: unknown }).then === "function";
}

/** The value of a CONFIG GET reply for one parameter: `[name, value]` (RESP2) or `{ name: value }`. */
function configValue(reply: unknown): string | undefined {
  if (Array.isArray(reply)) return reply.length >= 2 ? String(reply[1]) : undefined;
  if (reply && typeof reply === "object") return Object.values(reply as Record<string, unknown>).map(String)[0];
  return undefined;
}

/**
 * The streams of an XREAD/XREADGROUP reply: RESP2 gives `[[stream, entries], …]`, RESP3 a map
 * that clients hand over as `[stream, entries, stream, entries, …]` (or as an object).
 */
export function streamEntries(reply: unknown): [string, Entry[]][] {
  if (!reply) return [];
  if (Array.isArray(reply)) {
    if (reply.length > 0 && typeof reply[0] === "string") {
      const out: [string, Entry[]][] = [];
      for (let i = 0; i < reply.length; i += 2) out.push([reply[i] as string, reply[i + 1] as Entry[]]);
      return out;
    }
    return reply as [string, Entry[]][];
  }
  if (typeof reply === "object") return Object.entries(reply as Record<string, Entry[]>);
  return [];
}
