import { type Duration, parseDuration } from "./duration.ts";
import { EnqueueManyError, ValidationError } from "./errors.ts";
import {
  type CancelResult,
  type EnqueuedJob,
  packJob,
  JOB_STATES,
  type JobCounts,
  jobFromHash,
  type JobInfo,
  type JobState,
  markRunning,
} from "./job.ts";
import { globalKeys, GROUP, type QueueKeys, queueKeys } from "./keys.ts";
import { checkSchedule, nextTick, type ScheduleInfo, type ScheduleSpec } from "./schedule.ts";
import { enqueueSpan } from "./tracing.ts";
import { hasMoreBrackets, jsonDepth, MAX_DATA_DEPTH } from "./json.ts";
import { checkName } from "./names.ts";
import { deleteJob, type DeleteResult, type JobPage, listJobs, type ListJobsOptions } from "./inspect.ts";
import { BULK, CANCEL, COUNTS, ENQUEUE, GET_JOB, GROUP_CONCURRENCY, RETRY } from "./lua.ts";
import {
  DEFAULT_ATTEMPTS,
  type EnqueueOptions,
  EnqueueOptionsSchema,
  isWellFormed,
  MAX_DATE,
  resolveBackoff,
  type StoredOptions,
  validate,
} from "./options.ts";
import { isIORedis, type LazyConnection, lazyConnection, type RedisInput, Script, type Send, toSend } from "./send.ts";

/** Options of `new Queue()`. */
export interface QueueOptions {
  /** A `redis://` URL, an ioredis client, or anything that can send a command. @default "redis://127.0.0.1:6379" */
  redis?: RedisInput;
  /** Key prefix. @default "sluice" */
  prefix?: string;
  /** Job ids the lifecycle events stream keeps, about (a batch event counts each id it names); 0 turns events off. @default 10000 */
  eventsMaxLen?: number;
  /**
   * How long a caller-chosen `jobId` stays reserved after its enqueue, even once retention has
   * removed the finished job: an enqueue with the same id in that time writes nothing and answers
   * `duplicate: true` (state `removed`). While the job exists its id is reserved regardless.
   * 0: reserved only while the job exists. Milliseconds or a string. @default "7 days"
   */
  dedupTtl?: Duration;
}

/** One job for `Queue.enqueueMany`. */
export interface JobSpec {
  task: string;
  data?: unknown;
  options?: EnqueueOptions;
}

const scripts = {
  enqueue: new Script(ENQUEUE),
  getJob: new Script(GET_JOB),
  cancel: new Script(CANCEL),
  retry: new Script(RETRY),
  counts: new Script(COUNTS),
  groupConcurrency: new Script(GROUP_CONCURRENCY),
  bulk: new Script(BULK),
};

/** The finished states `clean` removes jobs from. */
export type FinishedState = "completed" | "failed" | "cancelled" | "aborted";

/** Checks a queue name: 1–200 characters, no whitespace or braces (braces would break the hash tag). */
export function checkQueueName(name: unknown, field = "queue"): string {
  return checkName(name, field);
}

interface Prepared {
  /**
   * The job's ARGV slice of the ENQUEUE script: id p runAt dedup (1: a caller's jobId) group.
   * The id is "" until one is needed: a job due now with a generated id and no group (plain)
   * lives in its stream entry alone and takes the entry's id.
   */
  argv: (string | number)[];
}

/** How long a caller-chosen job id stays reserved after its enqueue: 7 days. */
const DEFAULT_DEDUP_TTL = 7 * 86_400_000;

/** Jobs per ENQUEUE script call in enqueueMany, and calls in flight at once. */
const BATCH = 100;
const IN_FLIGHT = 16;

/**
 * The stored options of a job enqueued with every default: none. Only options given are stored,
 * which keeps a small job's hash small enough for Redis's compact encoding.
 */
const DEFAULT_STORED = "";

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

/** An object literal (or a null-prototype object): not an array, a Date, a Map, a class instance. */
function isPlainObject(o: unknown): o is Record<string, unknown> {
  if (o === null || typeof o !== "object" || Array.isArray(o)) return false;
  const proto = Object.getPrototypeOf(o);
  return proto === Object.prototype || proto === null;
}

/** Keys that would reach an object's prototype: refused, never dropped silently. */
const FORBIDDEN_KEYS = ["__proto__", "constructor", "prototype"];

/**
 * A job's data as JSON, or a ValidationError naming `field`: data JSON cannot carry (a function, a
 * Symbol, `undefined` from `toJSON`, a BigInt, a cycle) and data nested deeper than MAX_DATA_DEPTH.
 */
