/**
 * The worker against a real Redis: many jobs over several workers, retries with backoff, the dead
 * letter, delays, priority, the concurrency limit, the job context, stop(), counts and the
 * validation of worker options.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { type JobContext, type JobEventDetail, UnknownTaskError, UnrecoverableError, ValidationError, Worker } from "../mod.ts";
import { backoffDelay } from "../src/options.ts";
import { waitFor } from "./harness.ts";
import { deferred, sleep, thrown, useScope, within } from "./helpers.ts";

// waits below run up to 10-15 s before they fail with a message; the test must outlive them
setDefaultTimeout(30_000);

const scope = useScope();

/** A retrying event's detail (it carries the retry's time), and when the test saw it. */
type Retrying = JobEventDetail & { retryAt: number; seenAt: number };

/** Waits until job `id` of `q` is in `state`, returning its info. */
async function settled(q: ReturnType<ReturnType<typeof scope>["queue"]>, id: string, state: string, timeout = 10_000) {
  return await waitFor(async () => {
    const j = await q.getJob(id);
    return j?.state === state ? j : null;
  }, `job ${id} to be ${state}`, timeout);
}

describe("throughput and correctness", () => {
  test("10,000 jobs over 3 workers are each handled once, none lost, and the counts add up", async () => {
    const s = scope();
    const q = s.queue("bulk");
    const redis = s.redis();
    const N = 10_000;
    const jobs = await q.enqueueMany(Array.from({ length: N }, (_, i) => ({ task: "add", data: { i } })));
    expect(await q.counts()).toMatchObject({ waiting: N });

    const handled = new Map<string, number>();
    const byWorker: Record<string, number> = {};
    const workers = [0, 1, 2].map((w) =>
      s.worker({
        id: `bulk-worker-${w}`,
        queues: ["bulk"],
        concurrency: 50,
        wait: false,
        retention: { completed: { count: 20_000 } },
        tasks: {
          add(data: { i: number }, ctx: JobContext) {
            handled.set(ctx.job.id, (handled.get(ctx.job.id) ?? 0) + 1);
            byWorker[ctx.workerId] = (byWorker[ctx.workerId] ?? 0) + 1;
            return data.i * 2;
          },
        },
      })
    );
    const summaries = await within(Promise.all(workers.map((w) => w.run())), 55_000, "3 workers draining 10,000 jobs");

    // every job handled exactly once (nothing stalls here, so at-least-once means once)
    expect(handled.size).toBe(N);
    for (const j of jobs) expect(handled.get(j.id)).toBe(1);
    expect(summaries.reduce((n, s) => n + s.completed, 0)).toBe(N);
    for (const sum of summaries) expect({ failed: sum.failed, retried: sum.retried, lost: sum.lost, recovered: sum.recovered }).toEqual({ failed: 0, retried: 0, lost: 0, recovered: 0 });
    expect(Object.values(byWorker).reduce((a, b) => a + b, 0)).toBe(N);

    // and Redis agrees: all completed, the stream emptied, nothing pending
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, delayed: 0, completed: N, failed: 0, cancelled: 0, aborted: 0 });
    expect(await redis.xlen(q.keys.stream)).toBe(0);
    expect(await redis.zcard(q.keys.completed)).toBe(N);
    const pending = (await redis.xpending(q.keys.stream, "sluice")) as [number, ...unknown[]];
    expect(pending[0]).toBe(0);
    for (const i of [0, 1, 4999, 9998, 9999]) {
      const info = await q.getJob(jobs[i]!.id);
      expect(info).toMatchObject({ state: "completed", result: i * 2, attempt: 1 });
    }
  }, 60_000);

  test("one fetch of jobs with and without a hash of their own (a caller's id, a group) gives each job its own data, name and attempt (data holding line breaks and control characters: the rows come back LF-joined)", async () => {
    const s = scope();
    // every value carries characters a row separator could be confused with (JSON escapes them)
    const x = "\n\r\u0001\u0000 é\n";
    const q = s.queue("mixed");
    // in stream order: entry-held jobs between jobs whose entries name a hash
    const a = await q.enqueue("echo", { n: "a" + x });
    const c1 = await q.enqueue("echo", { n: "c1" + x }, { jobId: "caller-1" });
    const b = await q.enqueue("other", { n: "b" + x });
    const g1 = await q.enqueue("echo", { n: "g1" + x }, { group: "g" });
    const c = await q.enqueue("echo", { n: "c" + x });
    const seen: Record<string, { n: string; task: string; attempt: number }> = {};
    const task = (name: string) => (data: { n: string }, ctx: JobContext) => {
      seen[ctx.job.id] = { n: data.n, task: name, attempt: ctx.job.attempt };
      return data.n;
    };
    const w = s.worker({ queues: ["mixed"], concurrency: 10, wait: false, tasks: { echo: task("echo"), other: task("other") } });
    const summary = await within(w.run(), 15_000, "the worker draining five jobs");
    expect(summary.completed).toBe(5);
    expect(seen).toEqual({
      [a.id]: { n: "a" + x, task: "echo", attempt: 1 },
      "caller-1": { n: "c1" + x, task: "echo", attempt: 1 },
      [b.id]: { n: "b" + x, task: "other", attempt: 1 },
      [g1.id]: { n: "g1" + x, task: "echo", attempt: 1 },
      [c.id]: { n: "c" + x, task: "echo", attempt: 1 },
    });
    expect(c1.id).toBe("caller-1");
    for (const [id, n] of [[a.id, "a"], ["caller-1", "c1"], [b.id, "b"], [g1.id, "g1"], [c.id, "c"]] as const) {
      expect(await q.getJob(id)).toMatchObject({ state: "completed", result: n + x, data: { n: n + x }, attempt: 1 });
    }
  });
});

