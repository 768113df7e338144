/**
 * The chaos scenario shared by test/chaos.test.ts (a few thousand jobs) and bench/chaos.ts (tens of
 * thousands): worker processes under Bun, Node and Deno work through a queue while one is
 * SIGKILLed, one is SIGTERMed once (graceful), one twice (hard), their connections are cut right
 * after a command reached Redis and all at once, and Redis itself is killed and restarted from its
 * append-only file (`appendfsync always`). Each chaos step is set off by progress (jobs completed),
 * not by time, so a slow or fast machine runs the same story.
 *
 * What it measures, from Redis and from the handlers' own reports:
 * - lost: jobs whose hash (or completion record) is gone; stuck: jobs not completed at the end;
 * - completed twice: completions applied beyond one per job (the `completed` counter);
 * - duplicate executions: handler runs that finished beyond one per job, and of those the
 *   unexplained ones: a second run of a job whose earlier run was not on a SIGKILLed process.
 */
import { Redis } from "ioredis";
import { Queue } from "../mod.ts";
import { type PersistentRedisServer, type Runtime, type Spawned, spawnTs, startRedisWithAof, uniquePrefix, waitFor } from "./harness.ts";
import { type FaultProxy, startProxy } from "./proxy.ts";

const FIXTURE = "test/fixtures/worker.ts";

/** A fixture worker process (test/fixtures/worker.ts) and the JSON lines it printed. */
class Proc {
  readonly p: Spawned;
  killed = false;
  constructor(readonly runtime: Runtime, cfg: unknown) {
    this.p = spawnTs(runtime, FIXTURE, [JSON.stringify(cfg)]);
  }
  events(ev: string): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.p.stdout().split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const o = JSON.parse(line);
        if (o.ev === ev) out.push(o);
      } catch {
        // a partial line
      }
    }
    return out;
  }
  async waitFor(ev: string, pred: (e: Record<string, unknown>) => boolean = () => true): Promise<void> {
    await waitFor(() => this.events(ev).some(pred), `'${ev}' from the ${this.runtime} worker\n${this.p.stderr()}`, 60_000, 50);
  }
  exited(): Promise<number | string> {
    return this.p.exited;
  }
  running(): boolean {
    return this.p.proc.exitCode === null && this.p.proc.signalCode === null;
  }
}

export interface ChaosOptions {
  jobs: number;
  /** Each job sleeps a random time in [min, max] ms. */
  jobMs: [number, number];
  concurrency: number;
  /** Prints each step as it happens. */
  verbose?: boolean;
  /** Gives up waiting for the queue to finish after this long. @default 120000 */
  timeout?: number;
}