function jsonData(data: unknown, field: string): string {
  let payload: string | undefined;
  try {
    payload = JSON.stringify(data === undefined ? null : data);
  } catch (e) {
    throw new ValidationError("Invalid enqueue arguments", [
      { field, value: data, message: `must be JSON-serialisable (${e instanceof Error ? e.message : "it threw"})` },
    ]);
  }
  if (payload === undefined) {
    throw new ValidationError("Invalid enqueue arguments", [{ field, value: data, message: "must be a value JSON can carry (not a function, a Symbol, or undefined)" }]);
  }
  // MAX_DATA_DEPTH levels take at least twice as many characters: short data needs no scan
  if (payload.length > 2 * MAX_DATA_DEPTH && hasMoreBrackets(payload, MAX_DATA_DEPTH) && jsonDepth(payload) > MAX_DATA_DEPTH) {
    throw new ValidationError("Invalid enqueue arguments", [{ field, value: "(deeply nested)", message: `must not nest deeper than ${MAX_DATA_DEPTH} levels` }]);
  }
  return payload;
}


/** A rate limit: at most `max` jobs per `duration` (finished attempts in any window of that length). */
export interface RateLimit {
  max: number;
  duration: Duration;
}

/** Checks a rate limit; `duration` in ms. Throws a ValidationError naming `field`. */
export function checkRateLimit(limit: unknown, field: string): { max: number; duration: number } {
  const l = limit as RateLimit;
  if (typeof l !== "object" || l === null) throw new ValidationError("Invalid rate limit", [{ field, value: limit, message: "must be { max, duration }" }]);
  if (!Number.isInteger(l.max) || l.max < 1 || l.max > 1e9) throw new ValidationError("Invalid rate limit", [{ field: field + ".max", value: l.max, message: "must be an integer from 1 to 1e9" }]);
  let duration: number;
  try {
    duration = parseDuration(l.duration, field + ".duration");
  } catch {
    throw new ValidationError("Invalid rate limit", [{ field: field + ".duration", value: l.duration, message: "must be a duration (ms or a string such as \"1s\")" }]);
  }
  if (duration < 1) throw new ValidationError("Invalid rate limit", [{ field: field + ".duration", value: l.duration, message: "must be at least 1 ms" }]);
  return { max: l.max, duration };
}

/** Counters of a queue since it began (not bounded by retention); each is 0 until it first counts. */
export interface QueueStats {
  completed: number;
  failed: number;
  /** Failed attempts scheduled for a retry. */
  retried: number;
  aborted: number;
  /** Attempts stopped by a worker's shutdown and re-queued, not counted. */
  interrupted: number;
  /** Jobs recovered from workers that stopped heartbeating. */
  stalled: number;
  /** Attempts found reclaimed by another worker (nothing written for them). */
  lost: number;
  /** Jobs handed back unstarted (delivered by a reply that was lost, or at a worker's stop). */
  requeued: number;
  /** Stream entries whose job hash was gone. */
  missing: number;
  /** Running jobs whose stream entry was deleted under them (their outcome is still written). */
  orphaned: number;
  [counter: string]: number;
}

/**
 * The producer side of one queue: enqueue, inspect, retry and cancel jobs. Needs only something
 * that can send a Redis command, so it also runs in edge and serverless handlers.
 *
 * @example
 * ```ts
 * const queue = new Queue("emails", { redis: "redis://localhost:6379" });
 * const job = await queue.enqueue("send-welcome", { to: "a@example.com" }, { attempts: 5 });
 * console.log(await queue.getJob(job.id));
 * await queue.close();
 * ```
 */
export class Queue {
  readonly name: string;
  readonly prefix: string;
  readonly keys: QueueKeys;
  readonly #send: Send;
  readonly #owned: LazyConnection | undefined;
  readonly #eventsMaxLen: number;
  readonly #dedupTtl: number;

