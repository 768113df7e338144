import type { AbortReason } from "./errors.ts";

/** Where a job is in its life. See DESIGN section 2 for the transitions. */
export type JobState = "waiting" | "delayed" | "active" | "completed" | "failed" | "cancelled" | "aborted";

/** The states a job can be counted in. */
export const JOB_STATES: readonly JobState[] = ["waiting", "active", "delayed", "completed", "failed", "cancelled", "aborted"];

/** Number of jobs in each state of one queue. */
export type JobCounts = Record<JobState, number>;

/** An error as stored with a job. */
export interface StoredError {
  name: string;
  message: string;
  stack?: string;
  /** Set when the attempt ended because its signal was aborted. */
  abortReason?: AbortReason;
}

/** A job as read back from Redis by `Queue.getJob`. */
export interface JobInfo {
  id: string;
  queue: string;
  /** The task name given to `enqueue`. */
  name: string;
  state: JobState;
  data: unknown;
  /** Attempts started and counted so far (interrupted and stalled runs are not counted). */
  attempt: number;
  maxAttempts: number;
  /** Times the job was recovered from a worker that stopped heartbeating. */
  stalls: number;
  createdAt: number;
  runAt?: number;
  startedAt?: number;
  finishedAt?: number;
  result?: unknown;
  error?: StoredError;
  progress?: unknown;
  /** Consumer (worker id) running it, while active. */
  owner?: string;
  /** Set when an abort was requested for it (`user`). */
  abortRequested?: string;
}

/** What `Queue.enqueue` returns. */
export interface EnqueuedJob {
  /**
   * The job's id: the caller's `jobId`, else generated (a job due now with no group takes its
   * stream entry's id, such as `1733140000000-0`; a delayed or grouped job gets a UUID).
   */
  id: string;
  queue: string;
  /**
   * `waiting` or `delayed` for a new job; the existing job's state when `duplicate`, or `removed`
   * when the job ran and retention removed it while its id is still reserved (`dedupTtl`).
   */
  state: JobState | "removed";
  /** True when a job with this `jobId` existed already; nothing was written. */
  duplicate: boolean;
}

/** What `Queue.cancel` did. */
export interface CancelResult {
  id: string;
  /**
   * `cancelled`: it was waiting or delayed and will not run. `abort-requested`: it was active and its
   * worker is asked to abort it (reason `user`). `active`: it is running and `abort` was not set, so
   * nothing changed. `finished`: it had already ended; nothing changed. `missing`: no such job.
   */
  outcome: "cancelled" | "abort-requested" | "active" | "finished" | "missing";
  /** The state the job was in. */
  previousState?: JobState;
}

function num(s: string | undefined): number | undefined {
  return s === undefined || s === "" ? undefined : Number(s);
}
function json(s: string | undefined): unknown {
  if (s === undefined || s === "") return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

/**
 * The fields of a job that never change, packed into one string (stored in the job hash and in
 * its stream entry as `p`): name, data, options, max attempts, created at, NUL-separated. None
 * can hold a NUL: task names are checked and JSON escapes control characters.
 */
export function packJob(name: string, data: string, opts: string, max: number, created: number): string {
  return name + "\0" + data + "\0" + opts + "\0" + max + "\0" + created;
}

/** The fields `packJob` packed. */
export function unpackJob(p: string | undefined): { name: string; data: string; opts: string; max: string; created: string } {
  const [name = "", data = "", opts = "", max = "", created = ""] = (p ?? "").split("\0");
  return { name, data, opts, max, created };
}

/**
 * Marks a job read from its hash as running: it waits on an entry that `owner` was delivered
 * `sinceMs` ago (nothing stored says `active`; the pending list holds the attempt, which its
 * stored `attempt` does not count yet).
 */
export function markRunning(job: { state: JobState; attempt: number; startedAt?: number; owner?: string }, owner: string, sinceMs: number): void {
  job.state = "active";
  job.owner = owner;
  job.attempt += 1;
  job.startedAt = Date.now() - sinceMs;
}

/** Builds a JobInfo from a job hash (HGETALL reply as an object). */
export function jobFromHash(queue: string, id: string, h: Record<string, string>): JobInfo {
  const p = unpackJob(h.p);
  return {
    id,
    queue,
    name: p.name,
    state: h.state as JobState,
    data: json(p.data),
    attempt: num(h.attempt) ?? 0,
    maxAttempts: num(p.max) ?? 1,
    stalls: num(h.stalls) ?? 0,
    createdAt: num(p.created) ?? 0,
    runAt: num(h.runAt),
    startedAt: num(h.started),
    finishedAt: num(h.finished),
    result: json(h.result),
    error: json(h.error) as StoredError | undefined,
    progress: json(h.progress),
    abortRequested: h.abort || undefined,
  };
}

/** Reads `read()` as text for a stored error; whatever it throws or returns, never throws. */
function text(read: () => unknown, fallback: string): string {
  try {
    const v = read();
    if (typeof v === "string") return v.length > 10_000 ? v.slice(0, 10_000) + "…" : v;
    if (v === undefined || v === null) return fallback;
    const json = safeJson(v);
    if (json !== undefined) return json.length > 10_000 ? json.slice(0, 10_000) + "…" : json;
    return String(v);
  } catch {
    return fallback;
  }
}

/**
 * Serialises an error for storage. Never throws, whatever was thrown: an object whose `toJSON`
 * or getters throw, a null-prototype object, a Proxy, an Error whose `message` is a BigInt.
 */
export function storeError(e: unknown, abortReason?: AbortReason): string {
  let isError = false;
  try {
    isError = e instanceof Error;
  } catch {
    // a Proxy whose getPrototypeOf trap throws
  }
  const err: StoredError = isError
    ? {
      name: text(() => (e as Error).name, "Error"),
      message: text(() => (e as Error).message, "(an error whose message could not be read)"),
      stack: text(() => (e as Error).stack, "") || undefined,
    }
    : { name: "Error", message: text(() => e, "(a thrown value that cannot be shown)") };
  if (abortReason) err.abortReason = abortReason;
  return JSON.stringify(err);
}

export function safeJson(x: unknown): string | undefined {
  try {
    return JSON.stringify(x);
  } catch {
    return undefined;
  }
}

/** Upper bounds (seconds) of the job duration and wait-time histogram buckets (`/metrics`). */
export const HISTOGRAM_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];
