/**
 * Queue.listJobs (cursor pages per state) and Queue.deleteJob (from wherever the job is), and the
 * worker registry as listWorkers reads it, against real Redis and real workers.
 */
import { expect, setDefaultTimeout, test } from "bun:test";
import { listWorkers } from "../src/inspect.ts";
import { toSend } from "../src/redis.ts";
import { finishAndFetch, type Keep } from "../src/worker/scripts.ts";
import { deferred, sleep, useScope } from "./helpers.ts";
import { waitFor } from "./harness.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const scope = useScope();
const KEEP: Keep = { completed: { count: 1000, age: -1 }, failed: { count: -1, age: -1 }, cancelled: { count: -1, age: -1 } };

async function allPages(list: (cursor?: string) => Promise<{ jobs: { id: string }[]; nextCursor?: string }>): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const page = await list(cursor);
    pages.push(page.jobs.map((j) => j.id));
    cursor = page.nextCursor;
  } while (cursor && pages.length < 100);
  return pages;
}

test("listJobs pages through waiting jobs in the order they will run", async () => {
  const q = scope().queue("inspect");
  const ids: string[] = [];
  const before = Date.now();
  for (let i = 0; i < 7; i++) ids.push((await q.enqueue("t", { i }, { jobId: `w${i}` })).id);
  const after = Date.now();
  const pages = await allPages((cursor) => q.listJobs("waiting", { cursor, limit: 3 }));
  expect(pages).toEqual([["w0", "w1", "w2"], ["w3", "w4", "w5"], ["w6"]]);
  const first = (await q.listJobs("waiting", { limit: 1 })).jobs[0]!;
  expect(first).toMatchObject({ id: "w0", queue: "inspect", name: "t", state: "waiting", attempt: 0, maxAttempts: 3 });
  // created by the enqueue above: between the clock readings around it
  expect(first.createdAt).toBeGreaterThanOrEqual(before);
  expect(first.createdAt).toBeLessThanOrEqual(after);
});

test("a waiting job cancelled between two pages is not listed and nothing repeats", async () => {
  const q = scope().queue("inspect");
  for (let i = 0; i < 6; i++) await q.enqueue("t", null, { jobId: `j${i}` });
  const p1 = await q.listJobs("waiting", { limit: 2 });
  await q.cancel("j2");
  await q.enqueue("t", null, { jobId: "late" });
  const rest = await allPages((cursor) => q.listJobs("waiting", { cursor: cursor ?? p1.nextCursor, limit: 2 }));
  expect([p1.jobs.map((j) => j.id), ...rest].flat()).toEqual(["j0", "j1", "j3", "j4", "j5", "late"]);
});

test("listJobs shows active jobs with their worker, and leaves them out of waiting", async () => {
  const s = scope();
  const q = s.queue("inspect");
  const release = deferred();
  const started = new Set<string>();
  const w = s.worker({ queues: ["inspect"], concurrency: 2, tasks: { slow: async (_d, ctx) => { started.add(ctx.job.id); await release.promise; } } });
  for (let i = 0; i < 4; i++) await q.enqueue("slow", null, { jobId: `a${i}` });
  const run = w.run();
  await waitFor(() => started.size === 2, "two jobs to start");
  const active = await q.listJobs("active");
  expect(active.jobs.map((j) => j.id).sort()).toEqual([...started].sort());
  for (const j of active.jobs) {
    expect(j.state).toBe("active");
    expect(j.owner).toBe(w.id);
    expect(j.attempt).toBe(1);
    expect(j.idleMs).toBeGreaterThanOrEqual(0);
    expect(j.startedAt).toBeGreaterThan(0);
  }
  const waiting = await q.listJobs("waiting");
  expect(waiting.jobs.map((j) => j.id).sort()).toEqual(["a0", "a1", "a2", "a3"].filter((id) => !started.has(id)));
  // one active per page
  const pages = await allPages((cursor) => q.listJobs("active", { cursor, limit: 1 }));
  expect(pages.flat().sort()).toEqual([...started].sort());
  release.resolve();
  await w.stop();
  await run;
});

