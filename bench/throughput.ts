/**
 * Throughput: sluice against BullMQ and bee-queue, alternating rounds in one process against one Redis.
 *
 *   node_modules/.bin/bun run bench/throughput.ts [--jobs 20000] [--rounds 3] [--concurrency 100]
 *                                                 [--warmup 2000] [--only sluice,bullmq,bee,floor] [--flush]
 *                                                 [--groups N [--group-concurrency C]] [--payload BYTES]
 *                                                 [--commandstats]
 *   npm run bench:node -- [same options]     (the same file on Node, bundled with esbuild)
 *
 * --payload pads each job's data to about BYTES of JSON (default: `{"i":N}`, a few bytes).
 * --commandstats prints, per library, where Redis spent its time (INFO commandstats, µs per job).
 * Each run also prints the worker's CPU per job while it processes: this process's user + sys
 * time (every thread: the runtime's garbage collector's too), which hosts the worker (and, for
 * the floor, the consumer loop).
 *
 * With --groups, sluice's jobs are spread over N groups (job i in group i mod N) under a group
 * concurrency of C (default 2); the other libraries run as usual.
 *
 * Each run: FLUSHALL, enqueue N noop jobs in bulk (sluice `enqueueMany`, BullMQ `addBulk` in chunks
 * of 1000, bee-queue `saveAll`), then process them with one worker at the given concurrency and a
 * noop async handler. Enqueue jobs/s covers the bulk calls; process jobs/s runs from just before
 * the worker is created until it reports the Nth job completed. Retention is set alike where the
 * libraries allow it: sluice keeps its default 1000 newest completed jobs, BullMQ gets
 * `removeOnComplete: 1000`, bee-queue (which has no keep-N) gets `removeOnSuccess: true`.
 *
 * A throwaway redis-server is started when REDIS_URL is unset; with REDIS_URL set, `--flush` is
 * required because every run begins with FLUSHALL. The last line of output is a JSON summary.
 */
import BeeQueue from "bee-queue";
import { Queue as BullQueue, Worker as BullWorker } from "bullmq";
import { Queue, Worker } from "../mod.ts";
import { type BenchRedis, benchRedis, hasFlag, intArg, median } from "./_redis.ts";

type Lib = "sluice" | "bullmq" | "bee" | "floor";
const LIBS: Lib[] = ["sluice", "bullmq", "bee", "floor"];
const LABEL: Record<Lib, string> = { sluice: "sluice", bullmq: "BullMQ", bee: "bee-queue", floor: "floor" };
const RETENTION: Record<Lib, string> = {
  floor: "a bare Streams consumer: XADD, then XREADGROUP COUNT <concurrency> with the previous batch's XACK+XDEL in the same round trip; no bookkeeping",
  sluice: "default retention: newest 1000 completed kept",
  bullmq: "removeOnComplete: 1000",
  bee: "removeOnSuccess: true (no keep-N option)",
};

interface Result {
  lib: Lib;
  round: number;
  jobs: number;
  enqueueMs: number;
  processMs: number;
  /** Redis CPU (user + sys) per job, enqueue and process together, in µs (from INFO cpu). */
  redisUsPerJob: number;
  /** The worker's CPU (this process: user + sys, every thread) per job while it processes, in µs. */
  workerUsPerJob: number;
  enqueuePerSec: number;
  processPerSec: number;
}

const argv = process.argv.slice(2);
const N = intArg(argv, "jobs", 20_000);
const ROUNDS = intArg(argv, "rounds", 3);
const CONCURRENCY = intArg(argv, "concurrency", 100);
const WARMUP = argv.includes("--warmup") ? intArg(argv, "warmup", 2000) : Math.min(2000, N);
const onlyArg = argv.find((a, i) => argv[i - 1] === "--only") ?? argv.find((a) => a.startsWith("--only="))?.slice(7);
const libs = onlyArg ? LIBS.filter((l) => onlyArg.split(",").includes(l)) : LIBS;
if (libs.length === 0) {
  console.error(`--only takes a comma-separated subset of ${LIBS.join(",")}`);
  process.exit(2);
}

