import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import type { Cluster, Redis } from "ioredis";
import { Queue, sendShutdown, Worker } from "../mod.ts";
import { type ClusterWorkerConfig, namesOnDistinctShards, queueTag, startCluster, type TestCluster } from "./cluster-harness.ts";
import { type Runtime, spawnTs, uniquePrefix, waitFor } from "./harness.ts";
import { type Ev, WorkerProc } from "./procs.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

// One three-master Redis Cluster on free ports for the whole file, removed after it. Tests keep
// apart by key prefix.
let cl: TestCluster;

beforeAll(async () => {
  cl = await startCluster(3);
}, 60_000);

afterAll(() => cl?.stop());

// what a test opened: worker processes, in-process workers, clients; all gone after it
const procs: WorkerProc[] = [];
const workers: Worker[] = [];
const clients: (Cluster | Redis)[] = [];

afterEach(async () => {
  for (const w of procs.splice(0)) if (w.p.proc.exitCode === null && w.p.proc.signalCode === null) w.p.kill("SIGKILL");
  await Promise.all(workers.splice(0).map((w) => (w.phase === "stopped" ? undefined : w.abandon().catch(() => {}))));
  for (const c of clients.splice(0)) c.disconnect();
});

function cluster(): Cluster {
  const c = cl.client();
  clients.push(c);
  return c;
}

/** A worker process on the cluster (test/cluster-harness.ts) under `runtime`; killed after the test. */
function spawnClusterWorker(config: Omit<ClusterWorkerConfig, "ports">, runtime: Runtime = "bun"): WorkerProc {
  const cfg: ClusterWorkerConfig = { ports: cl.ports, ...config };
  const w = new WorkerProc(runtime, spawnTs(runtime, "test/cluster-harness.ts", [JSON.stringify(cfg)]));
  procs.push(w);
  return w;
}

/** An in-process worker on its own cluster client; abandoned after the test if still running. */
function clusterWorker(options: Omit<ConstructorParameters<typeof Worker>[0], "redis">): Worker {
  const w = new Worker({ redis: cluster(), ...options });
  workers.push(w);
  return w;
}

async function total(queues: Queue[], state: "completed" | "aborted" | "waiting"): Promise<number> {
  const counts = await Promise.all(queues.map((q) => q.counts()));
  return counts.reduce((s, c) => s + c[state], 0);
}

const phases = (w: WorkerProc) => w.events("phase").map((e) => `${e.phase}:${e.source}`);

test("queues on different cluster shards enqueue, run in priority order, retry and complete", async () => {
  const producer = cluster();
  const prefix = uniquePrefix("happy");
  const names = ["high", "default", "low"];
  const queues = names.map((n) => new Queue(n, { redis: producer, prefix }));
  // the three queues' hash tags land on more than one shard
  const slots = new Set(await Promise.all(names.map(async (n) => Number(await producer.call("CLUSTER", "KEYSLOT", `{${n}}`)))));
  expect(slots.size).toBeGreaterThan(1);

  for (const [i, q] of queues.entries()) {
    await q.enqueueMany(Array.from({ length: 20 }, (_, j) => ({ task: "record", data: { queue: names[i], j } })));
  }
  await queues[1]!.enqueue("flaky", {}, { attempts: 2, backoff: 50 });
  const delayed = await queues[2]!.enqueue("record", { queue: "low", j: "delayed" }, { delay: 300 });
  expect(delayed.state).toBe("delayed");

  const order: string[] = [];
  const worker = clusterWorker({
    prefix,
    queues: names,
    concurrency: 1,
    stalledTimeout: 2000,
    tasks: {
      record: (d: { queue: string }) => void order.push(d.queue),
      flaky: (_: unknown, ctx) => {
        if (ctx.job.attempt === 1) throw new Error("first attempt fails");
        return "ok";
      },
    },
  });
  const run = worker.run();
  await waitFor(async () => (await total(queues, "completed")) === 62, "all 62 jobs to complete on the cluster", 30_000);
  const summary = await worker.stop();
  await run;
  expect(summary.completed).toBe(62);
  expect(summary.retried).toBe(1);
  // priority: every pre-enqueued high job ran before any default job, and default before low
  const firstDefault = order.indexOf("default");
  const firstLow = order.indexOf("low");
  expect(order.slice(0, 20).every((q) => q === "high")).toBe(true);
  expect(firstDefault).toBe(20);
  expect(firstLow).toBeGreaterThanOrEqual(40);
  expect((await queues[2]!.getJob(delayed.id))?.state).toBe("completed");
}, 60_000);

