/**
 * The admin app's JSON API, auth and CSRF checks, against real Redis and real workers (in this
 * process, and worker processes under Bun, Deno and Node for remote shutdown).
 */
import { afterEach, describe, expect, setDefaultTimeout, setSystemTime, test } from "bun:test";
import { type AdminApp, createAdminApp } from "../admin/app.tsx";
import type { AdminOptions } from "../admin/context.ts";
import { serveAdmin } from "../adapters/bun.ts";
import { Queue } from "../src/queue.ts";
import { deferred } from "./helpers.ts";
import { client, redisUrl, uniquePrefix, waitFor } from "./harness.ts";
import { jobHash, spawnWorker } from "./procs.ts";
import { Worker, type WorkerOptions } from "../src/worker.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const TOKEN = "t0ken-for-tests-0123456789";
const BEARER = { authorization: `Bearer ${TOKEN}` };
const JSON_BEARER = { ...BEARER, "content-type": "application/json" };

const opened: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close().catch(() => {});
});

function make(options: Partial<AdminOptions> = {}): { app: AdminApp; prefix: string; queue(name?: string): Queue } {
  const prefix = options.prefix ?? uniquePrefix("adm");
  const app = createAdminApp({ redis: redisUrl(), prefix, queues: ["q", "other"], auth: { token: TOKEN }, ...options });
  opened.push(() => app.close());
  return {
    app,
    prefix,
    queue(name = "q") {
      const q = new Queue(name, { redis: redisUrl(), prefix });
      opened.push(() => q.close());
      return q;
    },
  };
}

function worker(prefix: string, options: Partial<WorkerOptions> & Pick<WorkerOptions, "tasks">): Worker {
  const w = new Worker({ redis: redisUrl(), prefix, queues: ["q"], heartbeatInterval: 100, stalledTimeout: 2000, ...options });
  opened.push(() => (w.phase === "stopped" ? Promise.resolve() : w.abandon()));
  return w;
}