const GROUPS = intArg(argv, "groups", 0);
const GROUP_CONCURRENCY = intArg(argv, "group-concurrency", 2);
const QUEUE = "bench";
const gc = () => (globalThis as { Bun?: { gc(full: boolean): void } }).Bun?.gc(true);

/** Resolves once `count()` reached `n`, and the time it did; the returned `hit` is called per completion. */
function counter(n: number) {
  let done = 0;
  let resolve!: (t: number) => void;
  const finished = new Promise<number>((r) => (resolve = r));
  return {
    finished,
    hit() {
      if (++done === n) resolve(performance.now());
    },
    get done() {
      return done;
    },
  };
}

/** What one run measured: enqueue and process time, ms, and the worker's CPU while processing, µs. */
type Run = [enqueueMs: number, processMs: number, workerUs: number];

/** This process's CPU time so far (user + sys, µs), to be read just before and after processing. */
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

const PAYLOAD = argv.some((a) => a === "--payload" || a.startsWith("--payload=")) ? intArg(argv, "payload", 1024) : 0;
const COMMANDSTATS = hasFlag(argv, "commandstats");
const RUNTIME = process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.versions.node}`;

function payloads(n: number): { i: number; pad?: string }[] {
  // {"i":12345,"pad":"xxx…"}: about PAYLOAD bytes of JSON
  const pad = PAYLOAD > 0 ? "x".repeat(Math.max(0, PAYLOAD - 20)) : undefined;
  return Array.from({ length: n }, (_, i) => (pad === undefined ? { i } : { i, pad }));
}

async function runSluice(redis: BenchRedis, n: number): Promise<Run> {
  const queue = new Queue(QUEUE, { redis: redis.url });
  await queue.counts(); // connected
  if (GROUPS > 0) await queue.setGroupConcurrency(GROUP_CONCURRENCY);
  const data = payloads(n);
  let t0 = performance.now();
  await queue.enqueueMany(data.map((d) => (GROUPS > 0 ? { task: "noop", data: d, options: { group: `g${d.i % GROUPS}` } } : { task: "noop", data: d })));
  const enqueueMs = performance.now() - t0;

  const c = counter(n);
  const cpu0 = cpuUs();
  t0 = performance.now();
  const worker = new Worker({
    redis: redis.url,
    queues: [QUEUE],
    concurrency: CONCURRENCY,
    tasks: { noop: async () => {} },
  });
  worker.addEventListener("completed", () => c.hit());
  const running = worker.run();
  running.catch(() => {});
  const t1 = await Promise.race([c.finished, running.then(() => NaN)]);
  const processMs = t1 - t0;
  const workerUs = cpuUs() - cpu0;
  const summary = await worker.stop();
  const counts = await queue.counts();
  if (summary.completed !== n || counts.waiting + counts.active + counts.delayed + counts.failed !== 0) {
    console.warn(`  sluice check: completed ${summary.completed} of ${n}; counts ${JSON.stringify(counts)}`);
  }
  await queue.close();
  return [enqueueMs, processMs, workerUs];
}

async function runBull(redis: BenchRedis, n: number): Promise<Run> {
  const connection = { host: redis.host, port: redis.port, maxRetriesPerRequest: null };
  const queue = new BullQueue(QUEUE, { connection });
  await queue.waitUntilReady();
  const data = payloads(n);
  let t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    await queue.addBulk(data.slice(i, i + 1000).map((d) => ({ name: "noop", data: d, opts: { removeOnComplete: 1000 } })));
  }
  const enqueueMs = performance.now() - t0;

  const c = counter(n);
  const cpu0 = cpuUs();
  t0 = performance.now();
  const worker = new BullWorker(QUEUE, async () => {}, { connection, concurrency: CONCURRENCY, autorun: false });
  worker.on("completed", () => c.hit());
  worker.on("error", (e) => console.warn(`  BullMQ worker error: ${e.message}`));
  void worker.run().catch((e) => console.warn(`  BullMQ run: ${e.message}`));
  const t1 = await c.finished;
  const processMs = t1 - t0;
  const workerUs = cpuUs() - cpu0;
  await worker.close();
  const counts = await queue.getJobCounts("wait", "active", "delayed", "failed");
  if (c.done !== n || Object.values(counts).some((v) => v !== 0)) {
    console.warn(`  BullMQ check: completed ${c.done} of ${n}; counts ${JSON.stringify(counts)}`);
  }
  await queue.close();
  return [enqueueMs, processMs, workerUs];
}

async function runBee(redis: BenchRedis, n: number): Promise<Run> {
  const r = { host: redis.host, port: redis.port };
  const producer = new BeeQueue(QUEUE, { redis: r, isWorker: false, getEvents: false });
  await producer.ready();
  const data = payloads(n);
  let t0 = performance.now();
  const errors = await producer.saveAll(data.map((d) => producer.createJob(d)));
  const enqueueMs = performance.now() - t0;
  if (errors.size > 0) console.warn(`  bee-queue saveAll: ${errors.size} errors`);

  const c = counter(n);
  const cpu0 = cpuUs();
  t0 = performance.now();
  const worker = new BeeQueue(QUEUE, { redis: r, isWorker: true, getEvents: false, removeOnSuccess: true });
  worker.on("succeeded", () => c.hit());
  worker.on("error", (e) => console.warn(`  bee-queue error: ${e.message}`));
  worker.process(CONCURRENCY, async () => {});
  const t1 = await c.finished;
  const processMs = t1 - t0;
  const workerUs = cpuUs() - cpu0;
  await worker.close();
  const health = await producer.checkHealth();
  if (c.done !== n || health.waiting + health.active + health.delayed + health.failed !== 0) {
    console.warn(`  bee-queue check: completed ${c.done} of ${n}; health ${JSON.stringify(health)}`);
  }
  await producer.close();
  return [enqueueMs, processMs, workerUs];
}

/**
 * The floor: the least work a Streams queue can do per job — XADD in pipelined batches, then one
 * consumer that reads COUNT <concurrency> (the most a worker of that concurrency may hold; 100 at
 * the default) and acks and deletes the previous batch in the same round trip.
 */
async function runFloor(redis: BenchRedis, n: number): Promise<Run> {
  const c = redis.client();
  const stream = "floor";
  await c.xgroup("CREATE", stream, "g", "0", "MKSTREAM");
  const data = payloads(n);
  let t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    const p = c.pipeline();
    for (const d of data.slice(i, i + 1000)) p.xadd(stream, "*", "d", JSON.stringify(d));
    await p.exec();
  }
  const enqueueMs = performance.now() - t0;
  const cpu0 = cpuUs();
  t0 = performance.now();
  let done = 0;
  let prev: string[] = [];
  while (done < n) {
    const p = c.pipeline();
    if (prev.length > 0) {
      p.xack(stream, "g", ...prev);
      p.xdel(stream, ...prev);
    }
    p.xreadgroup("GROUP", "g", "c", "COUNT", CONCURRENCY, "STREAMS", stream, ">");
    const replies = (await p.exec())!;
    const reply = replies[replies.length - 1]![1] as [string, [string, string[]][]][] | null;
    const entries = reply?.[0]?.[1] ?? [];
    // the "handler": parse each job's data, as a worker would
    for (const [, f] of entries) JSON.parse(f[1]!);
    done += entries.length;
    prev = entries.map(([id]) => id);
  }
  if (prev.length > 0) await c.pipeline().xack(stream, "g", ...prev).xdel(stream, ...prev).exec();
  const processMs = performance.now() - t0;
  const workerUs = cpuUs() - cpu0;
  c.disconnect();
  return [enqueueMs, processMs, workerUs];
}

const RUN: Record<Lib, (redis: BenchRedis, n: number) => Promise<Run>> = {
  sluice: runSluice,
  bullmq: runBull,
  bee: runBee,
  floor: runFloor,
};

/** Redis's CPU time so far (user + sys, µs), from INFO cpu. */
async function redisCpuUs(redis: BenchRedis): Promise<number> {
  const c = redis.client();
  const info = String(await c.info("cpu"));
  c.disconnect();
  const v = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return Math.round((v("used_cpu_user") + v("used_cpu_sys")) * 1e6);
}

/** Per-command calls and µs from INFO commandstats (reset before each run with CONFIG RESETSTAT). */
async function commandStats(redis: BenchRedis): Promise<Map<string, { calls: number; usec: number }>> {
  const c = redis.client();
  const info = String(await c.info("commandstats"));
  c.disconnect();
  const out = new Map<string, { calls: number; usec: number }>();
  for (const m of info.matchAll(/cmdstat_([^:]+):calls=(\d+),usec=(\d+)/g)) out.set(m[1]!, { calls: Number(m[2]), usec: Number(m[3]) });
  return out;
}

const rate = (n: number, ms: number) => Math.round((n * 1000) / ms);
const fmt = (x: number) => (Number.isFinite(x) ? x.toLocaleString("en-US") : "-");
const pad = (s: string, w: number) => s.padStart(w);

const redis = await benchRedis({ allowFlushOfGiven: hasFlag(argv, "flush") });
const started = performance.now();
const results: Result[] = [];
try {
  const version = (await (async () => {
    const c = redis.client();
    const info = String(await c.info("server"));
    c.disconnect();
    return /redis_version:(\S+)/.exec(info)?.[1] ?? "?";
  })());
  console.log(`throughput: ${N} noop jobs${PAYLOAD ? ` of ~${PAYLOAD} B` : ""}, concurrency ${CONCURRENCY}, ${ROUNDS} round(s), libraries ${libs.map((l) => LABEL[l]).join(", ")}`);
  if (GROUPS > 0) console.log(`sluice jobs spread over ${GROUPS} groups, group concurrency ${GROUP_CONCURRENCY}`);
  console.log(`runtime: ${RUNTIME}; redis ${version} at ${redis.url}${redis.own ? " (throwaway)" : ""}; FLUSHALL before each run`);
  for (const l of libs) console.log(`retention ${LABEL[l]}: ${RETENTION[l]}`);

  if (WARMUP > 0) {
    process.stdout.write(`warm-up (${WARMUP} jobs each, not counted):`);
    for (const l of libs) {
      await redis.flush();
      await RUN[l](redis, WARMUP);
      process.stdout.write(` ${LABEL[l]}`);
    }
    console.log();
  }

  console.log();
  console.log(`${"round".padEnd(6)}${"library".padEnd(11)}${pad("enqueue/s", 12)}${pad("process/s", 12)}${pad("enqueue ms", 12)}${pad("process ms", 12)}${pad("redis µs/job", 14)}${pad("worker µs/job", 15)}`);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const lib of libs) {
      await redis.flush();
      gc();
      if (COMMANDSTATS) await (async () => {
        const c = redis.client();
        await c.config("RESETSTAT");
        c.disconnect();
      })();
      const cpu0 = await redisCpuUs(redis);
      const [enqueueMs, processMs, workerUs] = await RUN[lib](redis, N);
      const redisUsPerJob = Math.round(((await redisCpuUs(redis)) - cpu0) / N * 10) / 10;
      const r: Result = {
        lib, round, jobs: N, enqueueMs, processMs, enqueuePerSec: rate(N, enqueueMs), processPerSec: rate(N, processMs), redisUsPerJob,
        workerUsPerJob: Math.round(workerUs / N * 10) / 10,
      };
      results.push(r);
      console.log(
        `${String(round).padEnd(6)}${LABEL[lib].padEnd(11)}${pad(fmt(r.enqueuePerSec), 12)}${pad(fmt(r.processPerSec), 12)}` +
          `${pad(enqueueMs.toFixed(0), 12)}${pad(processMs.toFixed(0), 12)}${pad(r.redisUsPerJob.toFixed(1), 14)}${pad(r.workerUsPerJob.toFixed(1), 15)}`,
      );
      if (COMMANDSTATS) {
        const stats = [...(await commandStats(redis)).entries()].sort((a, b) => b[1].usec - a[1].usec).slice(0, 12);
        console.log(`      commandstats (µs per job, calls per job): ${stats.map(([k, v]) => `${k} ${(v.usec / N).toFixed(2)}/${(v.calls / N).toFixed(2)}`).join(", ")}`);
      }
    }
  }
} finally {
  await redis.flush().catch(() => {});
  await redis.stop();
}

const medians = {} as Record<Lib, { enqueue: number; process: number; redisUsPerJob: number; workerUsPerJob: number }>;
for (const l of libs) {
  const rs = results.filter((r) => r.lib === l);
  medians[l] = {
    enqueue: Math.round(median(rs.map((r) => r.enqueuePerSec))),
    process: Math.round(median(rs.map((r) => r.processPerSec))),
    redisUsPerJob: median(rs.map((r) => r.redisUsPerJob)),
    workerUsPerJob: median(rs.map((r) => r.workerUsPerJob)),
  };
}
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? Math.round((a / b) * 100) / 100 : null);
const ratios = {
  enqueueVsBullmq: ratio(medians.sluice?.enqueue, medians.bullmq?.enqueue),
  processVsBullmq: ratio(medians.sluice?.process, medians.bullmq?.process),
  enqueueVsBee: ratio(medians.sluice?.enqueue, medians.bee?.enqueue),
  processVsBee: ratio(medians.sluice?.process, medians.bee?.process),
  processVsFloor: ratio(medians.sluice?.process, medians.floor?.process),
};

console.log();
console.log(`medians over ${ROUNDS} round(s), jobs/s`);
console.log(`${"library".padEnd(11)}${pad("enqueue/s", 12)}${pad("process/s", 12)}${pad("redis µs/job", 14)}${pad("worker µs/job", 15)}`);
for (const l of libs) {
  const m = medians[l];
  console.log(`${LABEL[l].padEnd(11)}${pad(fmt(m.enqueue), 12)}${pad(fmt(m.process), 12)}${pad(m.redisUsPerJob.toFixed(1), 14)}${pad(m.workerUsPerJob.toFixed(1), 15)}`);
}
if (medians.sluice && (medians.bullmq || medians.bee)) {
  console.log();
  console.log(`${"ratio".padEnd(22)}${pad("enqueue", 10)}${pad("process", 10)}`);
  const x = (v: number | null) => (v === null ? "-" : `${v.toFixed(2)}x`);
  if (medians.bullmq) console.log(`${"sluice / BullMQ".padEnd(22)}${pad(x(ratios.enqueueVsBullmq), 10)}${pad(x(ratios.processVsBullmq), 10)}`);
  if (medians.bee) console.log(`${"sluice / bee-queue".padEnd(22)}${pad(x(ratios.enqueueVsBee), 10)}${pad(x(ratios.processVsBee), 10)}`);
  if (medians.floor) console.log(`${"sluice / floor".padEnd(22)}${pad("", 10)}${pad(`${Math.round((ratios.processVsFloor ?? 0) * 100)}%`, 10)}`);
}
console.log(`elapsed ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(JSON.stringify({
  bench: "throughput",
  jobs: N,
  rounds: ROUNDS,
  concurrency: CONCURRENCY,
  runtime: RUNTIME,
  payload: PAYLOAD,
  retention: Object.fromEntries(libs.map((l) => [l, RETENTION[l]])),
  medians,
  ratios,
  runs: results.map(({ lib, round, enqueuePerSec, processPerSec, redisUsPerJob, workerUsPerJob }) => ({ lib, round, enqueuePerSec, processPerSec, redisUsPerJob, workerUsPerJob })),
}));
