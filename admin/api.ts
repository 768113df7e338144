/**
 * The admin app's JSON API. Every input is validated with valibot; bad input is a 400 with
 * `{ error, issues: [{ field, message, value }] }`, never a 500. Mounted under `/api` by
 * `createAdminApp`, behind its auth.
 *
 * | method | path | |
 * |---|---|---|
 * | GET | /api/queues | queues with counts per state |
 * | GET | /api/queues/:queue | one queue's counts |
 * | GET | /api/queues/:queue/jobs?state=&cursor=&limit= | one page of jobs in a state |
 * | POST | /api/queues/:queue/jobs | enqueue `{ task, data?, options? }`, or an array of them |
 * | GET | /api/queues/:queue/jobs/:id | one job in full |
 * | POST | /api/queues/:queue/jobs/:id/cancel | cancel a waiting or delayed job (`{ delete?: true }`) |
 * | POST | /api/queues/:queue/jobs/:id/abort | abort a running job (cancels a waiting one) |
 * | POST | /api/queues/:queue/jobs/:id/retry | re-queue a failed or aborted job |
 * | DELETE | /api/queues/:queue/jobs/:id | remove a job that is not running |
 * | POST | /api/queues/:queue/shutdown | ask the workers of a queue to stop (`{ hard?: true }`) |
 * | GET | /api/workers | live workers |
 * | POST | /api/workers/:id/shutdown | ask one worker to stop (`{ hard?: true }`) |
 * | GET | /api/events?queues=a,b | server-sent lifecycle events |
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import * as v from "valibot";
import { ValidationError, type ValidationIssue } from "../src/errors.ts";
import { jsonDepth, MAX_DATA_DEPTH } from "../src/json.ts";
import { NAME_MESSAGE, NAME_PATTERN } from "../src/names.ts";
import type { JobState } from "../src/job.ts";
import { LISTABLE_STATES } from "../src/inspect.ts";
import type { Queue } from "../src/queue.ts";
import type { AdminContext } from "./context.ts";
import { sendShutdown } from "../src/control.ts";
import { toIssues } from "../src/options.ts";
import { eventStream } from "./events.ts";

/** An error with an HTTP status, answered as `{ error, issues? }`. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 503;
  readonly issues?: ValidationIssue[];
  constructor(status: HttpError["status"], message: string, issues?: ValidationIssue[]) {
    super(message);
    this.status = status;
    this.issues = issues;
  }
}

export const QueueName = v.pipe(v.string("must be a string"), v.regex(NAME_PATTERN, NAME_MESSAGE));
export const JobId = v.pipe(
  v.string("must be a string"),
  v.regex(/^[^\s{}\x00-\x1f]{1,256}$/, "must be 1-256 characters without whitespace, control characters or braces"),
);
const Flag = v.optional(v.boolean("must be true or false"));

/** A bulk action's body (JSON API and dashboard form alike). */
export const BulkBody = v.strictObject({
  action: v.picklist(["retry", "clean", "promote", "cancel"], "must be retry, clean, promote or cancel"),
  state: v.optional(v.picklist(["completed", "failed", "cancelled", "aborted"], "must be completed, failed, cancelled or aborted")),
  olderThan: v.optional(v.pipe(v.string(), v.maxLength(50, "must be at most 50 characters"))),
  ids: v.optional(v.pipe(v.array(v.string("must be job ids"), "must be an array of job ids"), v.maxLength(10_000, "must hold at most 10000 ids"))),
});

/** Runs a bulk action; returns how many jobs it touched. Bad combinations are a 400 naming the field. */
export async function bulkAction(q: Queue, body: v.InferOutput<typeof BulkBody>): Promise<number> {
  const bad = (field: string, value: unknown, message: string) => new HttpError(400, "Invalid request body", [{ field, value, message }]);
  try {
    switch (body.action) {
      case "retry":
        if (body.state !== undefined && body.state !== "failed" && body.state !== "aborted") throw bad("state", body.state, "must be failed or aborted for retry");
        return await q.retryAll(body.ids ? { ids: body.ids } : { state: (body.state as "failed" | "aborted" | undefined) ?? "failed" });
      case "clean":
        if (body.state === undefined) throw bad("state", body.state, "is required for clean");
        if (body.olderThan === undefined) throw bad("olderThan", body.olderThan, 'is required for clean (e.g. "1h"; "0" for all)');
        return await q.clean(body.state, /^\d+$/.test(body.olderThan) ? Number(body.olderThan) : body.olderThan);
      case "promote":
        return await q.promoteAll();
      case "cancel":
        return await q.cancelAll();
    }
  } catch (e) {
    if (ValidationError.is(e)) throw new HttpError(400, "Invalid request body", e.issues);
    throw e;
  }
}