describe("retries and the dead letter", () => {
  test("a failed attempt is retried after a fixed backoff", async () => {
    const s = scope();
    const q = s.queue();
    const starts: number[] = [];
    let failedAt = 0;
    const retrying: Retrying[] = [];
    const w = s.worker({
      tasks: {
        flaky(_d: unknown, ctx: JobContext) {
          starts.push(Date.now());
          if (ctx.job.attempt === 1) {
            failedAt = Date.now();
            throw new Error("first attempt fails");
          }
          return `ok on ${ctx.job.attempt}`;
        },
      },
    });
    w.addEventListener("retrying", (e) => retrying.push({ ...(e as CustomEvent<Retrying>).detail, seenAt: Date.now() }));
    w.run();
    const job = await q.enqueue("flaky", null, { attempts: 3, backoff: { type: "fixed", delay: 300, jitter: 0 } });
    const info = await settled(q, job.id, "completed");
    expect(starts).toHaveLength(2);
    const r = retrying[0]!;
    console.log(`[worker] fixed backoff 300 ms: failure -> retry started ${starts[1]! - failedAt} ms`);
    // the retry was scheduled 300 ms after the failure (the worker's clock, read between the throw
    // and the retrying event), stored as the job's runAt, and did not start before that time
    expect(r.retryAt - 300).toBeGreaterThanOrEqual(failedAt);
    expect(r.retryAt - 300).toBeLessThanOrEqual(r.seenAt);
    expect(info.runAt).toBe(r.retryAt);
    expect(starts[1]!).toBeGreaterThanOrEqual(r.retryAt);
    expect(info).toMatchObject({ attempt: 2, result: "ok on 2" });
    expect(info.error).toMatchObject({ name: "Error", message: "first attempt fails" }); // the last failure is kept
    expect(retrying).toHaveLength(1);
    expect(retrying[0]!.job.id).toBe(job.id);
    const summary = await w.stop();
    expect(summary).toMatchObject({ completed: 1, retried: 1, failed: 0 });
  });

  test("a plain number backoff is a fixed delay without jitter", async () => {
    const s = scope();
    const q = s.queue();
    const starts: number[] = [];
    const fails: number[] = [];
    const retrying: Retrying[] = [];
    const w = s.worker({
      tasks: {
        flaky(_d: unknown, ctx: JobContext) {
          starts.push(Date.now());
          if (ctx.job.attempt < 3) {
            fails.push(Date.now());
            throw new Error("again");
          }
        },
      },
    });
    w.addEventListener("retrying", (e) => retrying.push({ ...(e as CustomEvent<Retrying>).detail, seenAt: Date.now() }));
    w.run();
    const job = await q.enqueue("flaky", null, { attempts: 3, backoff: 250 });
    await settled(q, job.id, "completed");
    expect(starts).toHaveLength(3);
    expect(retrying).toHaveLength(2);
    // each retry scheduled the full 250 ms after its failure (jitter would only shorten it), and
    // not started before its time
    retrying.forEach((r, i) => {
      expect(r.retryAt - 250).toBeGreaterThanOrEqual(fails[i]!);
      expect(r.retryAt - 250).toBeLessThanOrEqual(r.seenAt);
      expect(starts[i + 1]!).toBeGreaterThanOrEqual(r.retryAt);
    });
  });

  test("exponential backoff waits longer after each failure, then the job fails for good", async () => {
    const s = scope();
    const q = s.queue();
    const starts: number[] = [];
    const ends: number[] = [];
    const retrying: Retrying[] = [];
    const w = s.worker({
      tasks: {
        doomed(_d: unknown, ctx: JobContext) {
          starts.push(Date.now());
          ends.push(Date.now());
          throw new Error(`attempt ${ctx.job.attempt} failed`);
        },
      },
    });
    w.addEventListener("retrying", (e) => retrying.push({ ...(e as CustomEvent<Retrying>).detail, seenAt: Date.now() }));
    w.run();
    const job = await q.enqueue("doomed", null, { attempts: 4, backoff: { type: "exponential", delay: 150, jitter: 0 } });
    const info = await settled(q, job.id, "failed", 15_000);
    expect(starts).toHaveLength(4);
    expect(retrying.map((r) => r.job.attempt)).toEqual([1, 2, 3]);
    console.log(`[worker] exponential backoff 150/300/600 ms: failure -> retry started ${[1, 2, 3].map((i) => starts[i]! - ends[i - 1]!).join(", ")} ms`);
    // retry i is scheduled 150·2^(i-1) ms after failure i, by the worker's clock between the throw
    // and the retrying event, and attempt i+1 does not start before that time
    [150, 300, 600].forEach((d, i) => {
      const r = retrying[i]!;
      expect(r.retryAt - d).toBeGreaterThanOrEqual(ends[i]!);
      expect(r.retryAt - d).toBeLessThanOrEqual(r.seenAt);
      expect(starts[i + 1]!).toBeGreaterThanOrEqual(r.retryAt);
    });
    expect(info).toMatchObject({ attempt: 4, maxAttempts: 4, error: { name: "Error", message: "attempt 4 failed" } });
  });

  test("backoffDelay doubles per attempt, is capped by maxDelay, and jitter only shortens it", () => {
    const b = { type: "exponential" as const, delay: 100, jitter: 0, maxDelay: 1000 };
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(b, a))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay({ ...b, type: "fixed" }, 5)).toBe(100);
    const j = { ...b, jitter: 0.5 };
    expect(backoffDelay(j, 2, () => 0)).toBe(200);
    expect(backoffDelay(j, 2, () => 1)).toBe(100);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(j, 3);
      expect(d).toBeGreaterThanOrEqual(200);
      expect(d).toBeLessThanOrEqual(400);
    }
  });

  test("a job whose attempts are exhausted ends failed with its error stored", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    const failed: JobEventDetail[] = [];
    let calls = 0;
    const w = s.worker({
      tasks: {
        broken() {
          calls++;
          throw new TypeError(`broken ${calls}`);
        },
      },
    });
    w.addEventListener("failed", (e) => failed.push((e as CustomEvent<JobEventDetail>).detail));
    w.run();
    const job = await q.enqueue("broken", { x: 1 }, { attempts: 2, backoff: 50 });
    const info = await settled(q, job.id, "failed");
    expect(calls).toBe(2);
    expect(info).toMatchObject({ attempt: 2, maxAttempts: 2, data: { x: 1 } });
    expect(info.error).toMatchObject({ name: "TypeError", message: "broken 2" });
    expect(info.error!.stack).toContain("broken 2");
    expect(info.finishedAt).toBeGreaterThan(0);
    expect(await redis.zscore(q.keys.failed, job.id)).not.toBeNull();
    expect(await q.counts()).toMatchObject({ failed: 1, waiting: 0, active: 0, delayed: 0, completed: 0 });
    await waitFor(() => failed.length === 1, "the failed event");
    expect(failed[0]!.job.id).toBe(job.id);
    expect(await w.stop()).toMatchObject({ failed: 1, retried: 1, completed: 0 });
  });

  test("an UnrecoverableError fails the job at once, without the attempts left", async () => {
    const s = scope();
    const q = s.queue();
    let calls = 0;
    const w = s.worker({
      tasks: {
        invalid() {
          calls++;
          throw new UnrecoverableError("bad input, retrying cannot help");
        },
      },
    });
    w.run();
    const job = await q.enqueue("invalid", null, { attempts: 5, backoff: 10 });
    const info = await settled(q, job.id, "failed");
    await sleep(200);
    expect(calls).toBe(1);
    expect(info).toMatchObject({ attempt: 1, maxAttempts: 5, error: { name: "UnrecoverableError", message: "bad input, retrying cannot help" } });
    expect(await q.counts()).toMatchObject({ failed: 1, delayed: 0, waiting: 0 });
  });

  test("a job for a task the worker does not know goes through the retry policy, and a worker that knows it takes the retry", async () => {
    const s = scope();
    const q = s.queue();
    const old = s.worker({ tasks: { known: () => 1 } });
    const retrying: { attempt: number; error: unknown }[] = [];
    old.addEventListener("retrying", (e) => {
      const d = (e as CustomEvent<JobEventDetail>).detail;
      retrying.push({ attempt: d.job.attempt, error: d.error });
      void old.stop(); // the old worker is replaced before the retry is due
    });
    old.run();
    const job = await q.enqueue("new-task", null, { attempts: 3, backoff: { type: "fixed", delay: 300 } });
    await waitFor(() => retrying.length >= 1, "the first attempt to fail");
    await old.stop();
    expect(retrying[0]!.attempt).toBe(1);
    expect(UnknownTaskError.is(retrying[0]!.error)).toBe(true);
    expect((retrying[0]!.error as Error).message).toContain("new-task");
    const info = await q.getJob(job.id);
    expect(info!.state).not.toBe("failed");
    expect(info!.error!.name).toBe("UnknownTaskError");
    // the new deploy's worker knows the task
    const fresh = s.worker({ tasks: { "new-task": () => "done" } });
    fresh.run();
    const done = await settled(q, job.id, "completed");
    expect(done.result).toBe("done");
    expect(done.attempt).toBeGreaterThanOrEqual(2);
  });

  test("a job for a task no worker knows fails once its attempts are spent", async () => {
    const s = scope();
    const q = s.queue();
    const w = s.worker({ tasks: { known: () => 1 } });
    w.run();
    const job = await q.enqueue("unknown-task", null, { attempts: 2, backoff: { type: "fixed", delay: 0 } });
    const info = await settled(q, job.id, "failed");
    expect(info.attempt).toBe(2);
    expect(info.error!.name).toBe("UnknownTaskError");
    expect(info.error!.message).toContain("unknown-task");
  });

  test("queue.retry() re-queues a failed job with its attempts reset, and it then completes", async () => {
    const s = scope();
    const q = s.queue();
    let healthy = false;
    const attempts: number[] = [];
    const w = s.worker({
      tasks: {
        sometimes(_d: unknown, ctx: JobContext) {
          attempts.push(ctx.job.attempt);
          if (!healthy) throw new Error("down");
          return "up";
        },
      },
    });
    w.run();
    const job = await q.enqueue("sometimes", null, { attempts: 1 });
    await settled(q, job.id, "failed");
    expect(await q.counts()).toMatchObject({ failed: 1 });

    healthy = true;
    expect(await q.retry(job.id)).toBe(true);
    const info = await settled(q, job.id, "completed");
    expect(info).toMatchObject({ attempt: 1, result: "up", stalls: 0 });
    expect(attempts).toEqual([1, 1]);
    expect(await q.counts()).toMatchObject({ failed: 0, completed: 1 });
    expect(await q.retry(job.id)).toBe(false);
  });
});

