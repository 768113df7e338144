/**
 * The fetch loop: fills free slots from the queues in priority order, writes outcomes on the way,
 * waits in a blocking read when every queue is empty, and hands back what a lost reply delivered
 * after a reconnect. It runs until the stop leaves nothing running and nothing to write.
 * @module
 */
import { abortable } from "../async.ts";
import type { IORedis } from "../redis.ts";
import type { Completer } from "./completer.ts";
import type { QueueState, WorkerCore } from "./core.ts";
import type { Executor } from "./executor.ts";
import type { RunningJobs } from "./running-jobs.ts";
import * as scripts from "./scripts.ts";

type Entry = [string, string[]];

/** Calls `f` in a later turn of the event loop (after what this turn wrote has gone out). */
const nextTurn: (f: () => void) => void = typeof (globalThis as { setImmediate?: unknown }).setImmediate === "function"
  ? (f) => (globalThis as unknown as { setImmediate(f: () => void): unknown }).setImmediate(f)
  : (f) => setTimeout(f, 0);

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

export class Fetcher {
  readonly #core: WorkerCore;
  readonly #running: RunningJobs;
  readonly #executor: Executor;
  readonly #completer: Completer;
  readonly #block: () => IORedis | undefined;
  readonly #onError: (e: unknown) => void;
  #wakePending = false;
  #wakeResolve: (() => void) | undefined;
  #blocking = false;
  /** Passes in flight, the slots they may fill, whether the last fetch found the queues empty. */
  #inflight = 0;
  #reserved = 0;
  #empty = false;
  #errors = 0;
  #sideFlush: Promise<void> | undefined;
  /** Blocking waits so far (a cluster's queues take turns). */
  #waits = 0;
  /** A connection came back: hand back what a lost reply delivered, once nothing that fetches is in flight. */
  #needReconcile = false;
  /** Set once an abandoning stop has waited for Redis long enough: stop without writing the rest. */
  giveUp = false;
  /** Wakes the loop when the earliest paused or rate-limited queue may be fetched from again. */
  #gateTimer: ReturnType<typeof setTimeout> | undefined;
  #gateAt = Infinity;
  /** A batch's jobs started in this turn of the event loop (see `#finishAndFetch`). */
  #turnTaken = false;
  /**
   * Finish-and-fetch calls issued so far, and the number of the last one that put a job back in
   * the stream. Calls run in the order they are issued, but their replies may be handled out of
   * order (a batch waits for its turn): a pass whose fetches came up short concludes the queues
   * are empty only if no call issued at or after its first put a job back.
   */
  #calls = 0;
  #requeuedBy = 0;

  constructor(core: WorkerCore, parts: {
    running: RunningJobs;
    executor: Executor;
    completer: Completer;
    /** The connection of the blocking reads (dropped at the stop). */
    block: () => IORedis | undefined;
    /** A Redis error the loop will retry after; the worker logs it and repairs what it can. */
    onError: (e: unknown) => void;
  }) {
    this.#core = core;
    this.#running = parts.running;
    this.#executor = parts.executor;
    this.#completer = parts.completer;
    this.#block = parts.block;
    this.#onError = parts.onError;
  }

