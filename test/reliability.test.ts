/**
 * The promises a production queue makes beyond the happy path: a job held by a live worker never
 * runs twice, nothing is lost when Redis fills up or misbehaves, ids stay deduplicated after
 * retention, a worker stops even when Redis never answered, counters count everything.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { EnqueueManyError, type JobContext, Queue, ValidationError, Worker, type WorkerOptions } from "../mod.ts";
import { createAdminApp } from "../admin/app.tsx";
import { GROUP } from "../src/keys.ts";
import { RECOVER } from "../src/lua.ts";
import { Script } from "../src/redis.ts";
import { freePort, spawnTs, waitFor } from "./harness.ts";
import { deferred, thrown, useScope, within } from "./helpers.ts";

setDefaultTimeout(30_000);

const scope = useScope();

describe("one job, one attempt at a time", () => {
  test("a job fetched again while its old attempt still runs here aborts the old one (lost); the old one's end does not touch the new one", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    const attempts: { attempt: number; ctx: JobContext; release: () => void }[] = [];
    const w = s.worker({
      concurrency: 2,
      // no heartbeat before the test is over: the job looks stalled to a recovering worker
      stalledTimeout: 60_000,
      heartbeatInterval: 20_000,
      tasks: {
        async work(_d: unknown, ctx: JobContext) {
          const gate = deferred();
          attempts.push({ attempt: ctx.job.attempt, ctx, release: () => gate.resolve() });
          await gate.promise; // ignores its signal until released
          return `attempt ${attempts.length}`;
        },
      },
    });
    const lost: unknown[] = [];
    w.addEventListener("lost", (e) => lost.push((e as CustomEvent).detail));
    const run = w.run();
    const job = await q.enqueue("work");
    await waitFor(() => attempts.length === 1, "the first attempt to start");
    // another worker recovers the job (its owner looks silent) and puts it back in the stream
    const recover = new Script(RECOVER);
    const k = q.keys;
    const r = (await recover.run((c, a) => redis.call(c, ...a) as Promise<unknown>, [k.stream, k.failed, k.events], [k.base, GROUP, "rescuer", Date.now(), 0, "0-0", 100, 5, 100])) as unknown[];
    expect(r[1]).toEqual([job.id]);
    // this worker, which has a free slot, fetches it again while attempt 1 still runs
    await waitFor(() => attempts.length === 2, "the second attempt to start here");
    expect(attempts[0]!.ctx.abortReason).toBe("lost");
    expect(attempts[1]!.ctx.signal.aborted).toBe(false);
    // the old attempt ends: nothing written, and the new one is still running and tracked
    attempts[0]!.release();
    await waitFor(() => lost.length === 1, "the old attempt to be reported lost");
    expect(w.activeJobs).toEqual([{ queue: "default", id: job.id }]);
    expect((await q.getJob(job.id))!.state).toBe("active");
    attempts[1]!.release();
    const done = await waitFor(async () => {
      const j = await q.getJob(job.id);
      return j?.state === "completed" ? j : null;
    }, "the job to complete");
    expect(done.result).toBe("attempt 2");
    const summary = await w.stop();
    await run;
    expect(summary).toMatchObject({ completed: 1, lost: 1 });
    expect((await q.stats()).lost).toBe(1);
  });
});

describe("deduplication and retention", () => {
  test("a jobId stays reserved after retention removed its finished job, for dedupTtl; cancelling or deleting frees it", async () => {
    const s = scope();
    const q = s.queue();
    const w = s.worker({ retention: { completed: { count: 0 } }, tasks: { welcome: () => "sent" } });
    w.run();
    const first = await q.enqueue("welcome", { to: "ada" }, { jobId: "welcome:ada" });
    expect(first).toMatchObject({ duplicate: false, state: "waiting" });
    await waitFor(async () => (await q.stats()).completed === 1, "the job to complete");
    await waitFor(async () => (await q.getJob("welcome:ada")) === null, "retention to remove it");
    const again = await q.enqueue("welcome", { to: "ada" }, { jobId: "welcome:ada" });
    expect(again).toMatchObject({ duplicate: true, state: "removed" });
    // with dedupTtl 0 the id is reserved only while its job exists
    const loose = s.queue("default", { dedupTtl: 0 });
    expect(await loose.enqueue("welcome", { to: "bob" }, { jobId: "welcome:ada" })).toMatchObject({ duplicate: false });
    await w.stop();
    // a cancelled job frees its id once it is gone
    const c = await q.enqueue("welcome", null, { jobId: "later", delay: "1h" });
    expect(c.duplicate).toBe(false);
    await q.cancel("later", { delete: true });
    expect((await q.enqueue("welcome", null, { jobId: "later", delay: "1h" })).duplicate).toBe(false);
    expect((await q.deleteJob("later")).outcome).toBe("deleted");
    expect((await q.enqueue("welcome", null, { jobId: "later", delay: "1h" })).duplicate).toBe(false);
    expect(await thrown(() => new Queue("x", { dedupTtl: "soon" as never }))).toBeInstanceOf(ValidationError);
  });

  test("an id given twice in one enqueueMany is written once; the second comes back as a duplicate", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    const r = await q.enqueueMany([{ task: "t", data: 1, options: { jobId: "twice" } }, { task: "t" }, { task: "t", data: 2, options: { jobId: "twice" } }]);
    expect(r.map((j) => j.duplicate)).toEqual([false, false, true]);
    expect(await redis.xlen(q.keys.stream)).toBe(2);
    expect((await q.getJob("twice"))!.data).toBe(1);
  });

  test("cancelled jobs are trimmed by retention on the worker's timer, and their ids can be used again", async () => {
    const s = scope();
    const q = s.queue();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push((await q.enqueue("t", i, { jobId: `c${i}`, delay: "1h" })).id);
    for (const id of ids) expect((await q.cancel(id)).outcome).toBe("cancelled");
    expect((await q.counts()).cancelled).toBe(5);
    const w = s.worker({ heartbeatInterval: 50, stalledTimeout: 300, retention: { cancelled: { count: 2 } }, tasks: {} });
    w.run();
    await waitFor(async () => (await q.counts()).cancelled === 2, "retention to keep the newest 2 cancelled jobs");
    const left = await Promise.all(ids.map((id) => q.getJob(id)));
    expect(left.filter(Boolean)).toHaveLength(2);
    expect((await q.enqueue("t", 0, { jobId: "c0", delay: "1h" })).duplicate).toBe(false);
    await w.stop();
  });

  test("the counters count every job although retention keeps only a few, and /metrics-style stats add up", async () => {
    const s = scope();
    const q = s.queue();
    const w = s.worker({ concurrency: 20, retention: { completed: { count: 10 }, failed: { count: 1 } }, tasks: { ok: () => 1, bad: () => { throw new Error("no"); } } });
    w.run();
    await q.enqueueMany(Array.from({ length: 300 }, () => ({ task: "ok" })));
    await q.enqueueMany(Array.from({ length: 3 }, () => ({ task: "bad", options: { attempts: 2, backoff: { type: "fixed" as const, delay: 0 } } })));
    await waitFor(async () => (await q.stats()).completed === 300 && (await q.stats()).failed === 3, "300 completions and 3 failures counted");
    const counts = await q.counts();
    expect(counts.completed).toBeLessThanOrEqual(10);
    expect(counts.failed).toBeLessThanOrEqual(1);
    expect(await q.stats()).toMatchObject({ completed: 300, failed: 3, retried: 3 });
    await w.stop();
  });
});

describe("the events stream", () => {
  test("is capped by the job ids it holds, not by entries: batch events of many ids keep it small", async () => {
    const s = scope();
    const q = s.queue("default", { eventsMaxLen: 500 });
    const redis = s.redis();
    const w = s.worker({ concurrency: 100, eventsMaxLen: 500, tasks: { t: () => null } });
    w.run();
    await q.enqueueMany(Array.from({ length: 5000 }, () => ({ task: "t" })));
    await waitFor(async () => (await q.stats()).completed === 5000, "5000 jobs to complete", 30_000);
    await w.stop();
    let ids = 0;
    for (const [, f] of await redis.xrange(q.keys.events, "-", "+")) ids += f[3]!.split(" ").length;
    // 10,000 ids went through (5,000 waiting, 5,000 completed); about 500 stay, give or take the
    // stream's approximate trimming (whole nodes of up to 100 entries)
    expect(ids).toBeLessThan(500 * 3);
    expect(ids).toBeGreaterThan(0);
  });
});

describe("bad names and partial writes", () => {
  test("a worker's prefix and queue names go through the one name check (braces would spread a queue over cluster slots)", async () => {
    for (const [opts, field] of [[{ prefix: "x{}" }, "prefix"], [{ prefix: "" }, "prefix"], [{ queues: ["a b"] }, "queues.0"]] as [Partial<WorkerOptions>, string][]) {
      const e = await thrown(() => new Worker({ tasks: {}, ...opts }));
      expect(ValidationError.is(e)).toBe(true);
      expect((e as ValidationError).issues[0]!.field).toBe(field);
    }
    expect((await thrown(() => new Queue("q", { prefix: "a{b" }))).message).toContain("prefix");
  });

  test("enqueueMany stops at the first failed batch and reports the jobs it stored", async () => {
    const s = scope();
    const real = s.redis();
    let calls = 0;
    let afterFailure = 0;
    let failed = false;
    // a Redis that fails the third script call: batches of 100 jobs
    const send = async (cmd: string, args: string[]) => {
      calls++;
      if (failed) afterFailure++;
      if (calls === 3) {
        failed = true;
        throw new Error("connection reset");
      }
      return await real.call(cmd, ...args);
    };
    const q = new Queue("bulk", { redis: send, prefix: s.prefix });
    const e = await thrown(() => q.enqueueMany(Array.from({ length: 3000 }, (_, i) => ({ task: "t", data: i }))));
    expect(EnqueueManyError.is(e)).toBe(true);
    const stored = (e as EnqueueManyError).stored;
    expect((e as Error).message).toContain("connection reset");
    // what it reports stored is exactly what Redis holds, and no batch was sent after the failure
    // beyond those already on the wire (16 at most)
    expect((await real.xlen(q.keys.stream))).toBe(stored.length);
    expect(afterFailure).toBeLessThan(16);
    expect(stored.length).toBeLessThan(3000);
    for (const j of stored.slice(0, 5)) expect((await q.getJob(j.id))?.state).toBe("waiting");
  });
});

describe("a Redis that is unreachable, full, or evicting", () => {
  test("stop() ends a worker whose Redis never answered; the worker says it waits for Redis", async () => {
    const port = await freePort(); // nothing listens there
    const logs: string[] = [];
    const w = new Worker({ redis: `redis://127.0.0.1:${port}`, tasks: {}, logger: (e) => logs.push(e.event) });
    const run = w.run();
    await waitFor(() => logs.includes("waiting"), "the worker to say it waits for Redis");
    const summary = await within(w.stop(), 20_000, "stop() to resolve");
    expect(summary.completed).toBe(0);
    expect(await run).toEqual(summary);
    expect(w.phase).toBe("stopped");
    expect(logs).toContain("stopped");
  });

  test("SIGTERM ends a worker process whose Redis never answered (under Bun, Deno and Node)", async () => {
    const port = await freePort(); // nothing listens there
    const procs = (["bun", "deno", "node"] as const).map((rt) => ({
      rt,
      p: spawnTs(rt, "test/fixtures/worker.ts", [JSON.stringify({ redis: `redis://127.0.0.1:${port}`, prefix: "unreachable" })]),
    }));
    try {
      for (const { p } of procs) await p.line(/"event":"waiting"/, 60_000);
      for (const { p } of procs) p.kill("SIGTERM");
      for (const { rt, p } of procs) expect([rt, await within(p.exited, 30_000, `the ${rt} worker to exit`)]).toEqual([rt, 0]);
    } finally {
      for (const { p } of procs) p.kill("SIGKILL");
    }
  });

  test("at maxmemory with noeviction a queue still drains: acks free memory before any write, and an existing group is success", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    await q.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ task: "t", data: "x".repeat(200) + i })));
    const used = Number(/used_memory:(\d+)/.exec(await redis.info("memory"))![1]);
    await redis.config("SET", "maxmemory", String(used - 1024));
    try {
      expect((await thrown(() => q.enqueue("t", 1))).message).toContain("OOM");
      const w = s.worker({ concurrency: 10, retention: { completed: { count: 0 } }, eventsMaxLen: 0, tasks: { t: () => null } });
      w.run();
      await waitFor(async () => (await q.counts()).waiting === 0 && (await q.counts()).active === 0, "the full queue to drain", 30_000);
      expect((await q.stats()).completed).toBe(200);
      await w.stop();
    } finally {
      await redis.config("SET", "maxmemory", "0");
    }
  });

  test("a worker and the admin app warn loudly when Redis may evict queue keys (maxmemory-policy other than noeviction)", async () => {
    const s = scope();
    const redis = s.redis();
    const admin = createAdminApp({ redis: s.url, prefix: s.prefix, auth: { token: "t0ken-for-tests-only" } });
    const headers = { authorization: "Bearer t0ken-for-tests-only" };
    expect((await (await admin.request("/api/queues", { headers })).json()).warnings).toEqual([]);
    await redis.config("SET", "maxmemory-policy", "allkeys-lru");
    try {
      const logs: { event: string; message: string }[] = [];
      const w = s.worker({ tasks: {}, logger: (e) => logs.push(e) });
      w.run();
      const warning = await waitFor(() => logs.find((l) => l.event === "eviction-policy"), "the eviction warning");
      expect(warning.message).toContain("allkeys-lru");
      await w.stop();
      // a new app (the first one read the policy within the last minute) shows it in the API and on the overview
      const fresh = createAdminApp({ redis: s.url, prefix: s.prefix, auth: { token: "t0ken-for-tests-only" } });
      const body = await (await fresh.request("/api/queues", { headers })).json();
      expect(body.warnings[0]).toContain("allkeys-lru");
      expect(await (await fresh.request("/", { headers })).text()).toContain("maxmemory-policy is &#39;allkeys-lru&#39;");
      await fresh.close();
      await admin.close();
    } finally {
      await redis.config("SET", "maxmemory-policy", "noeviction");
    }
  });
});
