/**
 * What operators use: search and filters, bulk actions (library, JSON API, CLI), job logs,
 * per-minute throughput, and the Prometheus metrics (counters, abort reasons, histograms).
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createAdminApp } from "../admin/app.tsx";
import type { Io } from "../cli/io.ts";
import { main } from "../cli/main.ts";
import { Queue } from "../src/queue.ts";
import { Worker } from "../src/worker.ts";
import { redisUrl, ROOT, uniquePrefix, waitFor } from "./harness.ts";

setDefaultTimeout(60_000);

const TOKEN = "operators-token-0123456789";
const BEARER = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
});

function make() {
  const prefix = uniquePrefix("ops");
  const queue = new Queue("q", { redis: redisUrl(), prefix });
  const app = createAdminApp({ redis: redisUrl(), prefix, queues: ["q"], auth: { token: TOKEN } });
  closers.push(() => queue.close(), () => app.close());
  return { prefix, queue, app };
}

async function run(prefix: string, tasks: ConstructorParameters<typeof Worker>[0]["tasks"]) {
  const w = new Worker({ redis: redisUrl(), prefix, queues: ["q"], wait: false, concurrency: 20, tasks });
  return await w.run();
}

describe("search and filters", () => {
  test("by task and by text in the id, the data or the error, within a state, paginated; lists carry a data preview", async () => {
    const { prefix, queue, app } = make();
    await queue.enqueueMany([
      ...Array.from({ length: 30 }, (_, i) => ({ task: "email", data: { to: `user${i}@example.com` }, options: { attempts: 1 } })),
      ...Array.from({ length: 30 }, (_, i) => ({ task: "resize", data: { file: `img-${i}.png` } })),
    ]);
    await queue.enqueue("email", { to: "ada@lovelace.dev" }, { jobId: "special-ada" });
    const emails = await queue.listJobs("waiting", { task: "email", limit: 20 });
    expect(emails.jobs.length).toBe(20);
    expect(emails.jobs.every((j) => j.name === "email")).toBe(true);
    const rest = await queue.listJobs("waiting", { task: "email", limit: 20, cursor: emails.nextCursor! });
    expect(rest.jobs.length).toBe(11);
    expect(new Set([...emails.jobs, ...rest.jobs].map((j) => j.id)).size).toBe(31);
    expect((await queue.listJobs("waiting", { search: "LOVELACE" })).jobs.map((j) => j.id)).toEqual(["special-ada"]);
    expect((await queue.listJobs("waiting", { search: "special-" })).jobs.map((j) => j.id)).toEqual(["special-ada"]);
    expect((await queue.listJobs("waiting", { search: "img-7.png" })).jobs[0]?.dataPreview).toBe('{"file":"img-7.png"}');
    // in a finished state, by error text, through the API
    await run(prefix, { email: (d: { to: string }) => { if (d.to.startsWith("user1")) throw new Error(`mailbox full: ${d.to}`); }, resize: () => null });
    const res = await app.request("/api/queues/q/jobs?state=failed&search=mailbox%20full", { headers: BEARER });
    const body = await res.json() as { jobs: { id: string; error: { message: string } }[] };
    expect(body.jobs.length).toBe(11); // user1, user10…user19
    expect(body.jobs.every((j) => j.error.message.startsWith("mailbox full: user1"))).toBe(true);
    const bad = await app.request("/api/queues/q/jobs?search=" + "x".repeat(201), { headers: BEARER });
    expect(bad.status).toBe(400);
  });
});

describe("bulk actions", () => {
  test("retry all failed, retry selected, promote delayed, cancel all waiting (held grouped jobs too), clean finished older than an age: each reports how many it touched and changes nothing else", async () => {
    const { prefix, queue, app } = make();
    await queue.enqueueMany(Array.from({ length: 12 }, (_, i) => ({ task: "flaky", data: i, options: { attempts: 1 } })));
    await run(prefix, { flaky: (i: number) => { if (i % 2 === 0) throw new Error("even"); } });
    expect((await queue.counts()).failed).toBe(6);
    const failed = (await queue.listJobs("failed")).jobs.map((j) => j.id);
    // selected, through the API
    const sel = await app.request("/api/queues/q/bulk", { method: "POST", headers: BEARER, body: JSON.stringify({ action: "retry", ids: failed.slice(0, 2) }) });
    expect(await sel.json()).toEqual({ queue: "q", action: "retry", touched: 2 });
    expect(await queue.counts()).toMatchObject({ waiting: 2, failed: 4, completed: 6 });
    expect(await queue.retryAll()).toBe(4);
    expect(await queue.counts()).toMatchObject({ waiting: 6, failed: 0, completed: 6 });
    // delayed → promoted; waiting → cancelled (and jobs a group holds back)
    await queue.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ task: "later", data: i, options: { delay: "1h" } })));
    expect(await queue.promoteAll()).toBe(3);
    await queue.setGroupConcurrency(1);
    await queue.enqueueMany(Array.from({ length: 4 }, (_, i) => ({ task: "g", data: i, options: { group: "t" } })));
    expect((await queue.counts()).waiting).toBe(13);
    const cancelled = await app.request("/api/queues/q/bulk", { method: "POST", headers: BEARER, body: JSON.stringify({ action: "cancel" }) });
    expect(await cancelled.json()).toMatchObject({ touched: 13 });
    expect(await queue.counts()).toMatchObject({ waiting: 0, cancelled: 13, completed: 6 });
    // clean: nothing is older than an hour; everything is older than 0
    expect(await queue.clean("cancelled", "1h")).toBe(0);
    expect(await queue.clean("cancelled", 0)).toBe(13);
    expect(await queue.counts()).toMatchObject({ cancelled: 0, completed: 6 });
    // the dashboard's form is CSRF-checked: a cross-site or tokenless post is refused and touches nothing
    await queue.enqueue("t", null, { delay: "1h" });
    const login = await app.request("/login", { method: "POST", body: new URLSearchParams({ token: TOKEN, next: "/" }) });
    const cookie = login.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    const form = (headers: Record<string, string>) => app.request("http://admin.local/queues/q/bulk", { method: "POST", headers: { cookie, host: "admin.local", "content-type": "application/x-www-form-urlencoded", ...headers }, body: "action=promote" });
    expect((await form({ origin: "http://admin.local" })).status).toBe(403); // no token
    expect((await form({ origin: "https://evil.example", "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await queue.counts()).delayed).toBe(1);
    // bad input names the field
    const bad = await app.request("/api/queues/q/bulk", { method: "POST", headers: BEARER, body: JSON.stringify({ action: "clean", state: "completed" }) });
    expect([bad.status, JSON.stringify(await bad.json())]).toEqual([400, expect.stringContaining("olderThan")]);
  });

  test("the CLI: sluice bulk <queue> retry|clean|promote|cancel prints what it touched", async () => {
    const { prefix, queue } = make();
    await queue.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ task: "t", data: i, options: { delay: "1h" } })));
    const out: string[] = [];
    const io: Io = { out: (l) => out.push(l), err: (l) => out.push(l), env: (n) => ({ REDIS_URL: redisUrl() } as Record<string, string>)[n], cwd: () => ROOT };
    expect(await main(["bulk", "q", "promote", "--prefix", prefix], io)).toBe(0);
    expect(await main(["bulk", "q", "cancel", "--prefix", prefix, "--json"], io)).toBe(0);
    expect(await main(["bulk", "q", "clean", "--state", "cancelled", "--older-than", "0", "--prefix", prefix], io)).toBe(0);
    expect(await main(["bulk", "q", "explode", "--prefix", prefix], io)).toBe(2);
    expect(out.slice(0, 3)).toEqual(["5 jobs promoted", JSON.stringify({ queue: "q", action: "cancel", touched: 5 }, null, 2), "5 jobs deleted"]);
  });
});

describe("job logs, counters and metrics", () => {
  test("ctx.log lines are kept (capped) and shown by the API and the job page", async () => {
    const { prefix, queue, app } = make();
    const job = await queue.enqueue("chatty", null);
    await run(prefix, {
      chatty: async (_d, ctx) => {
        for (let i = 0; i < 105; i++) await ctx.log(`line ${i}`);
        return "ok";
      },
    });
    const log = await queue.getJobLog(job.id);
    expect([log.length, log[0]!.message, log.at(-1)!.message, log[0]!.attempt]).toEqual([100, "line 5", "line 104", 1]);
    const api = await (await app.request(`/api/queues/q/jobs/${job.id}`, { headers: BEARER })).json() as { log: unknown[] };
    expect(api.log.length).toBe(100);
    const page = await (await app.request(`/queues/q/jobs/${job.id}`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(page).toContain("line 104");
  });

  test("5,000 jobs finished in under a second show as 5,000 in the counters, the per-minute throughput and /metrics, with duration and wait histograms and aborts by reason", async () => {
    const { prefix, queue, app } = make();
    await queue.enqueueMany(Array.from({ length: 5000 }, (_, i) => ({ task: "noop", data: i })));
    const summary = await run(prefix, { noop: () => null });
    expect(summary.completed).toBe(5000);
    expect((await queue.stats()).completed).toBe(5000);
    const minutes = await queue.throughput(5);
    expect(minutes.reduce((s, m) => s + m.completed, 0)).toBe(5000);
    // an aborted job (user), counted by reason
    const j = await queue.enqueue("wait", null);
    const w = new Worker({ redis: redisUrl(), prefix, queues: ["q"], tasks: { wait: (_d, ctx) => new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason))) } });
    const running = w.run();
    await waitFor(async () => (await queue.getJob(j.id))?.state === "active", "the job to start");
    await queue.cancel(j.id, { abort: true });
    await waitFor(async () => (await queue.getJob(j.id))?.state === "aborted", "the job to be aborted");
    await w.stop();
    await running;
    const text = await (await app.request("/metrics", { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(text).toContain('sluice_jobs_completed_total{queue="q"} 5000');
    expect(text).toContain('sluice_job_aborts_total{queue="q",reason="user"} 1');
    expect(text).toContain("# TYPE sluice_job_duration_seconds histogram");
    expect(text).toContain('sluice_job_duration_seconds_bucket{queue="q",le="+Inf"} 5001');
    expect(text).toContain('sluice_job_wait_seconds_count{queue="q"} 5001');
    expect(text).toMatch(/sluice_job_duration_seconds_sum\{queue="q"\} \d/);
    // buckets are cumulative
    const buckets = [...text.matchAll(/sluice_job_duration_seconds_bucket\{queue="q",le="[^"]+"\} (\d+)/g)].map((m) => Number(m[1]));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    // the queue page draws the last hour from the same counters
    const page = await (await app.request("/queues/q", { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(page).toContain("5000 completed, 1 failed or aborted");
  });
});

describe("tracing", () => {
  test("with an OpenTelemetry SDK: a span for the enqueue and one per attempt, its child through the trace context stored with the job, with outcome and abort reason", async () => {
    const api = await import("@opentelemetry/api");
    const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
    const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.trace.setGlobalTracerProvider(provider);
    api.propagation.setGlobalPropagator(new (await import("@opentelemetry/core")).W3CTraceContextPropagator());
    try {
      const { prefix, queue } = make();
      const ok = await queue.enqueue("work", { n: 1 });
      const bad = await queue.enqueue("work", { n: 2 }, { attempts: 2, backoff: 0 });
      await run(prefix, { work: (d: { n: number }, ctx) => { if (d.n === 2 && ctx.job.attempt === 1) throw new Error("first try fails"); return d.n; } });
      const spans = exporter.getFinishedSpans();
      const enqueues = spans.filter((s) => s.name === "enqueue work");
      const attempts = spans.filter((s) => s.name === "process work");
      expect([enqueues.length, attempts.length]).toEqual([2, 3]);
      for (const a of attempts) {
        const id = a.attributes["messaging.message.id"];
        const parent = enqueues[id === ok.id ? 0 : 1]!;
        expect([a.spanContext().traceId, a.parentSpanContext?.spanId]).toEqual([parent.spanContext().traceId, parent.spanContext().spanId]);
      }
      const outcomes = attempts.filter((a) => a.attributes["messaging.message.id"] === bad.id).map((a) => [a.attributes["sluice.attempt"], a.attributes["sluice.outcome"]]);
      expect(outcomes.sort()).toEqual([[1, "failed"], [2, "completed"]]);
    } finally {
      api.trace.disable();
      api.context.disable();
      api.propagation.disable();
      await provider.shutdown();
    }
  });
});