test("delayed jobs list soonest first; finished jobs newest first, across equal timestamps", async () => {
  const s = scope();
  const q = s.queue("inspect");
  await q.enqueue("t", null, { jobId: "d-late", delay: "3h" });
  await q.enqueue("t", null, { jobId: "d-soon", delay: "1h" });
  await q.enqueue("t", null, { jobId: "d-mid", delay: "2h" });
  expect((await q.listJobs("delayed")).jobs.map((j) => j.id)).toEqual(["d-soon", "d-mid", "d-late"]);

  // 9 jobs completed in one batch share one finish time: pages must still cover each exactly once
  const w = s.worker({ queues: ["inspect"], concurrency: 20, tasks: { ok: () => "fine" } });
  for (let i = 0; i < 9; i++) await q.enqueue("ok", null, { jobId: `c${i}` });
  const run = w.run();
  await waitFor(async () => (await q.counts()).completed === 9, "nine completions");
  await w.stop();
  await run;
  const pages = await allPages((cursor) => q.listJobs("completed", { cursor, limit: 4 }));
  expect(pages.map((p) => p.length)).toEqual([4, 4, 1]);
  expect(pages.flat().sort()).toEqual(Array.from({ length: 9 }, (_, i) => `c${i}`).sort());
  const full = (await q.listJobs("completed", { limit: 9 })).jobs;
  for (let i = 1; i < full.length; i++) expect(full[i - 1]!.finishedAt!).toBeGreaterThanOrEqual(full[i]!.finishedAt!);
});

test("a page boundary whose job was deleted meanwhile still continues where it was", async () => {
  const s = scope();
  const q = s.queue("inspect");
  for (let i = 0; i < 6; i++) {
    await q.enqueue("t", null, { jobId: `x${i}`, delay: `${i + 1}h` });
  }
  const p1 = await q.listJobs("delayed", { limit: 3 });
  expect(p1.jobs.map((j) => j.id)).toEqual(["x0", "x1", "x2"]);
  expect((await q.deleteJob("x2")).outcome).toBe("deleted");
  const p2 = await q.listJobs("delayed", { cursor: p1.nextCursor, limit: 3 });
  expect(p2.jobs.map((j) => j.id)).toEqual(["x3", "x4", "x5"]);
});

test("failed jobs list with their error; cancelled jobs with their time", async () => {
  const s = scope();
  const q = s.queue("inspect");
  const w = s.worker({ queues: ["inspect"], tasks: { bad: () => { throw new TypeError("no such template"); } } });
  await q.enqueue("bad", null, { jobId: "f1", attempts: 1 });
  await q.enqueue("bad", null, { jobId: "c1", delay: "1h" });
  await q.cancel("c1");
  const run = w.run();
  await waitFor(async () => (await q.counts()).failed === 1, "the failure");
  await w.stop();
  await run;
  const [f] = (await q.listJobs("failed")).jobs;
  expect(f).toMatchObject({ id: "f1", state: "failed", attempt: 1, maxAttempts: 1, error: { name: "TypeError", message: "no such template" } });
  expect(f!.finishedAt).toBeGreaterThan(0);
  const [c] = (await q.listJobs("cancelled")).jobs;
  expect(c).toMatchObject({ id: "c1", state: "cancelled" });
  expect(c!.finishedAt).toBeGreaterThan(0);
});

test("listJobs refuses a bad state, limit or cursor naming the field", async () => {
  const q = scope().queue("inspect");
  await expect(q.listJobs("bogus" as never)).rejects.toMatchObject({ name: "ValidationError", issues: [{ field: "state" }] });
  await expect(q.listJobs("waiting", { limit: 0 })).rejects.toMatchObject({ issues: [{ field: "limit", value: 0 }] });
  await expect(q.listJobs("waiting", { limit: 501 })).rejects.toMatchObject({ issues: [{ field: "limit" }] });
  await expect(q.listJobs("waiting", { cursor: "not-a-stream-id" })).rejects.toMatchObject({ issues: [{ field: "cursor" }] });
  await expect(q.listJobs("failed", { cursor: "nonsense" })).rejects.toMatchObject({ issues: [{ field: "cursor" }] });
});