export interface ChaosReport {
  jobs: number;
  lost: number;
  stuck: number;
  completedTwice: number;
  duplicateExecutions: number;
  unexplainedDuplicates: number;
  /** Jobs recovered from the killed worker (a stall each). */
  stalled: number;
  /** Jobs interrupted by the hard stop and re-queued. */
  interrupted: number;
  requeued: number;
  counts: Record<string, number>;
  steps: string[];
  ms: number;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const t0 = Date.now();
  const server = await startRedisWithAof();
  const proxy = await startProxy({ port: server.port });
  const prefix = uniquePrefix("chaos");
  const queue = new Queue("default", { redis: server.url, prefix });
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  redis.on("error", () => {});
  const procs: Proc[] = [];
  const steps: string[] = [];
  const say = (s: string) => {
    steps.push(s);
    if (o.verbose) console.log(`[chaos] ${s}`);
  };
  try {
    const ids: string[] = [];
    for (let i = 0; i < o.jobs; i += 5000) {
      const batch = await queue.enqueueMany(Array.from({ length: Math.min(5000, o.jobs - i) }, (_, j) => ({
        task: "sleep",
        data: { ms: o.jobMs[0] + ((i + j) * 7919) % (o.jobMs[1] - o.jobMs[0] + 1) },
      })));
      ids.push(...batch.map((j) => j.id));
    }
    const spawn = (runtime: Runtime) => {
      const cfg = {
        redis: proxy.url, prefix, concurrency: o.concurrency,
        worker: { stalledTimeout: 1500, heartbeatInterval: 250, retention: { completed: { count: o.jobs * 2 } }, eventsMaxLen: 0 },
      };
      const w = new Proc(runtime, cfg);
      procs.push(w);
      return w;
    };
    const completed = async () => Number(await redis.hget(`${prefix}:{default}:stats`, "completed").catch(() => 0)) || 0;
    const at = async (fraction: number) => {
      await waitFor(async () => (await completed()) >= o.jobs * fraction, `${fraction * 100}% of the jobs to complete`, o.timeout ?? 120_000, 50);
    };

    const a = spawn("bun");
    const b = spawn("node");
    const c = spawn("deno");
    await Promise.all([a, b, c].map((w) => w.waitFor("ready")));
    say("3 workers ready (bun, node, deno)");

    await at(0.1);
    a.p.kill("SIGKILL");
    a.killed = true;
    say("SIGKILL the bun worker");
    spawn("bun");

    await at(0.2);
    for (let i = 0; i < 3; i++) await proxy.cutAfter({ command: ["EVALSHA", "EVAL"] });
    say("3 connections cut right after a script reached Redis");

    await at(0.3);
    b.p.kill("SIGTERM");
    say("SIGTERM the node worker (graceful)");
    await b.exited();
    spawn("node");

    await at(0.4);
    await server.restart();
    say("Redis killed and restarted from its AOF");

    await at(0.5);
    c.p.kill("SIGTERM");
    await c.waitFor("phase", (e) => e.phase === "draining");
    c.p.kill("SIGTERM");
    say("SIGTERM the deno worker twice (hard)");
    await c.exited();
    spawn("deno");

    await at(0.6);
    proxy.cutAll();
    say("every connection cut at once");

    await waitFor(async () => {
      const n = await queue.counts();
      return n.waiting === 0 && n.active === 0 && n.delayed === 0 && (await completed()) >= o.jobs;
    }, "the queue to finish", o.timeout ?? 120_000, 100);
    say("queue finished");

    // the verdict, from Redis
    let lost = 0;
    let stuck = 0;
    for (let i = 0; i < ids.length; i += 1000) {
      const pipe = redis.pipeline();
      // a job's hash, or, for one that completed with no hash, its record in `done`
      for (const id of ids.slice(i, i + 1000)) pipe.hget(`${prefix}:{default}:job:${id}`, "state").hexists(`${prefix}:{default}:done`, id);
      const replies = (await pipe.exec())!;
      for (let r = 0; r < replies.length; r += 2) {
        const state = replies[r]![1] ?? (replies[r + 1]![1] === 1 ? "completed" : null);
        if (state === null) lost++;
        else if (state !== "completed") stuck++;
      }
    }
    const stats = await queue.stats();
    // the handlers' own reports: finished runs per job, and on which process
    const done = new Map<string, number[]>();
    procs.forEach((p, i) => {
      for (const e of p.events("end")) {
        if (e.how !== "done") continue;
        const list = done.get(e.job as string) ?? [];
        list.push(i);
        done.set(e.job as string, list);
      }
    });
    let duplicateExecutions = 0;
    let unexplained = 0;
    for (const runs of done.values()) {
      if (runs.length < 2) continue;
      duplicateExecutions += runs.length - 1;
      // every run but the last must have been on a process that was SIGKILLed (its outcome died with it)
      if (runs.slice(0, -1).some((i) => !procs[i]!.killed)) unexplained++;
    }
    const counts = await queue.counts();
    return {
      jobs: o.jobs, lost, stuck,
      completedTwice: Math.max(0, (stats.completed ?? 0) - o.jobs),
      duplicateExecutions, unexplainedDuplicates: unexplained,
      stalled: stats.stalled ?? 0, interrupted: stats.interrupted ?? 0, requeued: stats.requeued ?? 0,
      counts: counts as unknown as Record<string, number>, steps, ms: Date.now() - t0,
    };
  } finally {
    for (const p of procs) if (p.running()) p.p.kill("SIGTERM");
    await Promise.all(procs.map((p) => Promise.race([p.exited(), new Promise((r) => setTimeout(r, 15_000))]).then(() => {
      if (p.running()) p.p.kill("SIGKILL");
    })));
    redis.disconnect();
    await queue.close();
    await proxy.close();
    await server.stop();
  }
}

export type { FaultProxy, PersistentRedisServer };
