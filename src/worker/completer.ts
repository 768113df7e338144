/**
 * Writes outcomes: buffers each queue's settled attempts and writes them in batches, in the same
 * script call that fetches the queue's next jobs (one round trip per batch). Counts what was
 * applied and tells listeners; an outcome fenced out (the job is another attempt's now) is lost.
 * @module
 */
import type { QueueState, WorkerCore } from "./core.ts";
import type { Outcome } from "./executor.ts";
import type { RunningJobs } from "./running-jobs.ts";
import * as scripts from "./scripts.ts";
import { HISTOGRAM_BUCKETS } from "../job.ts";
import type { FetchedJob, Gate, OutcomeResult } from "./scripts.ts";

export class Completer {
  /** Histogram observations not yet written, by queue (see flushHistograms): counts per bucket and sums. */
  readonly #hist = new Map<QueueState, { d: number[]; w: number[]; dSum: number; wSum: number }>();
  readonly #core: WorkerCore;
  readonly #running: RunningJobs;
  readonly #buffers = new Map<QueueState, Outcome[]>();

  constructor(core: WorkerCore, running: RunningJobs) {
    this.#core = core;
    this.#running = running;
    for (const q of core.queues) this.#buffers.set(q, []);
  }

  add(o: Outcome): void {
    this.#buffers.get(o.r.q)!.push(o);
  }

  /** Outcomes waiting to be written, in all queues or in `q`. */
  pending(q?: QueueState): number {
    if (q) return this.#buffers.get(q)!.length;
    let n = 0;
    for (const b of this.#buffers.values()) n += b.length;
    return n;
  }

  /** Drops every outcome not yet written (a stop that cannot wait for Redis). Returns how many. */
  drop(): number {
    let n = 0;
    for (const b of this.#buffers.values()) n += b.splice(0).length;
    return n;
  }

  /**
   * Writes `q`'s buffered outcomes and fetches up to `want` jobs, in one script. Returns the jobs
   * fetched, and whether an outcome put a job back in the stream at once (a retry due now or an
   * interruption): a fetch that found the stream empty before it should look again. On an error
   * the outcomes go back to the buffer; writing them again is safe (a repeat is recognised).
   */
  async finishAndFetch(q: QueueState, want: number): Promise<{ jobs: FetchedJob[]; requeued: boolean; gate: Gate; last?: string }> {
    const core = this.#core;
    const outs = this.#buffers.get(q)!.splice(0);
    const now = Date.now();
    let reply: { results: OutcomeResult[]; jobs: FetchedJob[]; gate: Gate; last?: string };
    try {
      reply = await scripts.finishAndFetch(core.send, q.keys, {
        consumer: core.id, now, fetch: want, keep: core.settings.keep, eventsMax: core.settings.eventsMaxLen,
        outcomes: outs.map((o) => ({
          id: o.r.id, token: o.r.token, started: o.r.startedAt ?? now, attempt: o.r.ctx.job.attempt, group: o.r.group,
          kind: o.kind, payload: o.payload, retryAt: o.retryAt, packed: o.r.packed,
        })),
      });
    } catch (e) {
      this.#buffers.get(q)!.unshift(...outs);
      throw e;
    }
    let requeued = false;
    let h = this.#hist.get(q);
    if (!h) this.#hist.set(q, (h = { d: new Array(HISTOGRAM_BUCKETS.length + 1).fill(0), w: new Array(HISTOGRAM_BUCKETS.length + 1).fill(0), dSum: 0, wSum: 0 }));
    const hist = h;
    const bucket = (seconds: number) => {
      let i = 0;
      while (i < HISTOGRAM_BUCKETS.length && seconds > HISTOGRAM_BUCKETS[i]!) i++;
      return i;
    };
    const observe = (name: "d" | "w", seconds: number) => {
      hist[name][bucket(seconds)]!++;
      if (name === "d") hist.dSum += seconds;
      else hist.wSum += seconds;
    };
    outs.forEach((o, i) => {
      if (reply.results[i] !== "fenced" && o.kind !== "interrupted" && o.r.startedAt !== undefined) {
        observe("d", Math.max(0, now - o.r.startedAt) / 1000);
        if (o.r.readyAt) observe("w", Math.max(0, o.r.startedAt - o.r.readyAt) / 1000);
      }
      const result = reply.results[i]!;
      // a retry or an interruption that ended `aborted`, since an abort was requested for the job
      if (result === "aborted" && !o.abandoned) o.kind = "aborted";
      if (result !== "fenced" && (o.kind === "interrupted" || (o.kind === "retry" && o.retryAt <= now))) requeued = true;
      this.#running.release(o.r);
      this.#report(o, result !== "fenced");
    });
    return { jobs: reply.jobs, requeued, gate: reply.gate, last: reply.last };
  }

  /**
   * Adds the job duration and wait-time observations gathered since the last call to each queue's
   * histogram in Redis (for /metrics): on the heartbeat timer and at stop, so the hot path sends
   * nothing for them. Observations a failed write carried are dropped (metrics, not outcomes).
   */
  async flushHistograms(): Promise<void> {
    const core = this.#core;
    const writes: Promise<unknown>[] = [];
    for (const [q, h] of this.#hist) {
      const key = q.keys.base + "hist";
      for (const name of ["d", "w"] as const) {
        const counts = h[name];
        let any = false;
        counts.forEach((n, i) => {
          if (n === 0) return;
          any = true;
          writes.push(core.send("HINCRBY", [key, `${name}:${HISTOGRAM_BUCKETS[i] ?? Infinity}`, n]));
          counts[i] = 0;
        });
        const sum = name === "d" ? h.dSum : h.wSum;
        if (any) writes.push(core.send("HINCRBYFLOAT", [key, `${name}:sum`, sum.toFixed(6)]));
      }
      h.dSum = 0;
      h.wSum = 0;
    }
    await Promise.all(writes.map((p) => p.catch(() => {})));
  }

  /** After the outcome's script ran: count it and tell listeners. */
  #report(o: Outcome, accepted: boolean): void {
    const { summary: s, emit, log } = this.#core;
    const job = o.r.ctx.job;
    if (!accepted) {
      s.lost++;
      emit("lost", { job });
      return;
    }
    switch (o.kind) {
      case "completed":
        s.completed++;
        emit("completed", { job, result: o.value });
        break;
      case "failed":
        s.failed++;
        emit("failed", { job, error: o.error, abortReason: o.r.ctx.abortReason });
        break;
      case "aborted":
        s.aborted++;
        emit("aborted", { job, error: o.error, abortReason: "user" });
        break;
      case "retry":
        s.retried++;
        emit("retrying", { job, error: o.error, abortReason: o.r.ctx.abortReason, retryAt: o.retryAt });
        break;
      case "interrupted":
        if (o.abandoned) break;
        s.interrupted++;
        log("info", "job-interrupted", `job ${job.id} interrupted and re-queued (attempt ${job.attempt} not counted)`, { job: job.id, queue: job.queue });
        emit("interrupted", { job, error: o.error, abortReason: "shutdown" });
        break;
    }
  }
}