async function json(res: Response): Promise<any> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON, got ${res.status}: ${text.slice(0, 300)}`);
  }
}

function cookiesOf(res: Response): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(";");
    const i = pair!.indexOf("=");
    out[pair!.slice(0, i)] = decodeURIComponent(pair!.slice(i + 1));
  }
  return out;
}

const cookieHeader = (c: Record<string, string>) => Object.entries(c).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("; ");

/** Signs in through the form; returns the cookies (session) and a page's CSRF token. */
async function signIn(app: AdminApp, form: Record<string, string>): Promise<{ cookies: Record<string, string>; csrf: string }> {
  const res = await app.request("/login", { method: "POST", body: new URLSearchParams({ ...form, next: "/queues/q" }) });
  expect(res.status).toBe(303);
  const cookies = cookiesOf(res);
  expect(cookies.sluice_session).toMatch(/^\d+\.[\w-]{43}$/);
  const page = await app.request("/queues/q", { headers: { cookie: cookieHeader(cookies) } });
  expect(page.status).toBe(200);
  Object.assign(cookies, cookiesOf(page));
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
  expect(csrf).toBeTruthy();
  return { cookies, csrf: csrf! };
}

describe("auth", () => {
  test("the API, metrics and events refuse requests without valid credentials", async () => {
    const { app, queue } = make();
    await queue().enqueue("secret-task", { card: "4111" });
    for (const path of ["/api/queues", "/api/queues/q/jobs", "/api/workers", "/metrics", "/api/events"]) {
      for (const headers of [{} as Record<string, string>, { authorization: "Bearer wrong" }, { authorization: `Bearer ${TOKEN}x` }, { authorization: "Basic " + btoa(`admin:${TOKEN}`) }, { authorization: "Token " + TOKEN }]) {
        const res = await app.request(path, { headers });
        expect(res.status).toBe(401);
        expect(res.headers.get("www-authenticate")).toContain("Bearer");
        const body = await res.text();
        expect(body).not.toContain("secret-task");
        expect(body).not.toContain("4111");
      }
    }
    const ok = await app.request("/api/queues/q/jobs", { headers: BEARER });
    expect(ok.status).toBe(200);
    expect((await json(ok)).jobs[0].name).toBe("secret-task");
  });

  test("dashboard pages redirect to the sign-in page and show no job data", async () => {
    const { app, queue } = make();
    const { id } = await queue().enqueue("secret-task", { card: "4111" });
    const res = await app.request(`/queues/q/jobs/${id}`);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/login?next=${encodeURIComponent(`/queues/q/jobs/${id}`)}`);
    expect(await res.text()).not.toContain("4111");
    const login = await app.request("/login");
    expect(login.status).toBe(200);
    const html = await login.text();
    expect(html).toContain('name="token"');
    expect(html).not.toContain('name="password"');
    const post = await app.request("/queues/q/jobs/x/cancel", { method: "POST", body: new URLSearchParams({}) });
    expect(post.status).toBe(401);
  });

  test("basic auth: the right user and password pass, anything else is refused", async () => {
    const { app } = make({ auth: { username: "ops", password: "pä55:word" } });
    const basic = (u: string, p: string) => ({ authorization: "Basic " + btoa(String.fromCharCode(...new TextEncoder().encode(`${u}:${p}`))) });
    expect((await app.request("/api/queues", { headers: basic("ops", "pä55:word") })).status).toBe(200);
    for (const h of [basic("ops", "pä55:wor"), basic("Ops", "pä55:word"), basic("ops", ""), { authorization: "Basic !!!" }, { authorization: "Basic " + btoa("no-colon") }, BEARER]) {
      const res = await app.request("/api/queues", { headers: h });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toContain("Basic");
    }
  });

  test("signing in through the form sets a session cookie that a forged or expired one cannot replace", async () => {
    // an hour-long session, so every check before the expiry below is well inside it
    const SESSION_MS = 3_600_000;
    const { app } = make({ auth: { username: "ops", password: "secret-pass" }, sessionMs: SESSION_MS });
    const bad = await app.request("/login", { method: "POST", body: new URLSearchParams({ username: "ops", password: "nope" }) });
    expect(bad.status).toBe(401);
    expect(bad.headers.getSetCookie().some((c) => c.startsWith("sluice_session="))).toBe(false);
    const { cookies } = await signIn(app, { username: "ops", password: "secret-pass" });
    const set = (await app.request("/login", { method: "POST", body: new URLSearchParams({ username: "ops", password: "secret-pass" }) })).headers.getSetCookie().join();
    expect(set).toContain("HttpOnly");
    expect(set).toContain("SameSite=Strict");
    expect((await app.request("/api/queues", { headers: { cookie: cookieHeader(cookies) } })).status).toBe(200);
    const [exp, mac] = cookies.sluice_session!.split(".");
    for (const forged of [`${Number(exp) + 100000}.${mac}`, `${exp}.${"A".repeat(43)}`, "garbage"]) {
      expect((await app.request("/api/queues", { headers: { cookie: `sluice_session=${forged}` } })).status).toBe(401);
    }
    // the same cookie once its session is over (the clock moved past its expiry)
    expect(Number(exp)).toBeLessThanOrEqual(Date.now() + SESSION_MS);
    setSystemTime(new Date(Number(exp) + 1));
    try {
      expect((await app.request("/api/queues", { headers: { cookie: cookieHeader(cookies) } })).status).toBe(401);
    } finally {
      setSystemTime();
    }
    // another app with other credentials does not accept this app's sessions
    const other = make({ auth: { username: "ops", password: "other-pass" } });
    const { cookies: c2 } = await signIn(other.app, { username: "ops", password: "other-pass" });
    expect((await app.request("/api/queues", { headers: { cookie: cookieHeader(c2) } })).status).toBe(401);
  });

  test("without auth the app answers loopback hosts only, and refuses a non-loopback bind", async () => {
    const { app } = make({ auth: "none-on-loopback" });
    expect((await app.request("http://127.0.0.1:8080/api/queues")).status).toBe(200);
    expect((await app.request("http://localhost/api/queues")).status).toBe(200);
    expect((await app.request("http://[::1]:9/api/queues")).status).toBe(200);
    // a DNS-rebinding page reaches the server under its own name
    const rebound = await app.request("http://127.0.0.1:8080/api/queues", { headers: { host: "attacker.example:8080" } });
    expect(rebound.status).toBe(403);
    expect(() => serveAdmin(app, { hostname: "0.0.0.0", port: 0 })).toThrow(/none-on-loopback/);
    await expect(serveAdmin(app, { hostname: "192.168.1.10", port: 0 })).rejects.toThrow(/Refusing to serve/);
    const local = await serveAdmin(app, { hostname: "127.0.0.1", port: 0 });
    opened.push(() => local.close());
    expect((await fetch(`${local.url}/api/queues`)).status).toBe(200);
    // with auth, any address may be bound
    const authed = make();
    const wide = await serveAdmin(authed.app, { hostname: "0.0.0.0", port: 0 });
    opened.push(() => wide.close());
    expect((await fetch(`http://127.0.0.1:${wide.port}/api/queues`)).status).toBe(401);
    expect((await fetch(`http://127.0.0.1:${wide.port}/api/queues`, { headers: BEARER })).status).toBe(200);
  });

  test("createAdminApp needs an explicit auth option", () => {
    const base = { redis: redisUrl(), queues: ["q"] };
    expect(() => createAdminApp({ ...base } as never)).toThrow(/'auth'/);
    expect(() => createAdminApp({ ...base, auth: "none" } as never)).toThrow(/'auth'/);
    expect(() => createAdminApp({ ...base, auth: { token: "" } })).toThrow(/auth.token/);
    expect(() => createAdminApp({ ...base, auth: { username: "a:b", password: "x" } })).toThrow(/auth.username/);
    expect(() => createAdminApp({ ...base, auth: { token: "x" }, queues: ["bad name"] })).toThrow(/queues.0/);
  });
});

