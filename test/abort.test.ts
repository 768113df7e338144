/**
 * Cancel and abort: `queue.cancel(id, { abort: true })` reaching a worker in another process over
 * pub/sub, the polling fallback for a lost message, cancel of waiting, delayed and finished jobs,
 * and the synchronous `shouldAbort()` / `JobAborted` pattern.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { JobContext } from "../src/context.ts";
import { JobAborted } from "../src/errors.ts";
import { RUNTIMES, waitFor } from "./harness.ts";
import { inProcess, jobHash, nextEvent, setup, sleep, spawnWorker } from "./procs.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

/** Runs until its signal aborts, then throws the signal's reason. */
const untilAborted = async (_: unknown, ctx: JobContext) => {
  await new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason), { once: true }));
};

for (const rt of RUNTIMES) {
  describe(`abort from another process (${rt} worker)`, () => {
    test("cancel({ abort: true }) reaches the handler over pub/sub with reason user; the job ends aborted and is never retried, or completed if the handler finishes anyway", async () => {
      const { prefix, queue, redis } = setup();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await queue.enqueue("sleep", {}, { jobId: `abort-${i}`, attempts: 3 })).id);
      const anyway = (await queue.enqueue("sleep", { onAbort: "complete" }, { jobId: "anyway", attempts: 3 })).id;
      // the abort poll and the heartbeat (which also reports requested aborts) both an hour apart,
      // the jobs a minute long: within this test only a pub/sub message can deliver an abort
      const w = spawnWorker(rt, prefix, {
        concurrency: 6, jobMs: 60_000,
        worker: { abortPollInterval: "1 hour", heartbeatInterval: "1 hour", stalledTimeout: "3 hours" },
      });
      await w.ready();
      await w.waitEvents("start", 6);

      const latencies: number[] = [];
      for (const [i, id] of ids.entries()) {
        const t0 = Date.now();
        const r = await queue.cancel(id, { abort: true });
        expect(r).toEqual({ id, outcome: "abort-requested", previousState: "active" });
        const [e] = await w.waitEvents("abort", 1, (e) => e.job === id, 30_000);
        expect(e!.reason).toBe("user");
        expect(e!.t as number).toBeGreaterThanOrEqual(t0); // seen after the request, not before
        // only the jobs whose abort was requested so far saw one
        expect(w.events("abort").map((e) => e.job)).toEqual(ids.slice(0, i + 1));
        latencies.push((e!.t as number) - t0);
      }
      console.log(`[abort] ${rt}: cancel -> ctx.signal (pub/sub) ${latencies.join(", ")} ms`);

      expect(await queue.cancel(anyway, { abort: true })).toMatchObject({ outcome: "abort-requested" });
      await w.waitEvents("end", 1, (e) => e.job === anyway && e.how === "done");
      await waitFor(async () => (await queue.counts()).active === 0, "every job settled");

      for (const id of ids) {
        const job = await queue.getJob(id);
        expect([job!.state, job!.attempt, job!.maxAttempts, job!.error?.abortReason]).toEqual(["aborted", 1, 3, "user"]);
      }
      const done = await queue.getJob(anyway);
      expect([done!.state, done!.attempt]).toEqual(["completed", 1]);
      expect(done!.result).toMatchObject({ abortReason: "user" });
      expect(await redis.zcard(`${prefix}:{default}:aborted`)).toBe(5);

      // never retried: nothing is waiting or delayed, and no job started a second time
      await sleep(300);
      expect(await queue.counts()).toMatchObject({ waiting: 0, delayed: 0, active: 0, aborted: 5, completed: 1 });
      expect(w.events("start")).toHaveLength(6);

      w.kill("SIGTERM");
      expect(await w.exited()).toBe(0);
      expect(w.summary()).toMatchObject({ aborted: 5, completed: 1, retried: 0, failed: 0 });
      expect((await jobHash(redis, prefix, ids[0]!)).abort).toBe("user");
    });
  });
}