test("jobs a SIGKILLed worker process held on two shards are recovered by another worker and complete once", async () => {
  const prefix = uniquePrefix("stall");
  const names = await namesOnDistinctShards(cl, "stall", 2);
  const producer = cluster();
  const queues = names.map((n) => new Queue(n, { redis: producer, prefix }));

  const doomed = spawnClusterWorker({ prefix, queues: names, concurrency: 4, worker: { stalledTimeout: 1000, heartbeatInterval: 200 } });
  const doomedId = await doomed.ready();
  // `hold` without a gate never ends by itself: the four jobs stay active until their worker dies
  const held = [
    ...(await queues[0]!.enqueueMany([{ task: "hold" }, { task: "hold" }])),
    ...(await queues[1]!.enqueueMany([{ task: "hold" }, { task: "hold" }])),
  ];
  await doomed.waitEvents("start", 4);
  for (const [i, j] of held.entries()) {
    const info = await queues[i < 2 ? 0 : 1]!.getJob(j.id);
    expect(info?.state).toBe("active");
    expect(info?.owner).toBe(doomedId);
  }
  doomed.kill("SIGKILL");
  expect(await doomed.exited()).toBe("SIGKILL");
  // enqueued after the death: an ordinary job the rescuer takes without any recovery
  const fresh = await queues[0]!.enqueue("hold", {});

  const rescuer = clusterWorker({
    prefix,
    queues: names,
    concurrency: 2,
    stalledTimeout: 1000,
    heartbeatInterval: 200,
    tasks: { hold: (_: unknown, ctx) => ({ by: ctx.workerId, attempt: ctx.job.attempt, stalls: ctx.job.stalls }) },
  });
  const stalled: { id: string; queue: string; failed: boolean }[] = [];
  rescuer.addEventListener("stalled", (e) => stalled.push((e as CustomEvent).detail));
  const run = rescuer.run();
  await waitFor(async () => (await total(queues, "completed")) === 5, "the 4 held jobs and the fresh one to complete", 20_000);
  // the dead worker's consumer leaves both groups once it owns nothing
  await waitFor(async () => {
    for (const q of queues) {
      const consumers = (await producer.call("XINFO", "CONSUMERS", q.keys.stream, "sluice")) as unknown[][];
      if (consumers.some((c) => c[1] === doomedId)) return false;
    }
    return true;
  }, "the dead worker's consumer to be removed from both groups");
  const summary = await rescuer.stop();
  await run;

  expect(summary.recovered).toBe(4);
  expect(summary.completed).toBe(5);
  expect(summary.failed + summary.retried + summary.lost).toBe(0);
  expect(stalled.map((s) => s.id).sort()).toEqual(held.map((j) => j.id).sort());
  expect(stalled.every((s) => !s.failed)).toBe(true);
  for (const [i, j] of held.entries()) {
    const info = await queues[i < 2 ? 0 : 1]!.getJob(j.id);
    expect(info?.state).toBe("completed");
    // one stall counted; the dead worker's attempt was not: the rescuer ran attempt 1
    expect(info?.stalls).toBe(1);
    expect(info?.attempt).toBe(1);
    expect(info?.result).toEqual({ by: rescuer.id, attempt: 1, stalls: 1 });
  }
  const freshInfo = await queues[0]!.getJob(fresh.id);
  expect(freshInfo?.result).toEqual({ by: rescuer.id, attempt: 1, stalls: 0 });
  // counts add up: 3 + 2 jobs, all completed, nothing left anywhere else
  const [ca, cb] = await Promise.all(queues.map((q) => q.counts()));
  expect(ca).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 3, failed: 0, cancelled: 0, aborted: 0 });
  expect(cb).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 2, failed: 0, cancelled: 0, aborted: 0 });
  expect((await queues[0]!.stats()).stalled).toBe(2);
  expect((await queues[1]!.stats()).stalled).toBe(2);
  // the dead worker started each held job once and finished none
  expect(doomed.events("start").map((e) => e.job).sort()).toEqual(held.map((j) => j.id).sort());
  expect(doomed.events("end")).toEqual([]);
}, 60_000);