describe("timeouts and cancelling", () => {
  test("a job that exceeds its timeout is aborted with reason timeout and its attempt fails", async () => {
    const s = scope();
    const q = s.queue();
    const reasons: (string | undefined)[] = [];
    const trace: string[] = [];
    const w = s.worker({
      tasks: {
        async stuck(_d: unknown, ctx: JobContext) {
          trace.push(`start ${ctx.job.attempt}`);
          // runs until its signal aborts: nothing but the timeout aborts it here
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          reasons.push(ctx.abortReason);
          trace.push(`abort ${ctx.job.attempt} ${ctx.abortReason}`);
          throw ctx.signal.reason;
        },
      },
    });
    w.run();
    const job = await q.enqueue("stuck", null, { timeout: "150ms", attempts: 2, backoff: 10 });
    const info = await settled(q, job.id, "failed");
    expect(reasons).toEqual(["timeout", "timeout"]);
    // each attempt ran until its own timeout; the second began after the first had timed out
    expect(trace).toEqual(["start 1", "abort 1 timeout", "start 2", "abort 2 timeout"]);
    expect(info).toMatchObject({ attempt: 2, error: { name: "JobAborted", abortReason: "timeout" } });
  });

  test("a task's own timeout applies when the job sets none", async () => {
    const s = scope();
    const q = s.queue();
    const w = s.worker({
      timeout: "1h",
      tasks: {
        stuck: {
          timeout: 100,
          handler: (_d: unknown, ctx: JobContext) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })),
        },
      },
    });
    w.run();
    const job = await q.enqueue("stuck", null, { attempts: 1 });
    expect((await settled(q, job.id, "failed")).error).toMatchObject({ abortReason: "timeout" });
  });

  test("a job cancelled while waiting is never run", async () => {
    const s = scope();
    const q = s.queue();
    const ran: string[] = [];
    const jobs = await q.enqueueMany([{ task: "a", data: "one" }, { task: "a", data: "two" }, { task: "a", data: "three" }]);
    await q.cancel(jobs[1]!.id);
    const w = s.worker({ wait: false, tasks: { a: (d: string) => void ran.push(d) } });
    expect((await within(w.run(), 10_000, "draining")).completed).toBe(2);
    expect(ran.sort()).toEqual(["one", "three"]);
    expect((await q.getJob(jobs[1]!.id))!.state).toBe("cancelled");
    expect(await q.counts()).toMatchObject({ waiting: 0, completed: 2, cancelled: 1 });
  });

  test("cancelling a running job without abort changes nothing; with abort it ends aborted and is not retried", async () => {
    const s = scope();
    const q = s.queue();
    const started = deferred();
    let runs = 0;
    const w = s.worker({
      abortPollInterval: 100,
      tasks: {
        async long(_d: unknown, ctx: JobContext) {
          runs++;
          started.resolve();
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          throw ctx.signal.reason;
        },
      },
    });
    w.run();
    const job = await q.enqueue("long", null, { attempts: 3, backoff: 10 });
    await within(started.promise, 10_000, "the job to start");
    expect(await q.cancel(job.id)).toEqual({ id: job.id, outcome: "active", previousState: "active" });
    await sleep(200);
    expect((await q.getJob(job.id))!.state).toBe("active");
    expect(await q.cancel(job.id, { abort: true })).toEqual({ id: job.id, outcome: "abort-requested", previousState: "active" });
    const info = await settled(q, job.id, "aborted");
    expect(info.error).toMatchObject({ abortReason: "user" });
    await sleep(200);
    expect(runs).toBe(1);
    expect(await q.counts()).toMatchObject({ aborted: 1, active: 0, waiting: 0, delayed: 0 });
    expect(await w.stop()).toMatchObject({ aborted: 1, retried: 0, failed: 0 });
  });
});

