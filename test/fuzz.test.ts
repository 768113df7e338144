/**
 * Property-based fuzzing (fast-check, seeded and bounded) of what a careless user or an attacker
 * can hand sluice: the Queue API, Worker options and the admin API. Whatever the input, the answer
 * is a success, a ValidationError (or a 4xx) naming a field — never another exception, never a 5xx
 * — and a refused call leaves Redis exactly as it was.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { createAdminApp } from "../admin/app.tsx";
import { Queue, ValidationError, Worker } from "../mod.ts";
import { client, redisUrl, uniquePrefix } from "./harness.ts";

setDefaultTimeout(60_000);

// a fixed seed, so a run is repeatable; FUZZ_SEED explores others
const SEED = Number(process.env.FUZZ_SEED ?? 20261201);
const redis = client();
afterAll(() => redis.disconnect());

/** Every key under `prefix` with its type and a digest of its value. */
async function dump(prefix: string): Promise<string> {
  const keys = (await redis.keys(`${prefix}:*`)).sort();
  const out: string[] = [];
  for (const k of keys) {
    const type = await redis.type(k) as string;
    const value = type === "hash" ? await redis.hgetall(k)
      : type === "zset" ? await redis.call("ZRANGE", k, "0", "-1", "WITHSCORES")
      : type === "stream" ? await redis.xrange(k, "-", "+")
      : type === "string" ? await redis.get(k)
      : type;
    out.push(`${k} ${type} ${JSON.stringify(value)}`);
  }
  return out.join("\n");
}

/** Anything at all, hostile shapes included. */
const anything = fc.oneof(
  fc.anything({ maxDepth: 3, withBigInt: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withTypedArray: true, withSparseArray: true }),
  fc.constantFrom(
    undefined, null, NaN, Infinity, -Infinity, -1, 0, 1.5, 1e300, 2 ** 31, 2 ** 53, "", " ", "x{}", "{", "a b", "\u0000", "sur-\ud800",
    "9".repeat(400), "25 days", "1e400", [], [1], new Date(NaN), new Date(8.64e15 + 1), () => 1, Symbol("s"),
    { toJSON: () => undefined }, { __proto__: { attempts: 0 } }, JSON.parse('{"__proto__":{"x":1}}'), { constructor: 1 },
    new Map([["attempts", 1]]), Object.create(null),
  ),
);

/** Options objects: mostly known keys with hostile values, some unknown keys. */
const options = fc.oneof(
  anything,
  fc.record({
    delay: anything, runAt: anything, attempts: anything, backoff: anything, timeout: anything, jobId: anything,
  }, { requiredKeys: [] }),
  fc.dictionary(fc.constantFrom("delay", "attempts", "jobId", "__proto__", "constructor", "prototype", "nope"), anything),
);

