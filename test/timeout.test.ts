/**
 * Timeouts and end conditions: reason `timeout` counts a failed attempt (retry policy), per-task and
 * per-job timeouts override the worker default, durations parse from strings, and an end condition
 * aborts running jobs of its task with reason `end-condition`.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { between, ValidationError } from "../mod.ts";
import type { JobContext } from "../src/context.ts";
import { Worker } from "../src/worker.ts";
import { waitFor } from "./harness.ts";
import { inProcess, nextEvent, setup, sleep } from "./procs.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

interface Aborted {
  job: string;
  attempt: number;
  reason?: string;
}

/**
 * Runs until its signal aborts (then throws its reason) or `ms` elapse; records each abort in
 * `log`, and each start and abort, in order, in `trace` ("start <id> <attempt>", "abort <id> <attempt> <reason>").
 */
function abortable(log: Aborted[], ms = 30_000, trace: string[] = []) {
  return async (_: unknown, ctx: JobContext) => {
    const t0 = performance.now();
    trace.push(`start ${ctx.job.id} ${ctx.job.attempt}`);
    ctx.signal.throwIfAborted();
    await new Promise<void>((res, rej) => {
      const t = setTimeout(res, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        log.push({ job: ctx.job.id, attempt: ctx.job.attempt, reason: ctx.abortReason });
        trace.push(`abort ${ctx.job.id} ${ctx.job.attempt} ${ctx.abortReason}`);
        console.log(`[timeout] ${ctx.job.name} ${ctx.job.id} attempt ${ctx.job.attempt}: ${ctx.abortReason} after ${(performance.now() - t0).toFixed(0)} ms`);
        rej(ctx.signal.reason);
      }, { once: true });
    });
    return "finished";
  };
}