describe("scheduling", () => {
  test("a delayed job does not start before its time, then the running worker starts it", async () => {
    const s = scope();
    const q = s.queue();
    let startedAt = 0;
    const w = s.worker({ tasks: { later: () => void (startedAt = Date.now()) } });
    w.run();
    const t0 = Date.now();
    const job = await q.enqueue("later", null, { delay: "800ms" });
    expect(job.state).toBe("delayed");
    await sleep(500);
    const mid = (await q.getJob(job.id))!;
    // read before its time (the usual case): still delayed and not started
    if (Date.now() < mid.runAt!) expect([mid.state, startedAt]).toEqual(["delayed", 0]);
    const info = await settled(q, job.id, "completed");
    const runAt = info.runAt!;
    console.log(`[worker] delayed job: runAt -> started ${startedAt - runAt} ms`);
    expect(runAt).toBe(mid.runAt!);
    expect(runAt).toBeGreaterThanOrEqual(t0 + 800); // due 800 ms after it was enqueued
    expect(startedAt).toBeGreaterThanOrEqual(runAt);
    expect(info.startedAt!).toBeGreaterThanOrEqual(runAt);
  });

  test("a job with runAt does not start before that time, then the running worker starts it", async () => {
    const s = scope();
    const q = s.queue();
    let startedAt = 0;
    const w = s.worker({ tasks: { at: () => void (startedAt = Date.now()) } });
    const at = new Date(Date.now() + 700);
    const job = await q.enqueue("at", null, { runAt: at });
    expect(job.state).toBe("delayed");
    w.run();
    await sleep(400);
    const mid = (await q.getJob(job.id))!;
    // read before its time (the usual case): still delayed and not started
    if (Date.now() < at.getTime()) expect([mid.state, startedAt]).toEqual(["delayed", 0]);
    const info = await settled(q, job.id, "completed");
    console.log(`[worker] runAt job: runAt -> started ${startedAt - at.getTime()} ms`);
    expect(info.runAt).toBe(at.getTime());
    expect(startedAt).toBeGreaterThanOrEqual(at.getTime());
    expect(info.startedAt!).toBeGreaterThanOrEqual(at.getTime());
  });

  test("a worker given queues in priority order takes every high job before default before low", async () => {
    const s = scope();
    const queues = { high: s.queue("high"), default: s.queue("default"), low: s.queue("low") };
    // enqueued lowest first, so neither enqueue order nor stream ids explain the order observed
    for (const name of ["low", "default", "high"] as const) {
      await queues[name].enqueueMany(Array.from({ length: 15 }, (_, i) => ({ task: "record", data: { name, i } })));
    }
    const order: string[] = [];
    const w = s.worker({
      queues: ["high", "default", "low"],
      concurrency: 1,
      wait: false,
      tasks: {
        async record(data: { name: string }, ctx: JobContext) {
          expect(ctx.job.queue).toBe(data.name);
          order.push(data.name);
          await sleep(1);
        },
      },
    });
    const summary = await within(w.run(), 20_000, "draining three queues");
    expect(summary.completed).toBe(45);
    expect(order).toEqual([...Array(15).fill("high"), ...Array(15).fill("default"), ...Array(15).fill("low")]);
  });

  test("a job of an earlier queue enqueued later is still taken first", async () => {
    const s = scope();
    const high = s.queue("high");
    const low = s.queue("low");
    const gate = deferred();
    const order: string[] = [];
    const w = s.worker({
      queues: ["high", "low"],
      concurrency: 1,
      tasks: {
        async block() {
          order.push("block");
          await gate.promise;
        },
        mark: (data: string) => void order.push(data),
      },
    });
    w.run();
    await low.enqueue("block", null);
    await waitFor(() => order.length === 1, "the blocking job to start");
    await low.enqueue("mark", "low-1");
    await low.enqueue("mark", "low-2");
    await high.enqueue("mark", "high-1");
    gate.resolve();
    await waitFor(() => order.length === 4, "all jobs to run");
    expect(order).toEqual(["block", "high-1", "low-1", "low-2"]);
  });
});

