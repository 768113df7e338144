/**
 * Flow control across worker processes: pause and resume a queue for every worker at once, and a
 * rate limit enforced in Redis across all workers.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Queue } from "../src/queue.ts";
import { redisUrl, waitFor } from "./harness.ts";
import { UnrecoverableError } from "../src/errors.ts";
import { inProcess, jobHash, setup, sleep, spawnWorker } from "./procs.ts";

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

/** The ticks (epoch ms) of a schedule's jobs in the queue, sorted. */
async function tickJobs(redis: import("ioredis").Redis, prefix: string, schedule: string): Promise<number[]> {
  const ticks: number[] = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:{default}:job:sched:${schedule}:*`, "COUNT", 1000);
    cursor = next;
    for (const k of keys) ticks.push(Number(k.slice(k.lastIndexOf(":") + 1)));
  } while (cursor !== "0");
  return ticks.sort((a, b) => a - b);
}

describe("schedules", () => {
  test("a */1 * * * * * schedule over 3 worker processes for 10 s: exactly one job per second, none missing, each run once", async () => {
    const { prefix, queue, redis } = setup();
    const workers = (["bun", "node", "deno"] as const).map((rt) => spawnWorker(rt, prefix, { concurrency: 4 }));
    for (const w of workers) await w.ready();
    const { next } = await queue.upsertSchedule("every-second", { cron: "*/1 * * * * *", task: "echo", data: "tick" });
    expect(next).toBeGreaterThan(Date.now() - 1000);
    await waitFor(async () => (await tickJobs(redis, prefix, "every-second")).length >= 10, "10 ticks", 30_000);
    expect(await queue.removeSchedule("every-second")).toBe(true);
    const ticks = await tickJobs(redis, prefix, "every-second");
    // one job per second from the first tick on: no gap, no tick twice
    ticks.forEach((t, i) => expect(t - ticks[0]!).toBe(i * 1000));
    for (const t of ticks) await waitFor(async () => (await queue.getJob(`sched:every-second:${t}`))?.state === "completed", `the job of tick ${t}`, 30_000);
    expect((await queue.stats()).completed).toBe(ticks.length);
    for (const w of workers) {
      w.kill("SIGTERM");
      expect(await w.exited()).toBe(0);
    }
  });

  test("ticks missed while every worker was down for 5 s: misfire run-once enqueues one job for them, skip none; both go on afterwards", async () => {
    const { prefix, queue, redis } = setup();
    const first = spawnWorker("bun", prefix);
    await first.ready();
    await queue.upsertSchedule("once", { every: "1s", task: "echo", misfire: "run-once" });
    await queue.upsertSchedule("skip", { every: "1s", task: "echo", misfire: "skip" });
    await waitFor(async () => (await tickJobs(redis, prefix, "once")).length >= 2 && (await tickJobs(redis, prefix, "skip")).length >= 2, "two ticks of each", 30_000);
    first.kill("SIGTERM");
    expect(await first.exited()).toBe(0);
    const lastBefore = { once: Math.max(...(await tickJobs(redis, prefix, "once"))), skip: Math.max(...(await tickJobs(redis, prefix, "skip"))) };
    await sleep(5000);
    const second = spawnWorker("bun", prefix);
    await second.ready();
    const misfires = await second.waitEvents("log", 2, (e) => e.event === "schedule-misfire");
    const until = Object.fromEntries(misfires.map((e) => [e.schedule as string, e.until as number]));
    // and each goes on with the ticks after the restart
    await waitFor(async () => (await tickJobs(redis, prefix, "once")).some((t) => t > until.once!) && (await tickJobs(redis, prefix, "skip")).some((t) => t > until.skip!), "a tick after the restart", 30_000);
    const during = async (s: "once" | "skip") => (await tickJobs(redis, prefix, s)).filter((t) => t > lastBefore[s] && t <= until[s]!);
    expect((await during("once")).length).toBe(1);
    expect((await during("skip")).length).toBe(0);
    expect(until.once! - lastBefore.once).toBeGreaterThan(4000); // at least four ticks were missed
    const listed = await queue.listSchedules();
    expect(listed.map((s) => [s.id, s.misfire, s.every])).toEqual(expect.arrayContaining([["once", "run-once", 1000], ["skip", "skip", 1000]]));
    second.kill("SIGTERM");
    expect(await second.exited()).toBe(0);
  });

  test("schedules are checked as they are set: bad cron, time zone, interval or options name the field; the same spec set again keeps its next tick", async () => {
    const { queue } = setup();
    const cases: [unknown, string][] = [
      [{ cron: "61 * * * *", task: "t" }, "'cron' is not valid"],
      [{ cron: "* * * * *", tz: "Mars/Olympus", task: "t" }, "'tz' is not valid"],
      [{ every: "10ms", task: "t" }, "'every' must be at least 1 s"],
      [{ every: "1s", cron: "* * * * *", task: "t" }, "give exactly one of 'cron' and 'every'"],
      [{ every: "1s", task: "t", options: { jobId: "x" } }, "'options.jobId' is set by each tick"],
      [{ every: "1s", task: "t", options: { attempts: 0 } }, "'attempts' must be >= 1"],
      [{ every: "1s", task: "t", misfire: "later" }, `'misfire' must be "run-once" or "skip"`],
    ];
    for (const [spec, message] of cases) await expect(queue.upsertSchedule("s", spec as never)).rejects.toThrow(message);
    expect(await queue.listSchedules()).toEqual([]);
    const a = await queue.upsertSchedule("daily", { cron: "0 0 3 * * *", tz: "Europe/Berlin", task: "report" });
    // an interval counts from when it was set: set again later with the same spec, it keeps its next tick
    const e1 = await queue.upsertSchedule("often", { every: "1h", task: "report" });
    await sleep(20);
    const e2 = await queue.upsertSchedule("often", { every: "1h", task: "report" });
    expect(e2.next).toBe(e1.next);
    // a changed spec starts from now
    const e3 = await queue.upsertSchedule("often", { every: "2h", task: "report" });
    expect(e3.next).toBeGreaterThan(e1.next! + 3_000_000);
    // 03:00 in Berlin: 01:00 or 02:00 UTC depending on daylight saving time
    expect([1, 2]).toContain(new Date(a.next!).getUTCHours());
    expect(await queue.removeSchedule("daily")).toBe(true);
    expect(await queue.removeSchedule("daily")).toBe(false);
  });
});

describe("groups", () => {
  test("groups of 1,000 and 10 jobs, groupConcurrency 2, over 4 worker processes: never more than 2 of a group at once, and the small group finishes long before the big one", async () => {
    const { prefix, queue } = setup();
    await queue.setGroupConcurrency(2);
    const big = await queue.enqueueMany(Array.from({ length: 1000 }, () => ({ task: "sleep", data: { ms: 2 }, options: { group: "big" } })));
    const small = await queue.enqueueMany(Array.from({ length: 10 }, () => ({ task: "sleep", data: { ms: 2 }, options: { group: "small" } })));
    // all but 2 of each group wait their turn, counted and listed as waiting
    expect((await queue.counts()).waiting).toBe(1010);
    const workers = (["bun", "bun", "node", "deno"] as const).map((rt) => spawnWorker(rt, prefix, { concurrency: 8 }));
    for (const w of workers) await w.ready();
    for (const j of small) await waitFor(async () => (await queue.getJob(j.id))?.state === "completed", `small job ${j.id}`, 60_000);
    // (counted by the queue's counters: retention keeps only the newest 1,000 completed jobs)
    await waitFor(async () => (await queue.stats()).completed === 1010, "every job to complete", 60_000);
    const groupOf = new Map<string, string>([...big.map((j) => [j.id, "big"] as const), ...small.map((j) => [j.id, "small"] as const)]);
    // the small group's last job ended before half the big group's had: counted from the handlers'
    // own end lines at that moment (not when this test looks, which comes after the slowest
    // worker process has started, while the others work through the big group)
    const ends = workers.flatMap((w) => w.events("end")).map((e) => ({ g: groupOf.get(e.job as string), t: e.t as number }));
    const smallDone = Math.max(...ends.filter((e) => e.g === "small").map((e) => e.t));
    expect(ends.filter((e) => e.g === "big" && e.t < smallDone).length).toBeLessThan(500);
    // from the handlers' own start and end lines: at most 2 of a group between a start and its end
    for (const g of ["big", "small"]) {
      const marks: [number, number][] = [];
      for (const w of workers) {
        for (const e of w.events("start")) if (groupOf.get(e.job as string) === g) marks.push([e.t as number, 1]);
        for (const e of w.events("end")) if (groupOf.get(e.job as string) === g) marks.push([e.t as number, -1]);
      }
      // an end and a start in the same millisecond: the end came first (the next job is released only once the last one's outcome is written)
      marks.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let running = 0;
      let most = 0;
      for (const [, d] of marks) most = Math.max(most, (running += d));
      expect([g, marks.length, most]).toEqual([g, g === "big" ? 2000 : 20, 2]);
    }
    for (const w of workers) {
      w.kill("SIGTERM");
      expect(await w.exited()).toBe(0);
    }
  });

  test("a held job can be listed, cancelled and deleted; a failed grouped job retried waits its turn; removing the cap releases every held job", async () => {
    const { prefix, queue, redis } = setup();
    await queue.setGroupConcurrency(1);
    const a = await queue.enqueue("echo", "a", { group: "t1" });
    const b = await queue.enqueue("echo", "b", { group: "t1" });
    const c = await queue.enqueue("echo", "c", { group: "t1" });
    const d = await queue.enqueue("echo", "d", { group: "t1" });
    expect((await jobHash(redis, prefix, a.id)).sid).not.toBe("");
    expect((await jobHash(redis, prefix, b.id)).sid).toBe("");
    const listed = await queue.listJobs("waiting", { limit: 2 });
    expect(listed.jobs.map((j) => j.id)).toEqual([a.id, b.id]);
    const rest = await queue.listJobs("waiting", { cursor: listed.nextCursor! });
    expect(rest.jobs.map((j) => j.id)).toEqual([c.id, d.id]);
    // the cursor's own job leaves the held set: the next page still starts after it
    expect((await queue.cancel(b.id)).outcome).toBe("cancelled");
    const after = await queue.listJobs("waiting", { cursor: listed.nextCursor! });
    expect(after.jobs.map((j) => j.id)).toEqual([c.id, d.id]);
    expect((await queue.deleteJob(c.id)).outcome).toBe("deleted");
    expect((await queue.counts()).waiting).toBe(2);
    // a's worker-less cancel releases the group's next: d
    expect((await queue.cancel(a.id)).outcome).toBe("cancelled");
    expect((await jobHash(redis, prefix, d.id)).sid).not.toBe("");
    const e = await queue.enqueue("echo", "e", { group: "t1" });
    const f = await queue.enqueue("echo", "f", { group: "t1" });
    expect([(await jobHash(redis, prefix, e.id)).sid, (await jobHash(redis, prefix, f.id)).sid]).toEqual(["", ""]);
    await queue.setGroupConcurrency(null);
    expect([(await jobHash(redis, prefix, e.id)).sid, (await jobHash(redis, prefix, f.id)).sid].every((s) => s !== "")).toBe(true);
    expect(await queue.groupConcurrency()).toBeNull();

    // a failed job of a full group, retried, waits for its group's turn
    await queue.setGroupConcurrency(1);
    const x = await queue.enqueue("boom", null, { group: "t2", attempts: 1 });
    const w = inProcess(prefix, { queues: ["default"], wait: false, tasks: { boom: () => { throw new UnrecoverableError("no"); }, echo: (v: unknown) => v } });
    await w.run();
    expect((await queue.getJob(x.id))?.state).toBe("failed");
    const y = await queue.enqueue("echo", "y", { group: "t2" });
    expect(await queue.retry(x.id)).toBe(true);
    expect([(await jobHash(redis, prefix, y.id)).sid !== "", (await jobHash(redis, prefix, x.id)).sid]).toEqual([true, ""]);
    expect((await queue.getJob(x.id))?.state).toBe("waiting");
  });
});
