/**
 * What every `sluice` command shares: the common flags, the Redis connection, and how results and
 * errors are written (text for people, one JSON document for `--json`).
 */
import type { Redis } from "ioredis";
import { EXIT } from "../src/runtime.ts";
import { Queue } from "../src/queue.ts";
import { connect } from "../src/redis.ts";
import { type FlagSpecs, type FlagValues, UsageError } from "./args.ts";
import type { Io } from "./io.ts";

/** The Redis used when neither `--redis-url` nor `REDIS_URL` is given. */
export const DEFAULT_REDIS_URL = "redis://127.0.0.1:6379";

/** A failure that is not the user's arguments: exit code 1 (or `code`), message on stderr. */
export class CliError extends Error {
  override name = "CliError";
  readonly code: number;
  constructor(message: string, code: number = EXIT.error) {
    super(message);
    this.code = code;
  }
  static is(e: unknown): e is CliError {
    return e instanceof Error && e.name === "CliError";
  }
}

/** Flags every command takes. */
export const COMMON_FLAGS = {
  "redis-url": { type: "string", placeholder: "URL", description: `Redis to use (default: $REDIS_URL, else ${DEFAULT_REDIS_URL}); rediss:// for TLS` },
  "redis-password": { type: "string", placeholder: "PASSWORD", description: "Redis password (default: $REDIS_PASSWORD, else the URL's)" },
  "redis-db": { type: "int", min: 0, placeholder: "N", description: "Redis database number (default: the URL's, else 0)" },
  prefix: { type: "string", placeholder: "PREFIX", description: 'Key prefix of the queues (default "sluice")' },
  json: { type: "boolean", description: "Machine-readable output: one JSON document (JSON lines for worker logs)" },
  help: { type: "boolean", short: "h", description: "Show this help" },
} as const satisfies FlagSpecs;

/** One `sluice` command. */
export interface Command<S extends FlagSpecs = FlagSpecs> {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The synopsis after "Usage:", e.g. `sluice job <queue> <id> [options]`. */
  usage: string;
  /** More help text after the synopsis. */
  details?: string;
  flags: S;
  /** Positional arguments: their names (for messages), how many are required, whether the last repeats. */
  positionals: { names: string[]; min: number; variadic?: boolean };
  run(ctx: CommandContext<S>): Promise<number>;
}

/** What a command's `run` receives. */
export interface CommandContext<S extends FlagSpecs> {
  flags: FlagValues<S> & FlagValues<typeof COMMON_FLAGS>;
  positionals: string[];
  io: Io;
  json: boolean;
  /** The Redis URL from `--redis-url`, else `REDIS_URL`, else the default. */
  redisUrl: string;
  prefix: string | undefined;
}

/** Hides the password of a Redis URL, for messages and logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

/** Checks a Redis URL given on the command line or in `REDIS_URL`. */
export function checkRedisUrl(url: string, from: string): string {
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    // reported below
  }
  if (!u || !["redis:", "rediss:"].includes(u.protocol)) {
    throw new UsageError(`${from} must be a redis:// or rediss:// URL: got ${JSON.stringify(url)}`);
  }
  return url;
}

/**
 * Opens a connection for a short command and checks that Redis answers. An unreachable Redis is
 * a `CliError` after a few quick retries, not a wait forever.
 */
export async function openRedis(url: string, timeoutMs = 10_000): Promise<Redis> {
  let lastError: string | undefined;
  const client = connect(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy: (times: number) => (times > 3 ? null : 200),
  });
  client.on("error", (e: Error) => (lastError = e.message || String(e)));
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
    ]);
  } catch (e) {
    client.disconnect();
    throw new CliError(`cannot connect to Redis at ${redact(url)}: ${lastError ?? (e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  return client;
}

/** Writes a command's result: `value` as JSON with `--json`, else the text lines. */
export function print(ctx: { io: Io; json: boolean }, value: unknown, text: () => string | string[]): void {
  if (ctx.json) {
    ctx.io.out(JSON.stringify(value, null, 2));
  } else {
    const t = text();
    for (const line of Array.isArray(t) ? t : [t]) ctx.io.out(line);
  }
}

/** Formats epoch milliseconds as an ISO time, for text output. */
export function time(ms: number | undefined): string | undefined {
  return ms === undefined || !Number.isFinite(ms) || ms <= 0 || ms > 8.64e15 ? undefined : new Date(ms).toISOString();
}

/**
 * Checks a queue name and prefix before anything connects, so a bad name is reported as a usage
 * error (a `ValidationError`) even when Redis is down. Building a `Queue` on a sender that is never
 * called runs exactly the checks `Queue` runs.
 */
export function checkQueue(name: string, prefix: string | undefined): void {
  new Queue(name, { redis: () => Promise.reject(new Error("not connected")), prefix });
}

/**
 * Runs `fn` with the queue `name` on a fresh connection to `ctx.redisUrl`, closed afterwards. The
 * name is checked before anything connects.
 */
export async function withQueue<T>(ctx: { redisUrl: string; prefix?: string }, name: string, fn: (queue: Queue) => Promise<T>): Promise<T> {
  checkQueue(name, ctx.prefix);
  const redis = await openRedis(ctx.redisUrl);
  try {
    return await fn(new Queue(name, { redis, prefix: ctx.prefix }));
  } finally {
    redis.disconnect();
  }
}
