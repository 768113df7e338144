import type { JobContext } from "./context.ts";
import { type Duration, parseDuration } from "./duration.ts";
import type { EndCondition } from "./end-condition.ts";
import { ValidationError } from "./errors.ts";
import { checkName } from "./names.ts";
import { isWellFormed } from "./options.ts";
import { MAX_TIMER } from "./timers.ts";
import { type IORedis, isIORedis } from "./redis.ts";
import type { PooledTask, PoolOptions, PoolSettings } from "./pool/pool.ts";
import type { Execution, PoolSpawner } from "./pool/protocol.ts";
import { checkRateLimit, type RateLimit } from "./queue.ts";

/** A job handler: `async (data, ctx) => result`. The result is stored as JSON. */
// deno-lint-ignore no-explicit-any
export type Handler<D = any, R = unknown> = (data: D, ctx: JobContext) => R | Promise<R>;

/** A task with its own settings. */
export interface TaskDefinition<D = unknown, R = unknown> {
  handler: Handler<D, R>;
  /** Abort each attempt (reason `timeout`) after this long; a job's own `timeout` wins. */
  timeout?: Duration;
  /** While it holds, running jobs of this task abort with reason `end-condition`. */
  endCondition?: EndCondition;
}

/**
 * A task that runs off the main thread, in the worker's pool: a thread or a child process imports
 * `module` and runs its export `export` as the handler, with the same `ctx`. Data and results
 * cross as structured clones (and results are stored as JSON). An abort that the handler ignores
 * for `pool.abortGrace` ends the thread or process, so even `while (true) {}` stops.
 *
 * @example
 * ```ts
 * const tasks = {
 *   resize: { module: new URL("./resize.ts", import.meta.url), export: "resize", execution: "thread", timeout: "30s" },
 * };
 * ```
 */
export interface PooledTaskDefinition {
  /** The module: a URL (`new URL("./heavy.ts", import.meta.url)`), a `file:` URL string or an absolute path. */
  module: URL | string;
  /** The export that is the handler. @default "default" */
  export?: string;
  /** A thread (cheap, shares the process) or a child process (isolated memory). */
  execution: Execution;
  /** Abort each attempt (reason `timeout`) after this long; a job's own `timeout` wins. */
  timeout?: Duration;
  /** While it holds, running jobs of this task abort with reason `end-condition`. */
  endCondition?: EndCondition;
}

/** Tasks by name: a handler, a handler with settings, or a task run off the main thread (execution "thread" or "process"). */
// deno-lint-ignore no-explicit-any
export type Tasks = Record<string, Handler<any, any> | TaskDefinition<any, any> | PooledTaskDefinition>;

/** A task as the worker keeps it: an inline handler, or the module a pool child runs. */
export interface ResolvedTask {
  handler?: Handler;
  pooled?: PooledTask;
  timeout?: Duration;
  endCondition?: EndCondition;
}

/** How long finished jobs are kept. `count`: the newest N; `age`: no older than this. */
export interface RetentionPolicy {
  count?: number;
  age?: Duration;
}

/** One lifecycle log line of a worker. */
export interface LogEntry {
  level: "info" | "warn" | "error";
  /** started, draining, aborting, job-interrupted, job-abandoned, stopped, error, … */
  event: string;
  message: string;
  [field: string]: unknown;
}