test("deleteJob removes a job from the stream, a set or its hash, and refuses a running one", async () => {
  const s = scope();
  const q = s.queue("inspect");
  const redis = s.redis();
  await q.enqueue("t", null, { jobId: "w" });
  await q.enqueue("t", null, { jobId: "d", delay: "1h" });
  expect(await q.deleteJob("w")).toEqual({ id: "w", outcome: "deleted", previousState: "waiting" });
  expect(await q.deleteJob("d")).toEqual({ id: "d", outcome: "deleted", previousState: "delayed" });
  expect(await redis.xlen(q.keys.stream)).toBe(0);
  expect(await redis.zcard(q.keys.delayed)).toBe(0);
  expect(await redis.exists(q.keys.job("w"), q.keys.job("d"))).toBe(0);
  expect(await q.deleteJob("w")).toEqual({ id: "w", outcome: "missing" });
  expect((await q.counts()).waiting).toBe(0);

  const release = deferred();
  const started = deferred<string>();
  const w = s.worker({ queues: ["inspect"], tasks: { slow: async (_d, ctx) => { started.resolve(ctx.job.id); await release.promise; return 1; } } });
  await q.enqueue("slow", null, { jobId: "r" });
  const run = w.run();
  await started.promise;
  expect(await q.deleteJob("r")).toEqual({ id: "r", outcome: "active", previousState: "active" });
  // run again (a re-sent call): the same refusal, and the running job is untouched
  expect(await q.deleteJob("r")).toEqual({ id: "r", outcome: "active", previousState: "active" });
  expect((await q.getJob("r"))?.state).toBe("active");
  release.resolve();
  await waitFor(async () => (await q.getJob("r"))?.state === "completed", "the job to complete");
  expect(await q.deleteJob("r")).toEqual({ id: "r", outcome: "deleted", previousState: "completed" });
  expect(await redis.zcard(q.keys.completed)).toBe(0);
  expect(await q.getJob("r")).toBeNull();
  await w.stop();
  await run;
  const kinds = (await redis.xrange(q.keys.events, "-", "+")).map(([, f]) => f[1]);
  expect(kinds.filter((k) => k === "deleted")).toHaveLength(3);
});

test("a delayed job deleted before it is due never runs", async () => {
  const s = scope();
  const q = s.queue("inspect");
  const ran: string[] = [];
  const w = s.worker({ queues: ["inspect"], tasks: { t: (_d, ctx) => void ran.push(ctx.job.id) } });
  const run = w.run();
  await sleep(200);
  await q.enqueue("t", null, { jobId: "gone", delay: 300 });
  expect((await q.deleteJob("gone")).outcome).toBe("deleted");
  await q.enqueue("t", null, { jobId: "kept" });
  await waitFor(() => ran.includes("kept"), "the kept job to run");
  await sleep(600);
  expect(ran).toEqual(["kept"]);
  await w.stop();
  await run;
});

