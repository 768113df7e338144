import { expect, test } from "bun:test";
import { delay, Queue, Worker } from "../mod.ts";
import { startRedis, waitFor } from "./harness.ts";

test("a worker whose Redis went away still stops: the third request gives up on the outcomes it cannot write", async () => {
  const server = await startRedis();
  const queue = new Queue("down", { redis: server.url });
  await queue.enqueue("slow", null);
  const logs: string[] = [];
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
  const run = worker.run();
  await waitFor(() => started, "the job to start");
  await server.stop(); // Redis is gone: the job's outcome cannot be written
  const t0 = Date.now();
  void worker.stop(); // draining: the job finishes, its outcome waits for Redis
  await delay(800);
  expect(worker.phase).toBe("draining");
  void worker.stop(); // aborting
  void worker.stop(); // abandon: at most a few seconds more for Redis, then stop
  const summary = await run;
  const took = Date.now() - t0;
  expect(worker.phase).toBe("stopped");
  expect(took).toBeLessThan(8000);
  expect(summary.completed).toBe(0); // never written, so never counted
  expect(logs.some((l) => l.includes("Redis did not answer"))).toBe(true);
  expect(logs.at(-1)).toContain("stopped");
  await queue.close();
}, 30_000);
