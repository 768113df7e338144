/**
 * Jobs off the main thread: what a thread or a process costs per job, and how fast an abort frees
 * a slot.
 *
 *   node_modules/.bin/bun run bench/pool.ts [--jobs 3000] [--concurrency 8] [--pool 4] [--samples 30] [--grace 200]
 *
 * 1. Noop jobs/s with the handler inline, in a thread and in a process (sluice `execution`), and
 *    BullMQ's sandboxed processors on the same Redis in the same run (a processor file in child
 *    processes, and with `useWorkerThreads`), `--pool` children each.
 * 2. Abort → slot free: `queue.cancel(id, { abort: true })` from the producer, until the worker's
 *    `aborted` event for the job (its slot is free: for a thread or process job the child has
 *    exited by then). A cooperative job (it honours its signal) and a busy-looping one (ended by
 *    the ladder after `--grace` ms), p50 and p99 over `--samples` jobs. BullMQ's nearest: its
 *    `worker.cancelJob(id)` in the worker's own process, for a cooperative sandboxed job (it
 *    cannot end one that ignores the signal).
 *
 * A throwaway redis-server is started when REDIS_URL is unset (with REDIS_URL, `--flush`).
 */
import { Queue as BullQueue, Worker as BullWorker } from "bullmq";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, Worker } from "../mod.ts";
import type { Tasks } from "../src/worker.ts";
import { benchRedis, hasFlag, intArg, quantile } from "./_redis.ts";

const argv = process.argv.slice(2);
const N = intArg(argv, "jobs", 3000);
const CONCURRENCY = intArg(argv, "concurrency", 8);
const POOL = intArg(argv, "pool", 4);
const SAMPLES = intArg(argv, "samples", 30);
const GRACE = intArg(argv, "grace", 200);
const TASKS_MODULE = new URL("./fixtures/pool-tasks.ts", import.meta.url);

const redis = await benchRedis({ allowFlushOfGiven: hasFlag(argv, "flush") });
const rate = (n: number, ms: number) => Math.round((n * 1000) / ms);
const results: Record<string, unknown> = {};

type Mode = "inline" | "thread" | "process";
function tasks(mode: Mode): Tasks {
  if (mode === "inline") return { noop: () => null };
  return { noop: { module: TASKS_MODULE, export: "noop", execution: mode } };
}

/** Noop jobs/s for one mode: N jobs enqueued first, then one worker runs them. */
async function sluiceRate(mode: Mode): Promise<number> {
  await redis.flush();
  const queue = new Queue("pool", { redis: redis.url });
  await queue.enqueueMany(Array.from({ length: N }, (_, i) => ({ task: "noop", data: i })));
  // the children start on the first jobs, inside the measured time (a few ms each)
  const worker = new Worker({ redis: redis.url, queues: ["pool"], concurrency: CONCURRENCY, pool: { size: POOL }, tasks: tasks(mode), wait: false });
  let done = 0;
  let finished!: (t: number) => void;
  const end = new Promise<number>((r) => (finished = r));
  worker.addEventListener("completed", () => {
    if (++done === N) finished(performance.now());
  });
  const t0 = performance.now();
  const run = worker.run();
  const t1 = await end;
  await run;
  await queue.close();
  return rate(N, t1 - t0);
}

/** BullMQ's sandboxed processor over the same N jobs: child processes, or worker threads. */
async function bullRate(threads: boolean, file: string): Promise<number> {
  await redis.flush();
  const connection = { host: redis.host, port: redis.port, maxRetriesPerRequest: null };
  const queue = new BullQueue("pool", { connection });
  for (let i = 0; i < N; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({ name: "noop", data: { i: i + k }, opts: { removeOnComplete: 1000 } })));
  }
  let done = 0;
  let finished!: (t: number) => void;
  const end = new Promise<number>((r) => (finished = r));
  const t0 = performance.now();
  const worker = new BullWorker("pool", file, { connection, concurrency: POOL, useWorkerThreads: threads });
  worker.on("completed", () => {
    if (++done === N) finished(performance.now());
  });
  worker.on("error", (e) => console.warn(`  BullMQ: ${e.message}`));
  const t1 = await end;
  await worker.close();
  await queue.close();
  return rate(N, t1 - t0);
}

/** ms from cancel(abort) to the worker's `aborted` event, per sample. */
async function abortLatency(mode: Mode, task: "coop" | "busy"): Promise<number[]> {
  await redis.flush();
  const queue = new Queue("abort", { redis: redis.url });
  const t: Tasks = mode === "inline"
    ? { coop: (_d, ctx) => new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })) }
    : { [task]: { module: TASKS_MODULE, export: task, execution: mode } };
  const worker = new Worker({ redis: redis.url, queues: ["abort"], concurrency: 1, pool: { size: 1, abortGrace: GRACE }, tasks: t });
  const started = new Map<string, () => void>();
  const aborted = new Map<string, (t: number) => void>();
  worker.addEventListener("active", (e) => started.get((e as CustomEvent).detail.job.id)?.());
  worker.addEventListener("aborted", (e) => aborted.get((e as CustomEvent).detail.job.id)?.(performance.now()));
  const run = worker.run();
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const job = await queue.enqueue(task, null);
    await new Promise<void>((r) => started.set(job.id, r));
    // let the handler begin in its child (a thread or process receives the job just after `active`)
    await new Promise((r) => setTimeout(r, mode === "inline" ? 5 : 50));
    const gone = new Promise<number>((r) => aborted.set(job.id, r));
    const t0 = performance.now();
    await queue.cancel(job.id, { abort: true });
    out.push((await gone) - t0);
  }
  await worker.stop();
  await run;
  await queue.close();
  return out;
}