const hhmm = (d: Date) => `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;

describe("timeouts", () => {
  test("a timeout aborts with reason timeout and counts a failed attempt: retried, then failed", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("slow", null, { attempts: 2, backoff: "50ms" });
    const log: Aborted[] = [];
    const trace: string[] = [];
    // the handler runs 30 s unless aborted: only the worker's 200 ms default timeout ends it here
    const w = inProcess(prefix, { timeout: "200ms", promoteInterval: 50, tasks: { slow: abortable(log, 30_000, trace) } });
    const retrying = nextEvent<{ abortReason: string; job: { attempt: number } }>(w, "retrying");
    const failed = nextEvent<{ abortReason: string; job: { attempt: number } }>(w, "failed");
    const run = w.run();
    const r = await retrying;
    expect([r.abortReason, r.job.attempt]).toEqual(["timeout", 1]);
    const f = await failed;
    expect([f.abortReason, f.job.attempt]).toEqual(["timeout", 2]);
    const s = await w.stop();
    await run;
    expect([s.retried, s.failed, s.completed, s.interrupted]).toEqual([1, 1, 0, 0]);
    expect(log.map((l) => [l.attempt, l.reason])).toEqual([[1, "timeout"], [2, "timeout"]]);
    // the second attempt started only after the first one's timeout ended it
    expect(trace).toEqual([`start ${job.id} 1`, `abort ${job.id} 1 timeout`, `start ${job.id} 2`, `abort ${job.id} 2 timeout`]);
    const info = await queue.getJob(job.id);
    expect([info!.state, info!.attempt, info!.maxAttempts, info!.error?.abortReason, info!.error?.name]).toEqual(["failed", 2, 2, "timeout", "JobAborted"]);
    expect(await queue.counts()).toMatchObject({ failed: 1, waiting: 0, delayed: 0, active: 0 });
  });

  test("a task's timeout overrides the worker default; a job's own timeout overrides both", async () => {
    // Each timeout is either short (200 ms) or an hour, so whichever applies shows in what happens
    // within the test: an abort with reason timeout, or none.
    const { prefix, queue } = setup();
    const log: Aborted[] = [];
    const trace: string[] = [];
    const w = inProcess(prefix, {
      timeout: "1 hour",
      concurrency: 4,
      tasks: {
        plain: abortable(log, 30_000, trace),
        hasty: { handler: abortable(log, 30_000, trace), timeout: "200ms" },
      },
    });
    // started first: the job's hour beats its task's 200 ms
    await queue.enqueue("hasty", null, { jobId: "job-long-task-short", attempts: 1, timeout: "1 hour" });
    // the job's 200 ms beats the worker's hour
    await queue.enqueue("plain", null, { jobId: "job-short-worker-long", attempts: 1, timeout: "0.2 seconds" });
    const run = w.run();
    await waitFor(() => trace.includes("start job-long-task-short 1"), "the first job to start");
    // started after it: the task's 200 ms beats the worker's hour
    await queue.enqueue("hasty", null, { jobId: "task-short-worker-long", attempts: 1 });
    await waitFor(async () => (await queue.counts()).failed === 2, "two timed-out jobs", 10_000);
    expect(log.map((l) => [l.job, l.reason]).sort()).toEqual([["job-short-worker-long", "timeout"], ["task-short-worker-long", "timeout"]]);
    // a task timeout of 200 ms ended a job that started after job-long-task-short, which runs on:
    // had its task's timeout applied, it would have ended first
    const started = trace.indexOf("start task-short-worker-long 1");
    expect(trace.indexOf("start job-long-task-short 1")).toBeLessThan(started);
    expect(trace.indexOf("abort task-short-worker-long 1 timeout")).toBeGreaterThan(started);
    expect(trace.some((t) => t.startsWith("abort job-long-task-short"))).toBe(false);
    expect((await queue.getJob("job-long-task-short"))!.state).toBe("active");
    // it ends only when the worker stops hard
    const s = await w.stop({ hard: true });
    await run;
    expect(log.find((l) => l.job === "job-long-task-short")).toMatchObject({ reason: "shutdown" });
    expect([s.failed, s.interrupted]).toEqual([2, 1]);
    for (const id of ["job-short-worker-long", "task-short-worker-long"]) {
      expect((await queue.getJob(id))!.error).toMatchObject({ name: "JobAborted", abortReason: "timeout" });
    }
  });

  test("a handler that finishes despite its timeout leaves the job completed", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("stubborn", null, { attempts: 3 });
    const w = inProcess(prefix, {
      tasks: {
        stubborn: {
          timeout: 50,
          handler: async (_: unknown, ctx: JobContext) => {
            await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
            return `done after ${ctx.abortReason}`;
          },
        },
      },
    });
    const run = w.run();
    await waitFor(async () => (await queue.getJob(job.id))?.state === "completed", "the job to complete");
    const info = await queue.getJob(job.id);
    expect([info!.attempt, info!.result]).toEqual([1, "done after timeout"]);
    await w.stop();
    await run;
  });

  test("durations: milliseconds or strings; anything else is a clear error naming the field", async () => {
    const { prefix, queue } = setup();
    // strings are accepted everywhere a duration is
    const w = inProcess(prefix, {
      timeout: "1 hour", stalledTimeout: "30s", heartbeatInterval: "5s", shutdownGracefulTimeout: "10s",
      promoteInterval: "500ms", abortPollInterval: "1s", endConditionInterval: "2 seconds", blockTimeout: "5s",
      wait: false,
      tasks: { quick: { handler: () => "ok", timeout: "1.5s" } },
    });
    await queue.enqueue("quick", null, { timeout: "10 minutes", delay: "0ms" });
    expect((await w.run()).completed).toBe(1);

    const bad = (opts: Record<string, unknown>) => {
      try {
        new Worker({ tasks: { t: () => 1 }, ...opts });
      } catch (e) {
        return e as ValidationError;
      }
      throw new Error("expected a ValidationError");
    };
    for (const [field, value] of [["timeout", "soon"], ["shutdownGracefulTimeout", "-1s"], ["stalledTimeout", "10 parsecs"], ["abortPollInterval", {}]] as const) {
      const e = bad({ [field]: value });
      expect(ValidationError.is(e)).toBe(true);
      expect(e.issues[0]!.field).toBe(field);
      expect(e.message).toContain(field);
      expect(e.message).toContain("must be a duration");
    }
    const t = bad({ tasks: { t: { handler: () => 1, timeout: "fast" } } });
    expect(t.issues[0]!.field).toBe("tasks.t.timeout");
    expect(t.message).toContain('"fast"');
    let enqueueError: unknown;
    await queue.enqueue("quick", null, { timeout: "eventually" }).catch((e) => (enqueueError = e));
    expect(ValidationError.is(enqueueError)).toBe(true);
    expect((enqueueError as ValidationError).issues[0]!.field).toBe("timeout");
  });
});

describe("end conditions", () => {
  test("endCondition: () => true aborts running jobs of the task with reason end-condition; each is a failed attempt", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("report", null, { attempts: 2, backoff: 0 });
    const other = await queue.enqueue("other");
    const log: Aborted[] = [];
    const otherLog: Aborted[] = [];
    const trace: string[] = [];
    const w = inProcess(prefix, {
      endConditionInterval: "100ms",
      concurrency: 2,
      tasks: {
        // 30 s long unless aborted: only the end condition ends it here
        report: { handler: abortable(log, 30_000, trace), endCondition: () => true },
        other: abortable(otherLog, 800),
      },
    });
    const run = w.run();
    await waitFor(async () => (await queue.getJob(job.id))?.state === "failed", "the report job to fail");
    await waitFor(async () => (await queue.getJob(other.id))?.state === "completed", "the other task's job to complete");
    const s = await w.stop();
    await run;
    expect(log.map((l) => [l.attempt, l.reason])).toEqual([[1, "end-condition"], [2, "end-condition"]]);
    // each attempt ended by the condition, the retry started only after the first one ended
    expect(trace).toEqual([`start ${job.id} 1`, `abort ${job.id} 1 end-condition`, `start ${job.id} 2`, `abort ${job.id} 2 end-condition`]);
    expect(otherLog).toEqual([]); // jobs of tasks without the condition run on
    const info = await queue.getJob(job.id);
    expect([info!.state, info!.attempt, info!.error?.abortReason]).toEqual(["failed", 2, "end-condition"]);
    expect([s.retried, s.failed, s.completed]).toEqual([1, 1, 1]);
  });

  test("between() covering now aborts the job; a window elsewhere in the day leaves it alone", async () => {
    const { prefix, queue } = setup();
    const now = Date.now();
    const inside = between(hhmm(new Date(now - 60_000)), hhmm(new Date(now + 120_000)));
    const outside = between(hhmm(new Date(now + 2 * 3_600_000)), hhmm(new Date(now + 3 * 3_600_000)));
    expect(inside(new Date())).toBe(true);
    expect(outside(new Date())).toBe(false);
    const a = await queue.enqueue("nightly", null, { attempts: 1 });
    const b = await queue.enqueue("daytime", null, { attempts: 1 });
    const log: Aborted[] = [];
    const w = inProcess(prefix, {
      endConditionInterval: 50,
      concurrency: 2,
      tasks: {
        nightly: { handler: abortable(log), endCondition: inside },
        daytime: { handler: abortable([], 400), endCondition: outside },
      },
    });
    const run = w.run();
    await waitFor(async () => (await queue.getJob(a.id))?.state === "failed", "the job inside its window to be aborted");
    await waitFor(async () => (await queue.getJob(b.id))?.state === "completed", "the job outside its window to complete");
    await w.stop();
    await run;
    expect(log.map((l) => l.reason)).toEqual(["end-condition"]);
    expect((await queue.getJob(a.id))!.error?.abortReason).toBe("end-condition");
    expect(() => between("25:00", "06:00")).toThrow(/HH:MM/);
    // a window that wraps midnight
    const night = between("22:00", "06:00");
    expect([night(new Date(2024, 0, 1, 23, 30)), night(new Date(2024, 0, 1, 5, 59)), night(new Date(2024, 0, 1, 12, 0))]).toEqual([true, true, false]);
  });

  test("end conditions are checked while draining too", async () => {
    const { prefix, queue } = setup();
    const job = await queue.enqueue("report", null, { attempts: 1 });
    let flip = false;
    const w = inProcess(prefix, { endConditionInterval: 50, tasks: { report: { handler: abortable([]), endCondition: () => flip } } });
    const run = w.run();
    await nextEvent(w, "active");
    void w.stop();
    await sleep(150);
    expect(w.phase).toBe("draining");
    flip = true;
    const s = await run;
    expect(s.failed).toBe(1);
    expect((await queue.getJob(job.id))!.error?.abortReason).toBe("end-condition");
  });
});
