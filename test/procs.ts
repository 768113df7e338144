/**
 * Helpers of the lifecycle suites: worker processes (test/fixtures/worker.ts) under a runtime,
 * their JSON-line output, and in-process workers; each test's processes and workers are torn down
 * after it.
 */
import { afterEach } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { Queue } from "../src/queue.ts";
import { Worker, type WorkerOptions } from "../src/worker.ts";
import type { Config } from "./fixtures/worker.ts";
import { client, redisUrl, type Runtime, type Spawned, spawnTs, uniquePrefix, waitFor } from "./harness.ts";

export const FIXTURE = "test/fixtures/worker.ts";

/** One line the fixture printed. */
export interface Ev {
  ev: string;
  [k: string]: unknown;
}

/** Configuration of the fixture (see test/fixtures/worker.ts), less what spawnWorker fills in. */
export type FixtureConfig = Omit<Config, "redis" | "prefix">;

export class WorkerProc {
  readonly p: Spawned;
  readonly runtime: Runtime;
  /** When the process exited, by performance.now() of this process. */
  exitAt = 0;
  constructor(runtime: Runtime, p: Spawned) {
    this.runtime = runtime;
    this.p = p;
    p.proc.once("exit", () => (this.exitAt = performance.now()));
  }
  events(ev?: string): Ev[] {
    const out: Ev[] = [];
    for (const line of this.p.stdout().split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const o = JSON.parse(line) as Ev;
        if (!ev || o.ev === ev) out.push(o);
      } catch {
        // a partial line
      }
    }
    return out;
  }
  /** Waits until `n` events of kind `ev` (matching `pred`) were printed; returns them. */
  async waitEvents(ev: string, n = 1, pred: (e: Ev) => boolean = () => true, timeout = 30_000): Promise<Ev[]> {
    return await waitFor(() => {
      if (this.p.proc.exitCode !== null && this.events(ev).filter(pred).length < n) {
        throw new Error(`process exited (${this.p.proc.exitCode})`);
      }
      const es = this.events(ev).filter(pred);
      return es.length >= n ? es : undefined;
    }, `${n} '${ev}' event(s) from the ${this.runtime} worker\n${this.describe()}`, timeout);
  }
  async ready(): Promise<string> {
    const [e] = await this.waitEvents("ready", 1, undefined, 60_000);
    return e!.worker as string;
  }
  kill(signal: NodeJS.Signals = "SIGTERM"): number {
    const t = performance.now();
    this.p.kill(signal);
    return t;
  }
  /** The exit code, or fails after `timeout` ms. */
  async exited(timeout = 30_000): Promise<number | string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.p.exited,
        new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`the ${this.runtime} worker did not exit within ${timeout} ms\n${this.describe()}`)), timeout))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
  summary(): Ev | undefined {
    return this.events("summary")[0];
  }
  describe(): string {
    return `stdout:\n${this.p.stdout()}\nstderr:\n${this.p.stderr()}`;
  }
}

const procs: WorkerProc[] = [];
const workers: Worker[] = [];
const closers: (() => unknown)[] = [];

afterEach(async () => {
  for (const w of procs.splice(0)) if (w.p.proc.exitCode === null && w.p.proc.signalCode === null) w.p.kill("SIGKILL");
  await Promise.all(workers.splice(0).map((w) => (w.phase === "stopped" ? undefined : w.abandon().catch(() => {}))));
  for (const c of closers.splice(0)) await c();
});

/** A fresh prefix, a queue on it and a raw client, all closed after the test. */
export function setup(queueName = "default"): { prefix: string; url: string; queue: Queue; redis: Redis } {
  const prefix = uniquePrefix("lc");
  const url = redisUrl();
  const queue = new Queue(queueName, { redis: url, prefix });
  const redis = client();
  closers.push(() => queue.close(), () => redis.disconnect());
  return { prefix, url, queue, redis };
}

/**
 * A file path that does not exist yet, for the fixtures' "run until this file exists" tasks
 * (`untilFile`); `open()` creates it, which ends those jobs. Removed after the test.
 */
export function gateFile(): { path: string; open(): void } {
  const dir = mkdtempSync(join(tmpdir(), "sluice-gate-"));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "open");
  return { path, open: () => writeFileSync(path, "") };
}

/** Starts the fixture worker under `runtime`; killed after the test if still running. */
export function spawnWorker(runtime: Runtime, prefix: string, config: FixtureConfig = {}): WorkerProc {
  const cfg = { redis: redisUrl(), prefix, ...config };
  const w = new WorkerProc(runtime, spawnTs(runtime, FIXTURE, [JSON.stringify(cfg)]));
  procs.push(w);
  return w;
}

/** An in-process worker on the test Redis; abandoned after the test if still running. */
export function inProcess(prefix: string, options: Omit<WorkerOptions, "redis" | "prefix">): Worker {
  const w = new Worker({ redis: redisUrl(), prefix, ...options });
  workers.push(w);
  return w;
}

/**
 * The job hash as an object. A job that never started has no `attempt` or `stalls` field (absent
 * reads as 0, as `Queue.getJob` reads it): both are filled in as "0" here.
 */
/**
 * A job's hash, with a running job shown as such: nothing stored says `active` (the job waits on
 * an entry the consumer group's pending list holds), so this adds what `getJob` derives: state
 * `active`, its owner, and the running attempt counted.
 */
export async function jobHash(redis: Redis, prefix: string, id: string, queue = "default"): Promise<Record<string, string>> {
  const h = await redis.hgetall(`${prefix}:{${queue}}:job:${id}`);
  if (h.state === undefined && /^\d+-\d+$/.test(id)) {
    // a job its stream entry holds has no hash until it ends or moves on: it waits on that entry
    const [entry] = await redis.xrange(`${prefix}:{${queue}}:stream`, id, id).catch(() => []);
    if (entry && entry[1][0] === "p") Object.assign(h, { state: "waiting", sid: id, p: entry[1][1] });
    // one that completed with no hash keeps its record in `done`:
    // `<finished> <started> <attempt> <length of p> NUL <p><result>`
    // (the length of p counts bytes)
    const r = entry ? null : await redis.hgetBuffer(`${prefix}:{${queue}}:done`, id);
    const m = r ? /^(\d+) (\d+) (\d+) (\d+)\0/.exec(r.toString("latin1")) : null;
    if (r && m) {
      const at = m[0].length, end = at + Number(m[4]);
      Object.assign(h, { state: "completed", sid: id, finished: m[1], started: m[2], attempt: m[3], p: r.subarray(at, end).toString(), result: r.subarray(end).toString() });
    }
  }
  if (h.state !== undefined) {
    h.attempt ??= "0";
    h.stalls ??= "0";
  }
  if (h.state === "waiting" && h.sid) {
    const p = (await redis.xpending(`${prefix}:{${queue}}:stream`, "sluice", h.sid, h.sid, 1).catch(() => [])) as [string, string][];
    if (p.length > 0) {
      h.state = "active";
      h.owner = p[0]![1];
      h.attempt = String(Number(h.attempt) + 1);
    }
  }
  return h;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Resolves with the detail of the next `type` event of a worker. */
export function nextEvent<T = unknown>(w: Worker, type: string, timeout = 10_000): Promise<T> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`no '${type}' event within ${timeout} ms`)), timeout);
    w.addEventListener(type, (e) => {
      clearTimeout(t);
      res((e as CustomEvent<T>).detail);
    }, { once: true });
  });
}
