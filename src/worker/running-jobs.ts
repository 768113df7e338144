/**
 * The attempts running in one worker. This class is the only writer of them: the executor adds an
 * attempt when it starts and removes it when it settles; the completer releases its hold once the
 * attempt's outcome is written.
 * @module
 */
import type { Context } from "../context.ts";
import type { StoredOptions } from "../options.ts";
import type { LongTimeout } from "../timers.ts";
import type { ResolvedTask } from "../worker-options.ts";
import type { OtelSpan } from "../tracing.ts";
import type { QueueState } from "./core.ts";

/** One attempt of one job, running here. */
export interface Running {
  q: QueueState;
  id: string;
  /** The attempt's fencing token: unique per attempt, so attempts of one job never collide. */
  token: string;
  /** The job's group, or "". */
  group: string;
  /** For a job its stream entry holds (no hash yet): its packed data, which its outcome carries. */
  packed?: string;
  ctx: Context;
  opts: StoredOptions;
  task?: ResolvedTask;
  timer?: LongTimeout;
  /** When it started here (epoch ms), and when it could have started at the earliest (created or due). */
  startedAt?: number;
  readyAt?: number;
  /** Its OpenTelemetry span, when one records. */
  span?: OtelSpan;
  /** Its handler returned or threw (or it was abandoned). */
  settled: boolean;
  /** Another attempt owns the job now: nothing is written for this one. */
  lost: boolean;
  /** Its neighbours in the lists of RunningJobs (running; held), kept there. */
  rPrev?: Running;
  rNext?: Running;
  hPrev?: Running;
  hNext?: Running;
  /** In those lists now. */
  inRunning?: boolean;
  inHeld?: boolean;
}

/**
 * Two lists threaded through the attempts themselves (adding and removing one is a few field
 * writes: no hashing, no table to grow and shrink as batches come and go), oldest first.
 */
export class RunningJobs {
  /** Running attempts. */
  #rHead: Running | undefined;
  #rTail: Running | undefined;
  #rSize = 0;
  /**
   * Attempts this worker holds: running, or settled with an outcome not yet written. Whatever else
   * its pending lists hold was delivered by a call whose reply was lost.
   */
  #hHead: Running | undefined;
  #hTail: Running | undefined;

  /**
   * Adds a starting attempt. With `recovered` (the job was taken from a worker that looked dead:
   * its stall count is above 0), returns the older attempt of the same job still running here, if
   * any: this worker may be the one that looked dead. A job never recovered cannot run here twice,
   * so the common case looks nothing up.
   */
  add(r: Running, recovered: boolean): Running | undefined {
    const previous = recovered ? this.newest(r.q, r.id) : undefined;
    if (!r.inRunning) {
      r.inRunning = true;
      r.rPrev = this.#rTail;
      r.rNext = undefined;
      if (this.#rTail) this.#rTail.rNext = r;
      else this.#rHead = r;
      this.#rTail = r;
      this.#rSize++;
    }
    if (!r.inHeld) {
      r.inHeld = true;
      r.hPrev = this.#hTail;
      r.hNext = undefined;
      if (this.#hTail) this.#hTail.hNext = r;
      else this.#hHead = r;
      this.#hTail = r;
    }
    return previous;
  }

  /** Removes a settled attempt (only that one: a newer attempt of the same job stays). */
  remove(r: Running): void {
    if (!r.inRunning) return;
    r.inRunning = false;
    if (r.rPrev) r.rPrev.rNext = r.rNext;
    else this.#rHead = r.rNext;
    if (r.rNext) r.rNext.rPrev = r.rPrev;
    else this.#rTail = r.rPrev;
    // (its own next stays: an iteration standing on it goes on from there)
    r.rPrev = undefined;
    this.#rSize--;
  }

  /** The attempt's outcome was written (or will never be): this worker no longer holds it. */
  release(r: Running): void {
    if (!r.inHeld) return;
    r.inHeld = false;
    if (r.hPrev) r.hPrev.hNext = r.hNext;
    else this.#hHead = r.hNext;
    if (r.hNext) r.hNext.hPrev = r.hPrev;
    else this.#hTail = r.hPrev;
    r.hPrev = undefined;
  }

  /** The newest unsettled attempt of a job running here (a scan: abort messages are rare). */
  newest(q: QueueState, id: string): Running | undefined {
    let found: Running | undefined;
    for (const r of this.values()) if (r.q === q && r.id === id && !r.settled) found = r;
    return found;
  }

  /** The running attempts, oldest first; one removed meanwhile (the current one too) is skipped. */
  *values(): IterableIterator<Running> {
    let r = this.#rHead;
    while (r) {
      const next = r.rNext;
      yield r;
      // removed while yielded: its next was kept; one removed after it was its next is skipped
      // by reading the next again when it is still in the list
      r = r.inRunning ? r.rNext : next;
      while (r && !r.inRunning) r = r.rNext;
    }
  }

  get size(): number {
    return this.#rSize;
  }

  /** The attempts held (see the field's comment). */
  *held(): IterableIterator<{ id: string; token: string }> {
    let r = this.#hHead;
    while (r) {
      const next = r.hNext;
      yield r;
      r = r.inHeld ? r.hNext : next;
      while (r && !r.inHeld) r = r.hNext;
    }
  }
}
