import { expect, setDefaultTimeout, test } from "bun:test";
import { delay, Queue, Worker } from "../mod.ts";
import { startRedis, waitFor } from "./harness.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

test("a worker whose Redis went away still stops: the third request gives up on the outcomes it cannot write", async () => {
  const server = await startRedis();
  const queue = new Queue("down", { redis: server.url });
  await queue.enqueue("slow", null);
  const logs: string[] = [];
  const phases: string[] = [];
  let started = false;
  const worker = new Worker({
    redis: server.url,
    queues: ["down"],
    logger: (e) => logs.push(`${e.event}: ${e.message}`),
    tasks: {
      async slow(_data, ctx) {
        started = true;
        await delay(500, { signal: ctx.signal }).catch(() => {});
        return "done";
      },
    },
  });
  worker.addEventListener("error", () => {});
  worker.addEventListener("phase", (e) => phases.push((e as CustomEvent<{ phase: string }>).detail.phase));
  const run = worker.run();
  await waitFor(() => started, "the job to start");
  await server.stop(); // Redis is gone: the job's outcome cannot be written
  const t0 = Date.now();
  void worker.stop(); // draining: the job finishes, its outcome waits for Redis
  await delay(800);
  expect(worker.phase).toBe("draining");
  void worker.stop(); // aborting
  void worker.stop(); // abandon: at most a few seconds more for Redis, then stop
  // run() settles (the test's own timeout is the only bound): the worker gave up on Redis
  const summary = await run;
  console.log(`[redis-down] first stop() -> stopped ${Date.now() - t0} ms`);
  expect(worker.phase).toBe("stopped");
  expect(phases).toEqual(["draining", "aborting", "stopped"]);
  expect(summary.completed).toBe(0); // never written, so never counted
  // it stopped because it gave up on the outcome it could not write: that comes after the drain
  // and the abort began, and the stop is the last word
  const at = (prefix: string) => logs.findIndex((l) => l.startsWith(prefix));
  const gaveUp = logs.findIndex((l) => l.includes("Redis did not answer"));
  expect(at("draining:")).toBeGreaterThanOrEqual(0);
  expect(at("aborting:")).toBeGreaterThan(at("draining:"));
  expect(gaveUp).toBeGreaterThan(at("aborting:"));
  expect(logs.at(-1)).toMatch(/^stopped: /);
  await queue.close();
}, 30_000);

test("a worker whose stream and group were deleted makes them again and runs the jobs enqueued next", async () => {
  const server = await startRedis();
  const queue = new Queue("gone", { redis: server.url });
  const seen: string[] = [];
  const worker = new Worker({ redis: server.url, queues: ["gone"], blockTimeout: 200, tasks: { note: (d: string) => void seen.push(d) } });
  worker.addEventListener("error", () => {});
  const run = worker.run();
  await queue.enqueue("note", "before");
  await waitFor(() => seen.includes("before"), "the first job to run");
  const admin = new (await import("ioredis")).Redis(server.url);
  await admin.flushall(); // stream, group and everything else gone, as after a restart without persistence
  // the worker's next read meets NOGROUP and makes the stream and group again by itself
  await waitFor(async () => (await admin.exists(queue.keys.stream)) === 1, "the worker to make the stream again", 10_000);
  expect(await admin.xinfo("GROUPS", queue.keys.stream)).toHaveLength(1);
  await queue.enqueue("note", "after");
  await waitFor(() => seen.includes("after"), "the job enqueued after the flush to run", 10_000);
  expect((await queue.counts()).completed).toBe(1);
  await worker.stop();
  await run;
  admin.disconnect();
  await queue.close();
  await server.stop();
}, 30_000);
