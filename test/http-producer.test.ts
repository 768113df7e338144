/**
 * The fetch-only producer (`sluice/http`) against the real admin app served on a local port: in
 * this process, under Deno with network permission only, and against examples/admin.ts served by
 * each runtime adapter (Bun.serve, Deno.serve, @hono/node-server).
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type AdminApp, createAdminApp } from "../admin/app.tsx";
import { serveAdmin } from "../adapters/bun.ts";
import { HttpProducer, HttpProducerError } from "../http/producer.ts";
import { Queue } from "../src/queue.ts";
import { Worker } from "../src/worker.ts";
import { deferred } from "./helpers.ts";
import { BIN, redisUrl, ROOT, RUNTIMES, spawnTs, uniquePrefix, waitFor } from "./harness.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const TOKEN = "edge-token-abcdef0123456789";
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
});

async function served(auth: Parameters<typeof createAdminApp>[0]["auth"] = { token: TOKEN }) {
  const prefix = uniquePrefix("http");
  const app: AdminApp = createAdminApp({ redis: redisUrl(), prefix, queues: ["edge"], auth });
  const server = await serveAdmin(app, { port: 0 });
  const queue = new Queue("edge", { redis: redisUrl(), prefix });
  closers.push(() => app.close(), () => server.close(), () => queue.close());
  return { prefix, server, queue };
}

describe("HttpProducer", () => {
  test("enqueues, reads, counts, cancels and aborts through the admin API, while a real worker runs the jobs", async () => {
    const { prefix, server, queue } = await served();
    const producer = new HttpProducer({ baseUrl: server.url + "/", token: TOKEN });
    const job = await producer.enqueue("edge", "greet", { name: "Ada" }, { jobId: "greet-ada", attempts: 2 });
    expect(job).toEqual({ id: "greet-ada", queue: "edge", state: "waiting", duplicate: false });
    expect((await producer.enqueue("edge", "greet", { name: "Ada" }, { jobId: "greet-ada" })).duplicate).toBe(true);
    const runAt = new Date(Date.now() + 3_600_000);
    const later = await producer.enqueue("edge", "greet", { name: "Grace" }, { runAt });
    expect(later.state).toBe("delayed");
    expect((await queue.getJob(later.id))?.runAt).toBe(runAt.getTime());
    const many = await producer.enqueueMany("edge", [{ task: "greet", data: { name: "Linus" } }, { task: "hold" }]);
    expect(many.map((j) => j.state)).toEqual(["waiting", "waiting"]);
    expect(await producer.counts("edge")).toEqual({ waiting: 3, active: 0, delayed: 1, completed: 0, failed: 0, cancelled: 0, aborted: 0 });

    const held = deferred();
    const w = new Worker({
      redis: redisUrl(),
      prefix,
      queues: ["edge"],
      tasks: {
        greet: (d: { name: string }) => `hello ${d.name}`,
        hold: async (_d, ctx) => {
          held.resolve();
          await new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason), { once: true }));
        },
      },
    });
    closers.push(() => (w.phase === "stopped" ? Promise.resolve() : w.abandon()));
    const run = w.run();
    await held.promise;
    await waitFor(async () => (await producer.getJob("edge", "greet-ada"))?.state === "completed", "the job to complete");
    expect(await producer.getJob("edge", "greet-ada")).toMatchObject({ id: "greet-ada", name: "greet", state: "completed", result: "hello Ada", data: { name: "Ada" }, attempt: 1, maxAttempts: 2 });

    expect(await producer.cancel("edge", later.id)).toEqual({ id: later.id, outcome: "cancelled", previousState: "delayed" });
    expect(await producer.cancel("edge", many[1]!.id)).toEqual({ id: many[1]!.id, outcome: "active", previousState: "active" });
    expect(await producer.cancel("edge", many[1]!.id, { abort: true })).toEqual({ id: many[1]!.id, outcome: "abort-requested", previousState: "active" });
    await waitFor(async () => (await producer.getJob("edge", many[1]!.id))?.state === "aborted", "the held job to end aborted");
    expect(await producer.cancel("edge", "no-such-job")).toEqual({ id: "no-such-job", outcome: "missing" });
    expect(await producer.getJob("edge", "no-such-job")).toBeNull();
    await w.stop();
    await run;
  });

  test("refusals come back as HttpProducerError with the status and the refused fields", async () => {
    const { server, queue } = await served();
    const producer = new HttpProducer({ baseUrl: server.url, token: TOKEN });
    const bad = await producer.enqueue("edge", "t", null, { attempts: 0 }).catch((e) => e);
    expect(HttpProducerError.is(bad)).toBe(true);
    expect(bad.status).toBe(400);
    expect(bad.issues).toEqual([{ field: "attempts", value: 0, message: "must be >= 1" }]);
    const unknown = await producer.enqueue("edge", "t", null, { retries: 2 } as never).catch((e) => e);
    expect(unknown.issues[0].field).toBe("retries");
    const wrongQueue = await producer.getJob("elsewhere", "x").catch((e) => e);
    expect(wrongQueue).toMatchObject({ name: "HttpProducerError", status: 404 });
    const denied = await new HttpProducer({ baseUrl: server.url, token: "wrong" }).enqueue("edge", "t").catch((e) => e);
    expect(denied).toMatchObject({ name: "HttpProducerError", status: 401 });
    const down = await new HttpProducer({ baseUrl: "http://127.0.0.1:1", token: TOKEN, timeout: 2000 }).counts("edge").catch((e) => e);
    expect(down).toMatchObject({ name: "HttpProducerError", status: 0 });
    expect((await queue.counts()).waiting).toBe(0);
    expect(() => new HttpProducer({ baseUrl: "not a url" })).toThrow(/baseUrl/);
    expect(() => new HttpProducer({ baseUrl: "ftp://x" })).toThrow(/baseUrl/);
  });

  test("basic credentials (UTF-8 included) and a custom fetch are used as given", async () => {
    const { server, queue } = await served({ username: "edge", password: "pässwörd" });
    const seen: string[] = [];
    const producer = new HttpProducer({
      baseUrl: server.url,
      basic: { username: "edge", password: "pässwörd" },
      fetch: (req) => {
        seen.push(`${req.method} ${new URL(req.url).pathname}`);
        return fetch(req);
      },
    });
    const job = await producer.enqueue("edge", "t", [1, 2, 3]);
    expect((await queue.getJob(job.id))?.data).toEqual([1, 2, 3]);
    expect(seen).toEqual(["POST /api/queues/edge/jobs"]);
    const wrong = new HttpProducer({ baseUrl: server.url, basic: { username: "edge", password: "passwort" } });
    expect(await wrong.counts("edge").catch((e) => e.status)).toBe(401);
  });

  test("its source uses only web-standard APIs and imports nothing at run time", () => {
    const src = readFileSync(join(ROOT, "http/producer.ts"), "utf8");
    const imports = [...src.matchAll(/^import\s+(type\s+)?[^;]*?from\s+"([^"]+)"/gm)];
    expect(imports.length).toBeGreaterThan(0);
    for (const m of imports) expect(m[1]).toBe("type ");
    const code = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    for (const banned of ["process.", "Bun.", "Deno.", "Buffer", "require(", "node:", "ioredis"]) expect(code).not.toContain(banned);
  });

  test("runs under Deno with network access to the admin app and no other permission", async () => {
    const { server, queue } = await served();
    const proc = spawn(join(BIN, "deno"), ["run", "--no-prompt", `--allow-net=127.0.0.1:${server.port}`, "test/fixtures/edge-producer.ts", server.url, TOKEN, "edge"], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (err += d));
    const code = await new Promise((r) => proc.once("exit", r));
    expect({ code, err: code === 0 ? "" : err }).toEqual({ code: 0, err: "" });
    const r = JSON.parse(out.trim().split("\n").pop()!);
    expect(r.now).toMatchObject({ queue: "edge", state: "waiting", duplicate: false });
    expect(r.later.state).toBe("delayed");
    expect(r.read).toMatchObject({ id: r.now.id, name: "edge-task", data: { from: "edge" }, state: "waiting" });
    expect(r.counts).toMatchObject({ waiting: 1, delayed: 1 });
    expect(r.cancelled).toEqual({ id: r.later.id, outcome: "cancelled", previousState: "delayed" });
    expect((await queue.getJob(r.now.id))?.state).toBe("waiting");
    expect((await queue.getJob(r.later.id))?.state).toBe("cancelled");
  });
});

describe("examples/admin.ts under each runtime", () => {
  for (const runtime of RUNTIMES) {
    test(`${runtime} serves the admin app through its adapter, and the producer talks to it`, async () => {
      const prefix = uniquePrefix("ex");
      const p = spawnTs(runtime, "examples/admin.ts", [], {
        REDIS_URL: redisUrl(),
        SLUICE_PREFIX: prefix,
        SLUICE_QUEUES: "default",
        SLUICE_ADMIN_TOKEN: TOKEN,
        SLUICE_ADMIN_PORT: "0",
      });
      closers.push(async () => {
        if (p.proc.exitCode === null) p.kill("SIGKILL");
      });
      const line = await p.line(/\[admin\] listening on/, 60_000);
      const url = /(http:\/\/\S+)/.exec(line)![1]!;
      expect(line).toContain("auth required");
      const producer = new HttpProducer({ baseUrl: url, token: TOKEN });
      const job = await producer.enqueue("default", "greet", { name: runtime });
      expect((await producer.getJob("default", job.id))?.data).toEqual({ name: runtime });
      expect((await producer.counts("default")).waiting).toBe(1);
      const page = await fetch(url + "/", { redirect: "manual" });
      expect(page.status).toBe(303);
      expect((await fetch(url + "/api/queues")).status).toBe(401);
      p.kill("SIGTERM");
      expect(await p.exited).toBe(0);
      expect(p.stdout()).toContain("[admin] stopped");
      const q = new Queue("default", { redis: redisUrl(), prefix });
      closers.push(() => q.close());
      expect((await q.getJob(job.id))?.state).toBe("waiting");
    });
  }

  test("the example refuses to bind a public address without auth", async () => {
    const p = spawnTs("bun", "examples/admin.ts", [], { REDIS_URL: redisUrl(), SLUICE_ADMIN_HOST: "0.0.0.0", SLUICE_ADMIN_PORT: "0", SLUICE_ADMIN_TOKEN: "" });
    closers.push(async () => {
      if (p.proc.exitCode === null) p.kill("SIGKILL");
    });
    expect(await p.exited).not.toBe(0);
    expect(p.stderr()).toContain("Refusing to serve the admin app");
    expect(p.stdout()).not.toContain("listening");
  });
});
