/**
 * Recovery of the jobs of workers that died, and fencing of workers that only look dead: a worker
 * process killed with SIGKILL, consumers that vanished mid-delivery, and a stale worker whose job
 * was reclaimed finishing it anyway.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { JobContext, JobEventDetail } from "../mod.ts";
import { spawnTs, waitFor } from "./harness.ts";
import { deferred, sleep, useScope, within } from "./helpers.ts";

// waits below run up to 10-15 s before they fail with a message; the test must outlive them
setDefaultTimeout(30_000);

const scope = useScope();

type Q = ReturnType<ReturnType<typeof scope>["queue"]>;

async function settled(q: Q, id: string, state: string, timeout = 10_000) {
  return await waitFor(async () => {
    const j = await q.getJob(id);
    return j?.state === state ? j : null;
  }, `job ${id} to be ${state}`, timeout);
}

interface StalledDetail {
  id: string;
  queue: string;
  failed: boolean;
}

describe("stalled recovery", () => {
  test("a job of a worker process killed with SIGKILL is recovered by another worker only once its last heartbeat is stalledTimeout old, and completed there", async () => {
    const STALLED = 1500;
    const HEARTBEAT = 250;
    const s = scope();
    const q = s.queue("rescue");
    const redis = s.redis();
    const job = await q.enqueue("hang", { n: 7 }, { attempts: 2 });
    const victim = spawnTs("bun", "test/fixtures/stalling-worker.ts", [], {
      REDIS_URL: s.url, SLUICE_PREFIX: s.prefix, SLUICE_QUEUE: "rescue",
      STALLED_TIMEOUT: String(STALLED), HEARTBEAT_INTERVAL: String(HEARTBEAT),
    });
    // the victim's heartbeats (its time in the queue's `alive` zset), watched until the job is done:
    // the latest one seen is at most its last heartbeat (recovery removes the entry of a dead worker)
    let watching = true;
    let lastBeat = 0;
    let watcher: Promise<void> = Promise.resolve();
    try {
      const start = JSON.parse(await victim.line(/"ev":"start"/, 20_000)) as { job: string; worker: string; attempt: number };
      expect(start).toMatchObject({ job: job.id, attempt: 1 });
      watcher = (async () => {
        while (watching) {
          const score = await redis.zscore(`${q.keys.base}alive`, start.worker);
          if (score !== null) lastBeat = Math.max(lastBeat, Number(score));
          await sleep(20);
        }
      })();

      const stalled: StalledDetail[] = [];
      const logs: { event: string; job?: unknown }[] = [];
      const rescuer = s.worker({
        id: "rescuer",
        queues: ["rescue"],
        stalledTimeout: STALLED,
        heartbeatInterval: HEARTBEAT,
        logger: (e) => logs.push({ event: e.event, job: e.job }),
        tasks: {
          hang: (data: { n: number }, ctx: JobContext) => ({ by: ctx.workerId, n: data.n, attempt: ctx.job.attempt, stalls: ctx.job.stalls }),
        },
      });
      rescuer.addEventListener("stalled", (e) => stalled.push((e as CustomEvent<StalledDetail>).detail));
      rescuer.run();

      // while the victim lives it heartbeats: nothing is taken from it, however long the job runs
      await sleep(STALLED * 2);
      expect(await q.getJob(job.id)).toMatchObject({ state: "active", owner: start.worker, stalls: 0 });
      expect(stalled).toEqual([]);
      expect(lastBeat).toBeGreaterThan(0);

      const killedAt = Date.now();
      victim.kill("SIGKILL");
      expect(await within(victim.exited, 10_000, "the victim to exit")).toBe("SIGKILL");

      const done = await settled(q, job.id, "completed", 15_000);
      watching = false;
      await watcher;
      // the stalled run is not counted as an attempt, but as a stall
      expect(done).toMatchObject({ result: { by: "rescuer", n: 7, attempt: 1, stalls: 1 }, attempt: 1, stalls: 1 });
      expect(stalled).toEqual([{ id: job.id, queue: "rescue", failed: false }]);
      expect(logs.filter((l) => l.event === "job-stalled")).toEqual([{ event: "job-stalled", job: job.id }]);

      // the job's history, in the order Redis wrote it: enqueued, recovered by the rescuer, completed
      const history = (await redis.xrange(q.keys.events, "-", "+"))
        .map(([, f]) => Object.fromEntries(f.flatMap((v, i) => (i % 2 ? [] : [[v, f[i + 1]!]]))))
        .map((x) => ({ e: x.e!, ids: x.id!.split(" "), t: Number(x.t) }))
        .filter((x) => x.ids.includes(job.id));
      expect(history.map((x) => x.e)).toEqual(["waiting", "stalled", "completed"]);
      const stalledAt = history[1]!.t;
      console.log(`[recovery] last heartbeat seen -> kill ${killedAt - lastBeat} ms, -> recovered ${stalledAt - lastBeat} ms, -> completed ${done.finishedAt! - lastBeat} ms (stalledTimeout ${STALLED} ms)`);
      // recovered after the kill, and only once the victim's last heartbeat was stalledTimeout old
      // (the rule recovery applies, on the times it recorded: lastBeat is at most the last heartbeat,
      // so a slow machine only widens the gap)
      expect(stalledAt).toBeGreaterThanOrEqual(killedAt);
      expect(stalledAt - lastBeat).toBeGreaterThanOrEqual(STALLED);
      // and the rescuer's run came after the recovery
      expect(done.startedAt!).toBeGreaterThanOrEqual(stalledAt);
      expect(done.finishedAt!).toBeGreaterThanOrEqual(done.startedAt!);

      expect(await rescuer.stop()).toMatchObject({ completed: 1, recovered: 1, lost: 0 });
      expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1, failed: 0 });
      expect(await redis.xlen(q.keys.stream)).toBe(0);
      expect(((await redis.xpending(q.keys.stream, "sluice")) as [number])[0]).toBe(0);
    } finally {
      watching = false;
      await watcher;
      if (victim.proc.exitCode === null && victim.proc.signalCode === null) victim.kill("SIGKILL");
      await victim.exited;
    }
  }, 45_000);

  test("a job that stalls more than maxStalled times fails as stalled", async () => {
    const s = scope();
    const q = s.queue("ghosts");
    const redis = s.redis();
    await q.enqueue("work", null, { jobId: "g1", attempts: 3 });
    // a consumer takes the job (the delivery is the attempt's start) and dies without another word
    await redis.call("XREADGROUP", "GROUP", "sluice", "ghost", "COUNT", 1, "STREAMS", q.keys.stream, ">");
    expect(await q.getJob("g1")).toMatchObject({ state: "active", owner: "ghost", attempt: 1 });

    let ran = 0;
    const stalled: StalledDetail[] = [];
    const w = s.worker({ queues: ["ghosts"], stalledTimeout: 600, heartbeatInterval: 100, maxStalled: 0, tasks: { work: () => void ran++ } });
    w.addEventListener("stalled", (e) => stalled.push((e as CustomEvent<StalledDetail>).detail));
    w.run();
    const info = await settled(q, "g1", "failed");
    expect(info.error).toMatchObject({ name: "StalledError" });
    expect(info.stalls).toBe(1);
    // the event follows the script's reply, which may reach the worker after this test saw the job failed
    await waitFor(() => stalled.length > 0, "the stalled event");
    expect(stalled).toEqual([{ id: "g1", queue: "ghosts", failed: true }]);
    await sleep(300);
    expect(ran).toBe(0);
    expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, failed: 1 });
    expect(await redis.xlen(q.keys.stream)).toBe(0);
    expect(((await redis.xpending(q.keys.stream, "sluice")) as [number])[0]).toBe(0);
  }, 30_000);

  test("an entry delivered to a consumer that died is its attempt: run again elsewhere with one stall counted, that attempt not counted", async () => {
    const s = scope();
    const q = s.queue("ghosts");
    const redis = s.redis();
    await q.enqueue("work", { v: 1 }, { jobId: "g2" });
    // delivered (in the ghost's pending list): nothing tells a delivery from a started attempt
    await redis.call("XREADGROUP", "GROUP", "sluice", "ghost", "COUNT", 1, "STREAMS", q.keys.stream, ">");
    expect(await q.counts()).toMatchObject({ active: 1 });

    const w = s.worker({ queues: ["ghosts"], stalledTimeout: 600, heartbeatInterval: 100, tasks: { work: (d: { v: number }) => d.v + 1 } });
    w.run();
    const info = await settled(q, "g2", "completed");
    expect(info).toMatchObject({ result: 2, attempt: 1, stalls: 1 });
    expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1 });
  }, 30_000);

  test("heartbeats keep a job that runs longer than stalledTimeout from being recovered", async () => {
    const s = scope();
    const q = s.queue("long");
    let runs = 0;
    const opts = { queues: ["long"], stalledTimeout: 600, heartbeatInterval: 100 };
    const a = s.worker({
      ...opts,
      id: "long-a",
      concurrency: 1,
      tasks: {
        async long() {
          runs++;
          await sleep(1800);
          return "finished";
        },
      },
    });
    a.run();
    await q.enqueue("long", null, { jobId: "l1" });
    await settled(q, "l1", "active");
    const b = s.worker({ ...opts, id: "long-b", tasks: { long: () => void runs++ } });
    b.run();
    const done = await settled(q, "l1", "completed", 15_000);
    expect(done).toMatchObject({ result: "finished", stalls: 0, attempt: 1 });
    expect(runs).toBe(1);
    expect(await a.stop()).toMatchObject({ completed: 1, lost: 0 });
    expect(await b.stop()).toMatchObject({ completed: 0, recovered: 0 });
  }, 30_000);
});

/**
 * Worker "new-b" on queue "fence" whose short stalledTimeout makes another worker's job look
 * stalled: it reclaims the job, signals `startedB`, and returns "from B" once `gateB` opens.
 */
