/**
 * The shutdown protocol (DESIGN section 3) with real worker processes under Bun, Deno and Node and
 * real signals, then the same protocol driven in-process (stop(), run({ signal }), maxJobs, …).
 * Every outcome is read back from Redis or from what the worker process printed.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { sendShutdown } from "../mod.ts";
import type { JobContext } from "../src/context.ts";
import { JobAborted } from "../src/errors.ts";
import type { RunSummary } from "../src/worker.ts";
import { RUNTIMES, waitFor } from "./harness.ts";
import { deferred } from "./helpers.ts";
import { type Ev, gateFile, inProcess, jobHash, nextEvent, setup, sleep, spawnWorker, type WorkerProc } from "./procs.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const ids = (es: Ev[]) => es.map((e) => e.job as string).sort();

/** Where the first line matching `pred` stands among everything the worker process printed (-1: none). */
const lineOf = (w: WorkerProc, pred: (e: Ev) => boolean) => w.events().findIndex(pred);

async function enqueueN(queue: { enqueue: (t: string, d?: unknown, o?: object) => Promise<{ id: string }> }, n: number, prefix = "job"): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await queue.enqueue("sleep", {}, { jobId: `${prefix}-${i}` })).id);
  return out;
}

async function consumers(redis: import("ioredis").Redis, prefix: string, queue = "default"): Promise<string[]> {
  const rows = (await redis.call("XINFO", "CONSUMERS", `${prefix}:{${queue}}:stream`, "sluice")) as unknown[];
  return rows.map((r) => {
    if (Array.isArray(r)) return String(r[r.indexOf("name") + 1]);
    return String((r as Record<string, unknown>).name);
  });
}