test("cancel with abort from a Queue on the cluster aborts a job running in a Deno worker process (reason user); it ends aborted", async () => {
  const prefix = uniquePrefix("abort");
  const producer = cluster();
  const queue = new Queue("abort-q", { redis: producer, prefix });
  // heartbeats and abort polls an hour apart: only the pub/sub message can carry the abort here
  const w = spawnClusterWorker({
    prefix,
    queues: ["abort-q"],
    concurrency: 2,
    worker: { stalledTimeout: "3h", heartbeatInterval: "1h", abortPollInterval: "1h" },
  }, "deno");
  const wid = await w.ready();
  const gate = `${prefix}:gate`;
  const a = await queue.enqueue("hold", { gate });
  const b = await queue.enqueue("hold", { gate });
  await w.waitEvents("start", 2);

  expect(await queue.cancel(a.id, { abort: true })).toEqual({ id: a.id, outcome: "abort-requested", previousState: "active" });
  const [ab] = await w.waitEvents("abort");
  expect(ab).toMatchObject({ job: a.id, reason: "user" });
  await waitFor(async () => (await queue.getJob(a.id))?.state === "aborted", "job a to end aborted");
  // the other job runs on: it ends when its gate opens, not aborted
  expect((await queue.getJob(b.id))?.state).toBe("active");
  await producer.set(gate, "1");
  await waitFor(async () => (await queue.getJob(b.id))?.state === "completed", "job b to complete");

  w.kill("SIGTERM");
  expect(await w.exited()).toBe(0);
  expect(w.summary()).toMatchObject({ aborted: 1, completed: 1, retried: 0, failed: 0, interrupted: 0 });
  const info = await queue.getJob(a.id);
  expect(info?.state).toBe("aborted");
  expect(info?.attempt).toBe(1);
  expect(info?.error).toMatchObject({ abortReason: "user" });
  expect((await queue.getJob(b.id))?.result).toEqual({ by: wid });
  // never retried: job a started once, and is in no other state
  expect(w.events("start").filter((e) => e.job === a.id)).toHaveLength(1);
  expect(w.events("abort").map((e) => e.job)).toEqual([a.id]);
  expect(await queue.counts()).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 1, failed: 0, cancelled: 0, aborted: 1 });
  expect((await queue.listJobs("aborted")).jobs.map((j) => j.id)).toEqual([a.id]);
}, 60_000);

