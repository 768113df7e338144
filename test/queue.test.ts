/**
 * The producer side against a real Redis: enqueue, deduplication, delays, validation (nothing is
 * written for a bad option), getJob, counts, cancel and retry.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Queue, ValidationError } from "../mod.ts";
import { thrown, useScope } from "./helpers.ts";

// waits below run up to 10-15 s before they fail with a message; the test must outlive them
setDefaultTimeout(30_000);

const scope = useScope();

/** Asserts a ValidationError names `field` and shows `value` in its message. */
function expectInvalid(e: Error, field: string, value: string): void {
  expect(ValidationError.is(e)).toBe(true);
  expect((e as ValidationError).issues.map((i) => i.field)).toContain(field);
  expect(e.message).toContain(`'${field}'`);
  expect(e.message).toContain(value);
}

describe("Queue.enqueue", () => {
  test("enqueue stores a waiting job that getJob reads back", async () => {
    const q = scope().queue("mail");
    const before = Date.now();
    const job = await q.enqueue("send", { to: "a@example.com", n: 1 });
    expect(job).toMatchObject({ queue: "mail", state: "waiting", duplicate: false });
    // a job due now with a generated id lives in its stream entry alone: its id is the entry's
    expect(job.id).toMatch(/^\d+-\d+$/);
    expect((await scope().redis().xrange(q.keys.stream, "-", "+"))[0]![0]).toBe(job.id);
    expect(await scope().redis().exists(q.keys.job(job.id))).toBe(0);

    const info = await q.getJob(job.id);
    expect(info).toMatchObject({
      id: job.id, queue: "mail", name: "send", state: "waiting", data: { to: "a@example.com", n: 1 },
      attempt: 0, maxAttempts: 3, stalls: 0,
    });
    expect(info!.createdAt).toBeGreaterThanOrEqual(before);
    expect(info!.createdAt).toBeLessThanOrEqual(Date.now());

    const redis = scope().redis();
    expect(await redis.xlen(q.keys.stream)).toBe(1);
    expect(await q.counts()).toEqual({ waiting: 1, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0, aborted: 0 });
  });

  test("a batch mixing delayed, grouped or named jobs with plain ones: generated ids are UUIDs there, and every job is stored once", async () => {
    const q = scope().queue("mixed");
    const jobs = await q.enqueueMany([
      { task: "now", data: 1 },
      { task: "later", data: 2, options: { delay: "1h" } },
      { task: "named", data: 3, options: { jobId: "mine" } },
    ]);
    expect(jobs.map((j) => j.state)).toEqual(["waiting", "delayed", "waiting"]);
    expect(jobs[0]!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(jobs[1]!.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(jobs[2]!.id).toBe("mine");
    for (const [i, j] of jobs.entries()) expect((await q.getJob(j.id))?.data).toBe(i + 1);
    expect(await q.counts()).toMatchObject({ waiting: 2, delayed: 1 });
  });

  test("enqueue without data stores null", async () => {
    const q = scope().queue();
    const job = await q.enqueue("tick");
    expect((await q.getJob(job.id))!.data).toBeNull();
  });

  test("getJob returns null for an id that does not exist", async () => {
    const q = scope().queue();
    expect(await q.getJob("no-such-job")).toBeNull();
    await q.enqueue("x", 1, { jobId: "exists" });
    expect(await q.getJob("exists-not")).toBeNull();
  });

  test("a second enqueue with the same jobId returns the existing job and writes nothing", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const first = await q.enqueue("report", { version: 1 }, { jobId: "report:2024-01", attempts: 2 });
    expect(first).toEqual({ id: "report:2024-01", queue: "default", state: "waiting", duplicate: false });
    const keysBefore = (await redis.keys("*")).sort();
    const streamBefore = await redis.xrange(q.keys.stream, "-", "+");
    const eventsBefore = await redis.xlen(q.keys.events);
    const hashBefore = await redis.hgetall(q.keys.job("report:2024-01"));

    const second = await q.enqueue("report", { version: 2 }, { jobId: "report:2024-01", attempts: 9, delay: "1h" });
    expect(second).toEqual({ id: "report:2024-01", queue: "default", state: "waiting", duplicate: true });

    expect((await redis.keys("*")).sort()).toEqual(keysBefore);
    expect(await redis.xrange(q.keys.stream, "-", "+")).toEqual(streamBefore);
    expect(await redis.xlen(q.keys.events)).toBe(eventsBefore);
    expect(await redis.hgetall(q.keys.job("report:2024-01"))).toEqual(hashBefore);
    const info = await q.getJob("report:2024-01");
    expect(info).toMatchObject({ data: { version: 1 }, maxAttempts: 2, state: "waiting" });
    expect(await q.counts()).toMatchObject({ waiting: 1, delayed: 0 });
  });

  test("a duplicate enqueue reports the existing job's current state", async () => {
    const q = scope().queue();
    await q.enqueue("later", null, { jobId: "d1", delay: "1h" });
    expect(await q.enqueue("later", null, { jobId: "d1" })).toMatchObject({ state: "delayed", duplicate: true });
    await q.cancel("d1");
    expect(await q.enqueue("later", null, { jobId: "d1" })).toMatchObject({ state: "cancelled", duplicate: true });
    // a running job: nothing stored says so (its entry is in the pending list), and it reads active
    await q.enqueue("now", null, { jobId: "d2" });
    expect(await q.enqueue("now", null, { jobId: "d2" })).toMatchObject({ state: "waiting", duplicate: true });
    await scope().redis().call("XREADGROUP", "GROUP", "sluice", "a-worker", "COUNT", 10, "STREAMS", q.keys.stream, ">");
    expect(await q.enqueue("now", null, { jobId: "d2" })).toMatchObject({ state: "active", duplicate: true });
    expect(await q.getJob("d2")).toMatchObject({ state: "active", owner: "a-worker", attempt: 1 });
  });

  test("delay puts a job in the delayed set scored by its run-at time", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const before = Date.now();
    const job = await q.enqueue("remind", {}, { delay: "2s" });
    expect(job.state).toBe("delayed");
    const info = await q.getJob(job.id);
    expect(info!.state).toBe("delayed");
    expect(info!.runAt).toBeGreaterThanOrEqual(before + 2000);
    expect(info!.runAt).toBeLessThanOrEqual(Date.now() + 2000);
    expect(Number(await redis.zscore(q.keys.delayed, job.id))).toBe(info!.runAt!);
    expect(await redis.xlen(q.keys.stream)).toBe(0);
    expect(await q.counts()).toMatchObject({ waiting: 0, delayed: 1 });
  });

  test("runAt in the future delays a job and wins over delay; runAt in the past makes it ready", async () => {
    const q = scope().queue();
    const at = new Date(Date.now() + 60_000);
    const job = await q.enqueue("remind", {}, { runAt: at, delay: 10 });
    expect(job.state).toBe("delayed");
    expect((await q.getJob(job.id))!.runAt).toBe(at.getTime());

    const past = await q.enqueue("remind", {}, { runAt: Date.now() - 1000 });
    expect(past.state).toBe("waiting");
    const zero = await q.enqueue("remind", {}, { delay: 0 });
    expect(zero.state).toBe("waiting");
    expect(await q.counts()).toMatchObject({ waiting: 2, delayed: 1 });
  });

  test("enqueueMany writes every job in bulk and deduplicates by jobId", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const specs = Array.from({ length: 2500 }, (_, i) => ({ task: "bulk", data: { i } }));
    specs.push({ task: "bulk", data: { i: -1 }, options: { jobId: "dup" } } as (typeof specs)[number]);
    specs.push({ task: "bulk", data: { i: -2 }, options: { jobId: "dup" } } as (typeof specs)[number]);
    specs.push({ task: "bulk", data: { i: -3 }, options: { delay: "1h" } } as (typeof specs)[number]);
    const jobs = await q.enqueueMany(specs);
    expect(jobs).toHaveLength(2503);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(2502);
    expect(jobs[2500]).toMatchObject({ id: "dup", duplicate: false });
    expect(jobs[2501]).toMatchObject({ id: "dup", duplicate: true });
    expect(jobs[2502]!.state).toBe("delayed");
    expect(await redis.xlen(q.keys.stream)).toBe(2501);
    expect(await q.counts()).toMatchObject({ waiting: 2501, delayed: 1 });
    expect((await q.getJob("dup"))!.data).toEqual({ i: -1 });
    expect((await q.getJob(jobs[1234]!.id))!.data).toEqual({ i: 1234 });
  });

  test("a Queue given only a command-sending function enqueues and reads jobs", async () => {
    const redis = scope().redis();
    const q = scope().queue("edge", { redis: (command: string, args: string[]) => redis.call(command, ...args) });
    const job = await q.enqueue("hook", { ok: true }, { jobId: "edge-1" });
    expect(job).toMatchObject({ id: "edge-1", state: "waiting", duplicate: false });
    const many = await q.enqueueMany([{ task: "hook", data: 1 }, { task: "hook", data: 2, options: { jobId: "edge-1" } }]);
    expect(many.map((j) => j.duplicate)).toEqual([false, true]);
    expect((await q.getJob("edge-1"))!.data).toEqual({ ok: true });
    expect(await q.counts()).toMatchObject({ waiting: 2 });
  });
});

