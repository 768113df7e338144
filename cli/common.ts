/**
 * What every `sluice` command shares: the common flags, the Redis connection, and how results and
 * errors are written (text for people, one JSON document for `--json`).
 */
import { connect as netConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Redis, RedisOptions } from "ioredis";
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
  "redis-tls-ca": { type: "string", placeholder: "FILE", description: "PEM file of the CA that signed the Redis server's certificate, for rediss:// (default: $REDIS_TLS_CA, else the system's CAs)" },
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
  /** ioredis options the URL cannot carry (`tls.ca` from `--redis-tls-ca`). */
  redisOptions: RedisOptions;
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

/** Where a command connects: the URL, and the ioredis options it cannot carry. */
export interface RedisTarget {
  redisUrl: string;
  redisOptions: RedisOptions;
}

/**
 * What a long-running command (worker, admin) hands the library: the URL itself, or, when there
 * are options a URL cannot carry (a CA file), a client of its own that `close` ends.
 */
export function redisFor(target: RedisTarget): { redis: string | Redis; close(): Promise<void> } {
  if (Object.keys(target.redisOptions).length === 0) return { redis: target.redisUrl, close: async () => {} };
  const client = connect(target.redisUrl, { ...target.redisOptions });
  return {
    redis: client,
    async close() {
      if (client.status === "ready") await Promise.race([client.quit(), new Promise((r) => setTimeout(r, 3000))]).catch(() => {});
      if ((client.status as string) !== "end") client.disconnect();
    },
  };
}

/**
 * Opens a connection for a short command and checks that Redis answers. An unreachable Redis is
 * a `CliError` after a few quick retries, not a wait forever; a URL whose scheme does not match
 * the server (rediss:// to a plain port, redis:// to a TLS port) says so at once.
 */
export async function openRedis(target: RedisTarget, timeoutMs = 10_000): Promise<Redis> {
  const { redisUrl: url } = target;
  let lastError: string | undefined;
  const client = connect(url, {
    ...target.redisOptions,
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 5000,
    retryStrategy: (times: number) => (times > 3 ? null : 200),
  });
  client.on("error", (e: Error) => (lastError = e.message || String(e)));
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
  const port = Number(u.port || 6379);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stop = new AbortController();
  try {
    await Promise.race([
      client.connect().then(() => client.ping()),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs))),
      // a TLS ClientHello sent to a plain Redis gets no answer (it waits for the end of a line):
      // ask the port in plain text at once instead of waiting for the connect timeout
      ...(u.protocol === "rediss:" ? [speaksPlainRedis(host, port, stop.signal).then((plain) => {
        if (plain) throw new CliError(`cannot connect to Redis at ${redact(url)}: the server speaks plain Redis, not TLS — use a redis:// URL (or enable TLS on the server)`);
        return new Promise(() => {});
      })] : []),
    ]);
  } catch (e) {
    client.disconnect();
    if (CliError.is(e)) throw e;
    if (u.protocol === "redis:" && await speaksTls(host, port)) {
      throw new CliError(`cannot connect to Redis at ${redact(url)}: the server expects TLS — use a rediss:// URL${target.redisOptions.tls ? "" : " (and --redis-tls-ca FILE for a private CA)"}`);
    }
    const message = lastError ?? (e as Error).message;
    const hint = /certificate|self[- ]signed|unable to verify/i.test(message) && !target.redisOptions.tls ? " (a server certificate from a private CA needs --redis-tls-ca FILE)" : "";
    throw new CliError(`cannot connect to Redis at ${redact(url)}: ${message}${hint}`);
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
  return client;
}

/** Whether host:port answers a plain-text PING the way Redis does (`+PONG`, or an error such as NOAUTH). */
function speaksPlainRedis(host: string, port: number, signal: AbortSignal, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    const done = (v: boolean) => {
      clearTimeout(timer);
      signal.removeEventListener("abort", abort);
      socket.destroy();
      resolve(v);
    };
    const abort = () => done(false);
    const timer = setTimeout(abort, timeoutMs);
    signal.addEventListener("abort", abort, { once: true });
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (d: Buffer) => done(d.length > 0 && (d[0] === 0x2b || d[0] === 0x2d))); // '+' or '-'
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

/** Whether host:port completes a TLS handshake (certificates unchecked: this only names the protocol). */
function speaksTls(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, ...(netIsIp(host) ? {} : { servername: host }) });
    const done = (v: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("secureConnect", () => done(true));
    socket.on("error", () => done(false));
    socket.on("close", () => done(false));
  });
}

function netIsIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(":");
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
export async function withQueue<T>(ctx: RedisTarget & { prefix?: string | undefined }, name: string, fn: (queue: Queue) => Promise<T>): Promise<T> {
  checkQueue(name, ctx.prefix);
  const redis = await openRedis(ctx);
  try {
    return await fn(new Queue(name, { redis, prefix: ctx.prefix }));
  } finally {
    redis.disconnect();
  }
}
