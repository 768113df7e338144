/**
 * Faults are normal: a worker and a producer behind a proxy that cuts a connection right after a
 * command reached Redis (so Redis ran it and the reply never arrived; the client re-sends it after
 * reconnecting), refuses connections for a while, or black-holes them. Nothing may be lost, run
 * twice while its worker lives, or counted as a stall that never happened.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { type JobContext, Queue, Worker, type WorkerOptions } from "../mod.ts";
import { ENQUEUE, FINISH_AND_FETCH } from "../src/lua.ts";
import { client, redisUrl, uniquePrefix, waitFor } from "./harness.ts";
import { type FaultProxy, startProxy } from "./proxy.ts";
import { sleep, within } from "./helpers.ts";

setDefaultTimeout(60_000);

const sha = (source: string) => createHash("sha1").update(source).digest("hex");
/** Matches one script's EVALSHA (or its EVAL fallback). */
const script = (source: string) => (args: string[]) => args[1] === sha(source) || args[1] === source;

let proxies: FaultProxy[] = [];
let workers: Worker[] = [];
let queues: Queue[] = [];
afterEach(async () => {
  await Promise.all(workers.map((w) => within(w.phase === "stopped" ? Promise.resolve() : w.abandon().then(() => {}), 15_000, "worker stop").catch(() => {})));
  await Promise.all(queues.map((q) => q.close().catch(() => {})));
  await Promise.all(proxies.map((p) => p.close().catch(() => {})));
  proxies = [];
  workers = [];
  queues = [];
});

async function proxy(): Promise<FaultProxy> {
  const p = await startProxy({ port: Number(new URL(redisUrl()).port) });
  proxies.push(p);
  return p;
}

function worker(url: string, prefix: string, options: Partial<WorkerOptions> & Pick<WorkerOptions, "tasks">): Worker {
  const w = new Worker({ redis: url, prefix, ...options });
  workers.push(w);
  return w;
}

function queue(prefix: string, url = redisUrl()): Queue {
  const q = new Queue("default", { redis: url, prefix });
  queues.push(q);
  return q;
}

/** A task that records every run of every job. */
function recorder() {
  const runs = new Map<string, number>();
  return {
    runs,
    handler: (_d: unknown, ctx: JobContext) => {
      runs.set(ctx.job.id, (runs.get(ctx.job.id) ?? 0) + 1);
      return ctx.job.attempt;
    },
  };
}

async function expectEachOnceNoStall(q: Queue, ids: string[], runs: Map<string, number>) {
  for (const id of ids) {
    const j = await q.getJob(id);
    expect([id, j?.state, j?.stalls, j?.attempt]).toEqual([id, "completed", 0, 1]);
    expect([id, runs.get(id)]).toEqual([id, 1]);
  }
}

describe("a connection cut after Redis ran the command", () => {
  test("finish-and-fetch calls cut five times: every job runs once and completes, none stalls or fails (maxStalled 0)", async () => {
    const prefix = uniquePrefix("cut");
    const p = await proxy();
    const q = queue(prefix);
    const rec = recorder();
    const w = worker(p.url, prefix, { concurrency: 8, maxStalled: 0, stalledTimeout: 1500, heartbeatInterval: 250, retention: { completed: { count: 10_000 } }, tasks: { t: rec.handler } });
    const requeued: string[] = [];
    w.addEventListener("requeued", (e) => requeued.push(...(e as CustomEvent<{ ids: string[] }>).detail.ids));
    const jobs = await q.enqueueMany(Array.from({ length: 400 }, (_, i) => ({ task: "t", data: i })));
    const run = w.run();
    for (let i = 0; i < 5; i++) await p.cutAfter({ command: "EVALSHA", match: script(FINISH_AND_FETCH) });
    await waitFor(async () => (await q.counts()).completed === 400, "all 400 jobs to complete", 30_000);
    await w.stop();
    await run;
    await expectEachOnceNoStall(q, jobs.map((j) => j.id), rec.runs);
    expect(await q.stats()).toMatchObject({ completed: 400 });
    expect((await q.stats()).failed ?? 0).toBe(0);
    expect((await q.stats()).stalled ?? 0).toBe(0);
    // what a lost reply had fetched was handed back, not left to stalled recovery
    expect(requeued.length).toBe((await q.stats()).requeued ?? 0);
  });

  test("a job that arrives while the worker waits: the fetch after the wait is cut and re-sent, and the job runs once, no stall", async () => {
    const prefix = uniquePrefix("cut");
    const p = await proxy();
    const q = queue(prefix);
    const rec = recorder();
    const w = worker(p.url, prefix, { concurrency: 4, maxStalled: 0, blockTimeout: "30s", tasks: { t: rec.handler } });
    const run = w.run();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      // the worker idles in its blocking wait (which delivers nothing); a job arrives; the reply of
      // the fetch that delivers and activates it is lost
      await sleep(100);
      const cut = p.cutAfter({ command: "EVALSHA", match: script(FINISH_AND_FETCH) });
      ids.push((await q.enqueue("t", i)).id);
      await cut;
      await waitFor(async () => (await q.getJob(ids[i]!))?.state === "completed", `job ${i} to complete`);
    }
    await w.stop();
    await run;
    await expectEachOnceNoStall(q, ids, rec.runs);
  });

  test("a cut enqueue is re-sent: one job, one stream entry, not reported as a duplicate", async () => {
    const prefix = uniquePrefix("cut");
    const p = await proxy();
    const q = queue(prefix, p.url);
    const redis = client();
    const cut = p.cutAfter({ command: "EVALSHA", match: script(ENQUEUE) });
    const [plain, mine] = await Promise.all([q.enqueue("t", 1), cut.then(() => q.enqueue("t", 2, { jobId: "mine" }))]);
    const cut2 = p.cutAfter({ command: "EVALSHA", match: script(ENQUEUE) });
    const again = await q.enqueue("t", 3, { jobId: "again" });
    await cut2;
    expect(plain.duplicate).toBe(false);
    expect(mine.duplicate).toBe(false);
    expect(again).toMatchObject({ duplicate: false, state: "waiting" });
    expect(await redis.xlen(q.keys.stream)).toBe(3);
    redis.disconnect();
  });
});

