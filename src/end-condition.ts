import { ValidationError } from "./errors.ts";

/** A predicate checked on one shared timer; while it holds, running jobs of the task abort (reason `end-condition`). */
export type EndCondition = (now: Date) => boolean;

const HHMM = /^([01]?\d|2[0-3]):([0-5]\d)$/;

function minutes(value: string, field: string): number {
  const m = typeof value === "string" ? HHMM.exec(value) : null;
  if (!m) {
    throw new ValidationError("Invalid time of day", [{ field, value, message: 'must be "HH:MM" (00:00-23:59)' }]);
  }
  return Number(m[1]) * 60 + Number(m[2]);
}

/**
 * An end condition that holds while the local time of day is in `[from, to)`. A window that
 * wraps midnight (`between("22:00", "06:00")`) works too. Pass `{ utc: true }` for UTC.
 *
 * @example
 * ```ts
 * // nightly reports must not run into business hours
 * const tasks = { report: { handler, endCondition: between("08:00", "18:00") } };
 * ```
 */
export function between(from: string, to: string, options: { utc?: boolean } = {}): EndCondition {
  const a = minutes(from, "from");
  const b = minutes(to, "to");
  return (now: Date) => {
    const t = options.utc ? now.getUTCHours() * 60 + now.getUTCMinutes() : now.getHours() * 60 + now.getMinutes();
    return a <= b ? t >= a && t < b : t >= a || t < b;
  };
}