  constructor(name: string, options: QueueOptions = {}) {
    this.name = checkQueueName(name);
    if (options === null || typeof options !== "object" || Array.isArray(options)) {
      throw new ValidationError("Invalid queue options", [{ field: "options", value: options, message: "must be an object" }]);
    }
    this.prefix = checkName(options.prefix ?? "sluice", "prefix");
    this.#eventsMaxLen = options.eventsMaxLen ?? 10_000;
    if (!Number.isInteger(this.#eventsMaxLen) || this.#eventsMaxLen < 0 || this.#eventsMaxLen > 1e9) {
      throw new ValidationError("Invalid queue options", [{ field: "eventsMaxLen", value: options.eventsMaxLen, message: "must be an integer from 0 to 1e9" }]);
    }
    try {
      this.#dedupTtl = options.dedupTtl === undefined ? DEFAULT_DEDUP_TTL : parseDuration(options.dedupTtl, "dedupTtl");
    } catch (e) {
      throw new ValidationError("Invalid queue options", [{ field: "dedupTtl", value: options.dedupTtl, message: (e as Error).message }]);
    }
    this.keys = queueKeys(this.prefix, name);
    const redis = options.redis ?? "redis://127.0.0.1:6379";
    try {
      if (typeof redis === "string") {
        // ioredis is loaded on the first command: code given a command sender never loads it
        this.#owned = lazyConnection(redis);
        this.#send = this.#owned.send;
      } else {
        this.#send = toSend(isIORedis(redis) ? redis : (redis as Exclude<RedisInput, string>));
      }
    } catch {
      throw new ValidationError("Invalid queue options", [{ field: "redis", value: redis, message: "must be a redis:// URL, an ioredis client, or an object with send()/call()" }]);
    }
  }

  /** Sends one command on this queue's connection. */
  send(command: string, args: (string | number)[]): Promise<unknown> {
    return this.#send(command, args);
  }

  #prepare(task: string, data: unknown, options: EnqueueOptions = {}, field = "", traceparent?: string): Prepared {
    if (typeof task !== "string" || task.length === 0 || task.length > 200 || /[\x00-\x1f]/.test(task) || !isWellFormed(task)) {
      throw new ValidationError("Invalid enqueue arguments", [
        { field: field + "task", value: task, message: "must be a non-empty string of at most 200 characters without control characters or lone surrogates" },
      ]);
    }
    let opts: ReturnType<typeof validate<typeof EnqueueOptionsSchema>>;
    const payload = jsonData(data, field + "data");
    if (options !== undefined && !isPlainObject(options)) {
      throw new ValidationError("Invalid enqueue options", [{ field: field ? field.slice(0, -1) + ".options" : "options", value: options, message: "must be a plain object of options" }]);
    }
    if ((options === undefined || isEmpty(options)) && traceparent === undefined) {
      // the common case, kept cheap for bulk enqueues: every default
      return { argv: ["", packJob(task, payload, DEFAULT_STORED, DEFAULT_ATTEMPTS, Date.now()), 0, 0, ""] };
    }
    for (const key of FORBIDDEN_KEYS) {
      if (Object.hasOwn(options, key)) {
        throw new ValidationError("Invalid enqueue options", [{ field: field + key, value: (options as Record<string, unknown>)[key], message: "is not a known option" }]);
      }
    }
    try {
      opts = validate(EnqueueOptionsSchema, options ?? {}, "Invalid enqueue options");
    } catch (e) {
      // in enqueueMany, name the field with the job's index: "2.attempts"
      if (!field || !ValidationError.is(e)) throw e;
      throw new ValidationError("Invalid enqueue options", e.issues.map((i) => ({ ...i, field: field + i.field })));
    }
    const now = Date.now();
    const runAt = opts.runAt !== undefined
      ? (opts.runAt instanceof Date ? opts.runAt.getTime() : opts.runAt)
      : opts.delay !== undefined
      ? now + parseDuration(opts.delay, "delay")
      : 0;
    if (runAt > MAX_DATE) {
      throw new ValidationError("Invalid enqueue options", [{ field: field + "runAt", value: opts.runAt, message: "must be a time a Date can hold" }]);
    }
    const stored: StoredOptions = {};
    if (opts.backoff !== undefined) stored.backoff = resolveBackoff(opts.backoff);
    if (opts.timeout !== undefined) stored.timeout = parseDuration(opts.timeout, "timeout");
    if (traceparent !== undefined) stored.tp = traceparent;
    // a generated id is the entry's for a job due now with no group, else a UUID (at write)
    const id = opts.jobId ?? "";
    const storedText = stored.backoff || stored.timeout !== undefined || stored.tp !== undefined ? JSON.stringify(stored) : DEFAULT_STORED;
    const p = packJob(task, payload!, storedText, opts.attempts ?? DEFAULT_ATTEMPTS, now);
    return { argv: [id, p, runAt, opts.jobId === undefined ? 0 : 1, opts.group ?? ""] };
  }