describe("CSRF", () => {
  test("a signed-in form post needs the page's token; a cross-site one is refused even with it", async () => {
    const { app, queue } = make();
    const q = queue();
    const { cookies, csrf } = await signIn(app, { token: TOKEN });
    await q.enqueue("t", null, { jobId: "j1" });
    const post = (body: Record<string, string>, headers: Record<string, string> = {}) =>
      app.request("http://admin.local/queues/q/jobs/j1/cancel", { method: "POST", headers: { cookie: cookieHeader(cookies), host: "admin.local", ...headers }, body: new URLSearchParams(body) });
    expect((await post({})).status).toBe(403);
    expect((await post({ _csrf: "forged" })).status).toBe(403);
    expect((await post({ _csrf: csrf }, { origin: "https://evil.example" })).status).toBe(403);
    expect((await post({ _csrf: csrf }, { "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await q.getJob("j1"))?.state).toBe("waiting");
    const ok = await post({ _csrf: csrf, back: "/queues/q" }, { origin: "http://admin.local", "sec-fetch-site": "same-origin" });
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/queues/q");
    expect((await q.getJob("j1"))?.state).toBe("cancelled");
    // the outcome is shown once on the next page
    const next = await app.request("/queues/q", { headers: { cookie: cookieHeader({ ...cookies, ...cookiesOf(ok) }) } });
    expect(await next.text()).toContain("Job j1 cancelled");
  });

  test("pause and resume from the dashboard (CSRF-checked) and the JSON API; the queue page shows the state and its schedules with their next run", async () => {
    const { app, queue } = make();
    const q = queue();
    await q.upsertSchedule("nightly", { cron: "0 0 3 * * *", task: "report" });
    const { cookies, csrf } = await signIn(app, { token: TOKEN });
    const post = (path: string, body: Record<string, string>) =>
      app.request(`http://admin.local${path}`, { method: "POST", headers: { cookie: cookieHeader(cookies), host: "admin.local", origin: "http://admin.local" }, body: new URLSearchParams(body) });
    expect((await post("/queues/q/pause", {})).status).toBe(403);
    expect(await q.isPaused()).toBe(false);
    expect((await post("/queues/q/pause", { _csrf: csrf })).status).toBe(303);
    expect(await q.isPaused()).toBe(true);
    const page = await (await app.request("/queues/q", { headers: { cookie: cookieHeader(cookies) } })).text();
    expect(page).toContain(">paused<");
    expect(page).toContain('action="/queues/q/resume"');
    expect(page).toContain("<code>nightly</code>");
    expect(page).toContain("<code>0 0 3 * * *</code>");
    const info = await json(await app.request("/api/queues/q", { headers: BEARER }));
    expect(info).toMatchObject({ name: "q", paused: true, rateLimit: null, groupConcurrency: null });
    expect(await json(await app.request("/api/queues/q/resume", { method: "POST", headers: BEARER }))).toEqual({ queue: "q", paused: false });
    expect(await q.isPaused()).toBe(false);
    const listed = await json(await app.request("/api/queues/q/schedules", { headers: BEARER }));
    expect(listed.schedules).toEqual([expect.objectContaining({ id: "nightly", cron: "0 0 3 * * *", next: expect.any(Number) })]);
  });

  test("JSON requests with ambient credentials pass (a cross-site page cannot send them), simple ones do not", async () => {
    const { app, queue } = make({ auth: { username: "ops", password: "pw-12345" } });
    const q = queue();
    const basic = { authorization: "Basic " + btoa("ops:pw-12345") };
    await q.enqueue("t", null, { jobId: "a" });
    await q.enqueue("t", null, { jobId: "b" });
    const plain = await app.request("/api/queues/q/jobs/a/cancel", { method: "POST", headers: { ...basic, "content-type": "text/plain" }, body: "{}" });
    expect(plain.status).toBe(403);
    expect((await json(plain)).error).toContain("CSRF");
    const cross = await app.request("/api/queues/q/jobs/a/cancel", { method: "POST", headers: { ...basic, "content-type": "application/json", origin: "https://evil.example" }, body: "{}" });
    expect(cross.status).toBe(403);
    expect((await q.getJob("a"))?.state).toBe("waiting");
    const ok = await app.request("/api/queues/q/jobs/a/cancel", { method: "POST", headers: { ...basic, "content-type": "application/json" }, body: "{}" });
    expect(ok.status).toBe(200);
    expect((await q.getJob("a"))?.state).toBe("cancelled");
    const del = await app.request("/api/queues/q/jobs/b", { method: "DELETE", headers: basic });
    expect(del.status).toBe(200);
    // a bearer token is never sent by a browser on its own: no CSRF token needed
    const bearerApp = make();
    const q2 = bearerApp.queue();
    await q2.enqueue("t", null, { jobId: "c" });
    const form = await bearerApp.app.request("/queues/q/jobs/c/cancel", { method: "POST", headers: BEARER, body: new URLSearchParams({}) });
    expect(form.status).toBe(303);
    expect((await q2.getJob("c"))?.state).toBe("cancelled");
  });
});

describe("validation", () => {
  const cases: [string, string, RequestInit, string[]][] = [
    ["an unknown state", "/api/queues/q/jobs?state=bogus", {}, ["state"]],
    ["a limit that is not a number", "/api/queues/q/jobs?limit=abc", {}, ["limit"]],
    ["a limit out of range", "/api/queues/q/jobs?state=failed&limit=501", {}, ["limit"]],
    ["an unknown query parameter", "/api/queues/q/jobs?sate=waiting", {}, ["sate"]],
    ["a malformed cursor", "/api/queues/q/jobs?state=waiting&cursor=zzz", {}, ["cursor"]],
    ["a malformed zset cursor", "/api/queues/q/jobs?state=completed&cursor=zzz", {}, ["cursor"]],
    ["a bad queue name", "/api/queues/has%20space/jobs", {}, ["queue"]],
    ["a job id with braces", "/api/queues/q/jobs/%7Bx%7D", {}, ["id"]],
    ["a body that is not JSON", "/api/queues/q/jobs", { method: "POST", body: "{task:" }, ["(body)"]],
    ["a body without task", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify({ data: 1 }) }, ["task"]],
    ["an unknown body field", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify({ task: "t", priority: 1 }) }, ["priority"]],
    ["attempts of 0", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify({ task: "t", options: { attempts: 0 } }) }, ["attempts"]],
    ["an unknown option", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify({ task: "t", options: { retries: 3 } }) }, ["retries"]],
    ["a bad delay", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify({ task: "t", options: { delay: "soon" } }) }, ["delay"]],
    ["a runAt that is no date", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify({ task: "t", options: { runAt: "tomorrow-ish" } }) }, ["runAt"]],
    ["a bad job in a batch", "/api/queues/q/jobs", { method: "POST", body: JSON.stringify([{ task: "t" }, { task: "t", options: { attempts: -1 } }]) }, ["1.attempts"]],
    ["an empty batch", "/api/queues/q/jobs", { method: "POST", body: "[]" }, ["(body)"]],
    ["a body that is a string", "/api/queues/q/jobs", { method: "POST", body: '"job"' }, ["(body)"]],
    ["a cancel flag that is not boolean", "/api/queues/q/jobs/x/cancel", { method: "POST", body: JSON.stringify({ delete: "yes" }) }, ["delete"]],
    ["a shutdown flag that is not boolean", "/api/queues/q/shutdown", { method: "POST", body: JSON.stringify({ hard: 1 }) }, ["hard"]],
    ["a body where none is expected", "/api/queues/q/jobs/x/retry", { method: "POST", body: JSON.stringify({ force: true }) }, ["(body)"]],
    ["events of an unknown queue", "/api/events?queues=q,nope", {}, ["queues"]],
  ];
  for (const [what, path, init, fields] of cases) {
    test(`${what} is a 400 naming the field, and writes nothing`, async () => {
      const { app, prefix } = make();
      const res = await app.request(path, { ...init, headers: init.method ? JSON_BEARER : BEARER });
      const body = await json(res);
      expect(res.status).toBe(400);
      expect(typeof body.error).toBe("string");
      expect(body.issues.map((i: { field: string }) => i.field)).toEqual(expect.arrayContaining(fields));
      for (const i of body.issues) expect(typeof i.message).toBe("string");
      const redis = client();
      try {
        expect(await redis.keys(`${prefix}:*`)).toEqual([]);
      } finally {
        redis.disconnect();
      }
    });
  }

  test("an unknown queue or route is a 404, not a 500", async () => {
    const { app } = make();
    expect((await app.request("/api/queues/elsewhere/jobs", { headers: BEARER })).status).toBe(404);
    expect((await app.request("/api/nothing", { headers: BEARER })).status).toBe(404);
    expect((await app.request("/api/queues/q/jobs/none", { headers: BEARER })).status).toBe(404);
  });

  test("a body over 1 MiB is refused with 413", async () => {
    const { app } = make();
    const res = await app.request("/api/queues/q/jobs", { method: "POST", headers: JSON_BEARER, body: JSON.stringify({ task: "t", data: "x".repeat(1_100_000) }) });
    expect(res.status).toBe(413);
  });
});

