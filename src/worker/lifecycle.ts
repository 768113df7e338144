/**
 * The life of a worker, start to stop, as named steps (DESIGN section 3): connect; start, bounded
 * by the stop; fetch and run until told to stop, letting the running jobs settle; finalize, each
 * clean-up step bounded. Also what happens on each phase change, the timers, and what a
 * reconnect sets off. `Worker` builds the parts and hands them here.
 * @module
 */
import { abortable, deadline } from "../async.ts";
import { GROUP } from "../keys.ts";
import type { Cluster, Redis } from "ioredis";
import { connect, duplicate, type IORedis, ownSend, type Send, toSend } from "../redis.ts";
import { register, unregister } from "../registry.ts";
import type { Phase } from "../shutdown.ts";
import { setLongTimeout } from "../timers.ts";
import type { WorkerOptions } from "../worker-options.ts";
import type { Completer } from "./completer.ts";
import { subscribe } from "./control.ts";
import type { RunOptions, RunSummary, WorkerCore } from "./core.ts";
import type { Executor } from "./executor.ts";
import type { Fetcher } from "./fetcher.ts";
import type { Heartbeat } from "./heartbeat.ts";
import type { Maintenance } from "./maintenance.ts";
import type { RunningJobs } from "./running-jobs.ts";
import type { Pool } from "../pool/pool.ts";
import { Queue } from "../queue.ts";
import { loadOtel } from "../tracing.ts";
import type { Watchdog } from "./watchdog.ts";
import * as scripts from "./scripts.ts";

/** How long each clean-up step of a stopping worker may wait for Redis. */
export const CLEANUP_MS = 3000;

/** The parts of a worker (src/worker/*). */
export interface Parts {
  running: RunningJobs;
  executor: Executor;
  completer: Completer;
  fetcher: Fetcher;
  heartbeat: Heartbeat;
  maintenance: Maintenance;
  /** The threads and processes of pooled tasks, if any. */
  pool: Pool | undefined;
  watchdog: Watchdog;
}

export class Lifecycle {
  readonly #core: WorkerCore;
  readonly #parts: Parts;
  readonly #options: Readonly<WorkerOptions>;
  readonly #activeJobs: () => { queue: string; id: string }[];
  #cmd!: IORedis;
  #block: IORedis | undefined;
  #sub: IORedis | undefined;
  #ownsCmd = false;
  #timers: ReturnType<typeof setTimeout>[] = [];
  #cleanups: (() => void)[] = [];
  #startedAt = 0;
  /** Startup finished: there is something to release at stop. */
  #began = false;

  constructor(core: WorkerCore, parts: Parts, options: Readonly<WorkerOptions>, activeJobs: () => { queue: string; id: string }[]) {
    this.#core = core;
    this.#parts = parts;
    this.#options = options;
    this.#activeJobs = activeJobs;
  }

  /** The connection of the blocking reads (dropped when the stop begins). */
  get block(): IORedis | undefined {
    return this.#block;
  }

