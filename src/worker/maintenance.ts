/**
 * The work every worker shares for its queues, on timers: stalled recovery (of workers that
 * stopped heartbeating, never of live ones), the sweep for jobs whose entries were deleted,
 * retention, and the promotion of due delayed jobs.
 * @module
 */
import { Queue } from "../queue.ts";
import { nextTick, type ScheduleInfo, tickJobId, ticksBetween } from "../schedule.ts";
import type { QueueState, WorkerCore } from "./core.ts";
import * as scripts from "./scripts.ts";

/** How long a scheduler pass holds the schedules it claimed (it moves them on in milliseconds). */
const SCHEDULE_LEASE = 10_000;

export class Maintenance {
  readonly #core: WorkerCore;
  readonly #cursors = new Map<string, string>();
  #promoteTimer: ReturnType<typeof setTimeout> | undefined;
  #nextPromoteAt = Infinity;
  /** No recovery before this time: after a reconnect the others' heartbeats need a full stalledTimeout. */
  recoverNotBefore = 0;
  readonly #producers = new Map<QueueState, Queue>();

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

  /**
   * A scheduler pass: enqueues the jobs of the queues' due schedules and moves them on. Any worker
   * runs it; the schedules a pass claims are its own for a lease, and each tick's job id is its
   * dedup key, so a tick gives one job however many workers look. When no worker looked at the
   * queue for a while (a gap above `misfireAfter` in the passes of all workers), the ticks due were
   * missed: `run-once` enqueues one job for them (the first missed tick's), `skip` none.
   */
  async schedule(): Promise<void> {
    const core = this.#core;
    const misfireAfter = Math.max(2000, 4 * core.settings.promoteInterval);
    for (const q of core.queues) {
      const now = Date.now();
      const { prev, due } = await scripts.scheduleDue(core.send, q.keys, { now, limit: 100, lease: SCHEDULE_LEASE });
      if (due.length === 0) continue;
      const missed = prev === undefined || now - prev > misfireAfter;
      for (const d of due) {
        let spec: ScheduleInfo;
        try {
          spec = { id: d.id, ...JSON.parse(d.spec) } as ScheduleInfo;
        } catch {
          core.log("error", "schedule-error", `schedule ${d.id} of ${q.name} cannot be read; left as it is`, { queue: q.name, schedule: d.id });
          continue;
        }
        const ticks = missed
          ? (spec.misfire === "skip" ? [] : [d.tick])
          : ticksBetween(spec, d.tick, now);
        if (missed) {
          core.log("warn", "schedule-misfire", `schedule ${d.id} of ${q.name}: ticks from ${new Date(d.tick).toISOString()} were missed while no worker ran; ${spec.misfire === "skip" ? "skipped" : "one job enqueued for them"}`, { queue: q.name, schedule: d.id, from: d.tick, until: now, policy: spec.misfire });
        }
        try {
          if (ticks.length > 0) {
            let producer = this.#producers.get(q);
            if (!producer) this.#producers.set(q, (producer = new Queue(q.name, { redis: core.send, prefix: core.settings.prefix, eventsMaxLen: core.settings.eventsMaxLen })));
            await producer.enqueueMany(ticks.map((t) => ({ task: spec.task, data: spec.data, options: { ...spec.options, jobId: tickJobId(d.id, t) } })));
          }
          await scripts.scheduleAdvance(core.send, q.keys, { id: d.id, expected: now + SCHEDULE_LEASE, next: nextTick(spec, now), last: ticks.at(-1) });
        } catch (e) {
          // the lease runs out and a pass takes it again; the ticks' job ids keep them once each
          core.log("error", "schedule-error", `schedule ${d.id} of ${q.name}: ${(e as Error)?.message ?? e}`, { queue: q.name, schedule: d.id });
        }
      }
    }
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