test("sendShutdown on the cluster drains the Bun and Node workers it names, hard-stops one on request, and leaves a Deno worker of another queue running", async () => {
  const prefix = uniquePrefix("remote");
  const [qa, qb] = await namesOnDistinctShards(cl, "remote", 2);
  const producer = cluster();
  const queueA = new Queue(qa!, { redis: producer, prefix });
  const wA = spawnClusterWorker({ prefix, queues: [qa!], concurrency: 1 });
  const wB = spawnClusterWorker({ prefix, queues: [qa!], concurrency: 1 }, "node");
  const wC = spawnClusterWorker({ prefix, queues: [qb!], concurrency: 1 }, "deno");
  const [idA, , idC] = await Promise.all([wA.ready(), wB.ready(), wC.ready()]);

  const gate = `${prefix}:gate`;
  const jobs = await queueA.enqueueMany(Array.from({ length: 4 }, () => ({ task: "hold", data: { gate } })));
  const [[startA], [startB]] = await Promise.all([wA.waitEvents("start"), wB.waitEvents("start")]);

  // Messages 1 and 3 go out on one connection to one node: every worker, whichever node it
  // subscribed on, receives them in that order.
  const node = cl.node(0);
  clients.push(node);
  await sendShutdown(node, { prefix, queue: qa });
  const isRemoteDrain = (e: Ev) => e.phase === "draining" && e.source === "remote";
  await Promise.all([wA.waitEvents("phase", 1, isRemoteDrain), wB.waitEvents("phase", 1, isRemoteDrain)]);

  // 2: through the cluster client, a hard stop of worker A alone; its job is interrupted
  await sendShutdown(producer, { prefix, worker: idA, hard: true });
  expect(await wA.exited()).toBe(0);
  expect(wA.events("abort")).toEqual([{ ev: "abort", job: startA!.job, reason: "shutdown" }]);
  expect(wA.summary()).toMatchObject({ interrupted: 1, completed: 0 });
  expect(phases(wA)).toEqual(["draining:remote", "aborting:remote", "stopped:settled"]);

  // worker B drains: its running job finishes once its gate opens, and it fetches nothing more
  expect(wB.p.proc.exitCode).toBeNull();
  await producer.set(gate, "1");
  expect(await wB.exited()).toBe(0);
  expect(wB.summary()).toMatchObject({ completed: 1, interrupted: 0 });
  expect(wB.events("start")).toHaveLength(1);
  expect(wA.events("start")).toHaveLength(1);
  expect(phases(wB)).toEqual(["draining:remote", "stopped:settled"]);

  const interrupted = await queueA.getJob(startA!.job as string);
  expect(interrupted?.state).toBe("waiting");
  expect(interrupted?.attempt).toBe(0);
  expect((await queueA.getJob(startB!.job as string))?.state).toBe("completed");
  // two never fetched, one re-queued, one completed
  expect(await queueA.counts()).toMatchObject({ waiting: 3, active: 0, completed: 1 });
  const waiting = (await queueA.listJobs("waiting")).jobs.map((j) => j.id).sort();
  expect(waiting).toEqual(jobs.map((j) => j.id).filter((id) => id !== startB!.job).sort());

  // worker C serves another queue: messages 1 and 2 were not for it. Message 3 is; had it taken
  // 1 as its own, 3 would escalate it to aborting
  expect(wC.p.proc.exitCode).toBeNull();
  await sendShutdown(node, { prefix, worker: idC });
  expect(await wC.exited()).toBe(0);
  expect(phases(wC)).toEqual(["draining:remote", "stopped:settled"]);
}, 60_000);

test("sendShutdown on the cluster stops every worker under the prefix and resolves with how many are subscribed", async () => {
  const prefix = uniquePrefix("count");
  const producer = cluster();
  // six workers, each on its own cluster client: their subscriptions land on whichever nodes
  const ws = Array.from({ length: 6 }, (_, i) => {
    let ready!: () => void;
    const started = new Promise<void>((r) => (ready = r));
    const w = clusterWorker({
      prefix,
      queues: [`count-${i % 2}`],
      tasks: { noop: () => null },
      logger: (e) => e.event === "started" && ready(),
    });
    const phases: string[] = [];
    w.addEventListener("phase", (e) => {
      const d = (e as CustomEvent<{ phase: string; source: string }>).detail;
      phases.push(`${d.phase}:${d.source}`);
    });
    return { w, started, phases, run: w.run() };
  });
  await Promise.all(ws.map((x) => x.started));
  const channel = `${prefix}:control`;
  const subscribed = async () => {
    let n = 0;
    for (let i = 0; i < cl.ports.length; i++) {
      const c = cl.node(i);
      try {
        const [, count] = (await c.call("PUBSUB", "NUMSUB", channel)) as [string, number];
        n += Number(count);
      } finally {
        c.disconnect();
      }
    }
    return n;
  };
  expect(await subscribed()).toBe(6);
  // messages for no worker: each still reaches, and is counted by, every subscriber
  const probes: number[] = [];
  for (let i = 0; i < 3; i++) probes.push(await sendShutdown(producer, { prefix, worker: "no-such-worker" }));
  // neither worker nor queue: every worker under the prefix drains and stops
  const all = await sendShutdown(producer, { prefix });
  await Promise.all(ws.map((x) => x.run));
  for (const x of ws) expect(x.phases).toEqual(["draining:remote", "stopped:settled"]);
  // the documented result: the number of connections subscribed to the control channel, that is
  // every running worker under the prefix, not only those on the node that took the PUBLISH
  expect(probes).toEqual([6, 6, 6]);
  expect(all).toBe(6);
}, 60_000);