test("listWorkers reads the registry of running workers with their jobs and phase", async () => {
  const s = scope();
  const q = s.queue("inspect");
  const redis = s.redis();
  const send = toSend(redis);
  const release = deferred();
  const started = deferred();
  let startedAt = 0;
  const w = s.worker({ queues: ["inspect", "other"], concurrency: 4, heartbeatInterval: 100, stalledTimeout: 1000, tasks: { slow: async () => { startedAt = Date.now(); started.resolve(); await release.promise; } } });
  await q.enqueue("slow", null, { jobId: "busy" });
  const run = w.run();
  await started.promise;
  const info = await waitFor(async () => (await listWorkers(send, s.prefix)).find((x) => x.id === w.id && x.active.length === 1), "the worker to register its job");
  expect(info).toMatchObject({ id: w.id, queues: ["inspect", "other"], concurrency: 4, phase: "running", active: [{ queue: "inspect", id: "busy" }] });
  // the entry that lists the job was written by a heartbeat after the job started
  expect(info.heartbeatAt).toBeGreaterThanOrEqual(startedAt);
  expect(info.heartbeatAt).toBeLessThanOrEqual(Date.now());
  // an index entry whose registry key expired is left out, and pruned on request
  await redis.zadd(`${s.prefix}:workers`, Date.now() - 60_000, "dead-worker");
  expect((await listWorkers(send, s.prefix)).map((x) => x.id)).toEqual([w.id]);
  await listWorkers(send, s.prefix, { prune: true });
  expect(await redis.zscore(`${s.prefix}:workers`, "dead-worker")).toBeNull();
  release.resolve();
  await w.stop();
  await run;
  expect(await listWorkers(send, s.prefix)).toEqual([]);
});

test("a job its stream entry holds (no hash yet) reads truthfully everywhere: getJob, listJobs waiting and active, deleteJob, cancel", async () => {
  const q = scope().queue("entry-held");
  const redis = scope().redis();
  const send = toSend(redis);
  const [a, b, c, d] = await q.enqueueMany([1, 2, 3, 4].map((i) => ({ task: "t", data: { i } })));
  for (const j of [a, b, c, d]) expect(await redis.exists(q.keys.job(j!.id))).toBe(0);
  expect(await q.getJob(a!.id)).toMatchObject({ id: a!.id, name: "t", state: "waiting", data: { i: 1 }, attempt: 0, maxAttempts: 3 });
  expect((await q.listJobs("waiting")).jobs.map((j) => [j.id, j.state, j.dataPreview])).toEqual(
    [a, b, c, d].map((j, i) => [j!.id, "waiting", `{"i":${i + 1}}`]),
  );
  // a worker (here: its fetch) starts two of them: they run, and still nothing wrote their hashes
  const got = await finishAndFetch(send, q.keys, { consumer: "w1", now: Date.now(), fetch: 2, keep: KEEP, eventsMax: 100, outcomes: [] });
  expect(got.jobs.map((j) => [j.id, j.token, j.attempt, j.data])).toEqual([[a!.id, a!.id, 1, '{"i":1}'], [b!.id, b!.id, 1, '{"i":2}']]);
  expect(await redis.exists(q.keys.job(a!.id))).toBe(0);
  expect(await q.getJob(a!.id)).toMatchObject({ state: "active", owner: "w1", attempt: 1, data: { i: 1 } });
  expect((await q.listJobs("active")).jobs.map((j) => [j.id, j.owner, j.dataPreview])).toEqual([[a!.id, "w1", '{"i":1}'], [b!.id, "w1", '{"i":2}']]);
  expect((await q.listJobs("waiting")).jobs.map((j) => j.id)).toEqual([c!.id, d!.id]);
  expect(await q.counts()).toMatchObject({ waiting: 2, active: 2 });
  // a running one is refused (abort it first); a waiting one goes, entry and all
  expect(await q.deleteJob(a!.id)).toMatchObject({ outcome: "active" });
  expect(await q.deleteJob(c!.id)).toEqual({ id: c!.id, outcome: "deleted", previousState: "waiting" });
  expect(await q.getJob(c!.id)).toBeNull();
  expect(await q.deleteJob(c!.id)).toMatchObject({ outcome: "missing" });
  // cancelled: the job gets its hash, with its data
  expect(await q.cancel(d!.id)).toEqual({ id: d!.id, outcome: "cancelled", previousState: "waiting" });
  expect(await q.getJob(d!.id)).toMatchObject({ state: "cancelled", data: { i: 4 }, name: "t" });
  // an abort of a running one: the hash is written as the job waits on its entry, plus the flag
  expect(await q.cancel(b!.id, { abort: true })).toEqual({ id: b!.id, outcome: "abort-requested", previousState: "active" });
  expect(await q.getJob(b!.id)).toMatchObject({ state: "active", owner: "w1", data: { i: 2 } });
  // the worker's outcomes: a completes (its hash gets its data from the outcome); b's retry ends aborted
  const done = await finishAndFetch(send, q.keys, {
    consumer: "w1", now: Date.now(), fetch: 0, keep: KEEP, eventsMax: 100,
    outcomes: got.jobs.map((j, i) => ({ id: j.id, token: j.token, started: Date.now(), attempt: 1, group: "", kind: i === 0 ? "completed" : "retry", payload: '"r"', retryAt: 0, packed: j.packed })),
  });
  expect(done.results).toEqual(["applied", "aborted"]);
  expect(await q.getJob(a!.id)).toMatchObject({ state: "completed", result: "r", data: { i: 1 }, name: "t", attempt: 1 });
  expect(await q.getJob(b!.id)).toMatchObject({ state: "aborted", data: { i: 2 } });
  expect(await q.counts()).toMatchObject({ waiting: 0, active: 0, completed: 1, aborted: 1, cancelled: 1 });
  expect(await redis.xlen(q.keys.stream)).toBe(0);
});