/** Runs `fn`; it must succeed or throw a ValidationError naming a field. Returns whether it threw. */
async function refusedOrDone(fn: () => unknown): Promise<boolean> {
  try {
    await fn();
    return false;
  } catch (e) {
    if (!ValidationError.is(e)) throw new Error(`expected a ValidationError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    expect(e.issues.length).toBeGreaterThan(0);
    for (const i of e.issues) expect(typeof i.field).toBe("string");
    return true;
  }
}

describe("fuzzing the core API", () => {
  test("enqueue: any task, data and options succeed or are refused with a ValidationError, writing nothing", async () => {
    const prefix = uniquePrefix("fuzz");
    const q = new Queue("q", { redis: redisUrl(), prefix });
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constant("task"), anything), anything, options, async (task, data, opts) => {
        const before = await dump(prefix);
        if (await refusedOrDone(() => q.enqueue(task as string, data, opts as never))) {
          refused++;
          expect(await dump(prefix)).toBe(before);
        }
      }),
      { seed: SEED, numRuns: 400 },
    );
    expect(refused).toBeGreaterThan(100);
    await q.close();
  });

  test("enqueueMany: one bad job anywhere (a hole included) writes nothing", async () => {
    const prefix = uniquePrefix("fuzz");
    const q = new Queue("q", { redis: redisUrl(), prefix });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(fc.record({ task: fc.constant("t"), data: fc.jsonValue({ maxDepth: 2 }) }), anything), { maxLength: 20 }), fc.boolean(), async (jobs, hole) => {
        if (hole && jobs.length > 1) delete (jobs as unknown[])[1];
        const before = await dump(prefix);
        if (await refusedOrDone(() => q.enqueueMany(jobs as never))) expect(await dump(prefix)).toBe(before);
      }),
      { seed: SEED, numRuns: 200 },
    );
    await q.close();
  });

  test("getJob, cancel, retry, deleteJob and listJobs take any argument without another kind of error", async () => {
    const prefix = uniquePrefix("fuzz");
    const q = new Queue("q", { redis: redisUrl(), prefix });
    await q.enqueue("t", 1, { jobId: "known" });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constant("known"), anything), anything, async (id, opts) => {
        const before = await dump(prefix);
        if (await refusedOrDone(() => q.getJob(id as string))) expect(await dump(prefix)).toBe(before);
        if (await refusedOrDone(() => q.listJobs(id as never, opts as never))) expect(await dump(prefix)).toBe(before);
        if (await refusedOrDone(() => q.listJobs("failed", { cursor: id as never }))) expect(await dump(prefix)).toBe(before);
        if (id !== "known") {
          if (await refusedOrDone(() => q.cancel(id as string, opts as never))) expect(await dump(prefix)).toBe(before);
          if (await refusedOrDone(() => q.retry(id as string))) expect(await dump(prefix)).toBe(before);
          if (await refusedOrDone(() => q.deleteJob(id as string))) expect(await dump(prefix)).toBe(before);
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
    expect((await q.getJob("known"))?.state).toBe("waiting");
    await q.close();
  });

  test("Queue and Worker options: constructed or refused with a ValidationError, never another error", async () => {
    const keys = ["redis", "prefix", "queues", "concurrency", "timeout", "stalledTimeout", "heartbeatInterval", "maxStalled", "shutdownGracefulTimeout",
      "wait", "maxJobs", "promoteInterval", "abortPollInterval", "endConditionInterval", "blockTimeout", "retention", "eventsMaxLen", "installSignalHandlers",
      "id", "identity", "logger", "dedupTtl"] as const;
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom(...keys), anything, { maxKeys: 4 }), anything, async (o, name) => {
        await refusedOrDone(() => new Worker({ tasks: { t: () => 1 }, ...o } as never));
        await refusedOrDone(async () => {
          const q = new Queue(typeof name === "string" ? name : "q", { ...o, redis: () => Promise.resolve(null) } as never);
          await q.close();
        });
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});

describe("fuzzing the admin API", () => {
  test("no request body, query or path answers a 5xx; a refused write changes nothing", async () => {
    const prefix = uniquePrefix("fuzz");
    const app = createAdminApp({ redis: redisUrl(), prefix, queues: ["q"], auth: { token: "fuzz-token-0123456789" } });
    const headers = { authorization: "Bearer fuzz-token-0123456789", "content-type": "application/json" };
    const q = new Queue("q", { redis: redisUrl(), prefix });
    await q.enqueue("t", 1, { jobId: "known" });
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.json({ maxDepth: 3 }),
      fc.constantFrom("[".repeat(10_000) + "]".repeat(10_000), '{"task":"t","data":' + "[".repeat(5000) + "]".repeat(5000) + "}", "null", "[]", '{"__proto__":{"a":1}}',
        '{"task":"t","options":{"runAt":1e300}}', '{"task":"t","options":{"delay":1e308}}', '{"task":"t","options":{"timeout":"25 days"}}',
        '{"jobs":[' + Array.from({ length: 1001 }, () => '{"task":"t"}').join(",") + "]}"),
    );
    const path = fc.constantFrom("/api/queues/q/jobs", "/api/queues/q/jobs/known/cancel", "/api/queues/q/jobs/known/abort", "/api/queues/q/jobs/known/retry",
      "/api/queues/q/jobs/nope/cancel", "/api/queues/q/shutdown", "/api/queues/q/jobs?state=failed&cursor=99999999999999999999-0",
      "/api/queues/q/jobs?state=waiting&cursor=18446744073709551616-0", "/api/queues/q/jobs?state=delayed&limit=0", "/api/queues/q%7B%7D/jobs",
      "/api/queues/q/jobs/%F0%9F%98%80", "/api/queues/q/jobs/a%20b", "/api/workers/x%00y/shutdown", "/", "/queues/q", "/queues/q/jobs/known");
    await fc.assert(
      fc.asyncProperty(path, fc.constantFrom("GET", "POST", "DELETE"), text, async (p, method, body) => {
        const before = await dump(prefix);
        const res = await app.request(p, { method, headers, body: method === "GET" ? undefined : body });
        expect([p, method, res.status < 500]).toEqual([p, method, true]);
        if (res.status >= 400) {
          if (res.headers.get("content-type")?.includes("json")) expect(typeof (await res.json()).error).toBe("string");
          expect(await dump(prefix)).toBe(before);
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
    await q.close();
    await app.close();
  });
});