describe("Redis unreachable for longer than stalledTimeout", () => {
  test("after the outage no worker takes a job from a live worker: the first to reconnect waits for the others' heartbeats", async () => {
    const prefix = uniquePrefix("outage");
    const pa = await proxy();
    const pb = await proxy();
    const q = queue(prefix);
    const started: string[] = [];
    const release = Promise.withResolvers<void>();
    const opts = { stalledTimeout: 1000, heartbeatInterval: 200, maxStalled: 0 };
    const a = worker(pa.url, prefix, {
      ...opts,
      tasks: {
        async long(_d: unknown, ctx: JobContext) {
          started.push(`${ctx.workerId}:${ctx.job.attempt}`);
          await release.promise;
          return "done";
        },
      },
    });
    const b = worker(pb.url, prefix, { ...opts, tasks: { long: () => started.push("b") } });
    const runA = a.run();
    const job = await q.enqueue("long");
    await waitFor(() => started.length === 1, "worker a to start the job");
    const runB = b.run();
    await sleep(300);
    // both workers lose Redis for 2.5 stalledTimeouts: every pending entry is idle past it
    pa.refuse();
    pb.refuse();
    pa.cutAll();
    pb.cutAll();
    await sleep(2500);
    // b's way back is open first
    pb.restore();
    await sleep(300);
    pa.restore();
    await sleep(2000); // two stalledTimeouts after both came back: b's recovery has run by now
    expect(started).toEqual([`${a.id}:1`]);
    release.resolve();
    await waitFor(async () => (await q.getJob(job.id))?.state === "completed", "the job to complete");
    const h = await q.getJob(job.id);
    expect([h!.stalls, h!.attempt]).toEqual([0, 1]);
    const [sa, sb] = await Promise.all([a.stop(), b.stop()]);
    await Promise.all([runA, runB]);
    expect(sa.completed).toBe(1);
    expect(sb.recovered).toBe(0);
  });
});

describe("a black-holed connection", () => {
  test("stop() and stop({ hard: true }) still end a worker whose Redis went silent, within its clean-up bounds", async () => {
    const prefix = uniquePrefix("hole");
    const p = await proxy();
    const q = queue(prefix);
    const gate = Promise.withResolvers<void>();
    const w = worker(p.url, prefix, { tasks: { t: async () => await gate.promise } });
    const run = w.run();
    await q.enqueue("t");
    await waitFor(() => w.activeJobs.length === 1, "the job to start");
    p.blackhole();
    void w.stop();
    await sleep(100);
    void w.stop({ hard: true }); // the job ignores its signal
    void w.stop(); // third request: abandon
    const summary = await within(run, 30_000, "the worker to stop");
    expect(summary.abandoned).toBe(1);
    expect(w.phase).toBe("stopped");
    gate.resolve();
    p.restore();
  });
});