/** Options of `new Worker()`. Durations are milliseconds or strings such as "10s". */
export interface WorkerOptions {
  /** The tasks this worker runs, by name. */
  tasks: Tasks;
  /** A `redis://` URL or an ioredis client (the worker duplicates it for its blocking reads). @default "redis://127.0.0.1:6379" */
  redis?: string | IORedis;
  /** Key prefix. @default "sluice" */
  prefix?: string;
  /** Queues in priority order: a job of an earlier queue is always taken first. @default ["default"] */
  queues?: string[];
  /** Jobs run at once, at most. @default 10 */
  concurrency?: number;
  /** Default attempt timeout for tasks without one. @default none */
  timeout?: Duration;
  /** A job whose worker has not heartbeated for this long is recovered by another worker. @default "30s" */
  stalledTimeout?: Duration;
  /** How often a worker refreshes its jobs and looks for stalled ones. At most a third of `stalledTimeout`. @default stalledTimeout / 6, at most 5s */
  heartbeatInterval?: Duration;
  /** Recoveries of one job after which it fails instead. @default 1 */
  maxStalled?: number;
  /** In the graceful phase, abort running jobs (reason `shutdown`) once this has elapsed. @default none: wait for them */
  shutdownGracefulTimeout?: Duration;
  /** `false`: drain mode — stop once the queues have no ready job and nothing runs. @default true */
  wait?: boolean;
  /** Stop (gracefully) after fetching this many jobs. @default unlimited */
  maxJobs?: number;
  /** How often due delayed jobs and retries are moved to their stream, at the latest. @default "500ms" */
  promoteInterval?: Duration;
  /** How often to poll for abort requests a missed pub/sub message would have delivered. @default "1s" */
  abortPollInterval?: Duration;
  /** How often end conditions are checked. @default "1s" */
  endConditionInterval?: Duration;
  /** How long one blocking read waits before it is re-issued. @default "5s" */
  blockTimeout?: Duration;
  /**
   * Retention of finished jobs; aborted jobs follow `failed`. Applied as jobs finish and on a timer.
   * @default { completed: { count: 1000, age: "1 day" }, failed: {} (keep all), cancelled: { count: 1000, age: "1 day" } }
   */
  retention?: { completed?: RetentionPolicy; failed?: RetentionPolicy; cancelled?: RetentionPolicy };
  /** Job ids the events stream keeps, about: an event of a batch counts each id it names (so a stream of batch events holds fewer entries); 0 turns events off. @default 10000 */
  eventsMaxLen?: number;
  /** Install OS signal handlers (used by the runtime adapters). @default true */
  installSignalHandlers?: boolean;
  /** This worker's id (its consumer name). @default "<host>-<random>" */
  id?: string;
  /** Shown in the worker registry and the admin app; adapters fill it. */
  identity?: { host?: string; pid?: number; runtime?: string };
  /** Receives lifecycle logs. @default none */
  logger?: (entry: LogEntry) => void;
  /** The threads and processes of tasks with `execution`. */
  pool?: PoolOptions;
  /**
   * A rate limit for each of its queues, across all their workers (enforced in Redis): written to
   * the queue at start, as `queue.setRateLimit()` does. @default none (a limit set on the queue stays)
   */
  rateLimit?: RateLimit;
  /**
   * Jobs of one group (`enqueue(…, { group })`) running at once across all workers of each of its
   * queues: written to the queue at start, as `queue.setGroupConcurrency()` does. @default none
   */
  groupConcurrency?: number;
  /** Starts the pool's threads and processes; the runtime adapters' `createWorker` fills it (else it is picked by runtime at first use). */
  spawner?: PoolSpawner;
}

/** A worker's options, checked and resolved: durations in milliseconds, defaults filled in. */
export interface Settings {
  prefix: string;
  queues: string[];
  tasks: Map<string, ResolvedTask>;
  concurrency: number;
  /** Set when a task has an execution (a pool thread or child). */
  pool: PoolSettings | undefined;
  rateLimit: { max: number; duration: number } | undefined;
  groupConcurrency: number | undefined;
  timeout: number | undefined;
  stalledTimeout: number;
  heartbeatInterval: number;
  maxStalled: number;
  gracefulTimeout: number | undefined;
  wait: boolean;
  maxJobs: number;
  promoteInterval: number;
  abortPollInterval: number;
  endConditionInterval: number;
  blockTimeout: number;
  /** count -1: no limit; age -1: no limit (milliseconds). */
  keep: { completed: { count: number; age: number }; failed: { count: number; age: number }; cancelled: { count: number; age: number } };
  eventsMaxLen: number;
  id: string;
}

const ONE_DAY = 86_400_000;

function intOption(value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new ValidationError("Invalid worker options", [{ field, value, message: `must be an integer ${range}` }]);
  }
  return value;
}

