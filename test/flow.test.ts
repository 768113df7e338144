/**
 * Flow control across worker processes: pause and resume a queue for every worker at once, and a
 * rate limit enforced in Redis across all workers.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Queue } from "../src/queue.ts";
import { redisUrl, waitFor } from "./harness.ts";
import { jobHash, setup, sleep, spawnWorker } from "./procs.ts";

setDefaultTimeout(90_000);

describe("pause and resume", () => {
  test("pausing with jobs running: they finish, no worker starts another, enqueue still works; resume: work continues", async () => {
    const { prefix, queue, redis } = setup();
    const workers = (["bun", "node"] as const).map((rt) => spawnWorker(rt, prefix, { concurrency: 2, worker: { abortPollInterval: 200 } }));
    for (const w of workers) await w.ready();
    const first = await Promise.all([1, 2, 3, 4].map(() => queue.enqueue("sleep", { ms: 700 })));
    await waitFor(async () => (await queue.counts()).active === 4, "4 jobs running on the 2 workers", 30_000);
    await queue.pause();
    expect(await queue.isPaused()).toBe(true);
    for (const w of workers) await w.waitEvents("log", 1, (e) => e.event === "queue-paused");
    // enqueueing goes on while paused
    const second = await Promise.all([1, 2, 3].map(() => queue.enqueue("sleep", { ms: 10 })));
    // the running jobs finish
    for (const j of first) await waitFor(async () => (await queue.getJob(j.id))?.state === "completed", `job ${j.id} to complete`, 30_000);
    // and nothing new starts, across several of the workers' looks at the flag
    await sleep(1000);
    expect(await queue.counts()).toMatchObject({ waiting: 3, active: 0, completed: 4 });
    for (const j of second) expect((await jobHash(redis, prefix, j.id)).state).toBe("waiting");

    await queue.resume();
    expect(await queue.isPaused()).toBe(false);
    for (const j of second) await waitFor(async () => (await queue.getJob(j.id))?.state === "completed", `job ${j.id} to complete after the resume`, 30_000);
    for (const w of workers) {
      w.kill("SIGTERM");
      expect(await w.exited()).toBe(0);
    }
  });

  test("a worker that misses the pause message still starts nothing: the fetch script checks the flag", async () => {
    const { prefix, queue } = setup();
    // the flag set directly, with no message: as if the worker's subscription had missed it
    await queue.send("HSET", [queue.keys.config, "paused", "1"]);
    const w = spawnWorker("bun", prefix, { worker: { abortPollInterval: 200 } });
    await w.ready();
    const job = await queue.enqueue("echo", 1);
    await w.waitEvents("log", 1, (e) => e.event === "queue-paused");
    await sleep(600);
    expect((await queue.getJob(job.id))?.state).toBe("waiting");
    // and a resume it also misses is found by its next look at the flag
    await queue.send("HDEL", [queue.keys.config, "paused"]);
    await waitFor(async () => (await queue.getJob(job.id))?.state === "completed", "the job to run after the flag went", 30_000);
    w.kill("SIGTERM");
    expect(await w.exited()).toBe(0);
  });
});

describe("rate limits", () => {
  test("rateLimit { max: 50, duration: 1s } over 4 worker processes: no 1-second window holds more than 50 finished jobs, and held-back jobs stay waiting with no attempt counted", async () => {
    const { prefix, queue, redis } = setup();
    const jobs = await queue.enqueueMany(Array.from({ length: 160 }, (_, i) => ({ task: "echo", data: i })));
    const workers = (["bun", "bun", "node", "deno"] as const).map((rt) => spawnWorker(rt, prefix, { concurrency: 10, worker: { rateLimit: { max: 50, duration: "1s" } } }));
    for (const w of workers) await w.ready();
    // while the limit holds jobs back, they are waiting and untouched
    await waitFor(async () => (await queue.counts()).completed >= 50, "the first 50 jobs", 30_000);
    const early = await queue.counts();
    expect(early.waiting).toBeGreaterThan(0);
    for (const j of jobs) await waitFor(async () => (await queue.getJob(j.id))?.state === "completed", `job ${j.id} to complete`, 60_000);
    const finished = (await Promise.all(jobs.map(async (j) => Number((await jobHash(redis, prefix, j.id)).finished)))).sort((a, b) => a - b);
    let worst = 0;
    for (let i = 0, k = 0; i < finished.length; i++) {
      while (finished[k]! < finished[i]! - 999) k++;
      worst = Math.max(worst, i - k + 1);
    }
    expect(worst).toBeLessThanOrEqual(50);
    // every job ran once, in its first attempt
    for (const j of jobs) expect((await jobHash(redis, prefix, j.id)).attempt).toBe("1");
    expect(await queue.rateLimit()).toEqual({ max: 50, duration: 1000 });
    for (const w of workers) {
      w.kill("SIGTERM");
      expect(await w.exited()).toBe(0);
    }
  });

  test("a bad rate limit is a ValidationError naming the field; null removes the limit", async () => {
    const q = new Queue("rl", { redis: redisUrl(), prefix: "rlcheck" });
    try {
      await expect(q.setRateLimit({ max: 0, duration: "1s" })).rejects.toThrow("'rateLimit.max' must be an integer from 1 to 1e9: current value is 0");
      await expect(q.setRateLimit({ max: 5, duration: "soon" })).rejects.toThrow("'rateLimit.duration' must be a duration");
      await q.setRateLimit({ max: 5, duration: 200 });
      expect(await q.rateLimit()).toEqual({ max: 5, duration: 200 });
      await q.setRateLimit(null);
      expect(await q.rateLimit()).toBeNull();
    } finally {
      await q.close();
    }
  });
});
