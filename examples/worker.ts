/**
 * A worker for the queue "default". Runs unchanged on Bun, Deno and Node:
 *   bun run examples/worker.ts
 *   deno run -A examples/worker.ts
 *   node --import tsx examples/worker.ts
 * Ctrl-C once drains (running jobs finish), twice aborts them (they are re-queued).
 * Set REDIS_URL (default redis://127.0.0.1:6379); SLUICE_WAIT=false exits when the queue is empty.
 */
import { type JobContext, delay } from "../mod.ts";
import { adapter } from "../adapters/auto.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};

const tasks = {
  /** Says hello after a short pause; the pause ends early if the job is aborted. */
  async greet(data: { name: string }, ctx: JobContext) {
    await delay(100, { signal: ctx.signal });
    return `hello, ${data.name}`;
  },
  /** Fails on its first attempt, to show retries with backoff. */
  flaky(_data: unknown, ctx: JobContext) {
    if (ctx.job.attempt < 2) throw new Error(`attempt ${ctx.job.attempt} fails on purpose`);
    return "succeeded on attempt " + ctx.job.attempt;
  },
};

const { runWorker } = await adapter();
const summary = await runWorker({
  redis: env.REDIS_URL ?? "redis://127.0.0.1:6379",
  queues: (env.SLUICE_QUEUES ?? "default").split(","),
  concurrency: Number(env.SLUICE_CONCURRENCY ?? 10),
  wait: env.SLUICE_WAIT !== "false",
  tasks,
  logger: (e) => console.log(`[worker] ${e.event}: ${e.message}`),
});
console.log("[worker] summary", JSON.stringify(summary));