/** A duration option in milliseconds, or a ValidationError naming the field. */
export function durationOption(value: unknown, field: string): number {
  try {
    return parseDuration(value, field);
  } catch (e) {
    throw new ValidationError("Invalid worker options", [{ field, value, message: (e as Error).message.split(":")[0]!.replace(/^Invalid duration for '[^']+'/, "must be a duration") }]);
  }
}

function retention(p: RetentionPolicy | undefined, def: { count: number; age: number }, field: string) {
  if (p === undefined) return def;
  if (typeof p !== "object" || p === null) {
    throw new ValidationError("Invalid worker options", [{ field, value: p, message: "must be { count?, age? }" }]);
  }
  return {
    count: p.count === undefined ? -1 : intOption(p.count, field + ".count", 0),
    age: p.age === undefined ? -1 : durationOption(p.age, field + ".age"),
  };
}

/**
 * Checks a worker's options and resolves them. Throws a `ValidationError` naming the first bad
 * field and its value.
 */
export function resolveSettings(options: WorkerOptions): Settings {
  if (typeof options !== "object" || options === null) {
    throw new ValidationError("Invalid worker options", [{ field: "(options)", value: options, message: "must be an object" }]);
  }
  const queues = options.queues ?? ["default"];
  if (!Array.isArray(queues) || queues.length === 0) {
    throw new ValidationError("Invalid worker options", [{ field: "queues", value: queues, message: "must be a non-empty array of queue names" }]);
  }
  queues.forEach((name, i) => checkName(name, `queues.${i}`));
  if (typeof options.tasks !== "object" || options.tasks === null) {
    throw new ValidationError("Invalid worker options", [{ field: "tasks", value: options.tasks, message: "must be an object of task name to handler" }]);
  }
  const tasks = new Map<string, ResolvedTask>();
  for (const [name, t] of Object.entries(options.tasks)) tasks.set(name, resolveTask(name, t));
  const stalledTimeout = durationOption(options.stalledTimeout ?? 30_000, "stalledTimeout");
  if (stalledTimeout < 30) {
    throw new ValidationError("Invalid worker options", [{ field: "stalledTimeout", value: options.stalledTimeout, message: "must be at least 30 ms (three heartbeats of 10 ms)" }]);
  }
  const heartbeatInterval = options.heartbeatInterval === undefined
    ? Math.min(5000, Math.max(10, Math.floor(stalledTimeout / 6)))
    : durationOption(options.heartbeatInterval, "heartbeatInterval");
  if (heartbeatInterval > MAX_TIMER) {
    throw new ValidationError("Invalid worker options", [{ field: "heartbeatInterval", value: options.heartbeatInterval, message: `must be at most ${MAX_TIMER} ms` }]);
  }
  if (heartbeatInterval * 3 > stalledTimeout || heartbeatInterval <= 0) {
    throw new ValidationError("Invalid worker options", [{
      field: "heartbeatInterval",
      value: options.heartbeatInterval ?? heartbeatInterval,
      message: `must be > 0 and at most a third of stalledTimeout (${stalledTimeout} ms), or live jobs could be recovered as stalled`,
    }]);
  }
  if (options.wait !== undefined && typeof options.wait !== "boolean") {
    throw new ValidationError("Invalid worker options", [{ field: "wait", value: options.wait, message: "must be a boolean" }]);
  }
  if (options.redis !== undefined && typeof options.redis !== "string" && !isIORedis(options.redis)) {
    throw new ValidationError("Invalid worker options", [{ field: "redis", value: options.redis, message: "must be a redis:// URL or an ioredis client" }]);
  }
  if (options.id !== undefined && (typeof options.id !== "string" || !/^[^\s{}\x00-\x1f]{1,200}$/.test(options.id) || !isWellFormed(options.id))) {
    throw new ValidationError("Invalid worker options", [{ field: "id", value: options.id, message: "must be 1-200 characters without whitespace, braces or control characters" }]);
  }
  if (options.logger !== undefined && typeof options.logger !== "function") {
    throw new ValidationError("Invalid worker options", [{ field: "logger", value: options.logger, message: "must be a function (entry) => void" }]);
  }
  if (options.installSignalHandlers !== undefined && typeof options.installSignalHandlers !== "boolean") {
    throw new ValidationError("Invalid worker options", [{ field: "installSignalHandlers", value: options.installSignalHandlers, message: "must be a boolean" }]);
  }
  const identity = options.identity;
  if (identity !== undefined) {
    const ok = typeof identity === "object" && identity !== null && !Array.isArray(identity) &&
      (identity.host === undefined || (typeof identity.host === "string" && identity.host.length <= 255)) &&
      (identity.pid === undefined || (Number.isInteger(identity.pid) && identity.pid >= 0)) &&
      (identity.runtime === undefined || (typeof identity.runtime === "string" && identity.runtime.length <= 100));
    if (!ok) throw new ValidationError("Invalid worker options", [{ field: "identity", value: identity, message: "must be { host?: string, pid?: integer, runtime?: string }" }]);
  }
  const interval = (value: unknown, def: number, field: string) => {
    const ms = durationOption(value ?? def, field);
    if (ms > MAX_TIMER) {
      throw new ValidationError("Invalid worker options", [{ field, value, message: `must be at most ${MAX_TIMER} ms (about 24.8 days)` }]);
    }
    return ms;
  };
  const concurrency = intOption(options.concurrency ?? 10, "concurrency", 1, 5000);
  if (options.spawner !== undefined && typeof (options.spawner as { spawn?: unknown })?.spawn !== "function") {
    throw new ValidationError("Invalid worker options", [{ field: "spawner", value: options.spawner, message: "must be { spawn(kind, options) } (the runtime adapters supply one)" }]);
  }
  return {
    prefix: checkName(options.prefix ?? "sluice", "prefix"),
    queues,
    tasks,
    concurrency,
    pool: [...tasks.values()].some((t) => t.pooled) || options.pool !== undefined ? poolSettings(options.pool, concurrency) : undefined,
    rateLimit: options.rateLimit === undefined ? undefined : rateLimitOption(options.rateLimit),
    groupConcurrency: options.groupConcurrency === undefined ? undefined : intOption(options.groupConcurrency, "groupConcurrency", 1, 1e6),
    timeout: options.timeout === undefined ? undefined : durationOption(options.timeout, "timeout"),
    stalledTimeout,
    heartbeatInterval,
    maxStalled: intOption(options.maxStalled ?? 1, "maxStalled", 0),
    gracefulTimeout: options.shutdownGracefulTimeout === undefined ? undefined : durationOption(options.shutdownGracefulTimeout, "shutdownGracefulTimeout"),
    wait: options.wait ?? true,
    maxJobs: options.maxJobs === undefined ? Infinity : intOption(options.maxJobs, "maxJobs", 1),
    promoteInterval: Math.max(1, interval(options.promoteInterval, 500, "promoteInterval")),
    abortPollInterval: Math.max(1, interval(options.abortPollInterval, 1000, "abortPollInterval")),
    endConditionInterval: Math.max(1, interval(options.endConditionInterval, 1000, "endConditionInterval")),
    blockTimeout: Math.max(1, interval(options.blockTimeout, 5000, "blockTimeout")),
    keep: {
      completed: retention(options.retention?.completed, { count: 1000, age: ONE_DAY }, "retention.completed"),
      failed: retention(options.retention?.failed, { count: -1, age: -1 }, "retention.failed"),
      cancelled: retention(options.retention?.cancelled, { count: 1000, age: ONE_DAY }, "retention.cancelled"),
    },
    eventsMaxLen: intOption(options.eventsMaxLen ?? 10_000, "eventsMaxLen", 0, 1e9),
    id: options.id ?? `${options.identity?.host ?? "worker"}-${crypto.randomUUID().slice(0, 8)}`,
  };
}

/** Checks one task of `tasks` and resolves it. */
function resolveTask(name: string, t: unknown): ResolvedTask {
  const field = `tasks.${name}`;
  const bad = (f: string, value: unknown, message: string) => new ValidationError("Invalid worker options", [{ field: f, value, message }]);
  if (typeof t === "function") return { handler: t as Handler };
  if (typeof t !== "object" || t === null) throw bad(field, t, "must be a function, { handler, timeout?, endCondition? } or { module, export?, execution, timeout?, endCondition? }");
  const def = t as Partial<TaskDefinition & PooledTaskDefinition>;
  if (def.timeout !== undefined) durationOption(def.timeout, `${field}.timeout`);
  if (def.endCondition !== undefined && typeof def.endCondition !== "function") {
    throw bad(`${field}.endCondition`, def.endCondition, "must be a function (now: Date) => boolean");
  }
  const common = { ...(def.timeout !== undefined ? { timeout: def.timeout } : {}), ...(def.endCondition !== undefined ? { endCondition: def.endCondition } : {}) };
  if (def.module === undefined && def.execution === undefined) {
    if (typeof def.handler !== "function") throw bad(field, t, "must be a function, { handler, timeout?, endCondition? } or { module, export?, execution, timeout?, endCondition? }");
    return { handler: def.handler as Handler, ...common };
  }
  if (def.handler !== undefined) throw bad(`${field}.handler`, def.handler, "must be left out of a task with `module` and `execution`: the thread or process imports the handler from the module");
  if (def.execution !== "thread" && def.execution !== "process") throw bad(`${field}.execution`, def.execution, 'must be "thread" or "process"');
  const exp = def.export ?? "default";
  if (typeof exp !== "string" || exp === "") throw bad(`${field}.export`, def.export, "must be the name of the module's export that is the handler");
  return { pooled: { module: moduleUrl(def.module, `${field}.module`), export: exp, execution: def.execution }, ...common };
}

/**
 * A task module as a URL a thread or process can import: a URL, a URL string with a scheme, or an
 * absolute path. A relative path is refused: relative to what would depend on where the worker runs.
 */
function moduleUrl(m: unknown, field: string): string {
  const refuse = () => new ValidationError("Invalid worker options", [{ field, value: m, message: 'must be a URL (new URL("./tasks.ts", import.meta.url)), a file: URL or an absolute path' }]);
  if (m instanceof URL) return m.href;
  if (typeof m !== "string" || m === "") throw refuse();
  const encode = (segments: string[]) => segments.map(encodeURIComponent).join("/");
  if (m.startsWith("/")) return new URL("file://" + encode(m.split("/"))).href;
  // a Windows path: C:\dir\file.ts (a drive-relative C:file.ts is refused below)
  if (/^[A-Za-z]:[\\/]/.test(m)) {
    const [drive, ...rest] = m.split(/[\\/]/);
    return new URL("file:///" + drive + "/" + encode(rest)).href;
  }
  // a URL with a scheme of two letters or more (one letter is a drive)
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(m)) {
    try {
      return new URL(m).href;
    } catch {
      throw refuse();
    }
  }
  throw refuse();
}

/** Checks `pool` and resolves it; `size` defaults to the worker's concurrency. */
function poolSettings(p: PoolOptions | undefined, concurrency: number): PoolSettings {
  if (p !== undefined && (typeof p !== "object" || p === null || Array.isArray(p))) {
    throw new ValidationError("Invalid worker options", [{ field: "pool", value: p, message: "must be { size?, maxJobsPerChild?, abortGrace?, memoryLimitMb? }" }]);
  }
  const abortGrace = durationOption(p?.abortGrace ?? 5000, "pool.abortGrace");
  if (abortGrace > MAX_TIMER) throw new ValidationError("Invalid worker options", [{ field: "pool.abortGrace", value: p?.abortGrace, message: `must be at most ${MAX_TIMER} ms` }]);
  return {
    size: p?.size === undefined ? concurrency : intOption(p.size, "pool.size", 1, 5000),
    maxJobsPerChild: p?.maxJobsPerChild === undefined ? Infinity : intOption(p.maxJobsPerChild, "pool.maxJobsPerChild", 1),
    abortGrace,
    memoryLimitMb: p?.memoryLimitMb === undefined ? undefined : intOption(p.memoryLimitMb, "pool.memoryLimitMb", 16, 1 << 20),
  };
}

function rateLimitOption(limit: unknown): { max: number; duration: number } {
  try {
    return checkRateLimit(limit, "rateLimit");
  } catch (e) {
    throw new ValidationError("Invalid worker options", (e as ValidationError).issues);
  }
}
