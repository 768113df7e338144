/**
 * The few helpers @std/async would give (it is on JSR, which is not reachable from here), written
 * its way: options object last with `signal` inside, `throwIfAborted()` first, listeners added with
 * `{ once: true }` and removed in `finally`, rejection with `signal.reason`.
 */

/** Options of the helpers in this file. */
export interface SignalOptions {
  /** Aborting it rejects the returned promise with `signal.reason`. */
  signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds, or rejects with `signal.reason` when the signal aborts first.
 *
 * @example
 * ```ts
 * await delay(100, { signal: AbortSignal.timeout(1000) });
 * ```
 */
export function delay(ms: number, options: SignalOptions & { unref?: boolean } = {}): Promise<void> {
  const { signal } = options;
  signal?.throwIfAborted();
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    if (options.unref) (timer as { unref?: () => void }).unref?.();
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Makes a promise abortable: it rejects with `signal.reason` when the signal aborts first. The
 * underlying work is not cancelled; only the wait is.
 *
 * @example
 * ```ts
 * const value = await abortable(fetchSomething(), AbortSignal.timeout(500));
 * ```
 */
export async function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  signal.throwIfAborted();
  let abort!: () => void;
  const aborted = new Promise<never>((_, reject) => {
    abort = () => reject(signal.reason);
    signal.addEventListener("abort", abort, { once: true });
  });
  try {
    return await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

/**
 * Rejects with a `DOMException` named `TimeoutError` when `p` takes longer than `ms`.
 *
 * @example
 * ```ts
 * await deadline(worker.stop(), 5000);
 * ```
 */
export async function deadline<T>(p: Promise<T>, ms: number, options: SignalOptions = {}): Promise<T> {
  const signals: AbortSignal[] = [];
  if (ms < Number.MAX_SAFE_INTEGER) signals.push(AbortSignal.timeout(ms));
  if (options.signal) signals.push(options.signal);
  return await abortable(p, AbortSignal.any(signals));
}