  /**
   * The whole life of a worker, as named steps: connect; start (bounded by the stop); fetch and
   * run until told to stop, then let the running jobs settle (the fetch loop returns once nothing
   * runs and every outcome is written); finalize (each clean-up step bounded); report.
   */
  async run(options: RunOptions): Promise<RunSummary> {
    this.#startedAt = Date.now();
    this.#connect();
    this.#listenForStop(options);
    const before = this.#core.shutdown.phase; // a stop() before run(): its phase change had no listener yet
    try {
      this.#began = await this.#start();
    } catch (e) {
      this.#core.log("error", "error", `worker could not start: ${(e as Error).message}`);
      await this.#finalize();
      throw e;
    }
    try {
      if (this.#began) {
        this.#core.log("info", "started", `worker ${this.#core.id} started`, { queues: this.#core.settings.queues, concurrency: this.#core.settings.concurrency });
        this.#startTimers();
        if (before !== "running") this.#onPhase({ phase: before, previous: "running", source: "before run()" });
        await this.#parts.maintenance.promoteAll().catch((e) => this.redisError(e));
        await this.#parts.fetcher.run();
      }
    } finally {
      await this.#finalize();
    }
    return { ...this.#core.summary };
  }

  /** Opens the connections; a connection that comes back after a drop asks for a reconcile. */
  #connect(): void {
    const redis = this.#options.redis ?? "redis://127.0.0.1:6379";
    if (typeof redis === "string") {
      // commands are written as they are sent, not batched to the end of the turn: the fetch
      // loop relies on a pass's call going out before the next batch's jobs run
      this.#cmd = connect(redis, { enableAutoPipelining: false });
      this.#ownsCmd = true;
    } else {
      this.#cmd = redis;
    }
    // (a connection of its own: its commands are written as flat strings, see ownSend)
    this.#core.send = (this.#ownsCmd ? ownSend(this.#cmd) : toSend(this.#cmd)) as Send;
    this.#block = duplicate(this.#cmd, { enableAutoPipelining: false });
    for (const c of [this.#cmd, this.#block]) this.#watch(c);
  }

  /** Notices a connection coming back after a drop (see `#reconnected`). */
  #watch(c: IORedis): void {
    const watchOne = (conn: { on(e: string, f: () => void): unknown; off(e: string, f: () => void): unknown }) => {
      let dropped = false;
      const onClose = () => (dropped = true);
      const onReady = () => {
        if (!dropped) return;
        dropped = false;
        this.#reconnected();
      };
      conn.on("close", onClose);
      conn.on("ready", onReady);
      this.#cleanups.push(() => {
        conn.off("close", onClose);
        conn.off("ready", onReady);
      });
    };
    watchOne(c);
    // a cluster stays `ready` while one of its nodes' connections drops and its commands are
    // re-sent: watch every node's connection too, those it has and those it gets
    if ("nodes" in c && typeof (c as Cluster).nodes === "function") {
      const cluster = c as Cluster;
      for (const node of cluster.nodes("all")) watchOne(node);
      const onNode = (node: Redis) => watchOne(node);
      cluster.on("+node", onNode);
      this.#cleanups.push(() => cluster.off("+node", onNode));
    }
  }

  /**
   * A connection came back. Replies lost with the old one may have delivered jobs this worker never
   * learnt of (the client re-sends unanswered commands, and the server may have run them already):
   * the fetcher hands them back once no fetching call is in flight. Other workers' heartbeats may
   * not have got through either, so recovery waits a full stalledTimeout.
   */
  #reconnected(): void {
    if (this.#core.shutdown.phase === "stopped") return;
    this.#core.log("info", "reconnected", "connection to Redis restored; reconciling this worker's pending jobs");
    this.#parts.maintenance.recoverNotBefore = Date.now() + this.#core.settings.stalledTimeout;
    this.#parts.fetcher.reconnected();
  }

  /** The run() signals feed the shutdown controller; their listeners are removed at stop. */
  #listenForStop(options: RunOptions): void {
    const sd = this.#core.shutdown;
    const onPhase = (e: unknown) => this.#onPhase((e as CustomEvent).detail);
    sd.addEventListener("phase", onPhase);
    this.#cleanups.push(() => sd.removeEventListener("phase", onPhase));
    sd.abandon.addEventListener("abort", () => {
      this.#parts.fetcher.wake();
      // abandoning means not waiting: writing what is left gets CLEANUP_MS, then the worker stops
      this.#timers.push(setTimeout(() => {
        this.#parts.fetcher.giveUp = true;
        this.#parts.fetcher.wake();
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
      const stopping = this.#core.shutdown.graceful;
      const steps = (async () => {
        core.otel = await loadOtel();
        await this.#ensureGroups();
        const limit = core.settings.rateLimit;
        if (limit) for (const q of core.queues) await core.send("HSET", [q.keys.config, "rlMax", limit.max, "rlDur", limit.duration]);
        const gc = core.settings.groupConcurrency;
        if (gc !== undefined) for (const q of core.queues) await new Queue(q.name, { redis: core.send, prefix: core.settings.prefix }).setGroupConcurrency(gc);
        if (stopping.aborted) return; // no new connection once the stop has closed them
        this.#sub = await subscribe(core, this.#cmd, this.#parts.running, this.#parts.executor, (c) => (this.#sub = c));
        await this.#register().catch((e) => core.log("warn", "error", `could not register in the worker registry: ${(e as Error).message}`));
        for (const q of core.queues) await this.#parts.fetcher.reconcile(q, "start");
      })();
      steps.catch(() => {}); // abandoned by a stop, its connections closed under it: nothing to tell
      await abortable(steps, stopping);
    } catch (e) {
      if (this.#core.shutdown.graceful.aborted) {
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
  redisError(e: unknown): void {
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
      core.log("info", "draining", `draining (${source}): no new jobs; ${this.#parts.running.size} running`, { source, running: this.#parts.running.size });
      // a blocked XREADGROUP must not delay the stop: drop its connection. Anything the server
      // delivered on it meanwhile stays in this consumer's pending list and is released at stop.
      this.#block?.disconnect();
      if (this.#core.settings.gracefulTimeout !== undefined) {
        const t = setLongTimeout(() => this.#core.shutdown.escalate("shutdownGracefulTimeout"), this.#core.settings.gracefulTimeout);
        this.#cleanups.push(() => t.clear());
      }
    } else if (phase === "aborting") {
      core.log("warn", "aborting", `aborting ${this.#parts.running.size} running job(s) (${source})`, { source, running: this.#parts.running.size });
      for (const r of this.#parts.running.values()) this.#parts.executor.abort(r, "shutdown");
    }
    // the registry (and the admin app) shows the new phase now, not at the next heartbeat; its
    // commands go out before the unregistering at stop, on the same connection
    if (this.#began && (phase === "draining" || phase === "aborting")) this.#register().catch(() => {});
    this.#parts.fetcher.wake();
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
    const s = this.#core.settings;
    this.#parts.watchdog.start();
    this.#cleanups.push(() => this.#parts.watchdog.stop());
    every(s.heartbeatInterval, () => this.#parts.heartbeat.check(true));
    every(s.heartbeatInterval, () => this.#register());
    every(s.heartbeatInterval, () => this.#parts.completer.flushHistograms());
    every(s.heartbeatInterval, async () => {
      if (this.#core.shutdown.phase !== "running") return;
      await this.#parts.maintenance.recover();
      await this.#parts.maintenance.trim();
    });
    every(s.abortPollInterval, () => this.#parts.heartbeat.check(false));
    if ([...s.tasks.values()].some((t) => t.endCondition)) {
      every(s.endConditionInterval, () => {
        const now = new Date();
        for (const r of this.#parts.running.values()) {
          let end = false;
          try {
            end = !!r.task?.endCondition?.(now);
          } catch (e) {
            this.#core.log("error", "error", `endCondition of task ${r.ctx.job.name} threw: ${(e as Error)?.message}`);
          }
          if (end) this.#parts.executor.abort(r, "end-condition");
        }
      });
    }
    every(s.promoteInterval, () => this.#parts.maintenance.promoteAll());
    every(Math.min(s.promoteInterval, 250), async () => {
      if (this.#core.shutdown.phase === "running") await this.#parts.maintenance.schedule();
    });
  }

  async #register(): Promise<void> {
    const now = Date.now();
    await register(this.#core.send, this.#core.settings.prefix, {
      id: this.#core.id,
      host: this.#options.identity?.host ?? "",
      pid: this.#options.identity?.pid ?? 0,
      runtime: this.#options.identity?.runtime ?? "",
      queues: this.#core.settings.queues,
      concurrency: this.#core.settings.concurrency,
      phase: this.#core.shutdown.phase,
      startedAt: this.#startedAt,
      heartbeatAt: now,
      active: this.#activeJobs(),
      loopLagMs: this.#parts.watchdog.takeLag(),
      ...(this.#parts.pool ? { pool: this.#parts.pool.stats() } : {}),
    }, Math.max(this.#core.settings.stalledTimeout, this.#core.settings.heartbeatInterval * 3));
  }

  /** Clean-up, each step bounded: with Redis unreachable, commands would wait for a reconnect forever. */
  async #finalize(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#parts.fetcher.stopTimers();
    this.#parts.maintenance.stop();
    // every thread and process ends (and has exited) before run() resolves: nothing is left
    // running. Ending one is a terminate or a SIGKILL; one that has not exited after CLEANUP_MS
    // (a process stuck in the kernel) is reported rather than waited for without end.
    const pool = this.#parts.pool;
    if (pool) {
      await deadline(pool.close(), CLEANUP_MS).catch(() => {
        const s = pool.stats();
        this.#core.log("error", "pool-not-closed", `${s.threads} thread(s) and ${s.processes} process(es) of the pool had not exited ${CLEANUP_MS} ms after they were ended`, { ...s });
      });
    }
    const bounded = (p: Promise<unknown> | undefined) => deadline(Promise.resolve(p), CLEANUP_MS).catch(() => {});
    if (!this.#parts.fetcher.giveUp) {
      await bounded(this.#parts.fetcher.sideFlush);
      await bounded(this.#parts.completer.flushHistograms());
      if (this.#began) {
        await bounded(this.#releaseConsumers());
        await bounded(unregister(this.#core.send, this.#core.settings.prefix, this.#core.id));
      }
      await bounded(this.#close());
    }
    for (const c of [this.#block, this.#sub]) if (c && c.status !== "end") c.disconnect();
    if (this.#ownsCmd && this.#cmd && this.#cmd.status !== "end") this.#cmd.disconnect();
    this.#core.summary.durationMs = Date.now() - this.#startedAt;
    this.#core.shutdown.markStopped();
    for (const f of this.#cleanups.splice(0)) f();
    this.#core.log("info", "stopped", `worker ${this.#core.id} stopped`, { ...this.#core.summary });
  }

  /** Hands back what was delivered but never started, and leaves the group if nothing is left. */
  async #releaseConsumers(): Promise<void> {
    for (const q of this.#core.queues) {
      try {
        const left = await scripts.release(this.#core.send, q.keys, this.#core.id, this.#parts.running.held());
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
