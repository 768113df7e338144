/**
 * Enqueues a few jobs on the queue "default":
 *   bun run examples/enqueue.ts
 *   deno run -A examples/enqueue.ts
 *   node --import tsx examples/enqueue.ts
 */
import { Queue } from "../mod.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
const queue = new Queue("default", { redis: env.REDIS_URL ?? "redis://127.0.0.1:6379" });

for (const name of ["Ada", "Grace", "Linus"]) {
  const job = await queue.enqueue("greet", { name });
  console.log(`[enqueue] greet ${name}: job ${job.id} is ${job.state}`);
}
const later = await queue.enqueue("greet", { name: "Barbara" }, { delay: "1s" });
console.log(`[enqueue] greet Barbara in 1s: job ${later.id} is ${later.state}`);
const flaky = await queue.enqueue("flaky", {}, { attempts: 3, backoff: { type: "fixed", delay: "200ms" } });
console.log(`[enqueue] flaky: job ${flaky.id} (fails once, then retries)`);
const again = await queue.enqueue("greet", { name: "Ada" }, { jobId: "greet-ada-once" });
const dup = await queue.enqueue("greet", { name: "Ada" }, { jobId: "greet-ada-once" });
console.log(`[enqueue] dedup: first duplicate=${again.duplicate}, second duplicate=${dup.duplicate}`);
console.log("[enqueue] counts", JSON.stringify(await queue.counts()));
await queue.close();
