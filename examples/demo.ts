/**
 * The quick-start demo: a worker and a few jobs on a throwaway local Redis (or on REDIS_URL).
 *   npm run demo                     (or: bun run examples/demo.ts)
 * Enqueues jobs of every kind (plain, delayed, one that fails once then retries, one that is
 * cancelled), runs a worker until they are all done, prints what happened, and cleans up.
 * Ctrl-C once drains, twice aborts running jobs (they are re-queued).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { delay, type JobContext, Queue } from "../mod.ts";
import { adapter } from "../adapters/auto.ts";

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer().on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on a free port with no persistence; returns its URL and a stop function. */
async function throwawayRedis(): Promise<{ url: string; stop: () => void }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sluice-demo-"));
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], { stdio: "ignore" });
  await new Promise<void>((resolve, reject) => {
    proc.once("error", (e) => reject(new Error(`could not start redis-server (${e.message}); install it or set REDIS_URL`)));
    proc.once("spawn", () => resolve());
  });
  const stop = () => {
    proc.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  const url = `redis://127.0.0.1:${port}`;
  // wait until it accepts connections
  const { Redis } = await import("ioredis");
  const probe = new Redis(url, { retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on("error", () => {});
  await probe.ping();
  probe.disconnect();
  console.log(`[demo] started a throwaway redis-server at ${url}`);
  return { url, stop };
}

const local = process.env.REDIS_URL ? undefined : await throwawayRedis();
const url = process.env.REDIS_URL ?? local!.url;
const queueName = `demo-${Date.now()}`;

try {
  const queue = new Queue(queueName, { redis: url });
  for (const name of ["Ada", "Grace", "Linus", "Margaret"]) await queue.enqueue("greet", { name });
  await queue.enqueue("greet", { name: "Barbara (delayed 1s)" }, { delay: "1s" });
  await queue.enqueue("flaky", {}, { attempts: 3, backoff: { type: "fixed", delay: "300ms" } });
  const doomed = await queue.enqueue("greet", { name: "never" }, { delay: "1 hour" });
  console.log(`[demo] cancel a delayed job: ${JSON.stringify(await queue.cancel(doomed.id))}`);
  console.log(`[demo] enqueued: ${JSON.stringify(await queue.counts())}`);

  const { createWorker, runWorker } = await adapter();
  const worker = createWorker({
    redis: url,
    queues: [queueName],
    concurrency: 4,
    tasks: {
      async greet(data: { name: string }, ctx: JobContext) {
        await delay(200, { signal: ctx.signal });
        console.log(`[job ${ctx.job.id}] hello, ${data.name}`);
        return `hello, ${data.name}`;
      },
      flaky(_data: unknown, ctx: JobContext) {
        if (ctx.job.attempt < 2) throw new Error(`attempt ${ctx.job.attempt} fails on purpose`);
        console.log(`[job ${ctx.job.id}] flaky succeeded on attempt ${ctx.job.attempt}`);
      },
    },
    logger: (e) => console.log(`[worker] ${e.event}: ${e.message}`),
  });
  worker.addEventListener("retrying", (e) => {
    const { job, error } = (e as CustomEvent).detail;
    console.log(`[worker] job ${job.id} failed (${(error as Error).message}); retrying`);
  });
  // stop once every job has run: nothing waiting, delayed or active
  const watcher = setInterval(async () => {
    const c = await queue.counts();
    if (c.waiting + c.delayed + c.active === 0) void worker.stop();
  }, 250);
  const summary = await runWorker(worker);
  clearInterval(watcher);
  console.log(`[demo] worker summary: ${JSON.stringify(summary)}`);
  console.log(`[demo] final counts: ${JSON.stringify(await queue.counts())}`);
  await queue.close();
} finally {
  local?.stop();
}
