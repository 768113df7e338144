/**
 * Timers for any duration. `setTimeout` holds at most 2^31−1 ms (about 24.8 days): a longer delay
 * fires at once on every runtime. A long timeout here waits in steps instead.
 * @module
 */

/** The longest delay one `setTimeout` holds. */
export const MAX_TIMER = 2 ** 31 - 1;

/** A timeout that can be cleared, of any length. */
export interface LongTimeout {
  clear(): void;
}

/**
 * Calls `fn` once after `ms` milliseconds, however long that is.
 *
 * @example
 * ```ts
 * const t = setLongTimeout(() => console.log("a month later"), 30 * 86_400_000);
 * t.clear();
 * ```
 */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  const due = Date.now() + ms;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    const left = due - Date.now();
    timer = setTimeout(left > MAX_TIMER ? arm : fn, Math.max(0, Math.min(left, MAX_TIMER)));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