for (const rt of RUNTIMES) {
  describe(`worker process under ${rt}`, () => {
    test("SIGTERM with 5 jobs in flight: no new job is fetched, all 5 complete, exit code 0", async () => {
      const { prefix, queue, redis } = setup();
      const all = await enqueueN(queue, 8);
      // the jobs run until the test opens the gate, so all 5 are running when the signal comes
      const gate = gateFile();
      const w = spawnWorker(rt, prefix, { concurrency: 5, untilFile: gate.path });
      const id = await w.ready();
      const starts = await w.waitEvents("start", 5);
      await sleep(100); // the pump is now waiting with every slot taken
      const killedAt = Date.now();
      w.kill("SIGTERM");
      await w.waitEvents("phase", 1, (e) => e.phase === "draining");
      expect(w.events("end")).toEqual([]);
      gate.open();
      expect(await w.exited()).toBe(0);

      // the 5 ran to their end after the signal, nothing was aborted, and no sixth job started
      expect(w.events("start")).toHaveLength(5);
      expect(w.events("abort")).toEqual([]);
      const ends = w.events("end");
      expect(ends).toHaveLength(5);
      for (const e of ends) {
        expect(e.how).toBe("done");
        expect(e.t as number).toBeGreaterThan(killedAt);
      }
      expect(w.events("phase").map((e) => `${e.phase}:${e.source}`)).toEqual(["draining:SIGTERM", "stopped:settled"]);
      const s = w.summary()!;
      expect([s.completed, s.failed, s.interrupted, s.abandoned]).toEqual([5, 0, 0, 0]);

      const started = ids(starts);
      for (const job of started) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.attempt, JSON.parse(h.result!).by]).toEqual(["completed", "1", id]);
      }
      for (const job of all.filter((j) => !started.includes(j))) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.attempt, h.owner ?? ""]).toEqual(["waiting", "0", ""]);
      }
      expect(await queue.counts()).toMatchObject({ waiting: 3, active: 0, completed: 5 });
      // the stopped consumer owned nothing, so it was removed from the group
      expect(await consumers(redis, prefix)).not.toContain(id);
    });

    test("SIGTERM twice: jobs abort with reason shutdown, are re-queued with their attempt unchanged, and another worker completes them", async () => {
      const { prefix, queue, redis } = setup();
      const all = await enqueueN(queue, 7);
      const w = spawnWorker(rt, prefix, { concurrency: 5, jobMs: 30_000 });
      await w.ready();
      const started = ids(await w.waitEvents("start", 5));
      for (const job of started) expect((await jobHash(redis, prefix, job)).attempt).toBe("1");

      w.kill("SIGTERM");
      await w.waitEvents("phase", 1, (e) => e.phase === "draining");
      w.kill("SIGTERM");
      const aborts = await w.waitEvents("abort", 5);
      expect(aborts.map((e) => e.reason)).toEqual(Array(5).fill("shutdown"));
      expect(await w.exited()).toBe(0);
      expect(w.events("phase").map((e) => e.phase)).toEqual(["draining", "aborting", "stopped"]);
      const s = w.summary()!;
      expect([s.completed, s.failed, s.interrupted, s.abandoned]).toEqual([0, 0, 5, 0]);
      expect(w.events("log").filter((e) => e.event === "job-interrupted")).toHaveLength(5);

      // re-queued at once, the interrupted attempt not counted
      for (const job of started) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.attempt, h.owner ?? ""]).toEqual(["waiting", "0", ""]);
      }
      expect(await queue.counts()).toMatchObject({ waiting: 7, active: 0, completed: 0 });

      const second = spawnWorker(rt, prefix, { concurrency: 7, jobMs: 50, worker: { wait: false } });
      const secondId = await second.ready();
      expect(await second.exited()).toBe(0);
      expect(second.summary()!.completed).toBe(7);
      for (const job of all) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.attempt, JSON.parse(h.result!).by]).toEqual(["completed", "1", secondId]);
      }
    });

    test("shutdownGracefulTimeout: after the timeout the running jobs abort (shutdown) and are re-queued like a second signal", async () => {
      const { prefix, queue, redis } = setup();
      const all = await enqueueN(queue, 5);
      const w = spawnWorker(rt, prefix, { concurrency: 5, jobMs: 30_000, worker: { shutdownGracefulTimeout: "800ms" } });
      await w.ready();
      await w.waitEvents("start", 5);
      const killedAt = Date.now();
      w.kill("SIGTERM");
      const aborts = await w.waitEvents("abort", 5);
      console.log(`[lifecycle] ${rt}: SIGTERM -> shutdown aborts ${aborts.map((a) => (a.t as number) - killedAt).join(", ")} ms (shutdownGracefulTimeout 800 ms)`);
      for (const a of aborts) {
        expect(a.reason).toBe("shutdown");
        expect(a.t as number).toBeGreaterThan(killedAt);
      }
      expect(await w.exited()).toBe(0);
      // the escalation came from the timer (its source), after the drain began; only then did the
      // jobs (30 s long, never aborted by the drain itself) see their signal
      expect(w.events("phase").map((e) => `${e.phase}:${e.source}`)).toEqual(["draining:SIGTERM", "aborting:shutdownGracefulTimeout", "stopped:settled"]);
      const draining = lineOf(w, (e) => e.ev === "phase" && e.phase === "draining");
      const aborting = lineOf(w, (e) => e.ev === "phase" && e.phase === "aborting");
      expect(draining).toBeGreaterThanOrEqual(0);
      expect(aborting).toBeGreaterThan(draining);
      expect(lineOf(w, (e) => e.ev === "abort")).toBeGreaterThan(aborting);
      expect(w.events("end").map((e) => e.how)).toEqual(Array(5).fill("threw"));
      expect(w.summary()!.interrupted).toBe(5);
      for (const job of all) expect((await jobHash(redis, prefix, job)).attempt).toBe("0");

      const second = spawnWorker(rt, prefix, { concurrency: 5, jobMs: 50, worker: { wait: false } });
      await second.ready();
      expect(await second.exited()).toBe(0);
      for (const job of all) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.attempt]).toEqual(["completed", "1"]);
      }
    });

    test("an idle worker blocked in XREAD exits on SIGTERM without waiting out its blocking wait", async () => {
      const { prefix, redis } = setup();
      const latencies: number[] = [];
      for (let i = 0; i < 3; i++) {
        // a 10-minute BLOCK: longer than this test may run, so only dropping the connection ends it
        const w = spawnWorker(rt, prefix, { worker: { blockTimeout: "10m" } });
        const id = await w.ready();
        await waitFor(async () => {
          const list = String(await redis.call("CLIENT", "LIST"));
          return /cmd=xread /.test(list);
        }, "a blocked XREAD");
        const killedAt = w.kill("SIGTERM");
        expect(await w.exited()).toBe(0);
        latencies.push(w.exitAt - killedAt);
        // the signal began the drain, and the worker went from there to stopped without the read
        // ever returning a job: no job started, and the run ended (its summary last)
        expect(w.events("phase").map((e) => `${e.phase}:${e.source}`)).toEqual(["draining:SIGTERM", "stopped:settled"]);
        const draining = lineOf(w, (e) => e.ev === "phase" && e.phase === "draining");
        const stopped = lineOf(w, (e) => e.ev === "log" && e.event === "stopped");
        expect(draining).toBeGreaterThanOrEqual(0);
        expect(stopped).toBeGreaterThan(draining);
        expect(lineOf(w, (e) => e.ev === "summary")).toBe(w.events().length - 1);
        expect(w.events("start")).toEqual([]);
        expect(w.summary()).toMatchObject({ completed: 0, interrupted: 0 });
        expect(await consumers(redis, prefix)).not.toContain(id);
      }
      console.log(`[lifecycle] ${rt}: idle SIGTERM -> exit ${latencies.map((l) => l.toFixed(1)).join(", ")} ms`);

      // SIGINT (Ctrl-C) is the same request
      const w = spawnWorker(rt, prefix);
      await w.ready();
      await sleep(200);
      w.kill("SIGINT");
      expect(await w.exited()).toBe(0);
      expect(w.events("phase")[0]).toMatchObject({ phase: "draining", source: "SIGINT" });
    });

    test("a third SIGTERM re-queues jobs that ignore their abort, and the process exits with code 3 by default (the handlers would otherwise run on)", async () => {
      const { prefix, queue, redis } = setup();
      const all = await enqueueN(queue, 3);
      const w = spawnWorker(rt, prefix, { concurrency: 3, jobMs: 60_000, onAbort: "ignore", worker: { heartbeatInterval: 200, stalledTimeout: "2s" } });
      const id = await w.ready();
      await w.waitEvents("start", 3);
      w.kill("SIGTERM");
      await w.waitEvents("phase", 1, (e) => e.phase === "draining");
      w.kill("SIGTERM");
      expect((await w.waitEvents("abort", 3)).map((e) => e.reason)).toEqual(["shutdown", "shutdown", "shutdown"]);
      // the jobs ignore it: the worker stays in `aborting`, still owning and heartbeating them, so a
      // worker looking for stalled jobs all along does not take them
      const watcher = inProcess(prefix, { stalledTimeout: "2s", heartbeatInterval: 200, tasks: { sleep: () => "stolen" } });
      const watching = watcher.run();
      await sleep(3000); // longer than stalledTimeout
      expect(w.p.proc.exitCode).toBeNull();
      for (const job of all) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.owner, h.stalls]).toEqual(["active", id, "0"]);
      }
      expect(await queue.counts()).toMatchObject({ active: 3, waiting: 0 });
      expect((await watcher.stop()).recovered).toBe(0);
      await watching;

      w.kill("SIGTERM");
      expect(await w.exited(10_000)).toBe(3);
      const stopped = w.events("log").find((e) => e.event === "stopped")!;
      expect([stopped.completed, stopped.interrupted, stopped.abandoned]).toEqual([0, 0, 3]);
      expect(w.events("log").filter((e) => e.event === "job-abandoned")).toHaveLength(3);
      for (const job of all) {
        const h = await jobHash(redis, prefix, job);
        expect([h.state, h.attempt]).toEqual(["waiting", "0"]);
      }
    });

    test("remote shutdown via sendShutdown: other targets are ignored, a queue's workers drain, a worker id escalates to hard", async () => {
      const { prefix, url, queue, redis } = setup();
      const all = await enqueueN(queue, 3);
      const w = spawnWorker(rt, prefix, { concurrency: 3, jobMs: 30_000 });
      const id = await w.ready();
      await w.waitEvents("start", 3);

      // not for this worker: another queue, another worker id, another prefix, or both filters not matching
      expect(await sendShutdown(url, { prefix, queue: "other" })).toBeGreaterThanOrEqual(1);
      await sendShutdown(url, { prefix, worker: "someone-else" });
      await sendShutdown(url, { prefix, worker: id, queue: "other" });
      await sendShutdown(redis, { prefix: prefix + "x" });
      await sleep(300);
      expect(w.events("phase")).toEqual([]);

      await sendShutdown(url, { prefix, queue: "default" });
      await w.waitEvents("phase", 1, (e) => e.phase === "draining" && e.source === "remote");
      expect(w.events("abort")).toEqual([]);
      await sendShutdown(redis, { prefix, worker: id, hard: true });
      expect((await w.waitEvents("abort", 3)).map((e) => e.reason)).toEqual(["shutdown", "shutdown", "shutdown"]);
      expect(await w.exited()).toBe(0);
      expect(w.events("phase").map((e) => `${e.phase}:${e.source}`)).toEqual(["draining:remote", "aborting:remote", "stopped:settled"]);
      expect(w.summary()!.interrupted).toBe(3);
      for (const job of all) expect((await jobHash(redis, prefix, job)).state).toBe("waiting");
    });

    test("installSignalHandlers: false leaves SIGTERM to the application", async () => {
      const { prefix, queue, redis } = setup();
      const [job] = await enqueueN(queue, 1);
      const w = spawnWorker(rt, prefix, { jobMs: 800, ownSignals: true, worker: { installSignalHandlers: false } });
      await w.ready();
      await w.waitEvents("start", 1);
      w.kill("SIGTERM");
      const [own] = await w.waitEvents("own-signal");
      // the worker did not react to the signal itself: the application's handler saw it running
      expect(own!.phase).toBe("running");
      expect(await w.exited()).toBe(0);
      expect(w.events("phase").map((e) => `${e.phase}:${e.source}`)).toEqual(["draining:stop()", "stopped:settled"]);
      expect((await jobHash(redis, prefix, job!)).state).toBe("completed");
    });

    test("drain mode (wait: false) takes every ready job, then exits on its own", async () => {
      const { prefix, queue } = setup();
      await enqueueN(queue, 5);
      // a 10-minute BLOCK: had the worker waited in a blocking read for more work, it would not exit in this test
      const w = spawnWorker(rt, prefix, { concurrency: 2, jobMs: 100, worker: { wait: false, blockTimeout: "10m" } });
      expect(await w.exited()).toBe(0);
      expect(w.summary()).toMatchObject({ completed: 5, interrupted: 0 });
      // the drain began only after the last job ended
      const lastEnd = w.events().map((e) => e.ev).lastIndexOf("end");
      expect(lastEnd).toBeGreaterThanOrEqual(0);
      expect(lineOf(w, (e) => e.ev === "phase" && e.phase === "draining")).toBeGreaterThan(lastEnd);
      expect(w.events("phase")[0]).toMatchObject({ phase: "draining", source: "drained" });
      expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: 5 });
    });
  });
}