/**
 * BullMQ's nearest equivalent: `worker.cancelJob(id)`, called in the worker's own process, aborts
 * the signal a sandboxed processor gets; ms until the worker's `failed` event. (It has no way to
 * end a processor that ignores the signal.)
 */
async function bullAbortLatency(threads: boolean, file: string): Promise<number[]> {
  await redis.flush();
  const connection = { host: redis.host, port: redis.port, maxRetriesPerRequest: null };
  const queue = new BullQueue("abort", { connection });
  const worker = new BullWorker("abort", file, { connection, concurrency: 1, useWorkerThreads: threads });
  const started = new Map<string, () => void>();
  const failed = new Map<string, (t: number) => void>();
  worker.on("active", (job) => started.get(job.id!)?.());
  worker.on("failed", (job) => failed.get(job!.id!)?.(performance.now()));
  worker.on("error", (e) => console.warn(`  BullMQ: ${e.message}`));
  const out: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const job = await queue.add("coop", null, { attempts: 1 });
    await new Promise<void>((r) => started.set(job.id!, r));
    await new Promise((r) => setTimeout(r, 50));
    const gone = new Promise<number>((r) => failed.set(job.id!, r));
    const t0 = performance.now();
    worker.cancelJob(job.id!);
    out.push((await gone) - t0);
  }
  await worker.close();
  await queue.close();
  return out;
}

const dir = mkdtempSync(join(tmpdir(), "sluice-bench-pool-"));
try {
  const bullFile = join(dir, "noop.cjs");
  writeFileSync(bullFile, "module.exports = async (job) => job.data;\n");
  console.log(`pool: ${N} noop jobs, concurrency ${CONCURRENCY}, ${POOL} threads/processes; abort latency over ${SAMPLES} jobs, abortGrace ${GRACE} ms`);
  console.log(`runtime: bun ${process.versions.bun ?? "-"}; redis at ${redis.url}${redis.own ? " (throwaway)" : ""}`);
  console.log();
  console.log("noop jobs/s");
  const rates: Record<string, number> = {};
  for (const mode of ["inline", "thread", "process"] as const) {
    rates[`sluice ${mode}`] = await sluiceRate(mode);
    console.log(`  sluice ${mode.padEnd(8)} ${rates[`sluice ${mode}`]!.toLocaleString("en-US").padStart(8)}`);
  }
  for (const threads of [false, true]) {
    const label = `BullMQ sandboxed ${threads ? "thread" : "process"}`;
    rates[label] = await bullRate(threads, bullFile);
    console.log(`  ${label.padEnd(26)} ${rates[label]!.toLocaleString("en-US").padStart(8)}`);
  }
  results.rates = rates;
  console.log(`  ratio sluice/BullMQ: process ${(rates["sluice process"]! / rates["BullMQ sandboxed process"]!).toFixed(2)}x, thread ${(rates["sluice thread"]! / rates["BullMQ sandboxed thread"]!).toFixed(2)}x`);
  console.log();
  console.log("abort -> slot free (ms)            p50      p99");
  const latency: Record<string, { p50: number; p99: number }> = {};
  for (const [mode, task] of [["inline", "coop"], ["thread", "coop"], ["process", "coop"], ["thread", "busy"], ["process", "busy"]] as const) {
    const xs = await abortLatency(mode, task);
    const row = { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) };
    latency[`${mode} ${task === "coop" ? "cooperative" : "busy loop"}`] = row;
    console.log(`  ${`${mode}, ${task === "coop" ? "cooperative" : "busy loop"}`.padEnd(30)} ${row.p50.toFixed(1).padStart(7)}  ${row.p99.toFixed(1).padStart(7)}`);
  }
  const bullCoop = join(dir, "coop.cjs");
  writeFileSync(bullCoop, "module.exports = (job, token, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled')), { once: true }));\n");
  for (const threads of [false, true]) {
    const xs = await bullAbortLatency(threads, bullCoop);
    const row = { p50: quantile(xs, 0.5), p99: quantile(xs, 0.99) };
    const label = `BullMQ ${threads ? "thread" : "process"}, cooperative (cancelJob)`;
    latency[label] = row;
    console.log(`  ${label.padEnd(30)} ${row.p50.toFixed(1).padStart(7)}  ${row.p99.toFixed(1).padStart(7)}`);
  }
  results.latency = latency;
  console.log();
  console.log(JSON.stringify({ bench: "pool", jobs: N, concurrency: CONCURRENCY, pool: POOL, grace: GRACE, ...results }));
} finally {
  rmSync(dir, { recursive: true, force: true });
  await redis.stop();
}
