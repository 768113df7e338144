/**
 * Helpers shared by the core suites: a per-test scope that hands out queues, workers and Redis
 * clients under one fresh key prefix and tears them all down after the test, plus small async
 * utilities (deferred promises, sleeping, reading errors).
 */
import { afterEach, beforeEach } from "bun:test";
import type { Redis } from "ioredis";
import { Queue, type QueueOptions } from "../src/queue.ts";
import { Worker, type WorkerOptions } from "../src/worker.ts";
import { client, redisUrl, uniquePrefix } from "./harness.ts";

/** A promise with its resolve and reject exposed. */
export interface Deferred<T = void> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `fn` and returns what it threw (sync or async), failing when it throws nothing. */
export async function thrown(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error, but nothing was thrown");
}

/** Rejects when `p` takes longer than `ms`, naming `what`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

type WorkerInit = Omit<WorkerOptions, "redis" | "prefix"> & Partial<Pick<WorkerOptions, "redis" | "prefix">>;

/** Everything one test opened, under one key prefix; `cleanup()` stops and closes it all. */
export class Scope {
  readonly prefix = uniquePrefix();
  readonly url = redisUrl();
  readonly #queues: Queue[] = [];
  readonly #workers: Worker[] = [];
  readonly #clients: Redis[] = [];

  queue(name = "default", options: QueueOptions = {}): Queue {
    const q = new Queue(name, { redis: this.url, prefix: this.prefix, ...options });
    this.#queues.push(q);
    return q;
  }

  /** A worker on this scope's prefix. It is not started: call `run()`. */
  worker(options: WorkerInit): Worker {
    const w = new Worker({ redis: this.url, prefix: this.prefix, ...options });
    this.#workers.push(w);
    return w;
  }

  redis(): Redis {
    const c = client();
    this.#clients.push(c);
    return c;
  }

  async cleanup(): Promise<void> {
    // a worker still running is stopped without waiting for jobs that ignore their abort
    await Promise.all(this.#workers.map((w) => within<unknown>(w.phase === "stopped" ? Promise.resolve() : w.abandon(), 10_000, `stopping worker ${w.id}`).catch(() => {})));
    await Promise.all(this.#queues.map((q) => q.close().catch(() => {})));
    for (const c of this.#clients) c.disconnect();
  }
}

/** Gives each test of the file a fresh Scope, cleaned up after it. */
export function useScope(): () => Scope {
  let scope: Scope | undefined;
  beforeEach(() => {
    scope = new Scope();
  });
  afterEach(async () => {
    await scope?.cleanup();
    scope = undefined;
  });
  return () => scope!;
}
