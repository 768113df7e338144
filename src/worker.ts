import { abortable, deadline } from "./async.ts";
import type { StoredError } from "./job.ts";
import { GROUP, queueKeys } from "./keys.ts";
import { connect, duplicate, type IORedis, type Send, toSend } from "./redis.ts";
import { register, unregister } from "./registry.ts";
import { type Phase, ShutdownController } from "./shutdown.ts";
import { resolveSettings, type Settings, type WorkerOptions } from "./worker-options.ts";
import { Completer } from "./worker/completer.ts";
import { subscribe } from "./worker/control.ts";
import { emptySummary, type QueueState, type RunOptions, type RunSummary, type WorkerCore } from "./worker/core.ts";
import { Executor } from "./worker/executor.ts";
import { Fetcher } from "./worker/fetcher.ts";
import { Heartbeat } from "./worker/heartbeat.ts";
import { Maintenance } from "./worker/maintenance.ts";
import { RunningJobs } from "./worker/running-jobs.ts";
import * as scripts from "./worker/scripts.ts";

export type { JobEventDetail, RunOptions, RunSummary } from "./worker/core.ts";
export { streamEntries } from "./worker/fetcher.ts";
export type { StoredError };
export type { Handler, LogEntry, RetentionPolicy, TaskDefinition, Tasks, WorkerOptions } from "./worker-options.ts";

/** How long each clean-up step of a stopping worker may wait for Redis. */
const CLEANUP_MS = 3000;

