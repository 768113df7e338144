/**
 * The event-loop watchdog. Heartbeats run on the worker's event loop: an inline handler that keeps
 * the CPU busy (a long loop, a big JSON.parse, synchronous crypto) holds them back, and a block
 * longer than `stalledTimeout` lets another worker recover the job while it still runs. A timer
 * measures how late it fires; a lag above a third of `stalledTimeout` (the longest gap a heartbeat
 * may have) is logged as a warning that names the inline tasks that ran meanwhile and points at
 * `execution: "thread"`. Jobs in the pool's threads and processes leave the loop free.
 * @module
 */
import type { WorkerCore } from "./core.ts";
import type { RunningJobs } from "./running-jobs.ts";

export class Watchdog {
  readonly #core: WorkerCore;
  readonly #running: RunningJobs;
  /** Inline tasks started since the last tick (a blocking one may have finished by the tick). */
  readonly #seen = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The largest lag measured since `takeLag()` last read it, in ms. */
  #maxLag = 0;

  constructor(core: WorkerCore, running: RunningJobs) {
    this.#core = core;
    this.#running = running;
  }

  /** An inline handler of `task` starts. */
  inline(task: string): void {
    if (this.#timer !== undefined) this.#seen.add(task);
  }

  start(): void {
    const s = this.#core.settings;
    const tick = Math.min(500, Math.max(10, Math.floor(s.stalledTimeout / 10)));
    // a third of stalledTimeout, the longest gap between heartbeats; never below 100 ms, which a
    // garbage collection alone may reach
    const threshold = Math.max(100, s.stalledTimeout / 3);
    let last = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      const lag = Math.max(0, now - last - tick);
      last = now;
      if (lag > this.#maxLag) this.#maxLag = lag;
      const tasks = new Set(this.#seen);
      this.#seen.clear();
      if (lag < threshold) return;
      for (const r of this.#running.values()) if (r.task && !r.task.pooled) tasks.add(r.ctx.job.name);
      const names = [...tasks].map((t) => JSON.stringify(t)).join(", ");
      const message = `the event loop was blocked for ${(lag / 1000).toFixed(1)} s (stalledTimeout ${(s.stalledTimeout / 1000).toFixed(1)} s)` +
        (names ? ` while inline task(s) ${names} ran` : "") +
        `: heartbeats wait meanwhile, and a block longer than stalledTimeout lets another worker recover a job that still runs. ` +
        `Run CPU-bound tasks off the main thread with { module, execution: "thread" }.`;
      this.#core.log("warn", "event-loop-blocked", message, { lagMs: Math.round(lag), tasks: [...tasks] });
      this.#core.emit("warning", { message, lagMs: Math.round(lag), tasks: [...tasks] });
    }, tick);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#seen.clear();
  }

  /** The largest event-loop lag (ms) since the last call, for the registry. */
  takeLag(): number {
    const lag = this.#maxLag;
    this.#maxLag = 0;
    return Math.round(lag);
  }
}
