/**
 * The work every worker shares for its queues, on timers: stalled recovery (of workers that
 * stopped heartbeating, never of live ones), the sweep for jobs whose entries were deleted,
 * retention, and the promotion of due delayed jobs.
 * @module
 */
import type { WorkerCore } from "./core.ts";
import * as scripts from "./scripts.ts";

export class Maintenance {
  readonly #core: WorkerCore;
  readonly #cursors = new Map<string, string>();
  #promoteTimer: ReturnType<typeof setTimeout> | undefined;
  #nextPromoteAt = Infinity;
  /** No recovery before this time: after a reconnect the others' heartbeats need a full stalledTimeout. */
  recoverNotBefore = 0;

  constructor(core: WorkerCore) {
    this.#core = core;
  }

  /**
   * Stalled recovery, one cursor per queue: pending entries idle for stalledTimeout whose owner
   * has not heartbeated for as long go back to the stream (or fail past maxStalled). An owner that
   * heartbeats keeps its entries, however idle they look.
   */
  async recover(): Promise<void> {
    const core = this.#core;
    if (Date.now() < this.recoverNotBefore) return;
    for (const q of core.queues) {
      let cursor = this.#cursors.get(q.name) ?? "0-0";
      for (let step = 0; step < 10; step++) {
        const r = await scripts.recover(core.send, q.keys, {
          consumer: core.id, now: Date.now(), minIdle: core.settings.stalledTimeout, cursor, count: 100,
          maxStalled: core.settings.maxStalled, eventsMax: core.settings.eventsMaxLen,
        });
        for (const id of r.recovered) {
          core.summary.recovered++;
          core.log("warn", "job-stalled", `recovered stalled job ${id}; re-queued`, { job: id, queue: q.name });
          core.emit("stalled", { id, queue: q.name, failed: false });
        }
        for (const id of r.failed) {
          core.log("warn", "job-stalled", `job ${id} stalled more than ${core.settings.maxStalled} time(s); failed`, { job: id, queue: q.name });
          core.emit("stalled", { id, queue: q.name, failed: true });
        }
        if (r.deleted.length > 0) {
          core.log("error", "entry-deleted", `${r.deleted.length} pending stream entr(ies) of ${q.name} were deleted outside sluice; looking for their jobs`, { queue: q.name, entries: r.deleted });
          await this.#sweep(q, r.deleted);
        }
        cursor = r.cursor;
        if (cursor === "0-0") break;
      }
      this.#cursors.set(q.name, cursor);
    }
  }

  /** Re-queues the jobs whose pending entries were deleted (rare: only something outside sluice deletes them). */
  async #sweep(q: WorkerCore["queues"][number], deleted: string[]): Promise<void> {
    const core = this.#core;
    let cursor = "0";
    do {
      const r = await scripts.sweep(core.send, q.keys, { cursor, now: Date.now(), eventsMax: core.settings.eventsMaxLen, deleted });
      for (const id of r.requeued) {
        core.summary.recovered++;
        core.log("warn", "job-stalled", `job ${id} lost its stream entry; re-queued`, { job: id, queue: q.name });
        core.emit("stalled", { id, queue: q.name, failed: false });
      }
      cursor = r.cursor;
    } while (cursor !== "0");
  }

  /** Retention of every finished state, also for queues whose jobs are only cancelled. */
  async trim(): Promise<void> {
    const core = this.#core;
    for (const q of core.queues) await scripts.trim(core.send, q.keys, { now: Date.now(), keep: core.settings.keep });
  }

  /** Moves due delayed jobs and retries to their streams; plans the next promotion. */
  async promoteAll(): Promise<void> {
    const core = this.#core;
    let next = Infinity;
    for (const q of core.queues) {
      const due = await scripts.promote(core.send, q.keys, { now: Date.now(), limit: 1000, eventsMax: core.settings.eventsMaxLen });
      if (due !== undefined) next = Math.min(next, due);
    }
    this.#nextPromoteAt = Infinity;
    if (next !== Infinity) this.schedulePromote(next);
  }

  /** Promotes again at `at` when that is before the next promotion already planned. */
  schedulePromote(at: number): void {
    const core = this.#core;
    if (at >= this.#nextPromoteAt || core.shutdown.phase === "stopped") return;
    const wait = at - Date.now();
    if (wait > core.settings.promoteInterval) return; // the regular interval comes first
    this.#nextPromoteAt = at;
    clearTimeout(this.#promoteTimer);
    this.#promoteTimer = setTimeout(() => {
      this.#nextPromoteAt = Infinity;
      this.promoteAll().catch((e) => core.emit("error", e));
    }, Math.max(0, wait));
  }

  stop(): void {
    clearTimeout(this.#promoteTimer);
    this.#nextPromoteAt = -Infinity;
  }
}
