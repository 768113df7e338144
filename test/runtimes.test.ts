/**
 * The same enqueue-and-work smoke test as a subprocess under Bun, Deno and Node: the core runs
 * unchanged on all three, through each runtime's adapter.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { RUNTIMES, spawnTs } from "./harness.ts";
import { useScope, within } from "./helpers.ts";

// waits below run up to 10-15 s before they fail with a message; the test must outlive them
setDefaultTimeout(30_000);

const scope = useScope();
const JOBS = 60;

describe("runtimes", () => {
  for (const runtime of RUNTIMES) {
    test(`enqueue and work in drain mode under ${runtime}`, async () => {
      const s = scope();
      const q = s.queue("smoke");
      const redis = s.redis();
      const child = spawnTs(runtime, "test/fixtures/smoke.ts", [], {
        REDIS_URL: s.url, SLUICE_PREFIX: s.prefix, SLUICE_QUEUE: "smoke", SMOKE_JOBS: String(JOBS),
      });
      let code: number | string;
      try {
        code = await within(child.exited, 50_000, `the ${runtime} smoke process to exit`);
      } finally {
        if (child.proc.exitCode === null && child.proc.signalCode === null) child.kill("SIGKILL");
      }
      const context = `${runtime} stdout:\n${child.stdout()}\nstderr:\n${child.stderr()}`;
      expect(code, context).toBe(0);
      const line = child.stdout().trim().split("\n").filter((l) => l.startsWith("{")).pop();
      expect(line, context).toBeDefined();
      const out = JSON.parse(line!);

      expect(out.runtime).toBe(runtime);
      expect(out.enqueued).toBe(JOBS + 1);
      expect(out.handled).toBe(JOBS + 2); // the flaky job runs twice
      expect(out.summary).toMatchObject({ completed: JOBS + 1, retried: 1, failed: 0, lost: 0, interrupted: 0, abandoned: 0 });
      const none = { waiting: 0, active: 0, delayed: 0, failed: 0, cancelled: 0, aborted: 0 };
      expect(out.counts).toEqual({ ...none, completed: JOBS + 1 });

      // and Redis, read from here, agrees
      expect(await q.counts()).toEqual({ ...none, completed: JOBS + 1 });
      for (const i of [0, 1, 17, JOBS - 1]) {
        expect(await q.getJob(`square-${i}`)).toMatchObject({ state: "completed", result: i * i, attempt: 1 });
      }
      expect(await q.getJob("flaky")).toMatchObject({ state: "completed", attempt: 2, result: "second time lucky" });
      expect(await redis.xlen(q.keys.stream)).toBe(0);
      // the worker left the registry and its consumer group on the way out
      expect(await redis.zcard(`${s.prefix}:workers`)).toBe(0);
      expect(await redis.call("XINFO", "CONSUMERS", q.keys.stream, "sluice")).toEqual([]);
    }, 60_000);
  }
});