describe("concurrency", () => {
  for (const concurrency of [1, 4, 7]) {
    test(`a worker with concurrency ${concurrency} never runs more jobs at once`, async () => {
      const s = scope();
      const a = s.queue("a");
      const b = s.queue("b");
      let running = 0;
      let max = 0;
      let done = 0;
      const work = async (_d: unknown, ctx: JobContext) => {
        running++;
        max = Math.max(max, running);
        try {
          await sleep(5 + (ctx.job.id.charCodeAt(0) % 20));
        } finally {
          running--;
          done++;
        }
      };
      await a.enqueueMany(Array.from({ length: 40 }, () => ({ task: "work" })));
      await b.enqueueMany(Array.from({ length: 40 }, () => ({ task: "work" })));
      const w = s.worker({ queues: ["a", "b"], concurrency, wait: false, tasks: { work } });
      // more jobs arrive while it runs
      const late = (async () => {
        await sleep(30);
        await b.enqueueMany(Array.from({ length: 20 }, () => ({ task: "work" })));
      })();
      const summary = await within(w.run(), 30_000, "draining");
      await late;
      // drain mode may stop before the late jobs arrive: run again until nothing is left
      const w2 = s.worker({ queues: ["a", "b"], concurrency, wait: false, tasks: { work } });
      const summary2 = await within(w2.run(), 30_000, "draining");
      expect(summary.completed + summary2.completed).toBe(100);
      expect(done).toBe(100);
      expect(max).toBeLessThanOrEqual(concurrency);
      if (concurrency > 1) expect(max).toBeGreaterThanOrEqual(2);
      expect(await a.counts()).toMatchObject({ waiting: 0, active: 0, completed: 40 });
      expect(await b.counts()).toMatchObject({ waiting: 0, active: 0, completed: 60 });
    });
  }
});