test("a job that completed with no hash of its own (its record in done) reads, lists, cancels, retries, deletes and cleans as a completed job", async () => {
  const s = scope();
  const q = s.queue("records");
  const redis = s.redis();
  // (text beyond ASCII: the record measures its data in bytes)
  const jobs = await q.enqueueMany([0, 1, 2, 3].map((i) => ({ task: "t", data: { i, s: "é✓😀" } })));
  const before = Date.now();
  const w = s.worker({ queues: ["records"], concurrency: 4, wait: false, tasks: { t: (d: { i: number; s: string }) => ({ twice: d.i * 2, s: d.s + "ü" }) } });
  expect((await w.run()).completed).toBe(4);
  // no key per job: one record each
  expect(await redis.exists(...jobs.map((j) => q.keys.job(j.id)))).toBe(0);
  expect(await redis.hlen(q.keys.done)).toBe(4);

  const [a, b, c, d] = jobs.map((j) => j.id) as [string, string, string, string];
  const info = (await q.getJob(a))!;
  expect(info).toMatchObject({ id: a, state: "completed", name: "t", data: { i: 0, s: "é✓😀" }, result: { twice: 0, s: "é✓😀ü" }, attempt: 1 });
  expect(info.finishedAt).toBeGreaterThanOrEqual(before);
  expect(info.startedAt).toBeLessThanOrEqual(info.finishedAt!);
  const listed = (await q.listJobs("completed", { limit: 10 })).jobs;
  expect(listed.map((j) => j.id).sort()).toEqual([a, b, c, d].sort());
  expect(listed.find((j) => j.id === b)).toMatchObject({ state: "completed", name: "t", attempt: 1 });
  expect((await q.listJobs("completed", { search: '"i":3' })).jobs.map((j) => j.id)).toEqual([d]);

  // finished: cancel and retry change nothing and say so
  expect(await q.cancel(a, { abort: true })).toEqual({ id: a, outcome: "finished", previousState: "completed" });
  expect(await q.retry(a)).toBe(false);
  expect((await q.getJob(a))?.state).toBe("completed");

  // delete removes its record with it
  expect(await q.deleteJob(a)).toMatchObject({ outcome: "deleted", previousState: "completed" });
  expect(await q.getJob(a)).toBeNull();
  expect(await redis.hexists(q.keys.done, a)).toBe(0);
  expect(await q.deleteJob(a)).toMatchObject({ outcome: "missing" });

  // clean removes the records of the jobs it cleans, and only those
  await redis.zadd(q.keys.completed, 1, b); // finished long ago
  expect(await q.clean("completed", "1h")).toBe(1);
  expect(await q.getJob(b)).toBeNull();
  expect((await redis.hkeys(q.keys.done)).sort()).toEqual([c, d].sort());
  expect(await q.counts()).toMatchObject({ completed: 2 });
});
