import { expect, test } from "bun:test";
import { Queue } from "../mod.ts";
import { redisUrl, uniquePrefix, waitFor } from "./harness.ts";
import { spawnWorker } from "./procs.ts";

// Nothing is lost when workers die or are stopped hard mid-run: a Bun worker is SIGKILLed, a Deno
// worker is stopped with two SIGTERMs, a Node worker joins late; every job still completes.
test("600 jobs over workers that are killed, hard-stopped and replaced all complete, none lost", async () => {
  const prefix = uniquePrefix("chaos");
  const queue = new Queue("default", { redis: redisUrl(), prefix });
  const N = 600;
  const jobs = await queue.enqueueMany(Array.from({ length: N }, (_, i) => ({ task: "sleep", data: { ms: 20 + (i % 4) * 20 } })));
  const worker = {
    concurrency: 10,
    stalledTimeout: 1500,
    heartbeatInterval: 250,
    retention: { completed: { count: 100_000 } },
  };
  const a = spawnWorker("bun", prefix, { worker });
  const b = spawnWorker("deno", prefix, { worker });
  await Promise.all([a.ready(), b.ready()]);

  await a.waitEvents("start", 40);
  a.kill("SIGKILL"); // its running jobs stay pending under it until another worker recovers them
  await b.waitEvents("start", 60);
  b.kill("SIGTERM");
  await b.waitEvents("phase", 1, (e) => e.phase === "draining");
  b.kill("SIGTERM"); // hard: running jobs are interrupted and re-queued
  expect(await b.exited()).toBe(0);

  const c = spawnWorker("node", prefix, { worker });
  await c.ready();
  await waitFor(async () => (await queue.counts()).completed === N, `all ${N} jobs to complete`, 60_000, 100);

  const counts = await queue.counts();
  expect(counts).toMatchObject({ waiting: 0, delayed: 0, completed: N, failed: 0, aborted: 0, cancelled: 0 });
  for (const { id } of jobs) expect((await queue.getJob(id))?.state).toBe("completed");
  // the killed worker's jobs were recovered (a stall each), the hard-stopped worker's re-queued
  const started = new Set([...a.events("start"), ...b.events("start"), ...c.events("start")].map((e) => e.job));
  expect(started.size).toBe(N);
  const recovered = c.events("log").filter((e) => e.event === "job-stalled").length;
  const interrupted = b.summary()?.interrupted as number;
  expect(interrupted).toBeGreaterThan(0);
  expect(recovered).toBeGreaterThan(0);
  c.kill("SIGTERM");
  expect(await c.exited()).toBe(0);
  expect(c.summary()?.recovered).toBe(recovered);
  await queue.close();
}, 120_000);