/**
 * Runs the jobs of one or more queues. Fetches in batches up to `concurrency`, heartbeats its jobs
 * on one timer, recovers the jobs of workers that died, and stops the way it is asked: see
 * `ShutdownController` and DESIGN section 3.
 *
 * The parts, each in src/worker/: the fetcher (the loop that fills free slots), the executor (runs
 * handlers and turns how they ended into outcomes), the completer (writes outcomes in batches),
 * running-jobs (the one owner of the attempts running here), the heartbeat, maintenance
 * (recovery, retention, promotion) and control (abort and shutdown messages). This file wires them
 * and holds the life of a worker, start to stop, as named steps in `#run`.
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
  readonly #s: Settings;
  readonly #core: WorkerCore;
  readonly #running = new RunningJobs();
  readonly #executor: Executor;
  readonly #completer: Completer;
  readonly #fetcher: Fetcher;
  readonly #heartbeat: Heartbeat;
  readonly #maintenance: Maintenance;
  readonly #listening = new Set<string>();

  #cmd!: IORedis;
  #block: IORedis | undefined;
  #sub: IORedis | undefined;
  #ownsCmd = false;
  #timers: ReturnType<typeof setTimeout>[] = [];
  #cleanups: (() => void)[] = [];
  #runPromise: Promise<RunSummary> | undefined;
  #startedAt = 0;
  /** Startup finished: there is something to release at stop. */
  #began = false;

  constructor(options: WorkerOptions) {
    super();
    const settings = resolveSettings(options);
    this.options = options;
    this.#s = settings;
    this.id = settings.id;
    this.concurrency = settings.concurrency;
    const queues: QueueState[] = settings.queues.map((name) => ({ name, keys: queueKeys(settings.prefix, name) }));
    const core: WorkerCore = {
      id: settings.id,
      settings,
      queues,
      shutdown: this.shutdown,
      summary: emptySummary(),
      send: () => Promise.reject(new Error("the worker is not connected: call run()")),
      emit: (type, detail) => {
        if (this.#listening.has(type)) this.dispatchEvent(new CustomEvent(type, { detail }));
      },
      log: (level, event, message, fields = {}) => {
        this.options.logger?.({ level, event, message, worker: this.id, ...fields });
      },
    };
    this.#core = core;
    this.#executor = new Executor(core, this.#running, settings.tasks, {
      settled: (o) => {
        if (o) this.#completer.add(o);
        this.#fetcher.settled();
      },
      retryAt: (at) => this.#maintenance.schedulePromote(at),
    });
    this.#completer = new Completer(core, this.#running);
    this.#fetcher = new Fetcher(core, {
      running: this.#running,
      executor: this.#executor,
      completer: this.#completer,
      block: () => this.#block,
      onError: (e) => this.#redisError(e),
    });
    this.#heartbeat = new Heartbeat(core, this.#running, this.#executor);
    this.#maintenance = new Maintenance(core);
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
    return this.#runPromise ?? Promise.resolve({ ...this.#core.summary });
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
   * The whole life of a worker, as named steps: connect; start (bounded by the stop); fetch and
   * run until told to stop, then let the running jobs settle (the fetch loop returns once nothing
   * runs and every outcome is written); finalize (each clean-up step bounded); report.
   */
  async #run(options: RunOptions): Promise<RunSummary> {
    this.#startedAt = Date.now();
    this.#connect();
    this.#listenForStop(options);
    const before = this.shutdown.phase; // a stop() before run(): its phase change had no listener yet
    try {
      this.#began = await this.#start();
    } catch (e) {
      this.#core.log("error", "error", `worker could not start: ${(e as Error).message}`);
      await this.#finalize();
      throw e;
    }
    try {
      if (this.#began) {
        this.#core.log("info", "started", `worker ${this.id} started`, { queues: this.#s.queues, concurrency: this.concurrency });
        this.#startTimers();
        if (before !== "running") this.#onPhase({ phase: before, previous: "running", source: "before run()" });
        await this.#maintenance.promoteAll().catch((e) => this.#redisError(e));
        await this.#fetcher.run();
      }
    } finally {
      await this.#finalize();
    }
    return { ...this.#core.summary };
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
    this.#core.send = toSend(this.#cmd) as Send;
    this.#block = duplicate(this.#cmd, { enableAutoPipelining: false });
    for (const c of [this.#cmd, this.#block]) this.#watch(c);
  }

  /** Notices a connection coming back after a drop (see `#reconnected`). */
  #watch(c: IORedis): void {
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

  /**
   * A connection came back. Replies lost with the old one may have delivered jobs this worker never
   * learnt of (the client re-sends unanswered commands, and the server may have run them already):
   * the fetcher hands them back once no fetching call is in flight. Other workers' heartbeats may
   * not have got through either, so recovery waits a full stalledTimeout.
   */
  #reconnected(): void {
    if (this.shutdown.phase === "stopped") return;
    this.#core.log("info", "reconnected", "connection to Redis restored; reconciling this worker's pending jobs");
    this.#maintenance.recoverNotBefore = Date.now() + this.#s.stalledTimeout;
    this.#fetcher.reconnected();
  }

  /** The run() signals feed the shutdown controller; their listeners are removed at stop. */
  #listenForStop(options: RunOptions): void {
    const sd = this.shutdown;
    const onPhase = (e: Event) => this.#onPhase((e as CustomEvent).detail);
    sd.addEventListener("phase", onPhase);
    this.#cleanups.push(() => sd.removeEventListener("phase", onPhase));
    sd.abandon.addEventListener("abort", () => {
      this.#fetcher.wake();
      // abandoning means not waiting: writing what is left gets CLEANUP_MS, then the worker stops
      this.#timers.push(setTimeout(() => {
        this.#fetcher.giveUp = true;
        this.#fetcher.wake();
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
    const core = this.#core;
    const waiting = setTimeout(() => {
      core.log("warn", "waiting", `waiting for Redis to answer before starting (stop() or a signal stops the worker)`);
    }, 1000);
    try {
      const stopping = this.shutdown.graceful;
      const steps = (async () => {
        await this.#ensureGroups();
        if (stopping.aborted) return; // no new connection once the stop has closed them
        this.#sub = await subscribe(core, this.#cmd, this.#running, this.#executor, (c) => (this.#sub = c));
        await this.#register().catch((e) => core.log("warn", "error", `could not register in the worker registry: ${(e as Error).message}`));
        for (const q of core.queues) await this.#fetcher.reconcile(q, "start");
      })();
      steps.catch(() => {}); // abandoned by a stop, its connections closed under it: nothing to tell
      await abortable(steps, stopping);
    } catch (e) {
      if (this.shutdown.graceful.aborted) {
        core.log("warn", "stopped", "stopped before Redis answered; nothing was started");
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
   * Creates each queue's stream and consumer group where missing (at `0`, with MKSTREAM). A group
   * that exists is success, also when Redis refused the create for another reason (at maxmemory it
   * answers OOM before it looks).
   */
  async #ensureGroups(): Promise<void> {
    const send = this.#core.send;
    for (const q of this.#core.queues) {
      await send("XGROUP", ["CREATE", q.keys.stream, GROUP, "0", "MKSTREAM"]).catch(async (e) => {
        if (String(e?.message).includes("BUSYGROUP")) return;
        const groups = await send("XINFO", ["GROUPS", q.keys.stream]).catch(() => []);
        const exists = Array.isArray(groups) && groups.some((g) => Array.isArray(g) && g[0] === "name" && g[1] === GROUP);
        if (!exists) throw e;
      });
    }
  }

  /**
   * Any `maxmemory-policy` but `noeviction` lets Redis evict streams and job hashes: jobs vanish or
   * are left half-written. Said loudly at start (a managed Redis that refuses CONFIG is not asked twice).
   */
  #checkEvictionPolicy(): void {
    deadline(Promise.resolve(this.#core.send("CONFIG", ["GET", "maxmemory-policy"])), CLEANUP_MS).then((reply) => {
      const policy = configValue(reply);
      if (policy !== undefined && policy !== "noeviction") {
        const message = `Redis maxmemory-policy is '${policy}': Redis may evict queue keys and lose jobs. Set it to 'noeviction'.`;
        this.#core.log("error", "eviction-policy", message, { policy });
        this.#core.emit("warning", { message, policy });
      }
    }, () => {});
  }

  /** A Redis error of the fetch loop: reported; a stream or group that vanished is made again. */
  #redisError(e: unknown): void {
    this.#core.emit("error", e);
    this.#core.log("error", "error", `redis error: ${(e as Error).message}`);
    // the stream or its group is gone (a Redis restarted without persistence, a FLUSHALL, a
    // deleted key): make them again, so the worker takes the jobs enqueued from now on
    if (String((e as Error)?.message).includes("NOGROUP")) this.#ensureGroups().catch(() => {});
  }

  #onPhase(detail: { phase: Phase; previous: Phase; source: string }): void {
    const { phase, source } = detail;
    const core = this.#core;
    core.emit("phase", detail);
    if (phase === "draining") {
      core.log("info", "draining", `draining (${source}): no new jobs; ${this.#running.size} running`, { source, running: this.#running.size });
      // a blocked XREADGROUP must not delay the stop: drop its connection. Anything the server
      // delivered on it meanwhile stays in this consumer's pending list and is released at stop.
      this.#block?.disconnect();
      if (this.#s.gracefulTimeout !== undefined) {
        this.#timers.push(setTimeout(() => this.shutdown.escalate("shutdownGracefulTimeout"), this.#s.gracefulTimeout));
      }
    } else if (phase === "aborting") {
      core.log("warn", "aborting", `aborting ${this.#running.size} running job(s) (${source})`, { source, running: this.#running.size });
      for (const r of this.#running.values()) this.#executor.abort(r, "shutdown");
    }
    // the registry (and the admin app) shows the new phase now, not at the next heartbeat; its
    // commands go out before the unregistering at stop, on the same connection
    if (this.#began && (phase === "draining" || phase === "aborting")) this.#register().catch(() => {});
    this.#fetcher.wake();
  }

  /**
   * The timers: heartbeats, the registry, recovery with retention, abort polls, end conditions,
   * promotion. Each has its own, so a slow recovery scan never delays a heartbeat (which would let
   * other workers take this worker's jobs); a timer whose last run is still busy skips a tick.
   */
  #startTimers(): void {
    const every = (ms: number, fn: () => Promise<void> | void) => {
      let busy = false;
      const t = setInterval(async () => {
        if (busy) return;
        busy = true;
        try {
          await fn();
        } catch (e) {
          this.#core.emit("error", e);
          this.#core.log("error", "error", `${(e as Error).message}`);
        } finally {
          busy = false;
        }
      }, ms);
      this.#timers.push(t);
    };
    const s = this.#s;
    every(s.heartbeatInterval, () => this.#heartbeat.check(true));
    every(s.heartbeatInterval, () => this.#register());
    every(s.heartbeatInterval, async () => {
      if (this.shutdown.phase !== "running") return;
      await this.#maintenance.recover();
      await this.#maintenance.trim();
    });
    every(s.abortPollInterval, () => this.#heartbeat.check(false));
    if ([...s.tasks.values()].some((t) => t.endCondition)) {
      every(s.endConditionInterval, () => {
        const now = new Date();
        for (const r of this.#running.values()) {
          let end = false;
          try {
            end = !!r.task?.endCondition?.(now);
          } catch (e) {
            this.#core.log("error", "error", `endCondition of task ${r.ctx.job.name} threw: ${(e as Error)?.message}`);
          }
          if (end) this.#executor.abort(r, "end-condition");
        }
      });
    }
    every(s.promoteInterval, () => this.#maintenance.promoteAll());
  }

  async #register(): Promise<void> {
    const now = Date.now();
    await register(this.#core.send, this.#s.prefix, {
      id: this.id,
      host: this.options.identity?.host ?? "",
      pid: this.options.identity?.pid ?? 0,
      runtime: this.options.identity?.runtime ?? "",
      queues: this.#s.queues,
      concurrency: this.concurrency,
      phase: this.shutdown.phase,
      startedAt: this.#startedAt,
      heartbeatAt: now,
      active: this.activeJobs,
    }, Math.max(this.#s.stalledTimeout, this.#s.heartbeatInterval * 3));
  }

  /** Clean-up, each step bounded: with Redis unreachable, commands would wait for a reconnect forever. */
  async #finalize(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#maintenance.stop();
    const bounded = (p: Promise<unknown> | undefined) => deadline(Promise.resolve(p), CLEANUP_MS).catch(() => {});
    if (!this.#fetcher.giveUp) {
      await bounded(this.#fetcher.sideFlush);
      if (this.#began) {
        await bounded(this.#releaseConsumers());
        await bounded(unregister(this.#core.send, this.#s.prefix, this.id));
      }
      await bounded(this.#close());
    }
    for (const c of [this.#block, this.#sub]) if (c && c.status !== "end") c.disconnect();
    if (this.#ownsCmd && this.#cmd && this.#cmd.status !== "end") this.#cmd.disconnect();
    this.#core.summary.durationMs = Date.now() - this.#startedAt;
    this.shutdown.markStopped();
    for (const f of this.#cleanups.splice(0)) f();
    this.#core.log("info", "stopped", `worker ${this.id} stopped`, { ...this.#core.summary });
  }

  /** Hands back what was delivered but never started, and leaves the group if nothing is left. */
  async #releaseConsumers(): Promise<void> {
    for (const q of this.#core.queues) {
      try {
        const left = await scripts.release(this.#core.send, q.keys, this.id);
        if (left > 0) {
          this.#core.log("warn", "stopped", `consumer kept on ${q.name}: it still owns ${left} pending job(s), recoverable after stalledTimeout`);
        }
      } catch (e) {
        this.#core.emit("error", e);
      }
    }
  }

  async #close(): Promise<void> {
    // a second disconnect() of an ioredis client that has ended arms a 2 s timer that waits for a
    // "close" already emitted: it would hold the process open that long after the worker stopped
    for (const c of [this.#block, this.#sub]) if (c && c.status !== "end") c.disconnect();
    if (!this.#ownsCmd) return;
    // QUIT waits for a reply: on a connection that never reached Redis it would wait for a reconnect
    if (this.#cmd.status !== "ready") return this.#cmd.disconnect();
    await this.#cmd.quit().catch(() => this.#cmd.disconnect());
  }
}

/** The value of a CONFIG GET reply for one parameter: `[name, value]` (RESP2) or `{ name: value }`. */
function configValue(reply: unknown): string | undefined {
  if (Array.isArray(reply)) return reply.length >= 2 ? String(reply[1]) : undefined;
  if (reply && typeof reply === "object") return Object.values(reply as Record<string, unknown>).map(String)[0];
  return undefined;
}