describe("validation", () => {
  test("invalid enqueue options throw a ValidationError naming the field and value, and write nothing", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const cases: [Record<string, unknown>, string, string][] = [
      [{ attempts: 0 }, "attempts", "0"],
      [{ attempts: 1.5 }, "attempts", "1.5"],
      [{ attempts: "3" }, "attempts", '"3"'],
      [{ delay: "10 parsecs" }, "delay", '"10 parsecs"'],
      [{ delay: -5 }, "delay", "-5"],
      [{ timeout: "soon" }, "timeout", '"soon"'],
      [{ runAt: "tomorrow" }, "runAt", '"tomorrow"'],
      [{ backoff: { type: "linear", delay: 100 } }, "backoff", '"linear"'],
      [{ backoff: { type: "fixed", jitter: 2 } }, "backoff.jitter", "2"],
      [{ backoff: "a while" }, "backoff", '"a while"'],
      [{ atempts: 3 }, "atempts", "3"],
      [{ jobId: "has space" }, "jobId", '"has space"'],
      [{ jobId: "" }, "jobId", '""'],
      [{ jobId: "a{b}" }, "jobId", '"a{b}"'],
      // the form of a generated id (a stream entry's): a caller's id never meets one
      [{ jobId: "1700000000000-0" }, "jobId", '"1700000000000-0"'],
      [{ jobId: 42 }, "jobId", "42"],
    ];
    for (const [options, field, value] of cases) {
      const e = await thrown(() => q.enqueue("task", { x: 1 }, options as never));
      expectInvalid(e, field, value);
    }
    expect(await redis.dbsize()).toBe(0);
  });

  test("an unknown enqueue option is reported as unknown", async () => {
    const q = scope().queue();
    const e = await thrown(() => q.enqueue("task", null, { retries: 3 } as never));
    expectInvalid(e, "retries", "3");
    expect(e.message).toMatch(/not a known option/);
  });

  test("an invalid task name or unserialisable data throws and writes nothing", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    expectInvalid(await thrown(() => q.enqueue("", null)), "task", '""');
    expectInvalid(await thrown(() => q.enqueue(7 as never, null)), "task", "7");
    expectInvalid(await thrown(() => q.enqueue("ok", { big: 10n })), "data", "");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectInvalid(await thrown(() => q.enqueue("ok", cyclic)), "data", "");
    expect(await redis.dbsize()).toBe(0);
  });

  test("enqueueMany with one bad job writes none of them", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    await q.enqueue("seed", null, { jobId: "seed" });
    const keysBefore = (await redis.keys("*")).sort();
    const e = await thrown(() =>
      q.enqueueMany([
        { task: "a", data: 1 },
        { task: "b", data: 2, options: { jobId: "fine" } },
        { task: "c", data: 3, options: { attempts: 0 } },
        { task: "d", data: 4 },
      ])
    );
    expect(ValidationError.is(e)).toBe(true);
    expect(e.message).toContain("attempts");
    expect(e.message).toMatch(/\b2\b/); // the index of the bad job
    expect((await redis.keys("*")).sort()).toEqual(keysBefore);
    expect(await redis.xlen(q.keys.stream)).toBe(1);
    expect(await q.getJob("fine")).toBeNull();

    const bad = await thrown(() => q.enqueueMany([{ task: "a" }, null as never]));
    expect(ValidationError.is(bad)).toBe(true);
    expect((bad as ValidationError).issues[0]!.field).toBe("1");
    expect(await redis.xlen(q.keys.stream)).toBe(1);
  });

  test("a queue name with whitespace or braces is rejected", async () => {
    for (const name of ["", "a b", "a{b", "x}"]) {
      const e = await thrown(() => new Queue(name, { redis: scope().url }));
      expectInvalid(e, "queue", JSON.stringify(name));
    }
  });
});