const ListQuery = v.strictObject({
  state: v.optional(v.picklist(LISTABLE_STATES as JobState[], `must be one of ${LISTABLE_STATES.join(", ")}`)),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(600, "must be at most 600 characters"))),
  limit: v.optional(v.pipe(
    v.string(),
    v.regex(/^\d{1,3}$/, "must be an integer from 1 to 500"),
    v.transform(Number),
    v.minValue(1, "must be an integer from 1 to 500"),
    v.maxValue(500, "must be an integer from 1 to 500"),
  )),
  task: v.optional(v.pipe(v.string(), v.maxLength(200, "must be at most 200 characters"))),
  search: v.optional(v.pipe(v.string(), v.maxLength(200, "must be at most 200 characters"))),
});

const EnqueueBody = v.strictObject({
  task: v.pipe(v.string("must be a string"), v.minLength(1, "must not be empty"), v.maxLength(200, "must be at most 200 characters")),
  data: v.optional(v.unknown()),
  options: v.optional(v.record(v.string(), v.unknown(), "must be an object")),
});
const EnqueueBatch = v.pipe(
  v.array(EnqueueBody, "must be an array of { task, data?, options? }"),
  v.minLength(1, "must not be empty"),
  v.maxLength(1000, "must hold at most 1000 jobs"),
);

/** One job `{ task, data?, options? }`, or an array of them (up to 1000). */
export function parseEnqueue(input: unknown): v.InferOutput<typeof EnqueueBody> | v.InferOutput<typeof EnqueueBatch> {
  if (Array.isArray(input)) return check(EnqueueBatch, input, "request body");
  if (typeof input !== "object" || input === null) {
    throw new HttpError(400, "Invalid request body", [{ field: "(body)", value: input, message: "must be { task, data?, options? } or an array of them" }]);
  }
  return check(EnqueueBody, input, "request body");
}

const CancelBody = v.strictObject({ delete: Flag });
const ShutdownBody = v.strictObject({ hard: Flag });
const EventsQuery = v.strictObject({
  queues: v.optional(v.pipe(v.string(), v.maxLength(10_000, "is too long"))),
});

/**
 * Validates `input`, answering 400 with the issues when it does not fit. An issue of the input as
 * a whole is reported on `root` (the parameter's name, or "(body)").
 */
export function check<S extends v.GenericSchema>(schema: S, input: unknown, what: string, root = "(body)"): v.InferOutput<S> {
  const r = v.safeParse(schema, input);
  if (r.success) return r.output;
  const issues = toIssues(r.issues, root, "is not a known field");
  throw new HttpError(400, `Invalid ${what}`, issues);
}

/** The request body as JSON; `undefined` when empty. */
export async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") return undefined;
  if (jsonDepth(text) > MAX_DATA_DEPTH + 4) {
    throw new HttpError(400, "Invalid request body", [{ field: "(body)", value: text.slice(0, 80), message: `must not nest deeper than ${MAX_DATA_DEPTH} levels` }]);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, "Invalid request body", [{ field: "(body)", value: text.slice(0, 80), message: `must be JSON (${(e as Error).message})` }]);
  }
}

/** An absent body is `{}`; an array (which an object schema would take) is refused; the rest is checked as it is. */
function orEmpty(body: unknown): unknown {
  if (Array.isArray(body)) throw new HttpError(400, "Invalid request body", [{ field: "(body)", value: body, message: "must be a JSON object" }]);
  return body === undefined ? {} : body;
}

/** A queue from the `:queue` parameter, or a 404. */
export async function queueParam(ctx: AdminContext, c: Context): Promise<Queue> {
  const name = check(QueueName, c.req.param("queue"), "queue name", "queue");
  const q = await ctx.queue(name);
  if (!q) throw new HttpError(404, `Unknown queue ${JSON.stringify(name)}`);
  return q;
}