test("queue names with : * ? [ ] \\, unicode and 200 characters work end to end, each queue on one slot", async () => {
  const prefix = uniquePrefix("odd");
  const long = "L:*?[]\\é队".repeat(25).slice(0, 200);
  const names = ["a:b:c", "*", "glob*?[a-z]\\", "x]\\[y?", "ünï-队列-🚀", long];
  expect(long.length).toBe(200);
  expect(() => new Queue(long + "x")).toThrow(/1-200 characters/);
  const producer = cluster();
  const queues = names.map((n) => new Queue(n, { redis: producer, prefix }));
  // the names spread over more than one shard
  const slots = await Promise.all(names.map((n) => cl.keyslot(queueTag(n))));
  expect(new Set(slots.map((s) => cl.owner(s))).size).toBeGreaterThan(1);

  const jobs = await Promise.all(queues.map(async (q, i) => ({
    echo: [await q.enqueue("echo", { i, n: 0 }), await q.enqueue("echo", { i, n: 1 }, { jobId: `id:*?[]\\ü-${i}` })],
    later: await q.enqueue("echo", { i, n: 2 }, { delay: "1h" }),
    hold: await q.enqueue("hold", { i }),
  })));
  for (const [i, q] of queues.entries()) {
    const { echo, later, hold } = jobs[i]!;
    expect((await q.listJobs("waiting")).jobs.map((j) => j.id)).toEqual([...echo.map((e) => e.id), hold.id]);
    expect((await q.listJobs("delayed")).jobs.map((j) => j.id)).toEqual([later.id]);
  }

  const worker = clusterWorker({
    prefix,
    queues: names,
    // room for the six hold jobs at once, and for echo jobs beside them
    concurrency: 8,
    tasks: {
      echo: (d: unknown, ctx) => ({ d, queue: ctx.job.queue }),
      hold: (_: unknown, ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })),
    },
  });
  const run = worker.run();
  await waitFor(async () => (await total(queues, "completed")) === 2 * names.length, "every echo job to complete");
  // the hold jobs are running: abort them through each queue's abort channel
  await waitFor(async () => (await Promise.all(queues.map((q) => q.counts()))).every((c) => c.active === 1), "one hold job active per queue");
  for (const [i, q] of queues.entries()) {
    expect((await q.cancel(jobs[i]!.hold.id, { abort: true })).outcome).toBe("abort-requested");
    expect(await q.cancel(jobs[i]!.later.id)).toEqual({ id: jobs[i]!.later.id, outcome: "cancelled", previousState: "delayed" });
  }
  await waitFor(async () => (await total(queues, "aborted")) === names.length, "every hold job to end aborted");
  await worker.stop();
  await run;

  for (const [i, q] of queues.entries()) {
    const name = names[i]!;
    const { echo, later, hold } = jobs[i]!;
    expect(await q.counts()).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 2, failed: 0, cancelled: 1, aborted: 1 });
    for (const [n, e] of echo.entries()) {
      const info = await q.getJob(e.id);
      expect(info).toMatchObject({ id: e.id, queue: name, name: "echo", state: "completed", attempt: 1 });
      expect(info?.result).toEqual({ d: { i, n }, queue: name });
    }
    expect((await q.getJob(hold.id))?.error).toMatchObject({ abortReason: "user" });
    const completed = await q.listJobs("completed");
    expect(completed.jobs.map((j) => j.id).sort()).toEqual(echo.map((e) => e.id).sort());
    expect(completed.jobs.every((j) => j.queue === name)).toBe(true);
    expect((await q.listJobs("cancelled")).jobs.map((j) => j.id)).toEqual([later.id]);
    expect((await q.listJobs("aborted")).jobs.map((j) => j.id)).toEqual([hold.id]);

    // one slot: two of its keys hash alike, and so does every key the queue made, on the node that serves it
    const slot = slots[i]!;
    expect(await cl.keyslot(q.keys.stream)).toBe(slot);
    expect(await cl.keyslot(q.keys.job(echo[1]!.id))).toBe(slot);
    const keys = await cl.keys(q.keys.base);
    const keyNames = keys.map((k) => k.key);
    for (const k of [q.keys.stream, q.keys.events, q.keys.completed, q.keys.cancelled, q.keys.aborted, q.keys.job(echo[1]!.id), q.keys.job(hold.id)]) {
      expect(keyNames).toContain(k);
    }
    for (const k of keys) {
      expect(await cl.keyslot(k.key)).toBe(slot);
      expect(k.node).toBe(cl.owner(slot));
    }
  }
}, 60_000);