function reclaimer(s: ReturnType<typeof scope>) {
  const startedB = deferred();
  const gateB = deferred();
  const b = s.worker({
    id: "new-b",
    queues: ["fence"],
    stalledTimeout: 500,
    heartbeatInterval: 100,
    tasks: {
      async job() {
        startedB.resolve();
        await gateB.promise;
        return "from B";
      },
    },
  });
  b.run();
  return { b, startedB, gateB };
}

describe("fencing", () => {
  test("a stale worker cannot complete a job that was reclaimed; the new owner completes it", async () => {
    const s = scope();
    const q = s.queue("fence");
    const redis = s.redis();
    const startedA = deferred();
    const gateA = deferred();
    const lostA: JobEventDetail[] = [];
    // A heartbeats rarely and polls for aborts rarely: it does not notice its job being taken
    const a = s.worker({
      id: "stale-a",
      queues: ["fence"],
      concurrency: 1,
      stalledTimeout: 60_000,
      heartbeatInterval: 20_000,
      abortPollInterval: 60_000,
      tasks: {
        async job() {
          startedA.resolve();
          await gateA.promise;
          return "from A";
        },
      },
    });
    a.addEventListener("lost", (e) => lostA.push((e as CustomEvent<JobEventDetail>).detail));
    a.run();
    await q.enqueue("job", null, { jobId: "f1", attempts: 1 });
    await within(startedA.promise, 10_000, "A to start the job");
    // the attempt's fencing token is the entry it runs from
    const tokenA = await redis.hget(q.keys.job("f1"), "sid");

    // B's short stalledTimeout makes A's job look stalled: B reclaims and runs it
    const { b, startedB, gateB } = reclaimer(s);
    await within(startedB.promise, 10_000, "B to reclaim and start the job");
    const taken = await q.getJob("f1");
    expect(taken).toMatchObject({ state: "active", owner: "new-b", stalls: 1, attempt: 1 });
    expect(await redis.hget(q.keys.job("f1"), "sid")).not.toBe(tokenA);

    // A's handler returns now: the completion script refuses it (the job no longer waits on the entry A ran from)
    gateA.resolve();
    await waitFor(() => lostA.length === 1, "A to report the job lost");
    expect(lostA[0]!.job.id).toBe("f1");
    const after = await q.getJob("f1");
    expect(after).toMatchObject({ state: "active", owner: "new-b" });
    expect(after!.result).toBeUndefined();
    expect(after!.finishedAt).toBeUndefined();
    expect(await q.counts()).toMatchObject({ active: 1, completed: 0 });

    gateB.resolve();
    const done = await settled(q, "f1", "completed");
    expect(done.result).toBe("from B");
    expect(await a.stop()).toMatchObject({ completed: 0, lost: 1 });
    expect(await b.stop()).toMatchObject({ completed: 1, recovered: 1 });
    expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1 });
  }, 30_000);

  test("a worker that finds its job reclaimed aborts it with reason lost and writes nothing", async () => {
    const s = scope();
    const q = s.queue("fence");
    const startedA = deferred();
    const endedA = deferred<string | undefined>();
    const a = s.worker({
      id: "slow-a",
      queues: ["fence"],
      concurrency: 1,
      stalledTimeout: 60_000,
      heartbeatInterval: 20_000,
      abortPollInterval: 100,
      tasks: {
        async job(_d: unknown, ctx: JobContext) {
          startedA.resolve();
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          endedA.resolve(ctx.abortReason);
          throw ctx.signal.reason;
        },
      },
    });
    a.run();
    await q.enqueue("job", null, { jobId: "f2", attempts: 1 });
    await within(startedA.promise, 10_000, "A to start the job");

    const { startedB, gateB } = reclaimer(s);
    expect(await within(endedA.promise, 10_000, "A to abort its job")).toBe("lost");
    await within(startedB.promise, 10_000, "B to start the job");
    await sleep(200);
    // A's failure (its handler threw) was not written: the job is B's, with no error and no retry
    const mid = await q.getJob("f2");
    expect(mid).toMatchObject({ state: "active", owner: "new-b", attempt: 1 });
    expect(mid!.error).toBeUndefined();
    gateB.resolve();
    expect((await settled(q, "f2", "completed")).result).toBe("from B");
    expect(await a.stop()).toMatchObject({ lost: 1, failed: 0, retried: 0, completed: 0 });
  }, 30_000);
});
