import { show } from "./errors.ts";

/** A duration: milliseconds as a number, or a string such as `"500ms"`, `"10s"`, `"5m"`, `"1 hour"`. */
export type Duration = number | string;

const UNITS: Record<string, number> = {
  ms: 1, msec: 1, msecs: 1, millisecond: 1, milliseconds: 1,
  s: 1000, sec: 1000, secs: 1000, second: 1000, seconds: 1000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

/** The longest duration accepted: 100 years (a date that far ahead is still a valid `Date`). */
export const MAX_DURATION = 100 * 365 * 86_400_000;

/**
 * Parses a duration into milliseconds. A bare number (or a string of digits) is milliseconds.
 * Throws a `RangeError` naming the field and the value for anything else.
 *
 * @example
 * ```ts
 * parseDuration("1 hour"); // 3600000
 * parseDuration(250);      // 250
 * ```
 */
export function parseDuration(value: unknown, field = "duration"): number {
  let ms: number | undefined;
  if (typeof value === "number") {
    // whole milliseconds: Redis takes no fractions (PX, IDLE, BLOCK)
    if (Number.isFinite(value) && value >= 0) ms = Math.round(value);
  } else if (typeof value === "string" && value.length <= 64) {
    const m = PATTERN.exec(value);
    if (m) {
      const unit = m[2]!.toLowerCase();
      const factor = unit === "" ? 1 : UNITS[unit];
      if (factor !== undefined) ms = Math.round(Number(m[1]) * factor);
    }
  }
  if (ms !== undefined && ms <= MAX_DURATION) return ms;
  if (ms !== undefined) {
    throw new RangeError(`Invalid duration for '${field}': at most 100 years (${MAX_DURATION} ms): current value is ${show(value)}`);
  }
  throw new RangeError(
    `Invalid duration for '${field}': expected milliseconds (a number >= 0) or a string like "500ms", "10s", "5m", "1 hour": current value is ${show(value)}`,
  );
}

/** Whether `parseDuration` accepts the value. */
export function isDuration(value: unknown): boolean {
  try {
    parseDuration(value);
    return true;
  } catch {
    return false;
  }
}