describe("jobs through the API", () => {
  test("enqueue one or a batch, list with pagination, read one, and a worker runs them", async () => {
    const { app, prefix, queue } = make();
    const one = await app.request("/api/queues/q/jobs", { method: "POST", headers: JSON_BEARER, body: JSON.stringify({ task: "double", data: { n: 21 }, options: { jobId: "first", attempts: 2 } }) });
    expect(one.status).toBe(201);
    expect(await json(one)).toEqual({ id: "first", queue: "q", state: "waiting", duplicate: false });
    const dup = await json(await app.request("/api/queues/q/jobs", { method: "POST", headers: JSON_BEARER, body: JSON.stringify({ task: "double", data: { n: 1 }, options: { jobId: "first" } }) }));
    expect(dup.duplicate).toBe(true);
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const batch = await app.request("/api/queues/q/jobs", {
      method: "POST",
      headers: JSON_BEARER,
      body: JSON.stringify([{ task: "double", data: { n: 1 } }, { task: "double", data: { n: 2 } }, { task: "double", data: { n: 3 }, options: { runAt } }]),
    });
    expect(batch.status).toBe(201);
    const jobs = (await json(batch)).jobs;
    expect(jobs.map((j: { state: string }) => j.state)).toEqual(["waiting", "waiting", "delayed"]);

    const page1 = await json(await app.request("/api/queues/q/jobs?state=waiting&limit=2", { headers: BEARER }));
    expect(page1.jobs.map((j: { id: string }) => j.id)).toEqual(["first", jobs[0].id]);
    const page2 = await json(await app.request(`/api/queues/q/jobs?state=waiting&limit=2&cursor=${encodeURIComponent(page1.nextCursor)}`, { headers: BEARER }));
    expect(page2.jobs.map((j: { id: string }) => j.id)).toEqual([jobs[1].id]);
    expect(page2.nextCursor).toBeUndefined();
    const delayed = await json(await app.request("/api/queues/q/jobs?state=delayed", { headers: BEARER }));
    expect(delayed.jobs[0]).toMatchObject({ id: jobs[2].id, runAt: Date.parse(runAt) });

    const w = worker(prefix, { tasks: { double: (d: { n: number }) => d.n * 2 } });
    const run = w.run();
    await waitFor(async () => (await queue().counts()).completed === 3, "three completions");
    const first = await json(await app.request("/api/queues/q/jobs/first", { headers: BEARER }));
    expect(first).toMatchObject({ id: "first", name: "double", state: "completed", data: { n: 21 }, result: 42, attempt: 1, maxAttempts: 2 });
    const counts = await json(await app.request("/api/queues", { headers: BEARER }));
    expect(counts.queues).toEqual([
      { name: "q", counts: { waiting: 0, active: 0, delayed: 1, completed: 3, failed: 0, cancelled: 0, aborted: 0 }, workers: 1 },
      { name: "other", counts: { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0, aborted: 0 }, workers: 0 },
    ]);
    const done = await json(await app.request("/api/queues/q/jobs?state=completed", { headers: BEARER }));
    expect(done.jobs).toHaveLength(3);
    await w.stop();
    await run;
  });

  test("cancel, abort a running job in a real worker, retry it, and delete", async () => {
    const { app, prefix, queue } = make();
    const q = queue();
    const started = deferred<string>();
    let runs = 0;
    const w = worker(prefix, {
      tasks: {
        async slow(_d: unknown, ctx) {
          runs++;
          if (runs === 1) {
            started.resolve(ctx.job.id);
            await new Promise((_, rej) => ctx.signal.addEventListener("abort", () => rej(ctx.signal.reason), { once: true }));
          }
          return "second run";
        },
      },
    });
    await q.enqueue("slow", null, { jobId: "run" });
    await q.enqueue("slow", null, { jobId: "later", delay: "1h" });
    const run = w.run();
    expect(await started.promise).toBe("run");

    const active = await json(await app.request("/api/queues/q/jobs?state=active", { headers: BEARER }));
    expect(active.jobs).toMatchObject([{ id: "run", state: "active", owner: w.id }]);
    const del = await app.request("/api/queues/q/jobs/run", { method: "DELETE", headers: BEARER });
    expect(del.status).toBe(409);
    expect((await json(del)).error).toContain("abort it first");
    const notYet = await json(await app.request("/api/queues/q/jobs/run/cancel", { method: "POST", headers: BEARER }));
    expect(notYet).toEqual({ id: "run", outcome: "active", previousState: "active" });

    const abort = await app.request("/api/queues/q/jobs/run/abort", { method: "POST", headers: BEARER });
    expect(await json(abort)).toEqual({ id: "run", outcome: "abort-requested", previousState: "active" });
    await waitFor(async () => (await q.getJob("run"))?.state === "aborted", "the job to end aborted");
    expect((await q.getJob("run"))?.error?.abortReason).toBe("user");

    const retryDone = await app.request("/api/queues/q/jobs/later/retry", { method: "POST", headers: BEARER });
    expect(retryDone.status).toBe(409);
    expect((await app.request("/api/queues/q/jobs/nope/retry", { method: "POST", headers: BEARER })).status).toBe(404);
    const retry = await app.request("/api/queues/q/jobs/run/retry", { method: "POST", headers: BEARER });
    expect(await json(retry)).toEqual({ id: "run", retried: true });
    await waitFor(async () => (await q.getJob("run"))?.state === "completed", "the retried job to complete");
    expect((await q.getJob("run"))?.result).toBe("second run");

    const cancel = await json(await app.request("/api/queues/q/jobs/later/cancel", { method: "POST", headers: JSON_BEARER, body: JSON.stringify({ delete: true }) }));
    expect(cancel).toEqual({ id: "later", outcome: "cancelled", previousState: "delayed" });
    expect(await q.getJob("later")).toBeNull();
    const missing = await app.request("/api/queues/q/jobs/later/cancel", { method: "POST", headers: BEARER });
    expect(missing.status).toBe(404);
    expect(await json(missing)).toEqual({ error: 'No job "later" in queue "q"', id: "later", outcome: "missing" });
    const finished = await json(await app.request("/api/queues/q/jobs/run/cancel", { method: "POST", headers: BEARER }));
    expect(finished).toEqual({ id: "run", outcome: "finished", previousState: "completed" });
    expect(await json(await app.request("/api/queues/q/jobs/run", { method: "DELETE", headers: BEARER }))).toEqual({ id: "run", outcome: "deleted", previousState: "completed" });
    expect((await app.request("/api/queues/q/jobs/run", { headers: BEARER })).status).toBe(404);
    await w.stop();
    await run;
  });

  test("workers and metrics show a running worker, its jobs, counts and throughput", async () => {
    const { app, prefix, queue } = make();
    const q = queue();
    const release = deferred();
    const started = deferred();
    const w = worker(prefix, { concurrency: 3, tasks: { ok: () => "ok", bad: () => { throw new Error("no"); }, slow: async () => { started.resolve(); await release.promise; } } });
    await q.enqueueMany([{ task: "ok" }, { task: "ok" }, { task: "bad", options: { attempts: 1 } }, { task: "slow" }]);
    const run = w.run();
    await started.promise;
    await waitFor(async () => (await q.counts()).completed === 2 && (await q.counts()).failed === 1, "two completions and a failure");
    const workers = await waitFor(async () => {
      const r = await json(await app.request("/api/workers", { headers: BEARER }));
      return r.workers.length === 1 && r.workers[0].active.length === 1 ? r.workers : undefined;
    }, "the worker to show its running job");
    expect(workers[0]).toMatchObject({ id: w.id, queues: ["q"], concurrency: 3, phase: "running" });
    const metrics = await app.request("/metrics", { headers: BEARER });
    expect(metrics.headers.get("content-type")).toContain("text/plain; version=0.0.4");
    const text = await metrics.text();
    expect(text).toContain('sluice_jobs{queue="q",state="completed"} 2');
    expect(text).toContain('sluice_jobs{queue="q",state="failed"} 1');
    expect(text).toContain('sluice_jobs{queue="q",state="active"} 1');
    expect(text).toContain('sluice_jobs_in_flight{queue="q"} 1');
    expect(text).toContain('sluice_jobs_completed_total{queue="q"} 2');
    expect(text).toContain('sluice_jobs_failed_total{queue="q"} 1');
    expect(text).toContain("# TYPE sluice_jobs_completed_total counter");
    expect(text).toContain('sluice_workers{phase="running"} 1');
    expect(text).toContain(`sluice_worker_in_flight{worker="${w.id}",host=""} 1`);
    expect(text).toContain("# TYPE sluice_jobs gauge");
    release.resolve();
    await w.stop();
    await run;
  });

  test("without a queues option the app finds the queues under its prefix", async () => {
    const prefix = uniquePrefix("adm");
    const a = new Queue("found-a", { redis: redisUrl(), prefix });
    const b = new Queue("found-b", { redis: redisUrl(), prefix });
    const elsewhere = new Queue("not-mine", { redis: redisUrl(), prefix: prefix + "x" });
    opened.push(() => a.close(), () => b.close(), () => elsewhere.close());
    await a.enqueue("t");
    await b.enqueue("t", null, { delay: "1h" });
    await elsewhere.enqueue("t");
    const { app } = make({ prefix, queues: undefined });
    const r = await json(await app.request("/api/queues", { headers: BEARER }));
    expect(r.queues.map((q: { name: string }) => q.name)).toEqual(["found-a", "found-b"]);
    expect((await app.request("/api/queues/anything-valid/jobs", { headers: BEARER })).status).toBe(200);
  });
});