describe("Queue.counts", () => {
  test("counts() reports each state separately", async () => {
    const q = scope().queue();
    await q.enqueueMany([{ task: "a" }, { task: "a" }, { task: "a" }]);
    await q.enqueue("a", null, { delay: "1h" });
    await q.enqueue("a", null, { delay: "1h", jobId: "c1" });
    await q.cancel("c1");
    expect(await q.counts()).toEqual({ waiting: 3, active: 0, delayed: 1, completed: 0, failed: 0, cancelled: 1, aborted: 0 });
  });

  test("counts() of a queue never used are all zero", async () => {
    const q = scope().queue("empty");
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0, aborted: 0 });
  });
});

describe("Queue.cancel", () => {
  test("cancelling a waiting job removes its stream entry and marks it cancelled", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const job = await q.enqueue("a", { n: 1 });
    await q.enqueue("a", { n: 2 });
    expect(await q.cancel(job.id)).toEqual({ id: job.id, outcome: "cancelled", previousState: "waiting" });
    const info = await q.getJob(job.id);
    expect(info!.state).toBe("cancelled");
    expect(info!.finishedAt).toBeGreaterThan(0);
    expect(await redis.xlen(q.keys.stream)).toBe(1);
    expect(await redis.zscore(q.keys.cancelled, job.id)).not.toBeNull();
    expect(await q.counts()).toMatchObject({ waiting: 1, cancelled: 1 });
  });

  test("cancelling a delayed job removes it from the delayed set", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const job = await q.enqueue("a", null, { delay: "10m" });
    expect(await q.cancel(job.id)).toEqual({ id: job.id, outcome: "cancelled", previousState: "delayed" });
    expect(await redis.zcard(q.keys.delayed)).toBe(0);
    expect((await q.getJob(job.id))!.state).toBe("cancelled");
    expect(await q.counts()).toMatchObject({ delayed: 0, cancelled: 1 });
  });

  test("cancel with delete removes the job entirely", async () => {
    const q = scope().queue();
    const redis = scope().redis();
    const waiting = await q.enqueue("a", null);
    const delayed = await q.enqueue("a", null, { delay: "10m" });
    expect((await q.cancel(waiting.id, { delete: true })).outcome).toBe("cancelled");
    expect((await q.cancel(delayed.id, { delete: true })).outcome).toBe("cancelled");
    expect(await q.getJob(waiting.id)).toBeNull();
    expect(await q.getJob(delayed.id)).toBeNull();
    expect(await redis.exists(q.keys.job(waiting.id), q.keys.job(delayed.id))).toBe(0);
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0, aborted: 0 });
  });

  test("cancelling a finished job changes nothing and says so", async () => {
    const q = scope().queue();
    const job = await q.enqueue("a", null, { delay: "1h" });
    await q.cancel(job.id);
    const before = await q.getJob(job.id);
    expect(await q.cancel(job.id)).toEqual({ id: job.id, outcome: "finished", previousState: "cancelled" });
    expect(await q.cancel(job.id, { delete: true })).toEqual({ id: job.id, outcome: "finished", previousState: "cancelled" });
    expect(await q.getJob(job.id)).toEqual(before);
  });

  test("cancelling an unknown job reports it missing", async () => {
    const q = scope().queue();
    expect(await q.cancel("nope")).toEqual({ id: "nope", outcome: "missing" });
    expect(ValidationError.is(await thrown(() => q.cancel("")))).toBe(true);
  });

  test("retry() of a job that has not failed returns false and changes nothing", async () => {
    const q = scope().queue();
    const job = await q.enqueue("a", null);
    expect(await q.retry(job.id)).toBe(false);
    expect(await q.retry("missing")).toBe(false);
    expect((await q.getJob(job.id))!.state).toBe("waiting");
    expect(await q.counts()).toMatchObject({ waiting: 1 });
  });
});