describe("drain mode", () => {
  test("a drain-mode worker stops on its own after its last job, without waiting out a blocking read", async () => {
    const s = scope();
    const q = s.queue();
    await q.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ task: "nap", data: i })));
    const trace: string[] = [];
    // a 10-minute BLOCK: had the worker waited in a blocking read, run() would not end in this test
    const w = s.worker({
      concurrency: 4, wait: false, blockTimeout: "10m",
      tasks: { nap: async () => (await sleep(10), void trace.push("job")) },
    });
    w.addEventListener("phase", (e) => {
      const d = (e as CustomEvent<{ phase: string; source: string }>).detail;
      trace.push(`${d.phase}:${d.source}`);
    });
    const t0 = Date.now();
    const summary = await within(w.run(), 15_000, "draining");
    console.log(`[worker] drain mode: 30 jobs and stop in ${Date.now() - t0} ms`);
    expect(summary.completed).toBe(30);
    // the drain was its own (source "drained"), after the last job
    expect(trace).toEqual([...Array(30).fill("job"), "draining:drained", "stopped:settled"]);
    expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, completed: 30 });
  }, 20_000);

  test("a drain-mode worker runs a retry that is due at once before it stops", async () => {
    const s = scope();
    for (let round = 0; round < 4; round++) {
      const q = s.queue(`round-${round}`);
      await q.enqueueMany(Array.from({ length: 40 }, (_, i) => ({ task: "nap", data: i })));
      await q.enqueue("flaky", null, { jobId: "flaky", attempts: 2, backoff: 0 });
      const w = s.worker({
        queues: [q.name],
        concurrency: 8,
        wait: false,
        tasks: {
          nap: () => sleep(2),
          flaky(_d: unknown, ctx: JobContext) {
            if (ctx.job.attempt === 1) throw new Error("fails once");
            return "retried";
          },
        },
      });
      const summary = await within(w.run(), 10_000, "draining");
      expect(summary).toMatchObject({ completed: 41, retried: 1 });
      expect(await q.getJob("flaky")).toMatchObject({ state: "completed", attempt: 2, result: "retried" });
      expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, completed: 41 });
    }
  }, 30_000);
});