  /** Wakes the loop: a job settled, a stop began, a connection came back. */
  wake(): void {
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

  /** A connection came back (see `#needReconcile`). */
  reconnected(): void {
    this.#needReconcile = true;
    this.wake();
  }

  /** Outcomes written while the loop waits in a blocking read, if any is in flight. */
  get sideFlush(): Promise<void> | undefined {
    return this.#sideFlush;
  }

  /** A job settled: its outcome is written with the next pass, or aside while the loop blocks. */
  settled(): void {
    if (this.#blocking) this.#flushAside();
    this.wake();
  }

  #free(): number {
    const core = this.#core;
    if (core.shutdown.phase !== "running") return 0;
    const slots = core.settings.concurrency - this.#running.size - this.#reserved;
    return Math.max(0, Math.min(slots, core.settings.maxJobs - this.#executor.started - this.#reserved));
  }

  /**
   * The main loop. A pass writes the queues' outcomes and fetches ready jobs in one script per
   * queue, in priority order. Two passes may be in flight, each fetching up to half the
   * concurrency and at most 500 jobs (a script blocks Redis while it runs), so the jobs of one
   * batch run while Redis works on the other's call (see `#finishAndFetch` for how they are kept
   * apart). When no queue has a ready job, the loop waits in a blocking read (outcomes are then
   * written aside). It returns once the worker stops fetching and nothing runs or waits to be
   * written.
   */
  async run(): Promise<void> {
    const core = this.#core;
    const batch = Math.max(1, Math.min(500, Math.ceil(core.settings.concurrency / 2)));
    while (true) {
      if (core.shutdown.abandon.aborted) for (const o of this.#executor.abandonAll()) this.#completer.add(o);
      if (core.shutdown.phase !== "running" && this.#running.size === 0 && this.#completer.pending() === 0 && this.#inflight === 0 && !this.#needReconcile) break;
      if (this.giveUp) {
        // told to stop without waiting, and Redis did not take the last outcomes in time (it is
        // unreachable, and commands wait for a reconnect): those outcomes are lost, their jobs are
        // not: still pending under this consumer, another worker recovers them after stalledTimeout
        const left = this.#completer.drop() + this.#inflight;
        core.log("error", "stopped", `Redis did not answer: stopping without writing ${left} outcome batch(es); their jobs will be recovered as stalled`);
        break;
      }
      this.#wakePending = false;
      if (this.#errors > 0 && this.#inflight === 0) {
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(this.#errors, 6))));
      }
      if (this.#needReconcile) {
        // nothing that fetches may be in flight while the pending lists are compared with what runs
        if (this.#inflight > 0) {
          await this.#sleep();
          continue;
        }
        try {
          for (const q of core.queues) await this.reconcile(q, "reconnect");
          this.#needReconcile = false;
          this.#errors = 0;
        } catch (e) {
          this.#failed(e);
        }
        continue;
      }
      const free = this.#free();
      const want = this.#empty ? 0 : Math.min(free, batch);
      if (this.#inflight < 2 && (want > 0 || this.#completer.pending() > 0)) {
        this.#pass(want);
        continue;
      }
      if (free > 0 && this.#empty && this.#inflight === 0 && this.#completer.pending() === 0) {
        // nothing ready in any queue
        if (!core.settings.wait) {
          if (this.#running.size === 0) {
            core.shutdown.request({ source: "drained" });
            continue;
          }
          // drain mode: no blocking read (it would hold the stop for up to blockTimeout after the
          // last job); look again without blocking each time a running job settles
          await this.#sleep();
          this.#empty = false;
          continue;
        }
        try {
          await this.#blockingRead();
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

  #failed(e: unknown): void {
    this.#errors++;
    this.#onError(e);
  }

  /**
   * Hands back what `q`'s pending list holds for this consumer that no attempt here holds: jobs a
   * call whose reply was lost activated or delivered. They go back to the stream at once, with no
   * stall and no attempt counted. Run at start (a previous process with the same id) and after a
   * reconnect, while nothing that fetches is in flight.
   */
  async reconcile(q: QueueState, why: "start" | "reconnect"): Promise<void> {
    const core = this.#core;
    const ids = await scripts.reconcile(core.send, q.keys, { consumer: core.id, now: Date.now(), eventsMax: core.settings.eventsMaxLen, held: this.#running.held() });
    if (ids.length > 0) {
      core.log("warn", "job-requeued", `${ids.length} job(s) delivered to this worker without its knowing (${why === "start" ? "a previous worker with this id" : "a reply lost with a connection"}) went back to ${q.name}`, { queue: q.name, jobs: ids });
      core.emit("requeued", { queue: q.name, ids });
    }
  }

  /** One pass over the queues, not awaited by the loop; it wakes the loop when done. */
  #pass(want: number): void {
    this.#inflight++;
    this.#reserved += want;
    (async () => {
      let fetched = 0;
      const first = this.#calls + 1;
      try {
        for (const q of this.#core.queues) {
          const n = this.#gated(q) ? 0 : want - fetched;
          if (this.#completer.pending(q) === 0 && n <= 0) continue;
          fetched += await this.#finishAndFetch(q, n);
        }
        this.#errors = 0;
        if (want > 0 && fetched < want && this.#requeuedBy < first) this.#empty = true;
      } catch (e) {
        this.#failed(e);
      } finally {
        this.#reserved -= want;
        this.#inflight--;
        this.wake();
      }
    })();
  }

  /**
   * Writes `q`'s outcomes and fetches up to `want` jobs in one script; starts them. Returns how many.
   *
   * The two passes' replies often arrive in one read. Were both batches started in that turn of
   * the event loop, both next calls would go out together, Redis would answer both together, and
   * the worker and Redis would take turns instead of working at once. So a batch whose turn
   * another batch already started in waits for the next turn: the first pass's next call is
   * written meanwhile (the worker's own connection writes each command as it is sent), and Redis
   * works on it while this batch runs.
   */
  async #finishAndFetch(q: QueueState, want: number): Promise<number> {
    const call = ++this.#calls;
    const { jobs, requeued, gate, last } = await this.#completer.finishAndFetch(q, want);
    if (requeued) this.#requeuedBy = Math.max(this.#requeuedBy, call);
    if (last !== undefined) q.last = last;
    if (jobs.length > 0) {
      if (this.#turnTaken) await new Promise<void>((r) => nextTurn(r));
      this.#turnTaken = true;
      nextTurn(() => (this.#turnTaken = false));
    }
    for (const f of jobs) this.#executor.start(q, f);
    if (gate.paused) this.pause(q, true);
    else if (q.paused && want > 0) this.pause(q, false); // resumed: its resume message was missed
    if (gate.waitMs !== undefined) this.#hold(q, Date.now() + gate.waitMs);
    // a retry due at once or an interrupted job went back to the stream after the last fetch that
    // found it empty: look again before the loop (in drain mode) concludes there is nothing to do
    if (want === 0 && requeued) this.#empty = false;
    return jobs.length;
  }

  /** A queue is paused, or resumed (a control message, or what a fetch found). */
  pause(q: QueueState, paused: boolean): void {
    q.recheck = false;
    if (paused) {
      // looked at again now and then, in case its resume message is missed
      this.#hold(q, Date.now() + this.#core.settings.abortPollInterval, true);
      if (q.paused) return;
    } else if (!q.paused) {
      return;
    }
    q.paused = paused;
    this.#core.log("info", paused ? "queue-paused" : "queue-resumed", `queue ${q.name} ${paused ? "paused: no new jobs from it" : "resumed"}`, { queue: q.name });
    if (!paused) {
      this.#empty = false;
      this.wake();
    }
  }

  #gated(q: QueueState): boolean {
    return (!!q.paused && !q.recheck) || (q.holdUntil !== undefined && q.holdUntil > Date.now());
  }

  /** No fetch from `q` before `at` (a paused queue: its flag is read again then). */
  #hold(q: QueueState, at: number, pausePoll = false): void {
    if (!pausePoll) q.holdUntil = at;
    if (at >= this.#gateAt && this.#gateTimer !== undefined) return;
    clearTimeout(this.#gateTimer);
    this.#gateAt = at;
    this.#gateTimer = setTimeout(() => {
      this.#gateTimer = undefined;
      this.#gateAt = Infinity;
      const now = Date.now();
      for (const x of this.#core.queues) {
        // a paused queue's next fetch reads the flag again; a hold that is not over re-arms itself
        if (x.paused) x.recheck = true;
        if (x.holdUntil !== undefined && x.holdUntil > now) this.#hold(x, x.holdUntil);
      }
      this.#empty = false;
      this.wake();
    }, Math.max(1, at - Date.now()));
  }

  /** Clears the gate timer (at stop). */
  stopTimers(): void {
    clearTimeout(this.#gateTimer);
    this.#gateTimer = undefined;
  }

  /** While the loop is blocked on a read, outcomes are written on the command connection. */
  #flushAside(): void {
    if (this.#sideFlush || !this.#blocking || this.#completer.pending() === 0) return;
    this.#sideFlush = (async () => {
      await null; // let the assignment above happen before `finally` clears it
      try {
        while (this.#blocking && this.#completer.pending() > 0) {
          for (const q of this.#core.queues) if (this.#completer.pending(q) > 0) await this.#finishAndFetch(q, 0);
        }
      } catch (e) {
        this.#core.emit("error", e);
        this.#core.log("error", "error", `redis error: ${(e as Error).message}`);
      } finally {
        this.#sideFlush = undefined;
        this.wake();
      }
    })();
  }

  /**
   * Waits until a queue has an entry newer than its last short fetch saw (or the block times out).
   * A plain XREAD: it delivers nothing, so nothing is pending for this worker unless the fetch
   * script delivered and activated it, and a worker that dies while it waits leaves nothing behind.
   * The loop's next pass fetches what arrived.
   */
  async #blockingRead(): Promise<void> {
    const core = this.#core;
    const block = this.#block();
    if (!block || core.shutdown.graceful.aborted) return;
    // a paused or rate-limited queue is looked at again by a timer, not by a blocking read
    const queues = core.queues.filter((q) => !this.#gated(q));
    if (queues.length === 0) return await this.#sleep();
    const isCluster = "nodes" in block && typeof (block as { nodes?: unknown }).nodes === "function";
    // one XREAD over all streams where they can share it (not across cluster slots)
    const qs = isCluster && queues.length > 1 ? [queues[this.#waits++ % queues.length]!] : queues;
    const blockMs = isCluster && queues.length > 1 ? Math.min(core.settings.blockTimeout, 250) : core.settings.blockTimeout;
    this.#blocking = true;
    this.#flushAside();
    try {
      // raced with the graceful signal: a read queued on a connection that lost Redis does not
      // settle when the connection is dropped, and must not hold the stop
      await abortable(
        block.call(
          "XREAD", "COUNT", 1, "BLOCK", blockMs,
          "STREAMS", ...qs.map((q) => q.keys.stream), ...qs.map((q) => q.last ?? "$"),
        ),
        core.shutdown.graceful,
      );
    } catch (e) {
      if (core.shutdown.graceful.aborted) return; // the connection was dropped to stop fetching
      throw e;
    } finally {
      this.#blocking = false;
    }
  }
}