describe("in-process", () => {
  /** A task that runs until its signal aborts (then throws) or `ms` elapse. */
  const wait = (ms = 30_000) => async (_: unknown, ctx: JobContext) => {
    ctx.signal.throwIfAborted();
    await new Promise<void>((res, rej) => {
      const t = setTimeout(res, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        rej(ctx.signal.reason);
      }, { once: true });
    });
    return "done";
  };

  test("the phases run running → draining → aborting → stopped, and stop() twice escalates", async () => {
    const { prefix, queue, redis } = setup();
    const { id } = await queue.enqueue("long");
    const reasons: string[] = [];
    const w = inProcess(prefix, {
      tasks: { long: (d: unknown, ctx: JobContext) => (ctx.signal.addEventListener("abort", () => reasons.push(ctx.abortReason!)), wait()(d, ctx)) },
    });
    const phases: string[] = [];
    w.shutdown.addEventListener("phase", (e) => phases.push((e as CustomEvent).detail.phase));
    const run = w.run();
    await nextEvent(w, "active");
    expect(w.phase).toBe("running");
    void w.stop();
    expect(w.phase).toBe("draining");
    expect(w.shutdown.graceful.aborted).toBe(true);
    expect(w.shutdown.hard.aborted).toBe(false);
    await sleep(200);
    expect(reasons).toEqual([]); // draining leaves the job running
    const summary = await w.stop();
    expect(summary).toBe(await run);
    expect(phases).toEqual(["draining", "aborting", "stopped"]);
    expect(reasons).toEqual(["shutdown"]);
    expect(summary.interrupted).toBe(1);
    expect((await jobHash(redis, prefix, id)).state).toBe("waiting");
  });

  test("run({ signal }) stops gracefully; run({ hardSignal }) stops hard", async () => {
    const { prefix, queue, redis } = setup();
    const a = await queue.enqueue("job", null, { jobId: "graceful" });
    const w1 = inProcess(prefix, { tasks: { job: wait(600) } });
    const ac = new AbortController();
    const run1 = w1.run({ signal: ac.signal });
    await nextEvent(w1, "active");
    ac.abort();
    const s1 = await run1;
    expect([s1.completed, s1.interrupted]).toEqual([1, 0]);
    expect((await jobHash(redis, prefix, a.id)).state).toBe("completed");

    const b = await queue.enqueue("job", null, { jobId: "hard" });
    const reasons: string[] = [];
    // the job runs 30 s unless aborted: the run ends only through the hard signal's abort
    const w2 = inProcess(prefix, { tasks: { job: (d: unknown, ctx: JobContext) => (ctx.signal.addEventListener("abort", () => reasons.push(ctx.abortReason!)), wait()(d, ctx)) } });
    const hard = new AbortController();
    const run2 = w2.run({ hardSignal: hard.signal });
    await nextEvent(w2, "active");
    expect(reasons).toEqual([]);
    hard.abort();
    const s2 = await run2;
    expect(reasons).toEqual(["shutdown"]);
    expect([s2.completed, s2.interrupted]).toEqual([0, 1]);
    const h = await jobHash(redis, prefix, b.id);
    expect([h.state, h.attempt]).toEqual(["waiting", "0"]);

    // an already-aborted signal: the worker stops without taking a job
    const w3 = inProcess(prefix, { tasks: { job: wait(10) } });
    const s3 = await w3.run({ signal: AbortSignal.abort() });
    expect(s3.completed).toBe(0);
    expect((await jobHash(redis, prefix, b.id)).state).toBe("waiting");
  });

  test("maxJobs: the worker takes that many jobs, finishes them, and stops", async () => {
    const { prefix, queue } = setup();
    for (let i = 0; i < 7; i++) await queue.enqueue("job", i);
    const w = inProcess(prefix, { concurrency: 5, maxJobs: 3, tasks: { job: wait(50) } });
    const s = await w.run();
    expect(s.completed).toBe(3);
    expect(await queue.counts()).toMatchObject({ completed: 3, waiting: 4, active: 0 });
  });

  test("abort requests are honoured while draining", async () => {
    const { prefix, queue, redis } = setup();
    const job = await queue.enqueue("long");
    const other = await queue.enqueue("long");
    const w = inProcess(prefix, { concurrency: 2, tasks: { long: wait(1500) } });
    const run = w.run();
    await waitFor(() => w.activeJobs.length === 2, "two active jobs");
    void w.stop();
    expect(w.phase).toBe("draining");
    const aborted = nextEvent<{ abortReason: string }>(w, "aborted");
    expect((await queue.cancel(job.id, { abort: true })).outcome).toBe("abort-requested");
    expect((await aborted).abortReason).toBe("user");
    const s = await run;
    expect([s.aborted, s.completed, s.interrupted]).toEqual([1, 1, 0]);
    expect((await jobHash(redis, prefix, job.id)).state).toBe("aborted");
    expect((await jobHash(redis, prefix, other.id)).state).toBe("completed");
  });

  test("the summary counts completed, failed, retried, interrupted and abandoned jobs", async () => {
    const { prefix, queue, redis } = setup();
    let release!: () => void;
    const stubbornDone = new Promise<void>((r) => (release = r));
    await queue.enqueue("ok");
    await queue.enqueue("ok");
    await queue.enqueue("bad", null, { attempts: 1 });
    await queue.enqueue("flaky", null, { attempts: 2, backoff: 0 });
    const long = await queue.enqueue("long");
    const stubborn = await queue.enqueue("stubborn");
    const w = inProcess(prefix, {
      concurrency: 10,
      tasks: {
        ok: () => "ok",
        bad: () => {
          throw new Error("nope");
        },
        flaky: (_: unknown, ctx: JobContext) => {
          if (ctx.job.attempt === 1) throw new Error("first attempt fails");
          return "second";
        },
        long: wait(),
        stubborn: async () => {
          await stubbornDone; // ignores its signal
          return "late";
        },
      },
    });
    const run = w.run();
    await waitFor(async () => {
      const c = await queue.counts();
      return c.completed === 3 && c.failed === 1 && w.activeJobs.length === 2;
    }, "3 completed, 1 failed, 2 running");
    void w.stop();
    void w.stop();
    await waitFor(async () => (await jobHash(redis, prefix, long.id)).state === "waiting", "the long job re-queued");
    expect(w.phase).toBe("aborting"); // the stubborn job holds it there
    void w.stop(); // third request: abandon
    const s: RunSummary = await run;
    release();
    expect([s.completed, s.failed, s.retried, s.interrupted, s.abandoned, s.aborted]).toEqual([3, 1, 1, 1, 1, 0]);
    for (const id of [long.id, stubborn.id]) {
      const h = await jobHash(redis, prefix, id);
      expect([h.state, h.attempt]).toEqual(["waiting", "0"]);
    }
  });

  test("stop() before run(): run() resolves at once without taking a job", async () => {
    const { prefix, queue } = setup();
    await queue.enqueue("job");
    const w = inProcess(prefix, { tasks: { job: () => 1 } });
    void w.stop();
    const s = await w.run();
    expect(s.completed).toBe(0);
    expect(w.phase).toBe("stopped");
    expect(await queue.counts()).toMatchObject({ waiting: 1, active: 0 });
  });

  test("a job that completes despite a shutdown abort is completed", async () => {
    const { prefix, queue, redis } = setup();
    const job = await queue.enqueue("job");
    const w = inProcess(prefix, {
      tasks: {
        job: async (_: unknown, ctx: JobContext) => {
          await new Promise((r) => ctx.signal.addEventListener("abort", r, { once: true }));
          if (!JobAborted.is(ctx.signal.reason)) throw new Error("reason is not a JobAborted");
          return `finished its critical section (${ctx.abortReason})`;
        },
      },
    });
    const run = w.run();
    await nextEvent(w, "active");
    const s = await w.stop({ hard: true });
    expect(s).toBe(await run);
    expect([s.completed, s.interrupted]).toEqual([1, 0]);
    const h = await jobHash(redis, prefix, job.id);
    expect([h.state, JSON.parse(h.result!)]).toEqual(["completed", "finished its critical section (shutdown)"]);
  });

  test("a job fetched in the same batch as the stop is handed back without running", async () => {
    const { prefix, queue, redis } = setup();
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push(await queue.enqueue("job", i, { jobId: `batch-${i}` }));
    const ran: number[] = [];
    // concurrency 4: the pump sends two passes at once, each fetching up to 2 jobs in one script call
    const w = inProcess(prefix, { concurrency: 4, tasks: { job: (d: number, ctx: JobContext) => (ran.push(d), wait()(d, ctx)) } });
    let stopped: Promise<RunSummary> | undefined;
    w.addEventListener("active", () => (stopped ??= w.stop({ hard: true })));
    const run = w.run();
    const s = await run;
    expect(await stopped).toBe(s);
    expect(ran).toEqual([0]); // the jobs fetched with it never reached their handler
    expect([s.completed, s.interrupted]).toEqual([0, 3]);
    for (const j of jobs) {
      const h = await jobHash(redis, prefix, j.id);
      expect([h.state, h.attempt]).toEqual(["waiting", "0"]);
    }
    expect(await queue.counts()).toMatchObject({ waiting: 3, active: 0 });
  });

  test("draining drops a blocked XREAD while a job still runs, and fetches nothing more; heartbeats keep that job from being recovered", async () => {
    const { prefix, queue, redis } = setup();
    const release = deferred();
    // data -1: the job runs until the test releases it; any other number: that many ms
    const long = await queue.enqueue("job", -1);
    // a 10-minute BLOCK: longer than this test may run, so only dropping the connection ends a read
    const opts = { concurrency: 2, stalledTimeout: 600, heartbeatInterval: 100, blockTimeout: "10m" };
    const task = { job: (ms: number, ctx: JobContext) => (ms < 0 ? release.promise.then(() => "released") : wait(ms)(ms, ctx)) };
    const a = inProcess(prefix, { ...opts, tasks: task });
    const runA = a.run();
    await nextEvent(a, "active");
    // a has a free slot and waits in a blocking read
    await waitFor(async () => String(await redis.call("CLIENT", "LIST")).includes("cmd=xread "), "a blocked XREAD");
    const t0 = performance.now();
    void a.stop();
    expect(a.phase).toBe("draining");
    await waitFor(async () => !String(await redis.call("CLIENT", "LIST")).includes("cmd=xread "), "the blocked read to end", 10_000, 5);
    console.log(`[lifecycle] blocked read dropped ${(performance.now() - t0).toFixed(1)} ms after stop()`);
    // the read ended while the long job still held the worker: the drain dropped it, nothing that
    // settled woke it up
    expect(a.phase).toBe("draining");
    expect(a.activeJobs).toEqual([{ queue: "default", id: long.id }]);
    expect((await jobHash(redis, prefix, long.id)).state).toBe("active");
    const late = await queue.enqueue("job", 10);

    // another worker, recovering stalled jobs all along, must not take the draining worker's job
    const b = inProcess(prefix, { ...opts, concurrency: 1, tasks: task });
    const runB = b.run();
    // the job enqueued after the stop is left for b
    await waitFor(async () => (await jobHash(redis, prefix, late.id)).state === "completed", "b to run the job enqueued after the stop");
    await sleep(opts.stalledTimeout * 2); // b's recovery runs meanwhile; a's job is older than stalledTimeout
    expect((await jobHash(redis, prefix, long.id)).state).toBe("active");
    release.resolve();
    const sa = await runA;
    expect([sa.completed, sa.interrupted]).toEqual([1, 0]);
    const h = await jobHash(redis, prefix, long.id);
    expect([h.state, h.attempt, h.stalls, JSON.parse(h.result!)]).toEqual(["completed", "1", "0", "released"]);
    const sb = await b.stop();
    await runB;
    expect([sb.completed, sb.recovered]).toEqual([1, 0]);
    expect(JSON.parse((await jobHash(redis, prefix, late.id)).result!)).toBe("done");
  });
});
