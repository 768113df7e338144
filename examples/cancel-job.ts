/**
 * Cancelling jobs, and aborting one that is running. Runs unchanged on Bun, Deno and Node:
 *   bun run examples/cancel-job.ts
 *   deno run -A examples/cancel-job.ts
 *   node --import tsx examples/cancel-job.ts
 *
 * `queue.cancel(id)` stops a waiting or delayed job from running; a finished job is left alone
 * and the result says so. `queue.cancel(id, { abort: true })` on a running job makes its worker,
 * in whatever process, abort `ctx.signal` with reason "user" (pub/sub, with a polling fallback);
 * the job ends `aborted` and is never retried. Here the worker runs in this process for brevity;
 * `sluice cancel <queue> <id> --abort` does the same from a shell.
 *
 * Set REDIS_URL (default redis://127.0.0.1:6379).
 */
import { delay, JobAborted, type JobContext, Queue, Worker } from "../mod.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const redis = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const queueName = `example-cancel-${Date.now()}`;
const queue = new Queue(queueName, { redis });

const worker = new Worker({
  redis,
  queues: [queueName],
  concurrency: 3,
  tasks: {
    /** Asynchronous code passes ctx.signal down: the wait ends the moment the job is aborted. */
    async download(data: { url: string }, ctx: JobContext) {
      console.log(`[job] download ${data.url} started`);
      await delay(60_000, { signal: ctx.signal }); // stands in for fetch(url, { signal: ctx.signal })
      return "downloaded";
    },
    /** Synchronous-style code checks ctx.shouldAbort() between chunks and throws JobAborted. */
    async crunch(data: { rows: number }, ctx: JobContext) {
      let done = 0;
      for (let row = 0; row < data.rows; row++) {
        if (row % 10_000 === 0) {
          if (ctx.shouldAbort()) throw new JobAborted(ctx.abortReason!, `stopped after ${done} rows`);
          await delay(1); // let the abort message in between chunks
        }
        done++;
      }
      return done;
    },
    /** A critical section is finished before the abort is honoured. */
    async transfer(_data: unknown, ctx: JobContext) {
      console.log("[job] transfer: debit");
      await delay(300);
      console.log(`[job] transfer: credit (signal aborted: ${ctx.shouldAbort()})`);
      ctx.throwIfAborted(); // now that the books balance, honour it
      return "transferred";
    },
  },
});
worker.addEventListener("aborted", (e) => {
  const { job, error, abortReason } = (e as CustomEvent).detail;
  console.log(`[worker] job ${job.name} aborted (reason ${abortReason}): ${(error as Error).message}`);
});
const running = worker.run();

// 1. a waiting job and a delayed one: cancelled before they run
const later = await queue.enqueue("download", { url: "https://example.com/later" }, { delay: "1 hour" });
console.log(`[example] cancel delayed:  ${JSON.stringify(await queue.cancel(later.id))}`);

// 2. running jobs: abort them from "another process" (any Queue on the same Redis)
const download = await queue.enqueue("download", { url: "https://example.com/big.iso" }, { attempts: 5 });
const crunch = await queue.enqueue("crunch", { rows: 100_000_000 }, { attempts: 5 });
const transfer = await queue.enqueue("transfer", null, { attempts: 5 });
await delay(150);
for (const job of [download, crunch, transfer]) {
  const t0 = Date.now();
  const r = await queue.cancel(job.id, { abort: true });
  console.log(`[example] cancel active:   ${JSON.stringify(r)} (${Date.now() - t0} ms)`);
}
await delay(500);

// 3. a finished job: nothing changes
console.log(`[example] cancel finished: ${JSON.stringify(await queue.cancel(download.id))}`);

for (const [label, job] of Object.entries({ later, download, crunch, transfer })) {
  const info = await queue.getJob(job.id);
  console.log(`[example] ${label.padEnd(8)} ${info!.state.padEnd(9)} attempt ${info!.attempt}/${info!.maxAttempts}${info!.error ? `  error: ${info!.error.message}` : ""}`);
}
const summary = await worker.stop();
await running;
console.log(`[example] summary ${JSON.stringify(summary)}`);
await queue.close();
