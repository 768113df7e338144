import type { StoredError } from "./job.ts";
import { queueKeys } from "./keys.ts";
import { type Phase, ShutdownController } from "./shutdown.ts";
import { resolveSettings, type WorkerOptions } from "./worker-options.ts";
import { Completer } from "./worker/completer.ts";
import { emptySummary, type QueueState, type RunOptions, type RunSummary, type WorkerCore } from "./worker/core.ts";
import { Executor } from "./worker/executor.ts";
import { Fetcher } from "./worker/fetcher.ts";
import { Heartbeat } from "./worker/heartbeat.ts";
import { Lifecycle } from "./worker/lifecycle.ts";
import { Maintenance } from "./worker/maintenance.ts";
import { RunningJobs } from "./worker/running-jobs.ts";
import { Watchdog } from "./worker/watchdog.ts";
import { Pool, type PoolStats } from "./pool/pool.ts";

export type { JobEventDetail, RunOptions, RunSummary } from "./worker/core.ts";
export { streamEntries } from "./worker/fetcher.ts";
export type { StoredError };
export type { Handler, LogEntry, PooledTaskDefinition, RetentionPolicy, TaskDefinition, Tasks, WorkerOptions } from "./worker-options.ts";
export type { PoolOptions, PoolStats } from "./pool/pool.ts";
export type { ChildExit, ChildHandle, Execution, FromChild, PoolSpawner, SpawnOptions, ToChild } from "./pool/protocol.ts";

/**
 * Runs the jobs of one or more queues. Fetches in batches up to `concurrency`, heartbeats its jobs
 * on one timer, recovers the jobs of workers that died, and stops the way it is asked: see
 * `ShutdownController` and DESIGN section 3.
 *
 * Its parts live in src/worker/: the fetcher (the loop that fills free slots), the executor (runs
 * handlers and turns how they ended into outcomes), the completer (writes outcomes in batches),
 * running-jobs (the one owner of the attempts running here), the heartbeat, maintenance (recovery,
 * retention, promotion), control (abort and shutdown messages), scripts (the typed boundary of the
 * Lua scripts) and lifecycle (start to stop, as named steps). This class builds them and answers.
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
  readonly shutdown: ShutdownController = new ShutdownController();
  readonly concurrency: number;
  readonly options: Readonly<WorkerOptions>;
  readonly #core: WorkerCore;
  readonly #running = new RunningJobs();
  readonly #lifecycle: Lifecycle;
  readonly #pool: Pool | undefined;
  readonly #listening = new Set<string>();
  #runPromise: Promise<RunSummary> | undefined;

  constructor(options: WorkerOptions) {
    super();
    const settings = resolveSettings(options);
    this.options = options;
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
        // events nobody listens to are not even built: a worker emits several per job
        if (this.#listening.has(type)) this.dispatchEvent(new CustomEvent(type, { detail }));
      },
      log: (level, event, message, fields = {}) => {
        this.options.logger?.({ level, event, message, worker: this.id, ...fields });
      },
    };
    this.#core = core;
    const running = this.#running;
    const maintenance = new Maintenance(core);
    const completer = new Completer(core, running);
    // the threads and processes of tasks with `execution`; the spawner comes from the runtime
    // adapter (createWorker), else it is picked by runtime when the first child starts
    const spawner = options.spawner;
    const pool = settings.pool && new Pool(
      settings.pool,
      spawner ? () => Promise.resolve(spawner) : () => import("../adapters/spawn.ts").then((m) => m.defaultSpawner()),
      core.log,
    );
    this.#pool = pool;
    const executor: Executor = new Executor(core, running, settings.tasks, pool, {
      settled: (o) => {
        if (o) completer.add(o);
        fetcher.settled();
      },
      retryAt: (at) => maintenance.schedulePromote(at),
    });
    const fetcher: Fetcher = new Fetcher(core, {
      running,
      executor,
      completer,
      block: () => this.#lifecycle.block,
      onError: (e) => this.#lifecycle.redisError(e),
    });
    core.onPause = (q, paused) => fetcher.pause(q, paused);
    const heartbeat = new Heartbeat(core, running, executor);
    const watchdog = new Watchdog(core, running);
    executor.watchdog = watchdog;
    this.#lifecycle = new Lifecycle(core, { running, executor, completer, fetcher, heartbeat, maintenance, pool, watchdog }, options, () => this.activeJobs);
  }

  /** The current phase: running, draining, aborting or stopped. */
  get phase(): Phase {
    return this.shutdown.phase;
  }

  /** Ids of the jobs running now, by queue. */
  get activeJobs(): { queue: string; id: string }[] {
    return [...this.#running.values()].map((r) => ({ queue: r.q.name, id: r.id }));
  }

  /** The pool's threads and processes (undefined when no task runs in one). */
  get poolStats(): PoolStats | undefined {
    return this.#pool?.stats();
  }

  // the listener types spelled out: the DOM lib's names are missing from a Node or Bun app's types
  override addEventListener(
    type: string,
    listener: ((event: Event) => void) | { handleEvent(event: Event): void } | null,
    options?: boolean | { capture?: boolean; once?: boolean; passive?: boolean; signal?: AbortSignal },
  ): void {
    this.#listening.add(type);
    super.addEventListener(type, listener as Parameters<EventTarget["addEventListener"]>[1], options);
  }

  /**
   * Starts the worker; resolves with a summary once it has stopped. Calling it again returns the
   * same promise.
   */
  run(options: RunOptions = {}): Promise<RunSummary> {
    this.#runPromise ??= this.#lifecycle.run(options);
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
}
