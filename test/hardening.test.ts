/**
 * Each input the hardening review found harmful, one test each: refused before anything is written,
 * with an error naming the field, or handled so it harms nobody.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect as tcp } from "node:net";
import { createAdminApp } from "../admin/app.tsx";
import { hostIsLoopback } from "../admin/auth.ts";
import { serveAdmin } from "../adapters/bun.ts";
import { type JobContext, Queue, ValidationError, Worker } from "../mod.ts";
import { setLongTimeout } from "../src/timers.ts";
import { waitFor } from "./harness.ts";
import { deferred, thrown, useScope } from "./helpers.ts";

setDefaultTimeout(30_000);
const scope = useScope();

const TOKEN = "hardening-token-0123456789";
const BEARER = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

async function refused(fn: () => unknown, field: string): Promise<ValidationError> {
  const e = await thrown(fn);
  expect(ValidationError.is(e)).toBe(true);
  expect((e as ValidationError).issues.map((i) => i.field)).toContain(field);
  return e as ValidationError;
}

describe("enqueue refuses what would break later, and writes nothing", () => {
  test("data JSON cannot carry, data nested 10,000 levels, far-future times, 400-digit durations, lone surrogates, odd option objects", async () => {
    const s = scope();
    const q = s.queue();
    const redis = s.redis();
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    await refused(() => q.enqueue("t", () => 1), "data");
    await refused(() => q.enqueue("t", Symbol("s")), "data");
    await refused(() => q.enqueue("t", { toJSON: () => undefined }), "data");
    await refused(() => q.enqueue("t", { n: 10n }), "data");
    await refused(() => q.enqueue("t", deep), "data");
    await refused(() => q.enqueue("t", 1, { runAt: 1e16 }), "runAt");
    await refused(() => q.enqueue("t", 1, { runAt: new Date(NaN) }), "runAt");
    await refused(() => q.enqueue("t", 1, { delay: 1e308 }), "delay");
    await refused(() => q.enqueue("t", 1, { delay: "9".repeat(400) }), "delay");
    await refused(() => q.enqueue("t", 1, { jobId: "sur-\ud800" }), "jobId");
    await refused(() => q.enqueue("sur-\udbff", 1), "task");
    await refused(() => q.enqueue("t", 1, [] as never), "options");
    await refused(() => q.enqueue("t", 1, new Date() as never), "options");
    await refused(() => q.enqueue("t", 1, new Map([["attempts", 2]]) as never), "options");
    await refused(() => q.enqueue("t", 1, JSON.parse('{"__proto__":{"attempts":0}}')), "__proto__");
    await refused(() => q.enqueue("t", 1, { constructor: 1 } as never), "constructor");
    await refused(() => q.enqueueMany([{ task: "t" }, , { task: "t" }] as never), "1");
    await refused(() => q.cancel("x", null as never), "options");
    await refused(() => q.getJob(Symbol() as never), "id");
    await refused(() => q.listJobs("failed", null as never), "options");
    await refused(() => q.listJobs("waiting", { cursor: "99999999999999999999-0" }), "cursor");
    expect(await redis.keys(`${s.prefix}:*`)).toEqual([]);
    for (const [opts, field] of [[{ eventsMaxLen: "x" }, "eventsMaxLen"], [{ eventsMaxLen: 1.5 }, "eventsMaxLen"], [{ eventsMaxLen: Infinity }, "eventsMaxLen"], [{ redis: 5 }, "redis"], [{ prefix: "a{b}" }, "prefix"]] as const) {
      await refused(() => new Queue("q", opts as never), field);
    }
  });
});

describe("worker options", () => {
  test("ids, loggers, identities, signal flags and intervals a timer cannot hold are refused, naming the field", async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ id: "" }, "id"], [{ id: "a b" }, "id"], [{ id: "x{y}" }, "id"], [{ id: "nul\u0000" }, "id"], [{ id: "x".repeat(10_000) }, "id"],
      [{ logger: 5 }, "logger"], [{ identity: "me" }, "identity"], [{ identity: { pid: -1 } }, "identity"], [{ installSignalHandlers: "yes" }, "installSignalHandlers"],
      [{ promoteInterval: "30 days" }, "promoteInterval"], [{ abortPollInterval: "25 days" }, "abortPollInterval"], [{ blockTimeout: "1e400" }, "blockTimeout"],
      [{ stalledTimeout: 0 }, "stalledTimeout"], [{ prefix: "{}" }, "prefix"], [{ timeout: "9".repeat(400) }, "timeout"],
    ];
    for (const [opts, field] of bad) await refused(() => new Worker({ tasks: {}, ...opts } as never), field);
  });

  test("a job timeout of 25 days and a graceful timeout of 30 days wait that long instead of firing at once", async () => {
    const s = scope();
    const q = s.queue();
    const release = deferred();
    const seen: { abortReason: string | undefined }[] = [];
    const w = s.worker({
      timeout: "25 days",
      shutdownGracefulTimeout: "30 days",
      tasks: {
        async slow(_d: unknown, ctx: JobContext) {
          await release.promise;
          seen.push({ abortReason: ctx.abortReason });
          return "done";
        },
      },
    });
    const run = w.run();
    const job = await q.enqueue("slow");
    await waitFor(() => w.activeJobs.length === 1, "the job to start");
    void w.stop(); // graceful: must not escalate to a hard stop
    await waitFor(() => w.phase === "draining", "draining");
    release.resolve();
    const summary = await run;
    expect(seen).toEqual([{ abortReason: undefined }]);
    expect(summary).toMatchObject({ completed: 1, interrupted: 0 });
    expect((await q.getJob(job.id))!.state).toBe("completed");
  });

  test("setLongTimeout fires a delay longer than a timer holds in steps, and never early", async () => {
    const fired: number[] = [];
    const t = setLongTimeout(() => fired.push(1), 30 * 86_400_000);
    await new Promise((r) => setTimeout(r, 50));
    expect(fired).toEqual([]);
    t.clear();
    const short = deferred();
    setLongTimeout(() => short.resolve(), 5);
    await short.promise;
  });
});

describe("the admin app", () => {
  test("a 10,000-level body, a cursor beyond 64 bits and a null body are 400s; a missing job's cancel is a 404 with an error; long values are cut", async () => {
    const s = scope();
    const app = createAdminApp({ redis: s.url, prefix: s.prefix, queues: ["q"], auth: { token: TOKEN } });
    try {
      const deep = '{"task":"t","data":' + "[".repeat(10_000) + "]".repeat(10_000) + "}";
      const r1 = await app.request("/api/queues/q/jobs", { method: "POST", headers: BEARER, body: deep });
      expect(r1.status).toBe(400);
      expect((await r1.json()).issues[0].message).toContain("nest");
      const r2 = await app.request("/api/queues/q/jobs?state=waiting&cursor=99999999999999999999-0", { headers: BEARER });
      expect(r2.status).toBe(400);
      for (const body of ["null", "[]"]) {
        expect((await app.request("/api/queues/q/jobs/x/cancel", { method: "POST", headers: BEARER, body })).status).toBe(400);
      }
      const r3 = await app.request("/api/queues/q/jobs/nope/cancel", { method: "POST", headers: BEARER });
      expect(r3.status).toBe(404);
      expect(typeof (await r3.json()).error).toBe("string");
      const batch = JSON.stringify({ jobs: Array.from({ length: 1001 }, () => ({ task: "t" })) });
      const r4 = await app.request("/api/queues/q/jobs", { method: "POST", headers: BEARER, body: batch });
      expect(r4.status).toBe(400);
      const text = await r4.text();
      expect(text.length).toBeLessThan(2000);
      // a job whose stored time no Date can hold (written by hand) still shows
      const redis = s.redis();
      const q = s.queue("q");
      const job = await q.enqueue("t", 1, { delay: "1h" });
      await redis.hset(q.keys.job(job.id), "runAt", "1e300", "finished", "-1e300");
      expect((await app.request(`/queues/q/jobs/${job.id}`, { headers: BEARER })).status).toBe(200);
      expect((await app.request(`/queues/q?state=delayed`, { headers: BEARER })).status).toBe(200);
    } finally {
      await app.close();
    }
  });

  test("the API answers CORS preflights for configured origins only, so a page there can enqueue with a bearer token", async () => {
    const s = scope();
    const app = createAdminApp({ redis: s.url, prefix: s.prefix, queues: ["q"], auth: { token: TOKEN }, corsOrigins: ["https://app.example.com"] });
    try {
      const preflight = (origin: string) => app.request("/api/queues/q/jobs", {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
      });
      const ok = await preflight("https://app.example.com");
      expect(ok.status).toBeLessThan(300);
      expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      expect(ok.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
      const other = await preflight("https://evil.example");
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
      const post = await app.request("/api/queues/q/jobs", { method: "POST", headers: { ...BEARER, origin: "https://app.example.com" }, body: JSON.stringify({ task: "t" }) });
      expect(post.status).toBe(201);
      expect(post.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
      expect(() => createAdminApp({ redis: s.url, auth: { token: TOKEN }, corsOrigins: ["app.example.com/path"] })).toThrow("corsOrigins");
    } finally {
      await app.close();
    }
  });

  test("loopback hosts are parsed strictly", () => {
    for (const h of ["localhost", "localhost:8080", "127.0.0.1:1", "[::1]", "[::1]:80"]) expect([h, hostIsLoopback(h)]).toEqual([h, true]);
    for (const h of ["[::1].evil.com", "[::1]x", "localhost.evil.com", "127.0.0.1.evil.com", "evil.com#localhost", "", "a b"]) expect([h, hostIsLoopback(h)]).toEqual([h, false]);
  });

  test("served by Bun, a request without a usable Host header is a 400, not a 500", async () => {
    const server = await serveAdmin({ fetch: (req: Request) => new Response(new URL(req.url).host) } as never, { port: 0 });
    try {
      const send = (raw: string) => new Promise<string>((resolve) => {
        let data = "";
        const c = tcp(server.port, "127.0.0.1", () => c.write(raw));
        c.on("data", (d) => (data += d));
        c.on("close", () => resolve(data));
        c.on("end", () => resolve(data));
      });
      expect((await send("GET / HTTP/1.0\r\n\r\n")).split("\r\n")[0]).toContain("400");
      expect((await send("GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n")).split("\r\n")[0]).toContain("400");
      expect((await send("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).split("\r\n")[0]).toContain("200");
    } finally {
      await server.close();
    }
  });
});
