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
}

export class RunningJobs {
  /** Running attempts, oldest first. */
  readonly #running = new Set<Running>();
  /**
   * Attempts this worker holds: running, or settled with an outcome not yet written. Whatever else
   * its pending lists hold was delivered by a call whose reply was lost.
   */
  readonly #held = new Set<Running>();

  /**
   * Adds a starting attempt. With `recovered` (the job was taken from a worker that looked dead:
   * its stall count is above 0), returns the older attempt of the same job still running here, if
   * any: this worker may be the one that looked dead. A job never recovered cannot run here twice,
   * so the common case looks nothing up.
   */
  add(r: Running, recovered: boolean): Running | undefined {
    const previous = recovered ? this.newest(r.q, r.id) : undefined;
    this.#running.add(r);
    this.#held.add(r);
    return previous;
  }

  /** Removes a settled attempt (only that one: a newer attempt of the same job stays). */
  remove(r: Running): void {
    this.#running.delete(r);
  }

  /** The attempt's outcome was written (or will never be): this worker no longer holds it. */
  release(r: Running): void {
    this.#held.delete(r);
  }

  /** The newest unsettled attempt of a job running here (a scan: abort messages are rare). */
  newest(q: QueueState, id: string): Running | undefined {
    let found: Running | undefined;
    for (const r of this.#running) if (r.q === q && r.id === id && !r.settled) found = r;
    return found;
  }

  values(): IterableIterator<Running> {
    return this.#running.values();
  }

  get size(): number {
    return this.#running.size;
  }

  /** The attempts held (see the field's comment). */
  held(): Iterable<{ id: string; token: string }> {
    return this.#held.values();
  }
}
