import { afterAll, beforeAll, expect, test } from "bun:test";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "ioredis";
import { Queue, Worker } from "../mod.ts";
import { freePort, waitFor } from "./harness.ts";

// A three-master Redis Cluster on free ports, made for this file and removed after it.
const nodes: { port: number; proc: ChildProcess; dir: string }[] = [];

beforeAll(async () => {
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "sluice-cluster-"));
    const proc = spawn("redis-server", [
      "--port", String(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf"),
      "--save", "", "--appendonly", "no", "--dir", dir,
    ], { stdio: "ignore" });
    nodes.push({ port, proc, dir });
  }
  await waitFor(() => nodes.every((n) => spawnSync("redis-cli", ["-p", String(n.port), "ping"]).stdout?.toString().includes("PONG")), "cluster nodes to start");
  const created = spawnSync("redis-cli", ["--cluster", "create", ...nodes.map((n) => `127.0.0.1:${n.port}`), "--cluster-replicas", "0", "--cluster-yes"]);
  if (created.status !== 0) throw new Error(`cluster create failed: ${created.stdout}${created.stderr}`);
  await waitFor(() => spawnSync("redis-cli", ["-p", String(nodes[0]!.port), "cluster", "info"]).stdout?.toString().includes("cluster_state:ok"), "cluster_state:ok", 20_000);
}, 60_000);

afterAll(() => {
  for (const n of nodes) {
    n.proc.kill("SIGKILL");
    rmSync(n.dir, { recursive: true, force: true });
  }
});

function cluster(): Cluster {
  return new Cluster(nodes.map((n) => ({ host: "127.0.0.1", port: n.port })), { redisOptions: { maxRetriesPerRequest: null } });
}

test("queues on different cluster shards enqueue, run in priority order, retry and complete", async () => {
  const producer = cluster();
  const names = ["high", "default", "low"];
  const queues = names.map((n) => new Queue(n, { redis: producer }));
  // the three queues' hash tags land on more than one shard
  const slots = new Set(await Promise.all(names.map(async (n) => Number(await producer.call("CLUSTER", "KEYSLOT", `{${n}}`)))));
  expect(slots.size).toBeGreaterThan(1);

  for (const [i, q] of queues.entries()) {
    await q.enqueueMany(Array.from({ length: 20 }, (_, j) => ({ task: "record", data: { queue: names[i], j } })));
  }
  await queues[1]!.enqueue("flaky", {}, { attempts: 2, backoff: 50 });
  const delayed = await queues[2]!.enqueue("record", { queue: "low", j: "delayed" }, { delay: 300 });
  expect(delayed.state).toBe("delayed");

  const order: string[] = [];
  const client = cluster();
  const worker = new Worker({
    redis: client,
    queues: names,
    concurrency: 1,
    stalledTimeout: 2000,
    tasks: {
      record: (d: { queue: string }) => void order.push(d.queue),
      flaky: (_: unknown, ctx) => {
        if (ctx.job.attempt === 1) throw new Error("first attempt fails");
        return "ok";
      },
    },
  });
  const run = worker.run();
  await waitFor(async () => {
    const counts = await Promise.all(queues.map((q) => q.counts()));
    return counts.reduce((s, c) => s + c.completed, 0) === 62;
  }, "all 62 jobs to complete on the cluster", 30_000);
  const summary = await worker.stop();
  await run;
  expect(summary.completed).toBe(62);
  expect(summary.retried).toBe(1);
  // priority: every pre-enqueued high job ran before any default job, and default before low
  const firstDefault = order.indexOf("default");
  const firstLow = order.indexOf("low");
  expect(order.slice(0, 20).every((q) => q === "high")).toBe(true);
  expect(firstDefault).toBe(20);
  expect(firstLow).toBeGreaterThanOrEqual(40);
  expect((await queues[2]!.getJob(delayed.id))?.state).toBe("completed");
  client.disconnect();
  producer.disconnect();
}, 60_000);
