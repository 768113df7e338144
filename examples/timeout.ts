/**
 * Timeouts and end conditions. Runs unchanged on Bun, Deno and Node:
 *   bun run examples/timeout.ts
 *   deno run -A examples/timeout.ts
 *   node --import tsx examples/timeout.ts
 *
 * A timeout aborts `ctx.signal` with reason "timeout" and counts a failed attempt: the retry
 * policy applies, and after the last attempt the job fails. The job's own `timeout` wins over its
 * task's, which wins over the worker's default. Durations are milliseconds or strings ("500ms",
 * "10s", "1 hour"). An end condition aborts the running jobs of its task (reason "end-condition")
 * while it holds, e.g. `between("08:00", "18:00")` for batch work that must stay out of business
 * hours.
 *
 * Set REDIS_URL (default redis://127.0.0.1:6379).
 */
import { between, delay, type JobContext, Queue, Worker } from "../mod.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const redis = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const queueName = `example-timeout-${Date.now()}`;
const queue = new Queue(queueName, { redis });

/** Works for `data.ms`, stopping early when its signal aborts. */
async function work(data: { ms: number }, ctx: JobContext) {
  const t0 = Date.now();
  try {
    await delay(data.ms, { signal: ctx.signal });
  } catch (e) {
    console.log(`[job] ${ctx.job.name} attempt ${ctx.job.attempt}: aborted after ${Date.now() - t0} ms, reason ${ctx.abortReason}`);
    throw e;
  }
  console.log(`[job] ${ctx.job.name} attempt ${ctx.job.attempt}: done in ${Date.now() - t0} ms`);
  return data.ms;
}

let deadlinePassed = false;
const worker = new Worker({
  redis,
  queues: [queueName],
  concurrency: 5,
  timeout: "2s", // the default for tasks without their own
  endConditionInterval: "100ms", // how often end conditions are checked (one timer for all)
  wait: false, // drain mode: stop once nothing is ready and nothing runs
  tasks: {
    thumbnail: { handler: work, timeout: "300ms" },
    export: work, // the worker's 2s
    nightlyReport: { handler: work, endCondition: between("08:00", "18:00") },
    batch: { handler: work, endCondition: () => deadlinePassed },
  },
});
worker.addEventListener("retrying", (e) => {
  const { job, abortReason, retryAt } = (e as CustomEvent).detail;
  console.log(`[worker] ${job.name} attempt ${job.attempt} failed (${abortReason}); retry in ${retryAt - Date.now()} ms`);
});

const jobs = {
  // 300 ms task timeout, two attempts: retried, then failed
  thumbnail: await queue.enqueue("thumbnail", { ms: 1000 }, { attempts: 2, backoff: "200ms" }),
  // the job's own timeout wins over the task's and the worker's
  quickExport: await queue.enqueue("export", { ms: 1000 }, { attempts: 1, timeout: "0.5 seconds" }),
  // within the worker's 2s default: completes
  export: await queue.enqueue("export", { ms: 1000 }, { attempts: 1 }),
  // aborted once its end condition holds, here after 600 ms
  batch: await queue.enqueue("batch", { ms: 5000 }, { attempts: 1 }),
  // aborted only if this runs between 08:00 and 18:00 local time
  nightlyReport: await queue.enqueue("nightlyReport", { ms: 700 }, { attempts: 1 }),
};
setTimeout(() => (deadlinePassed = true), 600);

const summary = await worker.run();
for (const [label, job] of Object.entries(jobs)) {
  const info = await queue.getJob(job.id);
  console.log(`[example] ${label.padEnd(13)} ${info!.state.padEnd(9)} attempts ${info!.attempt}/${info!.maxAttempts}${info!.error ? `  (${info!.error.abortReason})` : ""}`);
}
console.log(`[example] summary ${JSON.stringify(summary)}`);
await queue.close();
