/**
 * Lifecycle latencies of worker processes, with BullMQ measured alongside where it has an equivalent.
 *
 *   node_modules/.bin/bun run bench/lifecycle.ts [--idle 10] [--aborts 50] [--kills 5] [--hard 5]
 *     [--hard-jobs 5] [--pickups 30] [--stalled 2000] [--heartbeat 250] [--only sluice,bullmq] [--flush]
 *
 * (a) idle shutdown: a worker process idle on an empty queue; time from SIGTERM to process exit.
 *     BullMQ: the same fixture shape, `await worker.close()` then exit on SIGTERM.
 * (b) abort propagation: `queue.cancel(id, { abort: true })` here to the handler's `ctx.signal`
 *     abort event in the worker process (both stamp wall-clock time on the same machine). BullMQ
 *     has no cross-process abort of a running job: not measured.
 * (c) SIGKILL recovery: a worker is killed mid-job; time until a second worker starts that job.
 *     sluice: stalledTimeout and heartbeatInterval as given. BullMQ with the same liveness
 *     settings: lockDuration = stalled, lockRenewTime = stalledInterval = heartbeat.
 * (d) hard shutdown: SIGTERM, then a second SIGTERM once the worker drains, to a worker running
 *     `--hard-jobs` jobs; time from the second SIGTERM until all of them run on another worker.
 *     BullMQ has no equivalent (a forced close leaves its active jobs to stalled recovery).
 * (e) pickup: a worker process idle on an empty queue (waiting in its blocking read); time from
 *     just before an enqueue here to the handler's start in the worker (its own timestamp).
 *
 * Worker processes run under Bun (bench/fixtures/*.ts). A throwaway redis-server is started when
 * REDIS_URL is unset. The last line of output is a JSON summary.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { Queue as BullQueue } from "bullmq";
import { Queue } from "../mod.ts";
import { BIN, ROOT } from "../test/harness.ts";
import { benchRedis, hasFlag, intArg, median, now, quantile } from "./_redis.ts";

type Lib = "sluice" | "bullmq";
const LABEL: Record<Lib, string> = { sluice: "sluice", bullmq: "BullMQ" };

const argv = process.argv.slice(2);
const IDLE = intArg(argv, "idle", 10);
const ABORTS = intArg(argv, "aborts", 50);
const KILLS = intArg(argv, "kills", 5);
const HARD = intArg(argv, "hard", 5);
const HARD_JOBS = intArg(argv, "hard-jobs", 5);
const STALLED = intArg(argv, "stalled", 2000);
const HEARTBEAT = intArg(argv, "heartbeat", 250);
const PICKUPS = intArg(argv, "pickups", 30);
const onlyArg = argv.find((_, i) => argv[i - 1] === "--only") ?? argv.find((a) => a.startsWith("--only="))?.slice(7);
const libs = (["sluice", "bullmq"] as Lib[]).filter((l) => !onlyArg || onlyArg.split(",").includes(l));

// ---- worker processes

interface Line {
  ev: string;
  id?: string;
  reason?: string;
  attempt?: number;
  t: number;
  /** When this process read the line. */
  recv: number;
}

class Proc {
  readonly proc: ChildProcess;
  readonly lines: Line[] = [];
  readonly exited: Promise<{ code: number | null; signal: string | null; t: number }>;
  #waiters: { pred: (l: Line) => boolean; resolve: (l: Line) => void }[] = [];
  #err = "";