describe("abort and cancel", () => {
  test("the polling fallback honours an abort whose pub/sub message was lost", async () => {
    const { prefix, queue, redis } = setup();
    const job = await queue.enqueue("job", null, { attempts: 3 });
    // heartbeats (which report requested aborts too) an hour apart: the abort poll is the only way in
    const w = inProcess(prefix, { abortPollInterval: "300ms", heartbeatInterval: "1 hour", stalledTimeout: "3 hours", tasks: { job: untilAborted } });
    const run = w.run();
    await nextEvent(w, "active");
    await sleep(50);
    // what cancel() writes, without its PUBLISH: only the poll can find it (the job's entry held
    // it, so the hash is written whole: as it waits on that entry, and the abort flag)
    const t0 = performance.now();
    const aborted = nextEvent<{ abortReason: string }>(w, "aborted", 30_000);
    const [[, fields]] = await redis.xrange(`${prefix}:{default}:stream`, job.id, job.id);
    await redis.hset(`${prefix}:{default}:job:${job.id}`, "state", "waiting", "sid", job.id, "p", fields![1]!, "abort", "user");
    expect((await aborted).abortReason).toBe("user");
    console.log(`[abort] poll fallback: ${(performance.now() - t0).toFixed(0)} ms (abortPollInterval 300 ms)`);
    const info = await queue.getJob(job.id);
    expect([info!.state, info!.attempt, info!.error?.abortReason]).toEqual(["aborted", 1, "user"]);
    expect((await w.stop()).aborted).toBe(1);
    await run;
  });

  test("cancel of a waiting job: it never runs; { delete: true } removes it", async () => {
    const { prefix, queue, redis } = setup();
    const a = await queue.enqueue("job", "a");
    const b = await queue.enqueue("job", "b");
    const c = await queue.enqueue("job", "c");
    expect(await queue.cancel(a.id)).toEqual({ id: a.id, outcome: "cancelled", previousState: "waiting" });
    expect(await queue.cancel(b.id, { delete: true, abort: true })).toEqual({ id: b.id, outcome: "cancelled", previousState: "waiting" });
    expect(await redis.exists(`${prefix}:{default}:job:${b.id}`)).toBe(0);
    expect(await queue.cancel(b.id)).toEqual({ id: b.id, outcome: "missing" });
    const ran: unknown[] = [];
    const w = inProcess(prefix, { wait: false, tasks: { job: (d: unknown) => ran.push(d) } });
    const s = await w.run();
    expect(ran).toEqual(["c"]);
    expect(s.completed).toBe(1);
    const info = await queue.getJob(a.id);
    expect(info!.state).toBe("cancelled");
    expect(info!.finishedAt).toBeGreaterThan(0);
    expect((await queue.getJob(c.id))!.state).toBe("completed");
    expect(await queue.counts()).toMatchObject({ waiting: 0, cancelled: 1, completed: 1 });
  });

  test("cancel of a delayed job: it is not promoted when its time comes", async () => {
    const { prefix, queue } = setup();
    const d = await queue.enqueue("job", "late", { delay: "300ms" });
    const keep = await queue.enqueue("job", "kept", { delay: "300ms" });
    expect(d.state).toBe("delayed");
    expect(await queue.cancel(d.id)).toEqual({ id: d.id, outcome: "cancelled", previousState: "delayed" });
    const ran: unknown[] = [];
    const w = inProcess(prefix, { promoteInterval: 50, tasks: { job: (x: unknown) => ran.push(x) } });
    const run = w.run();
    await waitFor(async () => (await queue.getJob(keep.id))?.state === "completed", "the other delayed job to run");
    await sleep(200);
    await w.stop();
    await run;
    expect(ran).toEqual(["kept"]);
    expect((await queue.getJob(d.id))!.state).toBe("cancelled");
    expect(await queue.counts()).toMatchObject({ delayed: 0, cancelled: 1, completed: 1 });
  });

  test("cancel of a finished job changes nothing and says so", async () => {
    const { prefix, queue } = setup();
    const ok = await queue.enqueue("ok");
    const bad = await queue.enqueue("bad", null, { attempts: 1 });
    const w = inProcess(prefix, {
      wait: false,
      tasks: { ok: () => 42, bad: () => Promise.reject(new Error("broken")) },
    });
    await w.run();
    expect(await queue.cancel(ok.id, { abort: true })).toEqual({ id: ok.id, outcome: "finished", previousState: "completed" });
    expect(await queue.cancel(bad.id, { delete: true })).toEqual({ id: bad.id, outcome: "finished", previousState: "failed" });
    const a = await queue.getJob(ok.id);
    expect([a!.state, a!.result, a!.abortRequested]).toEqual(["completed", 42, undefined]);
    expect((await queue.getJob(bad.id))!.state).toBe("failed");
    // and cancelling a cancelled job is "finished" too
    const c = await queue.enqueue("ok", null, { delay: "1h" });
    await queue.cancel(c.id);
    expect(await queue.cancel(c.id)).toEqual({ id: c.id, outcome: "finished", previousState: "cancelled" });
  });

  test("cancel of an active job without abort leaves it running", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("job");
    const seen: (string | undefined)[] = [];
    const w = inProcess(prefix, {
      abortPollInterval: 50,
      tasks: {
        job: async (_: unknown, ctx: JobContext) => {
          await sleep(400);
          seen.push(ctx.abortReason);
          return "finished";
        },
      },
    });
    const run = w.run();
    await nextEvent(w, "active");
    expect(await queue.cancel(job.id)).toEqual({ id: job.id, outcome: "active", previousState: "active" });
    await waitFor(async () => (await queue.getJob(job.id))?.state === "completed", "the job to complete");
    expect(seen).toEqual([undefined]);
    await w.stop();
    await run;
  });

  test("synchronous code checks ctx.shouldAbort() and throws JobAborted; the job ends aborted", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("crunch", { rows: 1_000_000 }, { attempts: 5 });
    let processed = 0;
    const w = inProcess(prefix, {
      tasks: {
        async crunch(data: { rows: number }, ctx: JobContext) {
          for (let row = 0; row < data.rows; row++) {
            if (row % 1000 === 0) {
              if (ctx.shouldAbort()) throw new JobAborted(ctx.abortReason!);
              await sleep(1); // a chunk of synchronous work, then let the abort message in
            }
            processed++;
          }
          return processed;
        },
      },
    });
    const run = w.run();
    await nextEvent(w, "active");
    await sleep(100);
    const aborted = nextEvent<{ error: Error }>(w, "aborted");
    await queue.cancel(job.id, { abort: true });
    expect(JobAborted.is((await aborted).error)).toBe(true);
    const info = await queue.getJob(job.id);
    expect([info!.state, info!.attempt, info!.error?.name, info!.error?.abortReason]).toEqual(["aborted", 1, "JobAborted", "user"]);
    expect(processed).toBeGreaterThan(0);
    expect(processed).toBeLessThan(1_000_000);
    await w.stop();
    await run;
  });

  test("a handler may finish a critical section before it honours the abort", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("transfer");
    const steps: string[] = [];
    const w = inProcess(prefix, {
      tasks: {
        async transfer(_: unknown, ctx: JobContext) {
          steps.push("debit");
          await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
          // the abort arrived mid-way: finish the pair, then honour it
          await sleep(100);
          steps.push("credit");
          ctx.throwIfAborted();
          steps.push("unreachable");
        },
      },
    });
    const run = w.run();
    await nextEvent(w, "active");
    await queue.cancel(job.id, { abort: true });
    await waitFor(async () => (await queue.getJob(job.id))?.state === "aborted", "the job to end aborted");
    expect(steps).toEqual(["debit", "credit"]);
    await w.stop();
    await run;
  });

  test("an abort requested while the attempt ends for another reason still ends the job aborted, not retried or re-queued", async () => {
    const { prefix, queue } = setup();
    const timedOut = await queue.enqueue("slow", null, { attempts: 3, backoff: 0 });
    /** On its abort, takes 300 ms to wind down, then throws. */
    const slow = async (_: unknown, ctx: JobContext) => {
      await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
      await sleep(300);
      throw ctx.signal.reason;
    };
    const w1 = inProcess(prefix, { concurrency: 1, tasks: { slow: { handler: slow, timeout: "100ms" } } });
    const run1 = w1.run();
    await waitFor(async () => (await queue.getJob(timedOut.id))?.state === "active", "the first job to start");
    await sleep(200); // it timed out and is winding down
    expect((await queue.cancel(timedOut.id, { abort: true })).outcome).toBe("abort-requested");
    await waitFor(async () => (await queue.getJob(timedOut.id))?.state === "aborted", "the timed-out job to end aborted");
    const s1 = await w1.stop();
    await run1;
    expect([s1.aborted, s1.retried]).toEqual([1, 0]);
    expect((await queue.getJob(timedOut.id))!.attempt).toBe(1);

    const interrupted = await queue.enqueue("slow", null, { attempts: 3 });
    const w2 = inProcess(prefix, { tasks: { slow } });
    const run2 = w2.run();
    await waitFor(async () => (await queue.getJob(interrupted.id))?.state === "active", "the second job to start");
    const stopped = w2.stop({ hard: true });
    await sleep(100); // aborted with reason shutdown, winding down
    expect((await queue.cancel(interrupted.id, { abort: true })).outcome).toBe("abort-requested");
    const s2 = await stopped;
    await run2;
    expect([s2.aborted, s2.interrupted]).toEqual([1, 0]);
    expect((await queue.getJob(interrupted.id))!.state).toBe("aborted");
    expect(await queue.counts()).toMatchObject({ waiting: 0, delayed: 0, aborted: 2 });
  });

  test("a job whose worker died ends aborted on recovery when its abort was requested meanwhile", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("sleep", {}, { attempts: 3 });
    const dead = spawnWorker("bun", prefix, { jobMs: 60_000 });
    await dead.ready();
    await dead.waitEvents("start", 1);
    dead.kill("SIGKILL");
    await dead.exited();
    expect((await queue.cancel(job.id, { abort: true })).outcome).toBe("abort-requested"); // nobody hears it
    const started: string[] = [];
    const w = inProcess(prefix, { stalledTimeout: 400, heartbeatInterval: 100, tasks: { sleep: () => started.push("ran") } });
    const run = w.run();
    await waitFor(async () => (await queue.getJob(job.id))?.state === "aborted", "recovery to end the job aborted");
    await sleep(200);
    await w.stop();
    await run;
    expect(started).toEqual([]);
    const info = await queue.getJob(job.id);
    expect([info!.attempt, info!.error?.abortReason]).toEqual([1, "user"]);
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, aborted: 1 });
  });
});
