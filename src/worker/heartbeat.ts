/**
 * Heartbeats and abort polls. A heartbeat tells the queues this worker lives (recovery leaves a
 * live worker's jobs alone) and refreshes its jobs' pending entries; both find the jobs another
 * attempt took over (lost) and the aborts users requested while a pub/sub message was missed.
 * @module
 */
import type { QueueState, WorkerCore } from "./core.ts";
import type { Executor } from "./executor.ts";
import type { Running, RunningJobs } from "./running-jobs.ts";
import * as scripts from "./scripts.ts";

export class Heartbeat {
  readonly #core: WorkerCore;
  readonly #running: RunningJobs;
  readonly #executor: Executor;

  constructor(core: WorkerCore, running: RunningJobs, executor: Executor) {
    this.#core = core;
    this.#running = running;
    this.#executor = executor;
  }

  /** `claim`: a heartbeat (every queue, also without jobs); otherwise an abort poll of the running jobs. */
  async check(claim: boolean): Promise<void> {
    const core = this.#core;
    const byQueue = new Map<QueueState, Running[]>();
    if (claim) for (const q of core.queues) byQueue.set(q, []);
    for (const r of this.#running.values()) {
      if (r.settled) continue;
      let list = byQueue.get(r.q);
      if (!list) byQueue.set(r.q, (list = []));
      list.push(r);
    }
    for (const [q, list] of byQueue) {
      const results = await scripts.check(core.send, q.keys, { consumer: core.id, claim, now: Date.now(), attempts: list });
      list.forEach((r, i) => {
        if (results[i] === "lost" && !r.settled && !r.lost) {
          this.#executor.markLost(r);
          core.log("warn", "job-lost", `job ${r.id} was reclaimed by another worker; aborting it here`, { job: r.id, queue: q.name });
          this.#executor.abort(r, "lost");
        } else if (results[i] === "abort-requested") {
          this.#executor.abort(r, "user");
        }
      });
    }
  }
}