describe("events", () => {
  test("the event stream delivers lifecycle events and closes its Redis connection when the client leaves", async () => {
    const { app, prefix, queue } = make();
    const server = await serveAdmin(app, { port: 0 });
    opened.push(() => server.close());
    const q = queue();
    const redis = client();
    opened.push(async () => redis.disconnect());
    const readers = async () => String(await redis.call("CLIENT", "LIST")).split("\n").filter((l) => /cmd=xread\b/.test(l)).length;
    const before = await readers();

    const ac = new AbortController();
    const res = await fetch(`${server.url}/api/events?queues=q`, { headers: BEARER, signal: ac.signal });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const reader = res.body!.getReader();
    let text = "";
    const until = async (pred: () => boolean, what: string) => {
      while (!pred()) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${what}: ${text}`);
        text += new TextDecoder().decode(value);
      }
    };
    await until(() => text.includes("event: ready"), "ready");
    await waitFor(async () => (await readers()) === before + 1, "a blocked XREAD on a connection of its own");

    await q.enqueue("t", null, { jobId: "e1" });
    await q.cancel("e1");
    const w = worker(prefix, { tasks: { t: () => 1 } });
    const run = w.run();
    await q.enqueue("t", null, { jobId: "e2" });
    await until(() => text.includes('"event":"completed"'), "the completed event");
    await w.stop();
    await run;
    const events = text.split("\n\n").filter((b) => b.includes("event: job")).map((b) => JSON.parse(/data: (.*)/.exec(b)![1]!));
    expect(events.map((e) => [e.event, e.ids])).toEqual([["waiting", ["e1"]], ["cancelled", ["e1"]], ["waiting", ["e2"]], ["completed", ["e2"]]]);
    expect(events[0]).toMatchObject({ queue: "q" });
    // each event carries its stream position, so a reconnecting browser resumes after it
    expect(text).toMatch(/id: \{"q":"\d+-\d+"\}/);

    ac.abort();
    await waitFor(async () => (await readers()) === before, "the stream's Redis connection to close");
  });

  test("a reconnecting client resumes after Last-Event-ID", async () => {
    const { app, queue } = make();
    const q = queue();
    await q.enqueue("t", null, { jobId: "old" });
    const redis = client();
    opened.push(async () => redis.disconnect());
    const [[lastId]] = (await redis.xrevrange(q.keys.events, "+", "-", "COUNT", 1)) as [string, string[]][];
    await q.enqueue("t", null, { jobId: "missed" });
    const ac = new AbortController();
    const res = await app.request("/api/events?queues=q", { headers: { ...BEARER, "last-event-id": JSON.stringify({ q: lastId }) }, signal: ac.signal });
    const reader = res.body!.getReader();
    let text = "";
    while (!text.includes('"missed"')) text += new TextDecoder().decode((await reader.read()).value);
    expect(text).not.toContain('"old"');
    ac.abort();
    await reader.cancel().catch(() => {});
  });
});

describe("remote shutdown of worker processes", () => {
  test("asking one Bun worker process to shut down gracefully lets its job finish, then it exits", async () => {
    const { app, prefix, queue } = make({ queues: ["default"] });
    const q = queue("default");
    const proc = spawnWorker("bun", prefix, { jobMs: 1500 });
    const id = await proc.ready();
    const other = spawnWorker("bun", prefix, { jobMs: 1500 });
    const otherId = await other.ready();
    const { id: job } = await q.enqueue("sleep", { ms: 1500 });
    const runner = await waitFor(async () => (await q.getJob(job))?.owner, "the job to start");
    const target = runner === id ? proc : other;
    const bystander = runner === id ? other : proc;

    const res = await app.request(`/api/workers/${encodeURIComponent(runner)}/shutdown`, { method: "POST", headers: BEARER });
    expect(res.status).toBe(202);
    expect(await json(res)).toMatchObject({ worker: runner, hard: false, subscribers: 2 });
    await target.waitEvents("phase", 1, (e) => e.phase === "draining");
    const listed = await waitFor(async () => {
      const ws = (await json(await app.request("/api/workers", { headers: BEARER }))).workers as { id: string; phase: string }[];
      return ws.find((w) => w.id === runner && w.phase === "draining");
    }, "the registry to show the worker draining", 10_000);
    expect(listed.phase).toBe("draining");
    expect(await target.exited()).toBe(0);
    expect(target.events("end")).toMatchObject([{ job, how: "done" }]);
    expect(target.summary()).toMatchObject({ completed: 1, interrupted: 0 });
    expect((await q.getJob(job))?.state).toBe("completed");
    // the other worker was not asked
    expect(bystander.p.proc.exitCode).toBeNull();
    expect(bystander.events("phase")).toEqual([]);
    expect((await app.request(`/api/workers/${encodeURIComponent(runner)}/shutdown`, { method: "POST", headers: BEARER })).status).toBe(404);
    expect([id, otherId]).toContain(runner);
  });

  test("a hard shutdown of every worker of a queue aborts their jobs, re-queues them and stops Deno and Node processes", async () => {
    const { app, prefix, queue } = make({ queues: ["work", "other"] });
    const q = queue("work");
    const deno = spawnWorker("deno", prefix, { queues: ["work"], concurrency: 1, jobMs: 60_000 });
    const node = spawnWorker("node", prefix, { queues: ["work"], concurrency: 1, jobMs: 60_000 });
    const elsewhere = spawnWorker("bun", prefix, { queues: ["other"] });
    await Promise.all([deno.ready(), node.ready(), elsewhere.ready()]);
    const a = await q.enqueue("sleep", null);
    const b = await q.enqueue("sleep", null);
    await Promise.all([deno.waitEvents("start"), node.waitEvents("start")]);
    // the registry's workers of the queue, listed before the shutdown (a worker that stops
    // leaves the registry, possibly before a listing taken after the request)
    const ofQueue = (await json(await app.request("/api/workers", { headers: BEARER }))).workers.filter((w: { queues: string[] }) => w.queues.includes("work")).map((w: { id: string }) => w.id).sort();
    expect(ofQueue).toHaveLength(2);

    const res = await app.request("/api/queues/work/shutdown", { method: "POST", headers: JSON_BEARER, body: JSON.stringify({ hard: true }) });
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body.workers.sort()).toEqual(ofQueue);
    for (const p of [deno, node]) {
      await p.waitEvents("abort", 1, (e) => e.reason === "shutdown");
      expect(await p.exited()).toBe(0);
      expect(p.summary()).toMatchObject({ interrupted: 1 });
    }
    const redis = client();
    opened.push(async () => redis.disconnect());
    for (const id of [a.id, b.id]) {
      const h = await jobHash(redis, prefix, id, "work");
      expect(h.state).toBe("waiting");
      expect(h.attempt).toBe("0");
    }
    expect(elsewhere.p.proc.exitCode).toBeNull();
  });
});