describe("job context", () => {
  test("ctx carries the job's id, name, queue, attempt and maxAttempts, and ctx.progress is visible in getJob", async () => {
    const s = scope();
    const q = s.queue("ctxq");
    const gate = deferred();
    const seen = deferred<{ job: JobContext["job"]; workerId: string; aborted: boolean }>();
    const w = s.worker({
      queues: ["ctxq"],
      tasks: {
        async inspect(data: { n: number }, ctx: JobContext) {
          await ctx.progress({ step: 1, of: 2 });
          seen.resolve({ job: { ...ctx.job }, workerId: ctx.workerId, aborted: ctx.shouldAbort() });
          await gate.promise;
          await ctx.progress(100);
          return { doubled: data.n * 2 };
        },
      },
    });
    w.run();
    const t0 = Date.now();
    await q.enqueue("inspect", { n: 21 }, { jobId: "ctx-1", attempts: 4 });
    const { job, workerId, aborted } = await within(seen.promise, 10_000, "the handler to start");
    expect(job).toMatchObject({ id: "ctx-1", name: "inspect", queue: "ctxq", attempt: 1, maxAttempts: 4, stalls: 0 });
    expect(job.createdAt).toBeGreaterThanOrEqual(t0);
    expect(workerId).toBe(w.id);
    expect(aborted).toBe(false);
    expect(w.activeJobs).toEqual([{ queue: "ctxq", id: "ctx-1" }]);

    const running = await q.getJob("ctx-1");
    expect(running).toMatchObject({ state: "active", owner: w.id, attempt: 1, progress: { step: 1, of: 2 } });
    expect(running!.startedAt).toBeGreaterThanOrEqual(t0);
    expect(await q.counts()).toMatchObject({ active: 1, waiting: 0 });

    gate.resolve();
    const done = await settled(q, "ctx-1", "completed");
    expect(done).toMatchObject({ result: { doubled: 42 }, progress: 100, attempt: 1 });
    expect(done.finishedAt).toBeGreaterThanOrEqual(done.startedAt!);
  });

  test("completed events carry the job and its result", async () => {
    const s = scope();
    const q = s.queue();
    const events: JobEventDetail[] = [];
    const w = s.worker({ wait: false, tasks: { echo: (d: unknown) => d } });
    w.addEventListener("completed", (e) => events.push((e as CustomEvent<JobEventDetail>).detail));
    await q.enqueue("echo", { a: 1 }, { jobId: "e1" });
    await q.enqueue("echo", [1, 2], { jobId: "e2" });
    await within(w.run(), 10_000, "draining");
    expect(events.map((e) => [e.job.id, e.result]).sort()).toEqual([["e1", { a: 1 }], ["e2", [1, 2]]]);
    expect((await q.getJob("e2"))!.result).toEqual([1, 2]);
  });
});

describe("stopping", () => {
  test("Worker.stop() waits for running jobs and fetches nothing more", async () => {
    const s = scope();
    const q = s.queue();
    const started = deferred();
    let finished = false;
    const w = s.worker({
      tasks: {
        async slow() {
          started.resolve();
          await sleep(300);
          finished = true;
          return "done";
        },
        fast: () => "fast",
      },
    });
    w.run();
    const job = await q.enqueue("slow", null);
    await within(started.promise, 10_000, "the job to start");
    const stopping = w.stop();
    expect(w.phase).toBe("draining");
    const later = await q.enqueue("fast", null);
    const summary = await within(stopping, 10_000, "stop()");
    expect(finished).toBe(true);
    expect(w.phase).toBe("stopped");
    expect(summary).toMatchObject({ completed: 1, interrupted: 0 });
    expect((await q.getJob(job.id))!.state).toBe("completed");
    expect((await q.getJob(later.id))!.state).toBe("waiting");
    expect(await q.counts()).toMatchObject({ waiting: 1, active: 0, completed: 1 });
  });

  test("a stopped worker leaves its consumer group and the worker registry", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    const w = s.worker({ id: "leaving-worker", tasks: { a: () => 1 } });
    w.run();
    await q.enqueue("a", null, { jobId: "one" });
    await settled(q, "one", "completed");
    expect(await redis.zscore(`${s.prefix}:workers`, "leaving-worker")).not.toBeNull();
    await w.stop();
    const consumers = (await redis.call("XINFO", "CONSUMERS", q.keys.stream, "sluice")) as unknown[];
    expect(consumers).toEqual([]);
    expect(await redis.zscore(`${s.prefix}:workers`, "leaving-worker")).toBeNull();
  });
});

