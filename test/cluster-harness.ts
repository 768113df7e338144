/**
 * A throwaway Redis Cluster for test/cluster.test.ts, and a worker process on it.
 *
 * Imported, it gives `startCluster()`: three (or n) masters on free ports with `--cluster-enabled
 * yes`, slots spread by `redis-cli --cluster create`, removed again by `stop()`.
 *
 * Run, it is a worker process on such a cluster (test/fixtures/worker.ts takes only a URL, which
 * makes a plain connection to one node):
 *
 *   bun run test/cluster-harness.ts '<ClusterWorkerConfig JSON>'
 *   deno run -A test/cluster-harness.ts '<ClusterWorkerConfig JSON>'
 *   node --import tsx test/cluster-harness.ts '<ClusterWorkerConfig JSON>'
 *
 * It prints one JSON object per line on stdout, as the fixture does:
 *   {"ev":"ready","worker":id}                         the worker is subscribed and fetching
 *   {"ev":"phase","phase":p,"source":s}                 a phase change of its ShutdownController
 *   {"ev":"start","job":id,"queue":q,"attempt":n}       a `hold` handler started
 *   {"ev":"abort","job":id,"reason":r}                  its ctx.signal aborted (ctx.abortReason)
 *   {"ev":"end","job":id,"how":"done"|"threw"}          it returned or threw
 *   {"ev":"log","event":e,...}                          a lifecycle log entry of the worker
 *   {"ev":"summary",...RunSummary}                      run() resolved
 * The one task, `hold`, runs until the key named by its data's `gate` exists (never, without a
 * gate) or its signal aborts, and then throws the abort.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, Redis } from "ioredis";

/** What the worker process is told: the cluster's ports, and the worker's settings. */
export interface ClusterWorkerConfig {
  ports: number[];
  prefix: string;
  queues: string[];
  concurrency?: number;
  /** JSON-able WorkerOptions (durations, intervals, id, …). */
  worker?: Record<string, unknown>;
}

export interface TestCluster {
  ports: number[];
  /** A new cluster client; disconnect it at the end. */
  client(): Cluster;
  /** A new plain connection to node `i` (no redirects followed); disconnect it at the end. */
  node(i: number): Redis;
  /** The slot of a key, as the server computes it (CLUSTER KEYSLOT). */
  keyslot(key: string): Promise<number>;
  /** The index (in `ports`) of the master that serves `slot`. */
  owner(slot: number): number;
  /** Every key under `prefix` on every node, with the index of the node that holds it. */
  keys(prefix: string): Promise<{ key: string; node: number }[]>;
  stop(): void;
}