  /** Runs the ENQUEUE script for a batch of prepared jobs. */
  async #write(batch: Prepared[]): Promise<EnqueuedJob[]> {
    const k = this.keys;
    // the call's id lets a re-sent call know itself; a caller's jobId carries it (with its index),
    // so a re-sent call also knows its own job from a duplicate
    const nonce = crypto.randomUUID();
    // jobs due now, with generated ids and no group (the common batch) send p only: each lives in
    // its stream entry, whose id is its id
    const plain = batch.every((p) => p.argv[2] === 0 && p.argv[3] === 0 && p.argv[4] === "");
    const argv: (string | number)[] = [k.base, GROUP, Date.now(), this.#eventsMaxLen, this.#dedupTtl, nonce, plain ? 1 : 5];
    if (plain) {
      for (const p of batch) argv.push(p.argv[1]!);
      const reply = (await scripts.enqueue.run(this.#send, [k.stream, k.delayed, k.events], argv)) as string[];
      const ids = String(reply[1]).split(" ");
      return ids.map((id) => ({ id, queue: this.name, state: "waiting", duplicate: false }));
    }
    const ids = batch.map((p) => (p.argv[0] as string) || crypto.randomUUID());
    batch.forEach((p, i) => argv.push(ids[i]!, p.argv[1]!, p.argv[2]!, p.argv[3] === 1 ? nonce + i : "", p.argv[4]!));
    const reply = (await scripts.enqueue.run(this.#send, [k.stream, k.delayed, k.events], argv)) as string[];
    // {'*', answer}: every job of the batch got that answer
    const all = reply[0] === "*" ? reply[1]! : undefined;
    return batch.map((_, i) => {
      const r = all ?? reply[i]!;
      return { id: ids[i]!, queue: this.name, state: r.slice(1) as EnqueuedJob["state"], duplicate: r[0] === "=" };
    });
  }

  /**
   * Adds a job for `task`. With a `jobId` that exists already, returns that job (`duplicate: true`)
   * and writes nothing. Invalid options throw a `ValidationError` naming the field and nothing is
   * written.
   *
   * @example
   * ```ts
   * await queue.enqueue("resize", { src: "a.png" }, { delay: "10s", attempts: 5, jobId: "resize:a.png" });
   * ```
   */
  async enqueue(task: string, data?: unknown, options?: EnqueueOptions): Promise<EnqueuedJob> {
    const prepared = this.#prepare(task, data, options);
    const span = await enqueueSpan(this.name, task, 1);
    if (!span) return (await this.#write([prepared]))[0]!;
    try {
      const [job] = await this.#write([span.traceparent ? this.#prepare(task, data, options, "", span.traceparent) : prepared]);
      span.end();
      return job!;
    } catch (e) {
      span.end(e);
      throw e;
    }
  }

  /**
   * Adds many jobs: a hundred per script call, many calls in flight. Every job is validated before
   * anything is sent: one bad job throws a `ValidationError` (its field prefixed by its index) and
   * none is written. A job whose `jobId` exists already, or appears earlier in the same call, comes
   * back `duplicate: true`. When Redis fails part-way, no further batch is sent and an
   * `EnqueueManyError` lists the jobs stored (`stored`); the error is its `cause`.
   *
   * @example
   * ```ts
   * await queue.enqueueMany([{ task: "a", data: 1 }, { task: "b", data: 2, options: { delay: 1000 } }]);
   * ```
   */
  async enqueueMany(jobs: JobSpec[]): Promise<EnqueuedJob[]> {
    if (!Array.isArray(jobs)) {
      throw new ValidationError("Invalid enqueueMany arguments", [{ field: "jobs", value: jobs, message: "must be an array" }]);
    }
    // a plain loop, not map(): map skips the holes of a sparse array, which must be refused too
    const prepared: Prepared[] = new Array(jobs.length);
    for (let i = 0; i < jobs.length; i++) {
      const j = jobs[i];
      if (typeof j !== "object" || j === null || Array.isArray(j)) {
        throw new ValidationError("Invalid enqueueMany arguments", [{ field: `${i}`, value: j, message: "must be { task, data?, options? }" }]);
      }
      prepared[i] = this.#prepare(j.task, j.data, j.options, `${i}.`);
    }
    // one span for the call; its trace context goes with each job
    const span = prepared.length > 0 ? await enqueueSpan(this.name, String(jobs[0]!.task), prepared.length) : undefined;
    if (span?.traceparent) {
      for (let i = 0; i < jobs.length; i++) prepared[i] = this.#prepare(jobs[i]!.task, jobs[i]!.data, jobs[i]!.options, `${i}.`, span.traceparent);
    }
    // BATCH jobs per script call; IN_FLIGHT calls on the wire at once, so Redis runs one batch
    // while the client encodes the next
    const out: (EnqueuedJob | undefined)[] = new Array(prepared.length);
    let next = 0;
    let failure: { error: unknown } | undefined;
    const lane = async () => {
      while (next < prepared.length && !failure) {
        const start = next;
        next += BATCH;
        try {
          const written = await this.#write(prepared.slice(start, start + BATCH));
          for (let i = 0; i < written.length; i++) out[start + i] = written[i]!;
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, Math.ceil(prepared.length / BATCH)) }, lane));
    span?.end(failure?.error);
    if (failure) {
      // batches already on the wire when the first one failed may have been stored: say which
      throw new EnqueueManyError(failure.error, out.filter((j): j is EnqueuedJob => j !== undefined), prepared.length);
    }
    return out as EnqueuedJob[];
  }

  /** Reads one job, or null when there is no such job (never was, or removed by retention). */
  async getJob(id: string): Promise<JobInfo | null> {
    checkId(id, "getJob");
    const [fields, pending] = (await scripts.getJob.run(this.#send, [this.keys.job(id), this.keys.stream, this.keys.done], [GROUP, id])) as [unknown, unknown[]];
    const h = toObject(fields);
    if (!h.state) return null;
    const job = jobFromHash(this.name, id, h);
    if (Array.isArray(pending) && pending.length === 2) markRunning(job, String(pending[0]), Number(pending[1]));
    return job;
  }

  /**
   * Number of jobs in each state.
   *
   * @example
   * ```ts
   * const { waiting, active, failed } = await queue.counts();
   * ```
   */
  async counts(): Promise<JobCounts> {
    const k = this.keys;
    const r = (await scripts.counts.run(this.#send, [k.stream, k.delayed, k.completed, k.failed, k.cancelled, k.aborted], [GROUP, k.base])) as number[];
    const counts = {} as JobCounts;
    JOB_STATES.forEach((s, i) => (counts[s] = Number(r[i])));
    return counts;
  }

  /**
   * Jobs finished per minute over the last `minutes` (at most 120, kept by the workers' finish
   * scripts for two hours), oldest first: `{ minute (epoch ms), completed, failed }` — failed
   * counts jobs that failed for good or were aborted.
   */
  async throughput(minutes = 60): Promise<{ minute: number; completed: number; failed: number }[]> {
    const n = Math.max(1, Math.min(120, Math.floor(minutes)));
    const now = Math.floor(Date.now() / 60_000);
    const rows = await Promise.all(Array.from({ length: n }, async (_, i) => {
      const m = now - n + 1 + i;
      const h = toObject(await this.#send("HGETALL", [this.keys.base + "m:" + m]));
      return { minute: m * 60_000, completed: Number(h.c ?? 0), failed: Number(h.f ?? 0) };
    }));
    return rows;
  }

  /** The job's log lines (`ctx.log`), oldest first: `{ t, attempt, message }`. */
  async getJobLog(id: string): Promise<{ t: number; attempt: number; message: string }[]> {
    checkId(id, "getJobLog");
    const lines = (await this.#send("LRANGE", [this.keys.log(id), 0, -1])) as string[];
    return lines.flatMap((l) => {
      try {
        return [JSON.parse(String(l))];
      } catch {
        return [];
      }
    });
  }

  /** Runs a bulk action chunk by chunk (500 jobs each) until one touches nothing; returns the total. */
  async #bulk(action: string, arg = "", state = ""): Promise<number> {
    const k = this.keys;
    let total = 0;
    while (true) {
      const [n, scanned] = (await scripts.bulk.run(this.#send, [k.stream, k.delayed, k.completed, k.failed, k.cancelled, k.aborted, k.events], [k.base, GROUP, action, Date.now(), 500, this.#eventsMaxLen, arg, state])) as [number, number];
      total += Number(n);
      if (Number(scanned) === 0) return total;
    }
  }

  /**
   * Retries every failed job (or every aborted one) — or only the jobs `ids` names. Each goes back
   * to waiting with its attempts reset (grouped jobs wait their group's turn). Returns how many.
   */
  async retryAll(options: { state?: "failed" | "aborted"; ids?: string[] } = {}): Promise<number> {
    if (options.ids !== undefined) {
      if (!Array.isArray(options.ids) || options.ids.length > 10_000) throw new ValidationError("Invalid retryAll options", [{ field: "ids", value: options.ids, message: "must be an array of at most 10000 job ids" }]);
      let n = 0;
      for (const id of options.ids) if (await this.retry(id)) n++;
      return n;
    }
    const state = options.state ?? "failed";
    if (state !== "failed" && state !== "aborted") throw new ValidationError("Invalid retryAll options", [{ field: "state", value: state, message: 'must be "failed" or "aborted"' }]);
    return await this.#bulk("retry", state);
  }

  /** Deletes the jobs of a finished state that finished more than `olderThan` ago. Returns how many. */
  async clean(state: FinishedState, olderThan: Duration): Promise<number> {
    if (!["completed", "failed", "cancelled", "aborted"].includes(state)) {
      throw new ValidationError("Invalid clean arguments", [{ field: "state", value: state, message: "must be completed, failed, cancelled or aborted" }]);
    }
    let age: number;
    try {
      age = parseDuration(olderThan, "olderThan");
    } catch {
      throw new ValidationError("Invalid clean arguments", [{ field: "olderThan", value: olderThan, message: 'must be a duration such as "1h" (0: all)' }]);
    }
    return await this.#bulk("clean", String(age), state);
  }

  /** Makes every delayed job (retries waiting for their backoff included) ready now. Returns how many. */
  async promoteAll(): Promise<number> {
    return await this.#bulk("promote");
  }

  /** Cancels every waiting job (those their groups hold back included). Returns how many. */
  async cancelAll(): Promise<number> {
    return await this.#bulk("cancel");
  }

  /**
   * Creates or replaces a schedule: a job of `spec.task` on every tick of `spec.cron` (seconds
   * optional, in `spec.tz`) or every `spec.every`. Any worker of the queue enqueues the ticks,
   * exactly one job per tick however many run (the tick's job id, `sched:<id>:<tick ms>`, is its
   * dedup key). Setting a schedule again with the same spec keeps its next tick (an app may call
   * this at every start); a changed spec starts from now. Returns the next tick (epoch ms).
   *
   * @example
   * ```ts
   * await queue.upsertSchedule("nightly-report", { cron: "0 0 3 * * *", tz: "Europe/Berlin", task: "report" });
   * await queue.upsertSchedule("heartbeat", { every: "30s", task: "ping", misfire: "skip" });
   * ```
   */
  async upsertSchedule(id: string, spec: ScheduleSpec): Promise<{ id: string; next: number | undefined }> {
    const now = Date.now();
    const stored = checkSchedule(id, spec, now);
    // the jobs it will enqueue are checked now, as an enqueue checks them
    this.#prepare(stored.task, stored.data, stored.options);
    const k = this.keys;
    const [old, oldNext] = (await Promise.all([this.#send("HGET", [k.schedules, id]), this.#send("ZSCORE", [k.scheduleNext, id])])) as [string | null, string | null];
    if (old) {
      const prev = JSON.parse(old) as typeof stored;
      if (JSON.stringify({ ...prev, anchor: 0 }) === JSON.stringify({ ...stored, anchor: 0 })) {
        return { id, next: oldNext === null ? undefined : Number(oldNext) };
      }
    }
    const next = nextTick(stored, now);
    await this.#send("HSET", [k.schedules, id, JSON.stringify(stored)]);
    if (next === undefined) await this.#send("ZREM", [k.scheduleNext, id]);
    else await this.#send("ZADD", [k.scheduleNext, next, id]);
    return { id, next };
  }

  /** Removes a schedule (jobs it enqueued stay). Returns false when there was none. */
  async removeSchedule(id: string): Promise<boolean> {
    const k = this.keys;
    const [removed] = (await Promise.all([
      this.#send("HDEL", [k.schedules, id]),
      this.#send("ZREM", [k.scheduleNext, id]),
      this.#send("HDEL", [k.scheduleLast, id]),
      this.#send("HDEL", [k.base + "sched:claim", id]),
    ])) as number[];
    return Number(removed) === 1;
  }

  /** The queue's schedules with their next tick and the last tick a job was enqueued for. */
  async listSchedules(): Promise<ScheduleInfo[]> {
    const k = this.keys;
    const [specs, next, last] = await Promise.all([
      this.#send("HGETALL", [k.schedules]),
      this.#send("ZRANGE", [k.scheduleNext, 0, -1, "WITHSCORES"]),
      this.#send("HGETALL", [k.scheduleLast]),
    ]);
    // WITHSCORES: a flat [member, score, …] (RESP2) or [[member, score], …] (RESP3)
    const nextBy = toObject(Array.isArray(next) && Array.isArray(next[0]) ? next.flat() : next);
    const lastBy = toObject(last);
    return Object.entries(toObject(specs)).map(([id, json]) => {
      const info: ScheduleInfo = { id, ...(JSON.parse(json) as Omit<ScheduleInfo, "id">) };
      const n = nextBy[id] === undefined ? undefined : Number(nextBy[id]);
      if (n !== undefined) info.next = n;
      if (lastBy[id] !== undefined) info.last = Number(lastBy[id]);
      return info;
    }).sort((a, b) => (a.next ?? Infinity) - (b.next ?? Infinity));
  }

  /**
   * Pauses the queue for every worker at once: workers stop starting its jobs (a message tells
   * them now; the fetch scripts check the flag too, so a worker that missed it starts nothing
   * either). Running jobs finish; enqueueing goes on. Stays paused until `resume()`.
   */
  async pause(): Promise<void> {
    await this.#send("HSET", [this.keys.config, "paused", "1"]);
    await this.#send("PUBLISH", [globalKeys(this.prefix).control, JSON.stringify({ action: "pause", queue: this.name })]);
  }

  /** Resumes a paused queue: its workers start its jobs again. */
  async resume(): Promise<void> {
    await this.#send("HDEL", [this.keys.config, "paused"]);
    await this.#send("PUBLISH", [globalKeys(this.prefix).control, JSON.stringify({ action: "resume", queue: this.name })]);
  }

  /**
   * Caps how many jobs of one group (`enqueue(…, { group })`) are released to the workers at
   * once, across all of them: the rest wait, and each group's next job goes in as one of its jobs
   * ends, so one group's backlog cannot starve the others. `null` removes the cap (held jobs go in).
   * Workers given the `groupConcurrency` option set it at start.
   */
  async setGroupConcurrency(n: number | null): Promise<void> {
    if (n !== null && (!Number.isInteger(n) || n < 1 || n > 1e6)) {
      throw new ValidationError("Invalid group concurrency", [{ field: "groupConcurrency", value: n, message: "must be an integer from 1 to 1e6, or null" }]);
    }
    await scripts.groupConcurrency.run(this.#send, [this.keys.stream], [this.keys.base, n === null ? "" : n]);
  }

  /** The queue's group concurrency, or null when there is none. */
  async groupConcurrency(): Promise<number | null> {
    const v = await this.#send("HGET", [this.keys.config, "gc"]);
    return v === null || v === undefined ? null : Number(v);
  }

  /** Whether the queue is paused. */
  async isPaused(): Promise<boolean> {
    return String(await this.#send("HGET", [this.keys.config, "paused"])) === "1";
  }

  /**
   * Limits how many of the queue's jobs run per `duration`, across all its workers (enforced in
   * Redis, in the fetch scripts): no window of `duration` holds more than `max` finished attempts.
   * Jobs held back stay waiting, their attempt not counted. `null` removes the limit. Workers given
   * the `rateLimit` option set it at start.
   */
  async setRateLimit(limit: RateLimit | null): Promise<void> {
    if (limit === null) {
      await this.#send("HDEL", [this.keys.config, "rlMax", "rlDur"]);
      return;
    }
    const { max, duration } = checkRateLimit(limit, "rateLimit");
    await this.#send("HSET", [this.keys.config, "rlMax", max, "rlDur", duration]);
  }

  /** The queue's rate limit, or null. */
  async rateLimit(): Promise<{ max: number; duration: number } | null> {
    const [max, dur] = (await this.#send("HMGET", [this.keys.config, "rlMax", "rlDur"])) as (string | null)[];
    return max ? { max: Number(max), duration: Number(dur) } : null;
  }

  /**
   * The queue's counters since it was created: jobs completed, failed, retried, aborted,
   * interrupted, stalled, lost, requeued and missing. Kept in Redis by the transition scripts, so
   * retention does not bound them; Prometheus reads them as counters (`/metrics`).
   *
   * @example
   * ```ts
   * const { completed, failed } = await queue.stats();
   * ```
   */
  async stats(): Promise<QueueStats> {
    const h = toObject(await this.#send("HGETALL", [this.keys.base + "stats"]));
    const out: QueueStats = { completed: 0, failed: 0, retried: 0, aborted: 0, interrupted: 0, stalled: 0, lost: 0, requeued: 0, missing: 0, orphaned: 0 };
    for (const [k, v] of Object.entries(h)) out[k] = Number(v);
    return out;
  }

  /**
   * Re-queues a failed (or aborted) job with its attempts reset. Returns false, writing nothing,
   * when the job is in another state or missing.
   */
  async retry(id: string): Promise<boolean> {
    checkId(id, "retry");
    const k = this.keys;
    const [ok] = (await scripts.retry.run(this.#send, [k.stream, k.failed, k.aborted, k.events], [k.base, id, Date.now(), this.#eventsMaxLen, callId()])) as [number, string];
    return ok === 1;
  }

  /**
   * Cancels a job. Waiting or delayed: it will not run (`{ delete: true }` also removes it).
   * Active: with `{ abort: true }` its worker, in whatever process, aborts its signal with reason
   * `user` and it ends `aborted`; without, nothing changes. Finished: nothing changes. The result
   * says which.
   *
   * @example
   * ```ts
   * const r = await queue.cancel(id, { abort: true });
   * if (r.outcome === "finished") console.log("too late: it already ended", r.previousState);
   * ```
   */
  async cancel(id: string, options: { abort?: boolean; delete?: boolean } = {}): Promise<CancelResult> {
    checkId(id, "cancel");
    if (options === null || typeof options !== "object" || Array.isArray(options)) {
      throw new ValidationError("Invalid cancel arguments", [{ field: "options", value: options, message: "must be { abort?, delete? }" }]);
    }
    for (const key of ["abort", "delete"] as const) {
      if (options[key] !== undefined && typeof options[key] !== "boolean") {
        throw new ValidationError("Invalid cancel arguments", [{ field: `options.${key}`, value: options[key], message: "must be a boolean" }]);
      }
    }
    const k = this.keys;
    const [outcome, prev] = (await scripts.cancel.run(
      this.#send,
      [k.stream, k.delayed, k.cancelled, k.events],
      [k.base, GROUP, id, Date.now(), options.abort ? 1 : 0, options.delete ? 1 : 0, this.#eventsMaxLen, k.abortChannel, callId()],
    )) as [CancelResult["outcome"], string];
    return prev ? { id, outcome, previousState: prev as JobState } : { id, outcome };
  }

  /**
   * One page of the jobs in `state`: waiting and delayed ones in the order they will run, active
   * ones oldest first, finished ones newest first. Pass `nextCursor` back for the next page; jobs
   * that move between pages are not repeated within a state.
   *
   * @example
   * ```ts
   * let page = await queue.listJobs("failed", { limit: 100 });
   * while (page.nextCursor) page = await queue.listJobs("failed", { cursor: page.nextCursor });
   * ```
   */
  listJobs(state: JobState, options: ListJobsOptions = {}): Promise<JobPage> {
    return listJobs(this.#send, this.name, this.keys, state, options);
  }

  /**
   * Removes a job from wherever it is (stream entry, delayed or finished set, its hash). An active
   * job is refused (`outcome: "active"`): abort it first with `cancel(id, { abort: true })`.
   *
   * @example
   * ```ts
   * const r = await queue.deleteJob(id);
   * if (r.outcome === "active") await queue.cancel(id, { abort: true });
   * ```
   */
  async deleteJob(id: string): Promise<DeleteResult> {
    checkId(id, "deleteJob");
    return deleteJob(this.#send, this.keys, id, this.#eventsMaxLen);
  }

  /** Closes the connection if this queue opened it (a client passed in is left open). */
  async close(): Promise<void> {
    await this.#owned?.close();
  }

}

/**
 * Checks a job id given to a call: a non-empty string of at most 256 characters, without lone
 * surrogates (two ids differing only in one would name the same key).
 */
function checkId(id: unknown, call: string): asserts id is string {
  if (typeof id !== "string" || id === "" || id.length > 256 || !isWellFormed(id)) {
    throw new ValidationError(`Invalid ${call} arguments`, [{ field: "id", value: id, message: "must be a job id: a non-empty string of at most 256 characters" }]);
  }
}

/** A unique id for one call, so a script run twice (a re-sent command) recognises its own work. */
function callId(): string {
  return crypto.randomUUID();
}

/** HGETALL replies are flat arrays from raw `call`/`send`, objects from some clients. */
export function toObject(reply: unknown): Record<string, string> {
  if (Array.isArray(reply)) {
    const o: Record<string, string> = {};
    for (let i = 0; i < reply.length; i += 2) o[String(reply[i])] = String(reply[i + 1]);
    return o;
  }
  if (reply && typeof reply === "object") return reply as Record<string, string>;
  return {};
}

