/** The phases of a worker. See DESIGN section 3. */
export type Phase = "running" | "draining" | "aborting" | "stopped";

/** Options of `ShutdownController.request`. */
export interface ShutdownRequest {
  /** Skip the graceful phase: abort running jobs at once. @default false */
  hard?: boolean;
  /** Who asked, for logs: "SIGTERM", "stop()", "signal", "remote", "timeout", "maxJobs", "drained". */
  source?: string;
}

/** Detail of the `phase` event of a `ShutdownController`. */
export interface PhaseChange {
  phase: Phase;
  previous: Phase;
  source: string;
}

/**
 * Carries the shutdown protocol of one worker. Every source of a stop — OS signals through a
 * runtime adapter, the `signal` given to `run()`, a remote control message, the graceful timeout,
 * `maxJobs` — calls `request()`. Repeated requests escalate: the first drains (stop fetching, let
 * running jobs finish), the second aborts running jobs (reason `shutdown`), the third abandons the
 * jobs that still ignore their signal (they are re-queued and the worker stops without them).
 *
 * Two signals tell the parts what to do, in the way River's two contexts do: `graceful` aborts when
 * fetching must stop; `hard` aborts when every running job must be cancelled. `abandon` aborts when
 * the caller will not wait any longer for jobs that ignore their signal.
 *
 * @example
 * ```ts
 * const shutdown = new ShutdownController();
 * shutdown.graceful.addEventListener("abort", () => console.log("draining"));
 * shutdown.request({ source: "SIGTERM" }); // draining
 * shutdown.request({ source: "SIGTERM" }); // aborting
 * ```
 */
export class ShutdownController extends EventTarget {
  #phase: Phase = "running";
  #requests = 0;
  readonly #graceful = new AbortController();
  readonly #hard = new AbortController();
  readonly #abandon = new AbortController();
  #stopped!: () => void;
  /** Resolves once the phase is `stopped`. */
  readonly stopped: Promise<void> = new Promise((r) => (this.#stopped = r));

  /** The current phase. */
  get phase(): Phase {
    return this.#phase;
  }
  /** How many times `request()` was called. */
  get requests(): number {
    return this.#requests;
  }
  /** Aborts when the worker must stop fetching (draining began, or anything later). */
  get graceful(): AbortSignal {
    return this.#graceful.signal;
  }
  /** Aborts when running jobs must be aborted with reason `shutdown`. */
  get hard(): AbortSignal {
    return this.#hard.signal;
  }
  /** Aborts when jobs that ignore their signal are to be re-queued and left behind. */
  get abandon(): AbortSignal {
    return this.#abandon.signal;
  }

  /**
   * Asks for a stop. The first request drains (or aborts, with `hard`); each further request
   * escalates one step: draining → aborting → abandon. Requests after `stopped` do nothing.
   */
  request(options: ShutdownRequest = {}): void {
    if (this.#phase === "stopped") return;
    this.#requests++;
    const source = options.source ?? "request";
    if (this.#phase === "running") {
      this.#to("draining", source);
      if (options.hard) this.#to("aborting", source);
    } else if (this.#phase === "draining") {
      this.#to("aborting", source);
    } else if (this.#phase === "aborting") {
      if (!this.#abandon.signal.aborted) this.#abandon.abort(source);
    }
  }

  /** Moves to `aborting` (if not past it) without counting as a request: the graceful timeout. */
  escalate(source: string): void {
    if (this.#phase === "running") this.#to("draining", source);
    if (this.#phase === "draining") this.#to("aborting", source);
  }

  /** Marks the worker stopped; called by the worker once every job has settled. */
  markStopped(source = "settled"): void {
    if (this.#phase === "stopped") return;
    if (this.#phase === "running") this.#to("draining", source);
    this.#to("stopped", source);
    this.#stopped();
  }

  #to(phase: Phase, source: string): void {
    const previous = this.#phase;
    if (previous === phase) return;
    this.#phase = phase;
    if (phase === "draining") this.#graceful.abort(source);
    if (phase === "aborting") this.#hard.abort(source);
    this.dispatchEvent(new CustomEvent<PhaseChange>("phase", { detail: { phase, previous, source } }));
  }
}
