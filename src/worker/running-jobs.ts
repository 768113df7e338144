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
  /** Its neighbours in the list of RunningJobs, kept there. */
  prev?: Running;
  next?: Running;
  /** Running here; held here (see RunningJobs): it leaves the list once neither. */
  inRunning?: boolean;
  inHeld?: boolean;
}

/**
 * One list threaded through the attempts themselves, oldest first (adding and removing one is a
 * few field writes: no hashing, no table to grow and shrink as batches come and go). It holds the
 * attempts this worker holds: running, or settled with an outcome not yet written (whatever else
 * its pending lists hold was delivered by a call whose reply was lost); the running ones are
 * those still marked running.
 */
export class RunningJobs {
  #head: Running | undefined;
  #tail: Running | undefined;
  #running = 0;

  /**
   * Adds a starting attempt. With `recovered` (the job was taken from a worker that looked dead:
   * its stall count is above 0), returns the older attempt of the same job still running here, if
   * any: this worker may be the one that looked dead. A job never recovered cannot run here twice,
   * so the common case looks nothing up.
   */
  add(r: Running, recovered: boolean): Running | undefined {
    const previous = recovered ? this.newest(r.q, r.id) : undefined;
    if (r.inRunning || r.inHeld) return previous;
    r.inRunning = true;
    r.inHeld = true;
    this.#running++;
    r.prev = this.#tail;
    r.next = undefined;
    if (this.#tail) this.#tail.next = r;
    else this.#head = r;
    this.#tail = r;
    return previous;
  }

  /** Removes a settled attempt (only that one: a newer attempt of the same job stays). */
  remove(r: Running): void {
    if (!r.inRunning) return;
    r.inRunning = false;
    this.#running--;
    if (!r.inHeld) this.#unlink(r);
  }

  /** The attempt's outcome was written (or will never be): this worker no longer holds it. */
  release(r: Running): void {
    if (!r.inHeld) return;
    r.inHeld = false;
    if (!r.inRunning) this.#unlink(r);
  }

  #unlink(r: Running): void {
    if (r.prev) r.prev.next = r.next;
    else this.#head = r.next;
    if (r.next) r.next.prev = r.prev;
    else this.#tail = r.prev;
    // (its own next stays: an iteration standing on it goes on from there)
    r.prev = undefined;
  }

  /** The newest unsettled attempt of a job running here (a scan: abort messages are rare). */
  newest(q: QueueState, id: string): Running | undefined {
    let found: Running | undefined;
    for (const r of this.values()) if (r.q === q && r.id === id && !r.settled) found = r;
    return found;
  }

  /** The running attempts, oldest first; one removed meanwhile (the current one too) is skipped. */
  values(): IterableIterator<Running> {
    return this.#each("inRunning");
  }

  get size(): number {
    return this.#running;
  }

  /** The attempts held (see the class's comment). */
  held(): IterableIterator<{ id: string; token: string }> {
    return this.#each("inHeld");
  }

  *#each(mark: "inRunning" | "inHeld"): IterableIterator<Running> {
    let r = this.#head;
    while (r) {
      if (r[mark]) yield r;
      // (one unlinked meanwhile, this one too, kept its next, which leads on: never back)
      r = r.next;
    }
  }
}
