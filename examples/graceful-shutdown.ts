/**
 * Graceful and hard shutdown of a worker process. Runs unchanged on Bun, Deno and Node:
 *   bun run examples/graceful-shutdown.ts
 *   deno run -A examples/graceful-shutdown.ts
 *   node --import tsx examples/graceful-shutdown.ts
 *
 * It enqueues six 3-second jobs and runs them three at a time. Then:
 *   - Ctrl-C (or SIGTERM) once: draining. No new job is taken (the other three stay waiting);
 *     the running three finish; the process exits with code 0.
 *   - a second Ctrl-C: aborting. Running jobs see `ctx.signal` abort with reason "shutdown"; they
 *     are re-queued at once with their attempt not counted, and another worker runs them (run
 *     the example again: it takes the re-queued jobs first).
 *   - no second signal, but the running jobs take longer than `shutdownGracefulTimeout` (here
 *     SLUICE_GRACE, default 5s): the same as a second signal, once it has elapsed.
 *   - a third Ctrl-C, for jobs that ignore their signal: they are re-queued and the process exits
 *     with code 3.
 * With no signal at all it drains by itself after SLUICE_RUN_FOR (default 60s).
 *
 * Under systemd, KillSignal=SIGTERM with TimeoutStopSec above the graceful timeout; under
 * Kubernetes, terminationGracePeriodSeconds above it: the orchestrator's SIGKILL then never cuts
 * a job short without it being re-queued first.
 *
 * Set REDIS_URL (default redis://127.0.0.1:6379).
 */
import { type JobContext, parseDuration, Queue } from "../mod.ts";
import { adapter } from "../adapters/auto.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const redis = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const queueName = "example-shutdown";

const queue = new Queue(queueName, { redis });
for (let i = 1; i <= 6; i++) await queue.enqueue("render", { page: i }, { jobId: `page-${i}-${Date.now()}` });
console.log(`[example] enqueued 6 jobs: ${JSON.stringify(await queue.counts())}`);

const tasks = {
  /** Three seconds of work that stops early when its signal aborts. */
  async render(data: { page: number }, ctx: JobContext) {
    console.log(`[job] page ${data.page} started (attempt ${ctx.job.attempt})`);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, 3000);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        console.log(`[job] page ${data.page} aborted: ${ctx.abortReason}`);
        reject(ctx.signal.reason); // rethrow: the worker re-queues it (reason "shutdown")
      }, { once: true });
    });
    console.log(`[job] page ${data.page} done`);
    return { page: data.page };
  },
};

const { runWorker } = await adapter();
console.log("[example] Ctrl-C once to drain, twice to abort the running jobs (they are re-queued)");
const summary = await runWorker({
  redis,
  queues: [queueName],
  concurrency: 3,
  shutdownGracefulTimeout: env.SLUICE_GRACE ?? "5s",
  tasks,
  logger: (e) => console.log(`[worker] ${e.event}: ${e.message}`),
}, { signal: AbortSignal.timeout(parseDuration(env.SLUICE_RUN_FOR ?? "60s")) });

console.log(`[example] summary ${JSON.stringify(summary)}`);
console.log(`[example] left in the queue: ${JSON.stringify(await queue.counts())}`);
await queue.close();
