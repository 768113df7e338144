import * as v from "valibot";
import { type Duration, isDuration, parseDuration } from "./duration.ts";
import { ValidationError, type ValidationIssue } from "./errors.ts";

const duration = v.custom<Duration>(
  isDuration,
  'must be milliseconds (a number >= 0) or a string like "500ms", "10s", "5m", "1 hour"',
);
const positiveInt = v.pipe(v.number("must be a number"), v.integer("must be an integer"), v.minValue(1, "must be >= 1"));
const nonNegativeInt = v.pipe(v.number("must be a number"), v.integer("must be an integer"), v.minValue(0, "must be >= 0"));

/** How long to wait before a retry. A number (or duration string) is a fixed delay. */
export type Backoff =
  | Duration
  | {
    /** `fixed` waits `delay` every time; `exponential` waits `delay * 2^(attempt-1)`. */
    type: "fixed" | "exponential";
    /** Base delay. @default "1s" */
    delay?: Duration;
    /** Fraction of the delay randomised away (0–1), so retries of many jobs spread out. @default 0.2 */
    jitter?: number;
    /** Upper bound of one delay (exponential). @default "1h" */
    maxDelay?: Duration;
  };

export const BackoffSchema = v.union([
  duration,
  v.strictObject({
    type: v.picklist(["fixed", "exponential"], 'must be "fixed" or "exponential"'),
    delay: v.optional(duration),
    jitter: v.optional(v.pipe(v.number("must be a number"), v.minValue(0, "must be >= 0"), v.maxValue(1, "must be <= 1"))),
    maxDelay: v.optional(duration),
  }),
], 'must be a duration or { type: "fixed" | "exponential", delay?, jitter?, maxDelay? }');

/** Options of `Queue.enqueue`. */
export interface EnqueueOptions {
  /** Run no earlier than this long from now. */
  delay?: Duration;
  /** Run no earlier than this time (a Date or epoch milliseconds). Wins over `delay`. */
  runAt?: Date | number;
  /** Attempts in all, the first included. @default 3 */
  attempts?: number;
  /** Delay between attempts. @default { type: "exponential", delay: "1s", jitter: 0.2 } */
  backoff?: Backoff;
  /** Abort the attempt (reason `timeout`) after this long; overrides the task's and worker's default. */
  timeout?: Duration;
  /**
   * Deduplication id: a second enqueue with an id that exists returns that job and writes nothing.
   * It may not have the form of a generated id (digits, a dash, digits).
   */
  jobId?: string;
  /**
   * The job's group (a tenant, a user): with the queue's group concurrency set, at most that many
   * jobs of one group run at once across all workers, and the groups take turns.
   */
  group?: string;
}

/** The latest time a `Date` can hold (epoch ms): a later `runAt` is refused. */
export const MAX_DATE = 8_640_000_000_000_000;

/** A string without lone UTF-16 surrogates (two ids that differ only in one would be the same key). */
export function isWellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

export const EnqueueOptionsSchema = v.strictObject({
  delay: v.optional(duration),
  runAt: v.optional(v.union([
    v.pipe(v.date(), v.check((d) => !Number.isNaN(d.getTime()) && d.getTime() >= 0, "must be a valid Date")),
    v.pipe(nonNegativeInt, v.maxValue(MAX_DATE, `must be at most ${MAX_DATE} (the latest Date)`)),
  ], "must be a Date or epoch milliseconds")),
  attempts: v.optional(positiveInt),
  backoff: v.optional(BackoffSchema),
  timeout: v.optional(duration),
  jobId: v.optional(v.pipe(
    v.string("must be a string"),
    v.minLength(1, "must not be empty"),
    v.maxLength(256, "must be at most 256 characters"),
    v.regex(/^[^\s{}\x00-\x1f]+$/, "must not contain whitespace, control characters or braces"),
    v.check(isWellFormed, "must not contain lone surrogates"),
    // the generated id of a job due now is its stream entry's id (digits-digits)
    v.check((id) => !/^\d+-\d+$/.test(id), "must not have the form of a generated id (digits-digits)"),
  )),
  group: v.optional(v.pipe(
    v.string("must be a string"),
    v.minLength(1, "must not be empty"),
    v.maxLength(200, "must be at most 200 characters"),
    v.regex(/^[^\s{}\x00-\x1f]+$/, "must not contain whitespace, control characters or braces"),
    v.check(isWellFormed, "must not contain lone surrogates"),
  )),
});

/**
 * Options of a job as stored with it (durations resolved to milliseconds): only those given at
 * enqueue; a missing `backoff` is `DEFAULT_BACKOFF`.
 */
export interface StoredOptions {
  backoff?: { type: "fixed" | "exponential"; delay: number; jitter: number; maxDelay: number };
  timeout?: number;
  /** The W3C trace context of the enqueue's span, when OpenTelemetry records one. */
  tp?: string;
}

export const DEFAULT_ATTEMPTS = 3;
export const DEFAULT_BACKOFF = { type: "exponential", delay: 1000, jitter: 0.2, maxDelay: 3_600_000 } as const;

export function resolveBackoff(b: Backoff | undefined): NonNullable<StoredOptions["backoff"]> {
  if (b === undefined) return { ...DEFAULT_BACKOFF };
  if (typeof b === "number" || typeof b === "string") {
    return { type: "fixed", delay: parseDuration(b, "backoff"), jitter: 0, maxDelay: Number.MAX_SAFE_INTEGER };
  }
  return {
    type: b.type,
    delay: b.delay === undefined ? DEFAULT_BACKOFF.delay : parseDuration(b.delay, "backoff.delay"),
    jitter: b.jitter ?? DEFAULT_BACKOFF.jitter,
    maxDelay: b.maxDelay === undefined ? DEFAULT_BACKOFF.maxDelay : parseDuration(b.maxDelay, "backoff.maxDelay"),
  };
}

/**
 * Delay before the retry that follows failed attempt number `attempt` (1-based).
 *
 * @example
 * ```ts
 * backoffDelay({ type: "exponential", delay: 100, jitter: 0, maxDelay: 1e9 }, 3); // 400
 * ```
 */
export function backoffDelay(b: NonNullable<StoredOptions["backoff"]>, attempt: number, random = Math.random): number {
  const base = b.type === "fixed" ? b.delay : Math.min(b.maxDelay, b.delay * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (1 - b.jitter * random()));
}

/**
 * Turns valibot issues into `ValidationIssue`s: the field as a dotted path, the value received.
 * An unknown key is named itself (`unknown`: how to say so); an issue of the input as a whole is
 * reported on `root`.
 */
export function toIssues(issues: readonly v.BaseIssue<unknown>[], root: string, unknown: string): ValidationIssue[] {
  return issues.map((i) => {
    let field = v.getDotPath(i) ?? "";
    let value = i.input;
    let message = i.message;
    // an unknown key is reported on its object: name the key itself
    if (i.kind === "schema" && i.type === "strict_object" && i.path) {
      field = i.path.map((p) => String(p.key)).join(".");
      value = i.path[i.path.length - 1]!.value;
      message = unknown;
    }
    return { field: field || root, value, message: message.startsWith("Invalid") ? "is invalid" : message };
  });
}

/**
 * Validates `input` against a valibot schema; throws a `ValidationError` naming every bad field and
 * its value. `context` starts the message ("Invalid enqueue options").
 */
export function validate<S extends v.GenericSchema>(schema: S, input: unknown, context: string): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (r.success) return r.output;
  throw new ValidationError(context, toIssues(r.issues, "(options)", "is not a known option"));
}