export function idParam(c: Context): string {
  return check(JobId, c.req.param("id"), "job id", "id");
}

/** JSON options allow `runAt` as an ISO date string too. */
export function normaliseOptions(options: Record<string, unknown> | undefined, field: string): Record<string, unknown> | undefined {
  if (!options || typeof options.runAt !== "string") return options;
  const t = Date.parse(options.runAt);
  if (Number.isNaN(t)) throw new HttpError(400, "Invalid enqueue options", [{ field: `${field}runAt`, value: options.runAt, message: "must be epoch milliseconds or an ISO date" }]);
  return { ...options, runAt: t };
}

/** Enqueues one job or a batch from a validated body. */
export async function enqueueFrom(q: Queue, input: ReturnType<typeof parseEnqueue>) {
  try {
    if (Array.isArray(input)) {
      return { status: 201 as const, body: { jobs: await q.enqueueMany(input.map((j, i) => ({ task: j.task, data: j.data, options: normaliseOptions(j.options, `${i}.`) }))) } };
    }
    return { status: 201 as const, body: await q.enqueue(input.task, input.data, normaliseOptions(input.options, "")) };
  } catch (e) {
    if (ValidationError.is(e)) throw new HttpError(400, e.message.split(":")[0]!, e.issues);
    throw e;
  }
}

