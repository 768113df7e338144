/**
 * Jobs in threads and processes (`execution`), with real worker processes under Bun, Deno and
 * Node and real signals: the abort ladder stops jobs that ignore their signal (a `while (true) {}`
 * included) for every reason, CPU-bound jobs leave the heartbeat free, children are recycled and a
 * crashing child fails only its own job.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { RUNTIMES, waitFor } from "./harness.ts";
import { type LogEntry, Worker } from "../src/worker.ts";
import { resolveSettings } from "../src/worker-options.ts";
import { type Ev, inProcess, jobHash, setup, spawnWorker, type WorkerProc } from "./procs.ts";

setDefaultTimeout(90_000);

const EXECUTIONS = ["thread", "process"] as const;

/** The start lines the fixture's pool tasks printed for `job` (from inside their thread or process). */
function starts(w: WorkerProc, job: string): Ev[] {
  return w.events("start").filter((e) => e.job === job);
}

function logs(w: WorkerProc, event: string): Ev[] {
  return w.events("log").filter((e) => e.event === event);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const runtime of RUNTIMES) {
  for (const execution of EXECUTIONS) {
    describe(`${runtime}, execution "${execution}"`, () => {
      test("a while (true) job with a 1 s timeout: its child is ended abortGrace after the abort, the attempt fails with reason timeout, and the retry runs in a new child", async () => {
        const { prefix, queue } = setup();
        const w = spawnWorker(runtime, prefix, { execution, concurrency: 6, worker: { pool: { size: 3, abortGrace: 300 } } });
        await w.ready();
        const busy = await queue.enqueue("busy", { okFrom: 2 }, { timeout: "1s", attempts: 2, backoff: { type: "fixed", delay: 0 } });
        const [first] = await w.waitEvents("start", 1, (e) => e.job === busy.id);

        const done = await waitFor(async () => {
          const j = await queue.getJob(busy.id);
          return j?.state === "completed" ? j : undefined;
        }, "the busy job's retry to complete", 30_000);
        expect([done.attempt, (done.result as { attempt: number }).attempt]).toEqual([2, 2]);
        // the abort came first (reason timeout), then the child was ended for ignoring it
        const abort = logs(w, "job-abort").find((e) => e.job === busy.id);
        const ended = logs(w, "pool-child-end").find((e) => String(e.message).includes(`job ${busy.id} ignored its abort (timeout)`));
        expect([abort?.reason, ended === undefined]).toEqual(["timeout", false]);
        // the attempt after it ran in another child: the ended one never ran anything again
        const retry = starts(w, busy.id).find((e) => e.attempt === 2)!;
        expect(retry.child).not.toBe(first!.child);
        expect(w.events("start").filter((e) => e.child === first!.child).map((e) => e.job)).toEqual([busy.id]);
        expect((await queue.stats()).retried).toBe(1);
        w.kill("SIGTERM");
        expect(await w.exited()).toBe(0);
      });

      test("a CPU-bound job running over 3 × stalledTimeout is not recovered by a second worker: it runs once and completes", async () => {
        const { prefix, queue, redis } = setup();
        const options = { execution, worker: { stalledTimeout: 1000, pool: { abortGrace: 300 } } } as const;
        const a = spawnWorker(runtime, prefix, options);
        await a.ready();
        const job = await queue.enqueue("spin", { ms: 3500 });
        await a.waitEvents("start", 1, (e) => e.job === job.id);
        // a second worker watches for stalled jobs the whole time the first one's child spins
        const b = spawnWorker(runtime, prefix, options);
        await b.ready();
        await waitFor(async () => (await queue.getJob(job.id))?.state === "completed", "the spinning job to complete", 30_000);
        expect([starts(a, job.id).length, starts(b, job.id).length]).toEqual([1, 0]);
        const h = await jobHash(redis, prefix, job.id);
        expect([h.attempt, h.stalls]).toEqual(["1", "0"]);
        expect((await queue.stats()).stalled).toBe(0);
        a.kill("SIGTERM");
        b.kill("SIGTERM");
        expect([await a.exited(), await b.exited()]).toEqual([0, 0]);
      });

      test("cancel(id, { abort: true }) from another process: a cooperative job stops and keeps its child; a busy-looping one, while other jobs complete around it, has its child ended; both end aborted", async () => {
        const { prefix, queue } = setup();
        const w = spawnWorker(runtime, prefix, { execution, concurrency: 6, worker: { pool: { size: 2, abortGrace: 300 } } });
        await w.ready();
        const coop = await queue.enqueue("coop", null);
        await w.waitEvents("start", 1, (e) => e.job === coop.id);
        expect((await queue.cancel(coop.id, { abort: true })).outcome).toBe("abort-requested");
        await waitFor(async () => (await queue.getJob(coop.id))?.state === "aborted", "the cooperative job to be aborted", 30_000);
        expect(logs(w, "pool-child-end")).toEqual([]);

        const job = await queue.enqueue("busy", null);
        await w.waitEvents("start", 1, (e) => e.job === job.id);
        // while its child loops, inline jobs and jobs in the other child run to the end
        const others = [
          ...(await Promise.all([1, 2, 3].map((i) => queue.enqueue("echo", i)))),
          ...(await Promise.all([1, 2].map((i) => queue.enqueue("pooledEcho", i)))),
        ];
        for (const o of others) await waitFor(async () => (await queue.getJob(o.id))?.state === "completed", `job ${o.id} to complete`, 30_000);
        expect((await queue.getJob(job.id))?.state).toBe("active");
        expect((await queue.cancel(job.id, { abort: true })).outcome).toBe("abort-requested");
        await waitFor(async () => (await queue.getJob(job.id))?.state === "aborted", "the busy job to be aborted", 30_000);
        expect(logs(w, "pool-child-end").some((e) => String(e.message).includes(`job ${job.id} ignored its abort (user)`))).toBe(true);
        w.kill("SIGTERM");
        expect(await w.exited()).toBe(0);
      });

      test("two SIGTERMs stop a worker whose pool job busy-loops, without a third: the job is re-queued with its attempt not counted, and no child outlives the worker", async () => {
        const { prefix, queue, redis } = setup();
        const w = spawnWorker(runtime, prefix, { execution, worker: { pool: { abortGrace: 300 } } });
        await w.ready();
        const job = await queue.enqueue("busy", null);
        const [start] = await w.waitEvents("start", 1, (e) => e.job === job.id);
        w.kill("SIGTERM");
        await w.waitEvents("phase", 1, (e) => e.phase === "draining");
        w.kill("SIGTERM");
        expect(await w.exited()).toBe(0);
        expect(w.summary()).toMatchObject({ interrupted: 1, abandoned: 0 });
        const h = await jobHash(redis, prefix, job.id);
        expect([h.state, h.attempt]).toEqual(["waiting", "0"]);
        // a process child is gone with its worker (a thread cannot outlive its process)
        if (execution === "process") expect([start!.pid !== w.p.proc.pid, alive(start!.pid as number)]).toEqual([true, false]);
        expect(logs(w, "pool-child-end").some((e) => String(e.message).includes(`job ${job.id} ignored its abort (shutdown)`))).toBe(true);
      });

      test("maxJobsPerChild 2 over 6 jobs uses 3 children; a child that exits or throws outside its handler fails only its job; progress and results cross, what cannot cross fails clearly", async () => {
        const { prefix, queue } = setup();
        const w = spawnWorker(runtime, prefix, { execution, concurrency: 4, worker: { pool: { size: 1, maxJobsPerChild: 2, abortGrace: 300 } } });
        await w.ready();
        const jobs = [];
        for (let i = 0; i < 6; i++) jobs.push(await queue.enqueue("whoami", null));
        const done = await Promise.all(jobs.map((j) => waitFor(async () => {
          const x = await queue.getJob(j.id);
          return x?.state === "completed" ? x : undefined;
        }, `job ${j.id} to complete`, 30_000)));
        const children = new Set(done.map((j) => (j.result as { child: string }).child));
        expect(children.size).toBe(3);
        expect(logs(w, "pool-child-end").filter((e) => String(e.message).includes("maxJobsPerChild")).length).toBeGreaterThanOrEqual(2);

        const crashExit = await queue.enqueue("crash", { how: "exit" }, { attempts: 1 });
        const crashThrow = await queue.enqueue("crash", { how: "throw" }, { attempts: 1 });
        const after = await queue.enqueue("whoami", null);
        const prog = await queue.enqueue("progress", { keep: true });
        const bad = await queue.enqueue("unclonable", null, { attempts: 1 });
        const final = async (id: string) => await waitFor(async () => {
          const x = await queue.getJob(id);
          return x && ["completed", "failed"].includes(x.state) ? x : undefined;
        }, `job ${id} to finish`, 30_000);
        const [e1, e2, ok, p, b] = [await final(crashExit.id), await final(crashThrow.id), await final(after.id), await final(prog.id), await final(bad.id)];
        expect([e1.state, e1.error?.name, e1.error?.message]).toEqual(["failed", "PoolChildError", expect.stringContaining("exited before the job settled")]);
        expect([e2.state, e2.error?.name, e2.error?.message]).toEqual(["failed", "PoolChildError", expect.stringContaining("an error no handler catches")]);
        expect(ok.state).toBe("completed");
        expect([p.state, p.result, p.progress]).toEqual(["completed", { keep: true }, 50]);
        expect([b.state, b.error?.message]).toEqual(["failed", expect.stringContaining(`the result cannot cross from the ${execution} to the worker`)]);
        w.kill("SIGTERM");
        expect(await w.exited()).toBe(0);
      });

      test("a child above memoryLimitMb is replaced (after its job, or by the runtime's heap limit, which fails that job): it never runs another job, and the worker carries on", async () => {
        const { prefix, queue } = setup();
        const w = spawnWorker(runtime, prefix, { execution, concurrency: 1, worker: { pool: { size: 1, memoryLimitMb: 32, abortGrace: 300 } } });
        await w.ready();
        const hog = await queue.enqueue("hog", { mb: 96 }, { attempts: 1 });
        const [start] = await w.waitEvents("start", 1, (e) => e.job === hog.id);
        const next = await queue.enqueue("whoami", null);
        const after = await waitFor(async () => {
          const j = await queue.getJob(next.id);
          return j?.state === "completed" ? j : undefined;
        }, "the job after the hog to complete", 30_000);
        expect((after.result as { child: string }).child).not.toBe(start!.child);
        expect(w.events("start").filter((e) => e.child === start!.child).map((e) => e.job)).toEqual([hog.id]);
        const h = await queue.getJob(hog.id);
        // replaced after its job (completed), or ended by the runtime's heap limit (failed)
        expect(h?.state === "completed" ? logs(w, "pool-child-end").some((e) => String(e.message).includes("memoryLimitMb")) : h?.error?.name).toBe(h?.state === "completed" ? true : "PoolChildError");
        w.kill("SIGTERM");
        expect(await w.exited()).toBe(0);
      });
    });
  }
}

