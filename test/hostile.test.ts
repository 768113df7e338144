/**
 * One job's failure never touches another's: a worker process under Bun, Deno and Node runs a
 * batch where most jobs are fine and some throw values whose serialisation throws, return what
 * JSON cannot carry, or report a BigInt progress nobody awaits. The process survives, every bad
 * job ends with a readable error, and every other job of the batch completes.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Queue } from "../mod.ts";
import { redisUrl, RUNTIMES, type Spawned, spawnTs, uniquePrefix, waitFor } from "./harness.ts";

setDefaultTimeout(90_000);

const HOSTILE_FAIL = ["throwToJSON", "throwNullPrototype", "throwBigIntMessage", "throwMessageGetter", "throwProxy", "throwProxySync", "returnBigInt", "returnCycle", "hostileThen"];
const spawned: Spawned[] = [];
afterEach(() => {
  for (const p of spawned.splice(0)) p.kill("SIGKILL");
});

describe("hostile handlers", () => {
  for (const rt of RUNTIMES) {
    test(`under ${rt}: the worker survives every hostile throw, result and progress; the other jobs of the batch complete`, async () => {
      const prefix = uniquePrefix("hostile");
      const q = new Queue("default", { redis: redisUrl(), prefix });
      try {
        // one batch: the bad jobs between good ones, all fetched at once (concurrency 100)
        const specs = [
          ...Array.from({ length: 10 }, () => ({ task: "ok" })),
          ...HOSTILE_FAIL.map((task) => ({ task, options: { attempts: 1 } })),
          { task: "progressBigInt" },
          { task: "thenable" },
          ...Array.from({ length: 10 }, () => ({ task: "ok" })),
        ];
        const jobs = await q.enqueueMany(specs);
        const p = spawnTs(rt, "test/fixtures/hostile-worker.ts", [JSON.stringify({ redis: redisUrl(), prefix })]);
        spawned.push(p);
        await p.line(/"ev":"ready"/, 60_000);
        await waitFor(async () => {
          const c = await q.counts();
          return c.completed + c.failed === jobs.length;
        }, `every job to end\n${p.stderr()}`, 30_000);
        const byTask = new Map<string, Awaited<ReturnType<typeof q.getJob>>[]>();
        for (const [i, j] of jobs.entries()) {
          const info = await q.getJob(j.id);
          byTask.set(specs[i]!.task, [...(byTask.get(specs[i]!.task) ?? []), info]);
        }
        for (const info of byTask.get("ok")!) expect([info!.state, info!.result]).toEqual(["completed", "fine"]);
        for (const task of HOSTILE_FAIL) {
          const [info] = byTask.get(task)!;
          expect([task, info!.state]).toEqual([task, "failed"]);
          expect(typeof info!.error!.message).toBe("string");
          expect(info!.error!.message.length).toBeGreaterThan(0);
        }
        expect(byTask.get("progressBigInt")![0]).toMatchObject({ state: "completed", result: "after a bad progress" });
        expect(byTask.get("thenable")![0]).toMatchObject({ state: "completed", result: 42 });
        // the process lived through it all, and still takes jobs
        expect(p.proc.exitCode).toBeNull();
        const late = await q.enqueue("ok");
        await waitFor(async () => (await q.getJob(late.id))?.state === "completed", "a later job to complete");
        p.kill("SIGTERM");
        expect(await p.exited).toBe(0);
      } finally {
        await q.close();
      }
    });
  }
});