/** The API routes; auth is applied by the caller. */
export function apiRoutes(ctx: AdminContext): Hono {
  const api = new Hono();

  api.get("/queues", async (c) => {
    const names = await ctx.queueNames();
    const workers = await ctx.workers();
    const queues = await Promise.all(names.map(async (name) => ({
      name,
      counts: await (await ctx.queue(name))!.counts(),
      workers: workers.filter((w) => w.queues.includes(name)).length,
    })));
    return c.json({ queues, warnings: await ctx.warnings() });
  });

  api.get("/queues/:queue", async (c) => {
    const q = await queueParam(ctx, c);
    const [counts, paused, rateLimit, groupConcurrency] = await Promise.all([q.counts(), q.isPaused(), q.rateLimit(), q.groupConcurrency()]);
    return c.json({ name: q.name, counts, paused, rateLimit, groupConcurrency });
  });

  for (const action of ["pause", "resume"] as const) {
    api.post(`/queues/:queue/${action}`, async (c) => {
      const q = await queueParam(ctx, c);
      await (action === "pause" ? q.pause() : q.resume());
      return c.json({ queue: q.name, paused: action === "pause" });
    });
  }

  api.get("/queues/:queue/schedules", async (c) => {
    const q = await queueParam(ctx, c);
    return c.json({ queue: q.name, schedules: await q.listSchedules() });
  });

  api.get("/queues/:queue/jobs", async (c) => {
    const q = await queueParam(ctx, c);
    const query = check(ListQuery, c.req.query(), "query");
    const state = query.state ?? "waiting";
    try {
      const page = await q.listJobs(state, { cursor: query.cursor, limit: query.limit, task: query.task || undefined, search: query.search || undefined });
      return c.json({ queue: q.name, state, ...page });
    } catch (e) {
      if (ValidationError.is(e)) throw new HttpError(400, "Invalid query", e.issues);
      if (e instanceof Error && /bad cursor/.test(e.message)) {
        throw new HttpError(400, "Invalid query", [{ field: "cursor", value: query.cursor, message: "must be a nextCursor from a previous page of this state" }]);
      }
      throw e;
    }
  });

  api.post("/queues/:queue/jobs", async (c) => {
    const q = await queueParam(ctx, c);
    const body = parseEnqueue(await jsonBody(c));
    const r = await enqueueFrom(q, body);
    return c.json(r.body, r.status);
  });

  api.get("/queues/:queue/jobs/:id", async (c) => {
    const q = await queueParam(ctx, c);
    const id = idParam(c);
    const job = await q.getJob(id);
    if (!job) throw new HttpError(404, `No job ${JSON.stringify(id)} in queue ${JSON.stringify(q.name)}`);
    return c.json({ ...job, log: await q.getJobLog(id) });
  });

  api.post("/queues/:queue/bulk", async (c) => {
    const q = await queueParam(ctx, c);
    const body = check(BulkBody, await jsonBody(c), "request body");
    const touched = await bulkAction(q, body);
    return c.json({ queue: q.name, action: body.action, touched });
  });

  const cancel = (abort: boolean) => async (c: Context) => {
    const q = await queueParam(ctx, c);
    const id = idParam(c);
    const body = check(CancelBody, orEmpty(await jsonBody(c)), "request body");
    const r = await q.cancel(id, { abort, delete: body.delete });
    if (r.outcome === "missing") return c.json({ error: `No job ${JSON.stringify(id)} in queue ${JSON.stringify(q.name)}`, ...r }, 404);
    return c.json(r);
  };
  api.post("/queues/:queue/jobs/:id/cancel", cancel(false));
  api.post("/queues/:queue/jobs/:id/abort", cancel(true));

  api.post("/queues/:queue/jobs/:id/retry", async (c) => {
    const q = await queueParam(ctx, c);
    const id = idParam(c);
    check(v.undefined(), await jsonBody(c), "request body (none expected)");
    if (await q.retry(id)) return c.json({ id, retried: true });
    const job = await q.getJob(id);
    if (!job) throw new HttpError(404, `No job ${JSON.stringify(id)} in queue ${JSON.stringify(q.name)}`);
    throw new HttpError(409, `Job ${JSON.stringify(id)} is ${job.state}: only failed or aborted jobs can be retried`);
  });

  api.delete("/queues/:queue/jobs/:id", async (c) => {
    const q = await queueParam(ctx, c);
    const id = idParam(c);
    const r = await q.deleteJob(id);
    if (r.outcome === "missing") throw new HttpError(404, `No job ${JSON.stringify(id)} in queue ${JSON.stringify(q.name)}`);
    if (r.outcome === "active") throw new HttpError(409, `Job ${JSON.stringify(id)} is running: abort it first`);
    return c.json(r);
  });

  api.post("/queues/:queue/shutdown", async (c) => {
    const q = await queueParam(ctx, c);
    const body = check(ShutdownBody, orEmpty(await jsonBody(c)), "request body");
    const workers = (await ctx.workers()).filter((w) => w.queues.includes(q.name)).map((w) => w.id);
    const subscribers = await sendShutdown(ctx.send, { queue: q.name, hard: body.hard, prefix: ctx.prefix });
    return c.json({ queue: q.name, hard: !!body.hard, workers, subscribers }, 202);
  });

  api.get("/workers", async (c) => c.json({ workers: await ctx.workers() }));

  api.post("/workers/:id/shutdown", async (c) => {
    const id = check(JobId, c.req.param("id"), "worker id", "id");
    const body = check(ShutdownBody, orEmpty(await jsonBody(c)), "request body");
    const worker = (await ctx.workers()).find((w) => w.id === id);
    if (!worker) throw new HttpError(404, `No live worker ${JSON.stringify(id)}`);
    const subscribers = await sendShutdown(ctx.send, { worker: id, hard: body.hard, prefix: ctx.prefix });
    return c.json({ worker: id, hard: !!body.hard, subscribers }, 202);
  });

  api.get("/events", async (c) => {
    const query = check(EventsQuery, c.req.query(), "query");
    const known = await ctx.queueNames();
    let queues = known;
    if (query.queues !== undefined) {
      queues = [...new Set(query.queues.split(",").filter(Boolean))];
      const issues: ValidationIssue[] = [];
      for (const name of queues) {
        if (!v.is(QueueName, name)) issues.push({ field: "queues", value: name, message: NAME_MESSAGE });
        else if (!(await ctx.queue(name))) issues.push({ field: "queues", value: name, message: "is not a queue this app shows" });
      }
      if (issues.length > 0 || queues.length === 0) {
        throw new HttpError(400, "Invalid query", issues.length ? issues : [{ field: "queues", value: query.queues, message: "must name at least one queue" }]);
      }
    }
    if (queues.length === 0) throw new HttpError(404, "No queues to follow yet");
    return eventStream(c, ctx, queues);
  });

  api.all("*", (c) => c.json({ error: `No API route ${c.req.method} ${c.req.path}` }, 404));
  return api;
}