test("the watchdog: an inline handler that blocks the event loop for over a third of stalledTimeout is named in a warning that points at execution: \"thread\"", async () => {
  const { prefix, queue } = setup();
  const entries: LogEntry[] = [];
  const w = inProcess(prefix, {
    stalledTimeout: 600,
    wait: false,
    logger: (e) => entries.push(e),
    tasks: {
      crunch: () => {
        const end = Date.now() + 700;
        while (Date.now() < end) {
          // CPU-bound, inline
        }
        return "done";
      },
    },
  });
  await queue.enqueue("crunch", null);
  await w.run();
  const warning = entries.find((e) => e.event === "event-loop-blocked" && (e.tasks as string[]).includes("crunch"));
  expect(warning).toMatchObject({ level: "warn", tasks: ["crunch"] });
  expect(String(warning!.message)).toContain('execution: "thread"');
});

describe("pooled task options", () => {
  const base = { redis: "redis://127.0.0.1:1", tasks: {} };
  const cases: [string, Record<string, unknown>, string][] = [
    ["a relative module path", { tasks: { t: { module: "./tasks.ts", execution: "thread" } } }, "'tasks.t.module' must be a URL"],
    ["an unknown execution", { tasks: { t: { module: "/abs/tasks.ts", execution: "fiber" } } }, `'tasks.t.execution' must be "thread" or "process": current value is "fiber"`],
    ["a handler beside a module", { tasks: { t: { module: "/abs/tasks.ts", execution: "thread", handler: () => 1 } } }, "'tasks.t.handler' must be left out"],
    ["an empty export", { tasks: { t: { module: "/abs/tasks.ts", execution: "process", export: "" } } }, "'tasks.t.export' must be the name"],
    ["pool.size 0", { pool: { size: 0 } }, "'pool.size' must be an integer from 1 to 5000: current value is 0"],
    ["a bad abortGrace", { pool: { abortGrace: "soon" } }, "'pool.abortGrace' must be a duration"],
    ["pool.maxJobsPerChild 0", { pool: { maxJobsPerChild: 0 } }, "'pool.maxJobsPerChild' must be an integer >= 1: current value is 0"],
  ];
  for (const [what, options, message] of cases) {
    test(`${what} is a ValidationError naming the field and the value`, () => {
      expect(() => new Worker({ ...base, ...options } as never)).toThrow(message);
    });
  }

  test("a module as a URL, a file: URL string or an absolute path (POSIX or Windows, characters encoded) resolves to its file URL; its export defaults to \"default\"", () => {
    const cases: [URL | string, string][] = [
      [new URL("file:///srv/app/tasks.ts"), "file:///srv/app/tasks.ts"],
      ["file:///srv/app/tasks.ts", "file:///srv/app/tasks.ts"],
      ["/srv/app/tasks.ts", "file:///srv/app/tasks.ts"],
      ["/srv/a#1/what?/my%20tasks.ts", "file:///srv/a%231/what%3F/my%2520tasks.ts"],
      ["C:\\app\\a#1\\t.ts", "file:///C:/app/a%231/t.ts"],
    ];
    for (const [module, href] of cases) {
      const settings = resolveSettings({ ...base, tasks: { t: { module, execution: "thread" } } });
      expect([module, settings.tasks.get("t")?.pooled]).toEqual([module, { module: href, export: "default", execution: "thread" }]);
    }
    expect(new Worker({ ...base, tasks: { t: { module: "/srv/app/tasks.ts", execution: "thread" } } }).poolStats).toEqual({ threads: 0, processes: 0, busy: 0, waiting: 0, started: 0 });
    // a drive-relative Windows path is no URL
    expect(() => resolveSettings({ ...base, tasks: { t: { module: "C:tasks.ts", execution: "thread" } } })).toThrow("'tasks.t.module' must be a URL");
  });
});