test("queues on three shards: a job of an earlier queue always runs first, however late it was enqueued", async () => {
  const prefix = uniquePrefix("prio");
  const names = await namesOnDistinctShards(cl, "prio", 3);
  const owners = await Promise.all(names.map(async (n) => cl.owner(await cl.keyslot(queueTag(n)))));
  expect(new Set(owners).size).toBe(3);
  const producer = cluster();
  const [high, mid, low] = names.map((n) => new Queue(n, { redis: producer, prefix }));

  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const order: string[] = [];
  const started = new Set<string>();
  const worker = clusterWorker({
    prefix,
    queues: names,
    concurrency: 1,
    tasks: {
      gate: (_: unknown, ctx) => {
        started.add(ctx.job.id);
        return gate;
      },
      record: (d: { tag: string }) => void order.push(d.tag),
    },
  });
  const run = worker.run();
  // the one slot is taken by a low-priority job until the gate opens: the worker fetches nothing meanwhile
  const blocker = await low!.enqueue("gate", {});
  await waitFor(() => started.has(blocker.id), "the gate job to start");
  // enqueued lowest priority first: arrival order is the opposite of priority order
  for (const [q, tag] of [[low!, "low"], [mid!, "mid"], [high!, "high"]] as const) {
    await q.enqueueMany(Array.from({ length: 5 }, (_, j) => ({ task: "record", data: { tag: `${tag}${j}` } })));
  }
  expect(order).toEqual([]);
  open();
  await waitFor(async () => (await total([high!, mid!, low!], "completed")) === 16, "all 16 jobs to complete");
  await worker.stop();
  await run;
  // by priority, and first in first out within a queue
  expect(order).toEqual([
    ...Array.from({ length: 5 }, (_, j) => `high${j}`),
    ...Array.from({ length: 5 }, (_, j) => `mid${j}`),
    ...Array.from({ length: 5 }, (_, j) => `low${j}`),
  ]);
}, 60_000);

test("flow control on a cluster: pause and resume, a rate limit, groups and a schedule, each queue on its own slot", async () => {
  const prefix = uniquePrefix("clflow");
  const q = new Queue("flow", { redis: cluster(), prefix });
  await q.pause();
  await q.setRateLimit({ max: 1000, duration: "1s" });
  await q.setGroupConcurrency(1);
  const grouped = await q.enqueueMany([1, 2, 3].map((i) => ({ task: "echo", data: i, options: { group: "g" } })));
  expect((await q.counts()).waiting).toBe(3);
  const w = clusterWorker({ prefix, queues: ["flow"], abortPollInterval: 100, tasks: { echo: (d: unknown) => d } });
  void w.run();
  await waitFor(() => w.phase === "running", "the worker to start");
  await new Promise((r) => setTimeout(r, 300));
  expect((await q.counts()).completed).toBe(0);
  await q.resume();
  for (const j of grouped) await waitFor(async () => (await q.getJob(j.id))?.state === "completed", `job ${j.id}`, 20_000);
  await q.upsertSchedule("tick", { every: "1s", task: "echo", data: "tick" });
  await waitFor(async () => (await q.listJobs("completed")).jobs.some((j) => j.id.startsWith("sched:tick:")), "a scheduled job to run", 20_000);
  expect((await q.listSchedules()).map((s) => s.id)).toEqual(["tick"]);
  await w.stop();
});