  constructor(readonly lib: Lib, readonly name: string, env: Record<string, string>) {
    const file = join(ROOT, "bench", "fixtures", `${lib}-worker.ts`);
    this.proc = spawn(join(BIN, "bun"), ["run", file], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buf = "";
    this.proc.stdout!.on("data", (d: Buffer) => {
      const recv = now();
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!text.startsWith("{")) continue;
        let line: Line;
        try {
          line = { ...JSON.parse(text), recv };
        } catch {
          continue;
        }
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
      }
    });
    this.proc.stderr!.on("data", (d: Buffer) => (this.#err = (this.#err + d.toString()).slice(-4000)));
    this.exited = new Promise((r) => this.proc.once("exit", (code, signal) => r({ code, signal, t: now() })));
  }

  /** The first line (already read or still to come) that matches. */
  wait(pred: (l: Line) => boolean, what: string, timeout = 30_000): Promise<Line> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.name}: timed out after ${timeout} ms waiting for ${what}\nstderr: ${this.#err}`));
      }, timeout);
      this.#waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }

  ev(ev: string, id?: string, timeout?: number): Promise<Line> {
    return this.wait((l) => l.ev === ev && (id === undefined || l.id === id), `"${ev}"${id ? ` for ${id}` : ""}`, timeout);
  }

  kill(signal: NodeJS.Signals): void {
    this.proc.kill(signal);
  }

  /** SIGKILL unless it has exited already; resolves once it has. */
  async end(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    await this.exited;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- results

interface Stat {
  metric: string;
  lib: Lib;
  n: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
  note?: string;
}
const stats: Stat[] = [];
const failures: string[] = [];

function record(metric: string, lib: Lib, samples: number[], note?: string): void {
  if (samples.length === 0) return;
  const r = (x: number) => Math.round(x * 100) / 100;
  stats.push({
    metric, lib, n: samples.length, p50: r(median(samples)), p99: r(quantile(samples, 0.99)),
    min: r(Math.min(...samples)), max: r(Math.max(...samples)), mean: r(samples.reduce((a, b) => a + b, 0) / samples.length),
    ...(note ? { note } : {}),
  });
}

// ---- scenarios

const redis = await benchRedis({ allowFlushOfGiven: hasFlag(argv, "flush") });
let seq = 0;
const qname = (what: string) => `bench-${what}-${++seq}`;
const baseEnv = { REDIS_URL: redis.url };
const live = new Set<Proc>();
function worker(lib: Lib, name: string, env: Record<string, string>): Proc {
  const p = new Proc(lib, name, { ...baseEnv, ...env });
  live.add(p);
  p.exited.then(() => live.delete(p));
  return p;
}

/** (a) SIGTERM → exit of an idle worker, alternating libraries. */
async function idleShutdown(): Promise<void> {
  const exit: Record<Lib, number[]> = { sluice: [], bullmq: [] };
  const stopped: Record<Lib, number[]> = { sluice: [], bullmq: [] };
  for (let i = 0; i < IDLE; i++) {
    for (const lib of libs) {
      const p = worker(lib, `${lib} idle #${i + 1}`, { BENCH_QUEUE: qname("idle") });
      await p.ev("ready");
      await sleep(300); // settled into its blocking read
      const t0 = now();
      p.kill("SIGTERM");
      const res = await Promise.race([p.exited, sleep(10_000).then(() => null)]);
      if (!res) {
        failures.push(`${lib} idle worker did not exit within 10 s of SIGTERM`);
        await p.end();
        continue;
      }
      if (res.code !== 0) failures.push(`${lib} idle worker exited with ${res.code ?? res.signal}`);
      exit[lib].push(res.t - t0);
      const s = p.lines.find((l) => l.ev === "stopped");
      if (s) stopped[lib].push(s.t - t0);
    }
  }
  for (const lib of libs) {
    record("idle SIGTERM → stopped (in process)", lib, stopped[lib]);
    record("idle SIGTERM → process exit", lib, exit[lib]);
  }
}

/** (b) cancel(id, { abort: true }) here → ctx.signal abort in the worker process. */
async function abortPropagation(): Promise<void> {
  const name = qname("abort");
  const p = worker("sluice", "sluice abort", { BENCH_QUEUE: name });
  const queue = new Queue(name, { redis: redis.url });
  try {
    await p.ev("ready");
    const stamped: number[] = [];
    const observed: number[] = [];
    for (let i = 0; i < ABORTS; i++) {
      const { id } = await queue.enqueue("hold", { i });
      await p.ev("start", id, 10_000);
      const t0 = now();
      const r = await queue.cancel(id, { abort: true });
      if (r.outcome !== "abort-requested") failures.push(`cancel of ${id} gave ${r.outcome}`);
      const a = await p.ev("abort", id, 10_000);
      if (a.reason !== "user") failures.push(`job ${id} aborted with reason ${a.reason}, expected user`);
      stamped.push(a.t - t0);
      observed.push(a.recv - t0);
    }
    record("abort: cancel() → ctx.signal abort", "sluice", stamped, "worker's timestamp");
    record("abort: cancel() → abort line read here", "sluice", observed, "includes the stdout pipe");
  } finally {
    p.kill("SIGTERM");
    await Promise.race([p.exited, sleep(5000)]);
    await p.end();
    await queue.close();
  }
}

function livenessEnv(lib: Lib, queue: string, concurrency: number): Record<string, string> {
  return lib === "sluice"
    ? { BENCH_QUEUE: queue, BENCH_CONCURRENCY: String(concurrency), BENCH_STALLED_MS: String(STALLED), BENCH_HEARTBEAT_MS: String(HEARTBEAT) }
    : {
      BENCH_QUEUE: queue, BENCH_CONCURRENCY: String(concurrency), BENCH_LOCK_MS: String(STALLED),
      BENCH_RENEW_MS: String(HEARTBEAT), BENCH_STALLED_INTERVAL_MS: String(HEARTBEAT),
    };
}

async function enqueueHold(lib: Lib, name: string, n: number): Promise<string[]> {
  if (lib === "sluice") {
    const q = new Queue(name, { redis: redis.url });
    const jobs = await q.enqueueMany(Array.from({ length: n }, (_, i) => ({ task: "hold", data: { i } })));
    await q.close();
    return jobs.map((j) => j.id);
  }
  const q = new BullQueue(name, { connection: { host: redis.host, port: redis.port, maxRetriesPerRequest: null } });
  const jobs = await q.addBulk(Array.from({ length: n }, (_, i) => ({ name: "hold", data: { i } })));
  await q.close();
  return jobs.map((j) => j.id!);
}

/** (c) SIGKILL mid-job → the job starts on another worker. */
async function killRecovery(): Promise<void> {
  const lat: Record<Lib, number[]> = { sluice: [], bullmq: [] };
  for (let i = 0; i < KILLS; i++) {
    for (const lib of libs) {
      const name = qname("kill");
      const victim = worker(lib, `${lib} victim #${i + 1}`, livenessEnv(lib, name, 1));
      let rescuer: Proc | undefined;
      try {
        await victim.ev("ready");
        const [id] = await enqueueHold(lib, name, 1);
        await victim.ev("start", id);
        rescuer = worker(lib, `${lib} rescuer #${i + 1}`, livenessEnv(lib, name, 1));
        await rescuer.ev("ready");
        await sleep(Math.random() * HEARTBEAT); // any point in the heartbeat cycle
        const t0 = now();
        victim.kill("SIGKILL");
        const s = await rescuer.ev("start", id, STALLED * 5 + 10_000);
        lat[lib].push(s.t - t0);
      } catch (e) {
        failures.push(`${lib} kill recovery #${i + 1}: ${(e as Error).message.split("\n")[0]}`);
      } finally {
        await victim.end();
        await rescuer?.end();
      }
    }
  }
  for (const lib of libs) {
    record(
      "SIGKILL mid-job → job starts elsewhere",
      lib,
      lat[lib],
      lib === "sluice" ? `stalledTimeout ${STALLED}, heartbeatInterval ${HEARTBEAT}` : `lockDuration ${STALLED}, lockRenewTime ${HEARTBEAT}, stalledInterval ${HEARTBEAT}`,
    );
  }
}

/** (d) SIGTERM, SIGTERM → the interrupted jobs start on another worker. */
async function hardShutdown(): Promise<void> {
  const first: number[] = [];
  const all: number[] = [];
  const exit: number[] = [];
  for (let i = 0; i < HARD; i++) {
    const name = qname("hard");
    const victim = worker("sluice", `sluice hard victim #${i + 1}`, livenessEnv("sluice", name, HARD_JOBS));
    let rescuer: Proc | undefined;
    try {
      await victim.ev("ready");
      const ids = await enqueueHold("sluice", name, HARD_JOBS);
      for (const id of ids) await victim.ev("start", id);
      rescuer = worker("sluice", `sluice hard rescuer #${i + 1}`, livenessEnv("sluice", name, HARD_JOBS));
      await rescuer.ev("ready");
      await sleep(100);
      victim.kill("SIGTERM");
      await victim.ev("draining", undefined, 5000); // a second signal sent sooner could merge with the first
      const t0 = now();
      victim.kill("SIGTERM");
      const starts = await Promise.all(ids.map((id) => rescuer!.ev("start", id, 15_000)));
      for (const s of starts) if (s.attempt !== 1) failures.push(`interrupted job ${s.id} restarted with attempt ${s.attempt}, expected 1`);
      const ts = starts.map((s) => s.t - t0);
      first.push(Math.min(...ts));
      all.push(Math.max(...ts));
      const res = await Promise.race([victim.exited, sleep(10_000).then(() => null)]);
      if (!res) failures.push(`hard-stopped worker #${i + 1} did not exit within 10 s`);
      else {
        exit.push(res.t - t0);
        if (res.code !== 0) failures.push(`hard-stopped worker #${i + 1} exited with ${res.code ?? res.signal}`);
      }
    } catch (e) {
      failures.push(`hard shutdown #${i + 1}: ${(e as Error).message.split("\n")[0]}`);
    } finally {
      await victim.end();
      await rescuer?.end();
    }
  }
  record(`hard stop → first of ${HARD_JOBS} jobs runs elsewhere`, "sluice", first, "from the 2nd SIGTERM");
  record(`hard stop → all ${HARD_JOBS} jobs run elsewhere`, "sluice", all, "from the 2nd SIGTERM");
  record("hard stop → process exit", "sluice", exit, "from the 2nd SIGTERM");
}

/** (e) enqueue here → handler start in an idle worker process, alternating libraries. */
async function pickup(): Promise<void> {
  for (const lib of libs) {
    const name = qname("pickup");
    const p = worker(lib, `${lib} pickup`, { BENCH_QUEUE: name, BENCH_CONCURRENCY: String(PICKUPS + 1) });
    const sluiceQ = lib === "sluice" ? new Queue(name, { redis: redis.url }) : undefined;
    const bullQ = lib === "bullmq" ? new BullQueue(name, { connection: { host: redis.host, port: redis.port, maxRetriesPerRequest: null } }) : undefined;
    const samples: number[] = [];
    try {
      await p.ev("ready");
      await (sluiceQ ? sluiceQ.counts() : bullQ!.waitUntilReady()); // connected before the clock starts
      for (let i = 0; i < PICKUPS; i++) {
        await sleep(100); // back in its blocking read
        const t0 = now();
        const id = sluiceQ ? (await sluiceQ.enqueue("hold", { i })).id : (await bullQ!.add("hold", { i })).id!;
        const s = await p.ev("start", id, 10_000);
        samples.push(s.t - t0);
      }
    } finally {
      await p.end();
      await sluiceQ?.close();
      await bullQ?.close();
    }
    record("pickup: enqueue → handler start (idle worker)", lib, samples, "worker's timestamp");
  }
}

// ---- main

const started = now();
try {
  await redis.flush();
  console.log(`lifecycle: worker processes under bun ${process.versions.bun ?? "?"}, redis at ${redis.url}${redis.own ? " (throwaway)" : ""}`);
  console.log(`samples: idle ${IDLE}/library, aborts ${ABORTS}, kills ${KILLS}/library, hard stops ${HARD} x ${HARD_JOBS} jobs, pickups ${PICKUPS}/library`);
  const step = async (label: string, fn: () => Promise<void>) => {
    const t = now();
    process.stdout.write(`${label} …`);
    await fn();
    console.log(` ${((now() - t) / 1000).toFixed(1)} s`);
  };
  await step("(a) idle shutdown", idleShutdown);
  if (libs.includes("sluice")) await step("(b) abort propagation", abortPropagation);
  await step("(c) SIGKILL recovery", killRecovery);
  if (libs.includes("sluice")) await step("(d) hard shutdown", hardShutdown);
  await step("(e) pickup", pickup);
} finally {
  await Promise.all([...live].map((p) => p.end()));
  await redis.flush().catch(() => {});
  await redis.stop();
}

const w = { metric: 46, lib: 8, n: 5, v: 9 };
console.log();
console.log(`${"metric (ms)".padEnd(w.metric)}${"library".padEnd(w.lib)}${"n".padStart(w.n)}${"p50".padStart(w.v)}${"p99".padStart(w.v)}${"min".padStart(w.v)}${"max".padStart(w.v)}  note`);
for (const s of stats) {
  const f = (x: number) => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)).padStart(w.v);
  console.log(`${s.metric.padEnd(w.metric)}${LABEL[s.lib].padEnd(w.lib)}${String(s.n).padStart(w.n)}${f(s.p50)}${f(s.p99)}${f(s.min)}${f(s.max)}  ${s.note ?? ""}`);
}
if (libs.includes("bullmq")) {
  console.log("not measured for BullMQ: abort propagation (no cross-process abort of a running job), hard shutdown (no re-queue on forced close)");
}
if (failures.length) {
  console.log();
  console.log(`${failures.length} problem(s):`);
  for (const f of failures) console.log(`  - ${f}`);
}
console.log(`elapsed ${((now() - started) / 1000).toFixed(1)} s`);
console.log(JSON.stringify({
  bench: "lifecycle",
  runtime: `bun ${process.versions.bun ?? ""}`,
  settings: { idle: IDLE, aborts: ABORTS, kills: KILLS, hard: HARD, hardJobs: HARD_JOBS, pickups: PICKUPS, stalledMs: STALLED, heartbeatMs: HEARTBEAT },
  results: stats,
  failures,
}));
process.exitCode = failures.length ? 1 : 0;