/** Starts `n` cluster-enabled masters and joins them into one cluster with every slot served. */
export async function startCluster(n = 3): Promise<TestCluster> {
  // test/harness.ts runs under Bun only (import.meta.dir): imported here, not by the worker process
  const { freePort, waitFor } = await import("./harness.ts");
  const nodes: { port: number; proc: ChildProcess; dir: string }[] = [];
  const stop = () => {
    for (const x of nodes) {
      x.proc.kill("SIGKILL");
      rmSync(x.dir, { recursive: true, force: true });
    }
  };
  try {
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "sluice-cluster-"));
      const proc = spawn("redis-server", [
        "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf"),
        "--save", "", "--appendonly", "no", "--dir", dir,
      ], { stdio: "ignore" });
      nodes.push({ port, proc, dir });
    }
    const cli = (port: number, ...args: string[]) => spawnSync("redis-cli", ["-p", String(port), ...args]).stdout?.toString() ?? "";
    await waitFor(() => nodes.every((x) => cli(x.port, "ping").includes("PONG")), "cluster nodes to start");
    const created = spawnSync("redis-cli", ["--cluster", "create", ...nodes.map((x) => `127.0.0.1:${x.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
    if (created.status !== 0) throw new Error(`cluster create failed: ${created.stdout}${created.stderr}`);
    // every node must know the whole map before a client asks any of them
    await waitFor(() => nodes.every((x) => cli(x.port, "cluster", "info").includes("cluster_state:ok")), "cluster_state:ok on every node", 20_000);
  } catch (e) {
    stop();
    throw e;
  }
  const ports = nodes.map((x) => x.port);
  // the slot map, from CLUSTER SLOTS: [start, end, [host, port, id], …] per range
  const probe = new Redis(ports[0]!, "127.0.0.1", { maxRetriesPerRequest: null });
  const ranges = ((await probe.call("CLUSTER", "SLOTS")) as [number, number, [string, number, string]][])
    .map(([start, end, master]) => ({ start, end, node: ports.indexOf(Number(master[1])) }));
  probe.disconnect();
  if (ranges.some((r) => r.node < 0)) throw new Error(`CLUSTER SLOTS names a node that was not started: ${JSON.stringify(ranges)}`);
  const node = (i: number) => new Redis(ports[i]!, "127.0.0.1", { maxRetriesPerRequest: null });
  return {
    ports,
    client: () => new Cluster(ports.map((port) => ({ host: "127.0.0.1", port })), { redisOptions: { maxRetriesPerRequest: null } }),
    node,
    async keyslot(key) {
      const c = node(0);
      try {
        return Number(await c.call("CLUSTER", "KEYSLOT", key));
      } finally {
        c.disconnect();
      }
    },
    owner(slot) {
      const r = ranges.find((x) => slot >= x.start && slot <= x.end);
      if (!r) throw new Error(`no node serves slot ${slot}`);
      return r.node;
    },
    async keys(prefix) {
      const out: { key: string; node: number }[] = [];
      for (let i = 0; i < ports.length; i++) {
        const c = node(i);
        try {
          let cursor = "0";
          do {
            const [next, batch] = (await c.scan(cursor, "COUNT", 1000)) as [string, string[]];
            for (const key of batch) if (key.startsWith(prefix)) out.push({ key, node: i });
            cursor = next;
          } while (cursor !== "0");
        } finally {
          c.disconnect();
        }
      }
      return out;
    },
    stop,
  };
}

/** The hash tag every key of a queue carries. */
export function queueTag(queue: string): string {
  return `{${queue}}`;
}

/**
 * `n` queue names `<base>-<i>` whose keys live on `n` different masters, found by asking the
 * server for the slot of each candidate's hash tag.
 */
export async function namesOnDistinctShards(c: TestCluster, base: string, n: number): Promise<string[]> {
  const byNode = new Map<number, string>();
  for (let i = 0; byNode.size < n; i++) {
    if (i > 1000) throw new Error(`no ${n} names ${base}-<i> on distinct shards`);
    const name = `${base}-${i}`;
    const node = c.owner(await c.keyslot(queueTag(name)));
    if (!byNode.has(node)) byNode.set(node, name);
  }
  return [...byNode.values()];
}

/** The worker process: see the module comment. */
async function main(): Promise<void> {
  const arg = (globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? process.argv[2];
  if (!arg) throw new Error("usage: cluster-harness.ts '<ClusterWorkerConfig JSON>'");
  const cfg = JSON.parse(arg) as ClusterWorkerConfig;
  const { adapter } = await import("../adapters/auto.ts");
  const { createWorker, runWorker } = await adapter();
  const print = (o: Record<string, unknown>) => console.log(JSON.stringify(o));
  const redis = new Cluster(cfg.ports.map((port) => ({ host: "127.0.0.1", port })), {
    enableAutoPipelining: true,
    redisOptions: { maxRetriesPerRequest: null },
  });
  redis.on("error", () => {});

  const worker = createWorker({
    redis,
    prefix: cfg.prefix,
    queues: cfg.queues,
    concurrency: cfg.concurrency ?? 5,
    ...cfg.worker,
    tasks: {
      async hold(data: { gate?: string } | null, ctx) {
        print({ ev: "start", job: ctx.job.id, queue: ctx.job.queue, attempt: ctx.job.attempt });
        const signal = ctx.signal;
        try {
          await new Promise<void>((resolve, reject) => {
            let timer: ReturnType<typeof setTimeout> | undefined;
            const onAbort = () => {
              clearTimeout(timer);
              print({ ev: "abort", job: ctx.job.id, reason: ctx.abortReason });
              reject(signal.reason);
            };
            if (signal.aborted) return onAbort();
            signal.addEventListener("abort", onAbort, { once: true });
            const gate = data?.gate;
            if (gate === undefined) return;
            const poll = async () => {
              if (signal.aborted) return;
              if ((await redis.exists(gate).catch(() => 0)) === 1) {
                signal.removeEventListener("abort", onAbort);
                return resolve();
              }
              if (!signal.aborted) timer = setTimeout(poll, 20);
            };
            void poll();
          });
        } catch (e) {
          print({ ev: "end", job: ctx.job.id, how: "threw" });
          throw e;
        }
        print({ ev: "end", job: ctx.job.id, how: "done" });
        return { by: ctx.workerId };
      },
    },
    logger: (e) => {
      print({ ...e, ev: "log" });
      if (e.event === "started") print({ ev: "ready", worker: worker.id });
    },
  });
  worker.addEventListener("phase", (e) => {
    const d = (e as CustomEvent<{ phase: string; source: string }>).detail;
    print({ ev: "phase", phase: d.phase, source: d.source });
  });
  const summary = await runWorker(worker);
  print({ ev: "summary", ...summary });
  // the worker leaves a client it was given open
  redis.disconnect();
}

// Bun and Deno say whether this module is the entry point; Node (through tsx) does not
const entry = (import.meta as { main?: boolean }).main ?? process.argv[1]?.endsWith("cluster-harness.ts");
if (entry) await main();