describe("counts", () => {
  test("counts() follow jobs through every state", async () => {
    const s = scope();
    const q = s.queue();
    const gate = deferred();
    const w = s.worker({
      concurrency: 2,
      abortPollInterval: 100,
      tasks: {
        ok: () => "ok",
        bad() {
          throw new UnrecoverableError("no");
        },
        hold: () => gate.promise,
        async abortable(_d: unknown, ctx: JobContext) {
          await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true }));
        },
      },
    });
    w.run();
    const ok = await q.enqueue("ok", null);
    const bad = await q.enqueue("bad", null);
    const ab = await q.enqueue("abortable", null);
    await settled(q, ok.id, "completed");
    await settled(q, bad.id, "failed");
    await settled(q, ab.id, "active");
    expect(await q.cancel(ab.id, { abort: true })).toMatchObject({ outcome: "abort-requested", previousState: "active" });
    const aborted = await settled(q, ab.id, "aborted");
    expect(aborted.error).toMatchObject({ name: "JobAborted", abortReason: "user" });

    const h1 = await q.enqueue("hold", null);
    const h2 = await q.enqueue("hold", null);
    await settled(q, h1.id, "active");
    await settled(q, h2.id, "active");
    // the worker is full: these stay where they are
    const waiting = await q.enqueue("ok", null);
    await q.enqueue("ok", null, { delay: "1h" });
    const c = await q.enqueue("ok", null, { delay: "1h" });
    await q.cancel(c.id);
    await sleep(100);
    expect(await q.counts()).toEqual({ waiting: 1, active: 2, delayed: 1, completed: 1, failed: 1, cancelled: 1, aborted: 1 });

    gate.resolve();
    await settled(q, waiting.id, "completed");
    await settled(q, h2.id, "completed");
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, delayed: 1, completed: 4, failed: 1, cancelled: 1, aborted: 1 });
  });

  test("completed jobs beyond the retention count are removed", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    const jobs = await q.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ task: "a", data: i })));
    const w = s.worker({ concurrency: 1, wait: false, retention: { completed: { count: 10 } }, tasks: { a: () => 1 } });
    expect((await within(w.run(), 10_000, "draining")).completed).toBe(30);
    expect(await q.counts()).toMatchObject({ completed: 10 });
    expect(await q.getJob(jobs[0]!.id)).toBeNull();
    expect((await q.getJob(jobs[29]!.id))!.state).toBe("completed");
    // these jobs completed with no hash of their own: their records in \`done\`, the newest 10
    expect(await redis.keys(`${s.prefix}:*job:*`)).toHaveLength(0);
    expect((await redis.hkeys(q.keys.done)).sort()).toEqual(jobs.slice(20).map((j) => j.id).sort());
  });
});

describe("worker options", () => {
  test("invalid worker options throw a ValidationError naming the field and value, and touch nothing", async () => {
    const s = scope();
    const redis = s.redis();
    const tasks = { a: () => 1 };
    const cases: [Record<string, unknown>, string, string][] = [
      [{ concurrency: 0 }, "concurrency", "0"],
      [{ concurrency: 2.5 }, "concurrency", "2.5"],
      [{ stalledTimeout: 1000, heartbeatInterval: 600 }, "heartbeatInterval", "600"],
      [{ stalledTimeout: "2s", heartbeatInterval: "1.5s" }, "heartbeatInterval", '"1.5s"'],
      [{ stalledTimeout: "10 parsecs" }, "stalledTimeout", '"10 parsecs"'],
      [{ timeout: "later" }, "timeout", '"later"'],
      [{ shutdownGracefulTimeout: -1 }, "shutdownGracefulTimeout", "-1"],
      [{ maxStalled: -1 }, "maxStalled", "-1"],
      [{ queues: [] }, "queues", "[]"],
      [{ queues: ["ok", "bad name"] }, "queues.1", '"bad name"'],
      [{ wait: "no" }, "wait", '"no"'],
      [{ retention: { completed: { count: -2 } } }, "retention.completed.count", "-2"],
      [{ tasks: { a: 42 } }, "tasks.a", "42"],
      [{ tasks: { a: { handler: () => 1, timeout: "forever" } } }, "tasks.a.timeout", '"forever"'],
    ];
    for (const [options, field, value] of cases) {
      const e = await thrown(() => new Worker({ redis: s.url, prefix: s.prefix, tasks, ...options } as never));
      expect(ValidationError.is(e)).toBe(true);
      expect((e as ValidationError).issues.map((i) => i.field)).toContain(field);
      expect(e.message).toContain(`'${field}'`);
      expect(e.message).toContain(value);
    }
    expect(await redis.dbsize()).toBe(0);
  });

  test("heartbeatInterval defaults to a safe fraction of stalledTimeout", () => {
    expect(() => new Worker({ tasks: {}, stalledTimeout: 600 })).not.toThrow();
    expect(() => new Worker({ tasks: {}, stalledTimeout: "1s", heartbeatInterval: "300ms" })).not.toThrow();
  });
});
