/**
 * The attempts running in one worker. This class is the only writer of them: the executor adds an
 * attempt when it starts and removes it when it settles; the completer releases its hold once the
 * attempt's outcome is written.
 * @module
 */
import type { Context } from "../context.ts";
import type { StoredOptions } from "../options.ts";
import type { LongTimeout } from "../timers.ts";
import type { TaskDefinition } from "../worker-options.ts";
import type { QueueState } from "./core.ts";

/** One attempt of one job, running here. */
export interface Running {
  q: QueueState;
  id: string;
  /** The attempt's fencing token: unique per attempt, so attempts of one job never collide. */
  token: string;
  ctx: Context;
  opts: StoredOptions;
  task?: TaskDefinition;
  timer?: LongTimeout;
  /** Its handler returned or threw (or it was abandoned). */
  settled: boolean;
  /** Another attempt owns the job now: nothing is written for this one. */
  lost: boolean;
}

function jobKey(queue: string, id: string): string {
  return queue + "\u0000" + id;
}

export class RunningJobs {
  /** Running attempts by token. */
  readonly #byToken = new Map<string, Running>();
  /** The newest attempt of each job running here (abort messages name jobs, not attempts). */
  readonly #byJob = new Map<string, Running>();
  /**
   * Attempts this worker holds: running, or settled with an outcome not yet written. Whatever else
   * its pending lists hold was delivered by a call whose reply was lost.
   */
  readonly #held = new Map<string, { id: string; token: string }>();

  /** Adds a starting attempt. Returns the older attempt of the same job still running here, if any. */
  add(r: Running): Running | undefined {
    const key = jobKey(r.q.name, r.id);
    const previous = this.#byJob.get(key);
    this.#byToken.set(r.token, r);
    this.#byJob.set(key, r);
    this.#held.set(r.id + " " + r.token, { id: r.id, token: r.token });
    return previous && !previous.settled ? previous : undefined;
  }

  /** Removes a settled attempt; a newer attempt of the same job stays. */
  remove(r: Running): void {
    this.#byToken.delete(r.token);
    const key = jobKey(r.q.name, r.id);
    if (this.#byJob.get(key) === r) this.#byJob.delete(key);
  }

  /** The attempt's outcome was written (or will never be): this worker no longer holds it. */
  release(r: { id: string; token: string }): void {
    this.#held.delete(r.id + " " + r.token);
  }

  get(token: string): Running | undefined {
    return this.#byToken.get(token);
  }

  /** The newest attempt of a job running here. */
  newest(queue: string, id: string): Running | undefined {
    return this.#byJob.get(jobKey(queue, id));
  }

  values(): IterableIterator<Running> {
    return this.#byToken.values();
  }

  get size(): number {
    return this.#byToken.size;
  }

  /** The attempts held (see the field's comment). */
  held(): Iterable<{ id: string; token: string }> {
    return this.#held.values();
  }
}
