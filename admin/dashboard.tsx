/** @jsxImportSource hono/jsx */
/**
 * The dashboard: server-rendered pages, and the HTML forms behind their buttons. Every form
 * posts back with the CSRF token and redirects (303) to a page that shows the outcome, so the
 * dashboard works without JavaScript.
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import * as v from "valibot";
import type { JobState } from "../src/job.ts";
import { LISTABLE_STATES } from "../src/inspect.ts";
import { queueKeys } from "../src/keys.ts";
import { BulkBody, bulkAction, check, enqueueFrom, HttpError, idParam, JobId, queueParam } from "./api.ts";
import { FLASH_COOKIE } from "./auth.ts";
import type { AdminContext, AdminEnv } from "./context.ts";
import { sendShutdown } from "../src/control.ts";
import type { JobEvent } from "./events.ts";
import { EnqueuePage, type EnqueueValues } from "./views/forms.tsx";
import { JobPage, MissingJobPage } from "./views/job.tsx";
import { OverviewPage, type QueueRow } from "./views/overview.tsx";
import { QueuePage } from "./views/queue.tsx";
import type { PageContext } from "./views/ui.tsx";
import { WorkersPage } from "./views/workers.tsx";

type C = Context<AdminEnv>;

const ListQuery = v.object({
  state: v.optional(v.picklist(LISTABLE_STATES as JobState[], `must be one of ${LISTABLE_STATES.join(", ")}`)),
  cursor: v.optional(v.pipe(v.string(), v.maxLength(600, "must be at most 600 characters"))),
  search: v.optional(v.pipe(v.string(), v.maxLength(200, "must be at most 200 characters"))),
  task: v.optional(v.pipe(v.string(), v.maxLength(200, "must be at most 200 characters"))),
});

const ActionBody = v.object({
  back: v.optional(v.string()),
  hard: v.optional(v.picklist(["1", ""], 'must be "1" or empty')),
});

const EnqueueForm = v.object({
  task: v.optional(v.string(), ""),
  data: v.optional(v.string(), ""),
  delay: v.optional(v.string(), ""),
  attempts: v.optional(v.string(), ""),
  jobId: v.optional(v.string(), ""),
});

export function secureCookie(c: Context): boolean {
  return new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
}

/** The page context of a request; reads (and clears) the flash message. */
export function pageContext(ctx: AdminContext, c: C): PageContext {
  let flash: PageContext["flash"];
  // a live update's fetch of the page never takes the flash: one in flight while a form was sent
  // would take the message meant for the page the form's redirect loads
  const raw = c.req.header("x-sluice-live") ? undefined : getCookie(c, FLASH_COOKIE);
  if (raw) {
    const [kind, ...rest] = raw.split("|");
    const message = rest.join("|").slice(0, 400);
    if ((kind === "ok" || kind === "error") && message) flash = { kind, message };
    deleteCookie(c, FLASH_COOKIE, { path: ctx.basePath || "/" });
  }
  const url = new URL(c.req.url);
  return {
    url: (p) => ctx.url(p),
    nonce: c.get("nonce"),
    csrf: c.get("csrf"),
    authRequired: ctx.auth.required,
    prefix: ctx.prefix,
    flash,
    here: url.pathname + url.search,
  };
}

/** A redirect target from a form: only a path inside the app. */
export function safeBack(ctx: AdminContext, back: string | undefined, fallback: string): string {
  const base = ctx.basePath;
  if (typeof back === "string" && back.length < 2000 && /^\/(?![/\\])[^\s\\]*$/.test(back) && (base === "" || back === base || back.startsWith(base + "/"))) {
    return back;
  }
  return ctx.url(fallback);
}

function flash(ctx: AdminContext, c: C, kind: "ok" | "error", message: string): void {
  setCookie(c, FLASH_COOKIE, `${kind}|${message}`, {
    path: ctx.basePath || "/",
    httpOnly: true,
    sameSite: "Strict",
    secure: secureCookie(c),
    maxAge: 60,
  });
}

async function formBody(c: C): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(body)) if (typeof val === "string") out[k] = val;
  return out;
}

async function recentEvents(ctx: AdminContext, queues: string[], count = 12): Promise<JobEvent[]> {
  const all = await Promise.all(queues.slice(0, 100).map(async (q) => {
    const reply = await ctx.send("XREVRANGE", [queueKeys(ctx.prefix, q).events, "+", "-", "COUNT", count]);
    const entries = (Array.isArray(reply) ? reply : []) as [string, string[]][];
    return entries.map(([, fields]) => {
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      const e: JobEvent = { queue: q, event: f.e ?? "?", ids: (f.id ?? "").split(" ").filter(Boolean), t: Number(f.t ?? 0) };
      if (f.x) e.detail = f.x;
      return e;
    });
  }));
  return all.flat().sort((a, b) => b.t - a.t).slice(0, count);
}

/** The dashboard routes; auth and CSRF checks are applied by the caller. */
export function dashboardRoutes(ctx: AdminContext): Hono<AdminEnv> {
  const app = new Hono<AdminEnv>();

  app.get("/", async (c) => {
    const page = pageContext(ctx, c);
    const names = await ctx.queueNames();
    const workers = await ctx.workers();
    const now = Date.now();
    const queues: QueueRow[] = await Promise.all(names.map(async (name) => {
      const q = (await ctx.queue(name))!;
      const [counts, done] = await Promise.all([q.counts(), q.send("ZCOUNT", [q.keys.completed, now - 60_000, "+inf"])]);
      return { name, counts, workers: workers.filter((w) => w.queues.includes(name)).length, completedLastMinute: Number(done) };
    }));
    const events = await recentEvents(ctx, names);
    return c.html(<OverviewPage page={page} queues={queues} workers={workers.length} events={events} warnings={await ctx.warnings()} />);
  });

  app.get("/workers", async (c) => {
    const page = pageContext(ctx, c);
    return c.html(<WorkersPage page={page} workers={await ctx.workers()} />);
  });

  app.get("/queues/:queue", async (c) => {
    const q = await queueParam(ctx, c);
    const query = check(ListQuery, c.req.query(), "query");
    const state = query.state ?? "waiting";
    let jobs;
    try {
      jobs = await q.listJobs(state, { cursor: query.cursor, limit: 50, search: query.search || undefined, task: query.task || undefined });
    } catch (e) {
      if (e instanceof Error && /cursor/.test(e.message)) throw new HttpError(400, "This page link is out of date: its cursor is not valid for this list.");
      throw e;
    }
    const [counts, workers, paused, schedules, throughput] = await Promise.all([q.counts(), ctx.workers(), q.isPaused(), q.listSchedules(), q.throughput(60)]);
    const page = pageContext(ctx, c);
    return c.html(
      <QueuePage page={page} queue={q.name} counts={counts} state={state} jobs={jobs} paged={!!query.cursor} workers={workers.filter((w) => w.queues.includes(q.name)).length} paused={paused} schedules={schedules} throughput={throughput} filter={{ search: query.search ?? "", task: query.task ?? "" }} />,
    );
  });

  app.get("/queues/:queue/new", async (c) => {
    const q = await queueParam(ctx, c);
    return c.html(<EnqueuePage page={pageContext(ctx, c)} queue={q.name} />);
  });

  app.post("/queues/:queue/new", async (c) => {
    const q = await queueParam(ctx, c);
    const form = check(EnqueueForm, await formBody(c), "form");
    const values: EnqueueValues = form;
    const fail = (message: string) => c.html(<EnqueuePage page={pageContext(ctx, c)} queue={q.name} values={values} error={message} />, 400);
    let data: unknown = null;
    if (form.data.trim() !== "") {
      try {
        data = JSON.parse(form.data);
      } catch (e) {
        return fail(`Data is not valid JSON: ${(e as Error).message}`);
      }
    }
    const options: Record<string, unknown> = {};
    if (form.delay.trim()) options.delay = /^\d+$/.test(form.delay.trim()) ? Number(form.delay.trim()) : form.delay.trim();
    if (form.attempts.trim()) options.attempts = Number(form.attempts.trim());
    if (form.jobId.trim()) options.jobId = form.jobId.trim();
    try {
      const r = await enqueueFrom(q, { task: form.task.trim(), data, options });
      const job = r.body as { id: string; duplicate: boolean };
      flash(ctx, c, "ok", job.duplicate ? `A job with id ${job.id} exists already: nothing was enqueued.` : `Enqueued job ${job.id}.`);
      return c.redirect(ctx.url(`/queues/${encodeURIComponent(q.name)}/jobs/${encodeURIComponent(job.id)}`), 303);
    } catch (e) {
      if (e instanceof HttpError && e.status === 400) {
        return fail(e.issues?.map((i) => `${i.field}: ${i.message}`).join("; ") || e.message);
      }
      if (e instanceof HttpError && e.issues) return fail(e.message);
      if (e instanceof Error && e.name === "ValidationError") return fail(e.message);
      throw e;
    }
  });

  app.get("/queues/:queue/jobs/:id", async (c) => {
    const q = await queueParam(ctx, c);
    const id = idParam(c);
    const job = await q.getJob(id);
    const page = pageContext(ctx, c);
    if (!job) return c.html(<MissingJobPage page={page} queue={q.name} id={id} />, 404);
    return c.html(<JobPage page={page} job={job} log={await q.getJobLog(id)} />);
  });

  const jobAction = (action: "cancel" | "abort" | "retry" | "delete") => async (c: C) => {
    const q = await queueParam(ctx, c);
    const id = idParam(c);
    const body = check(ActionBody, await formBody(c), "form");
    const jobPath = `/queues/${encodeURIComponent(q.name)}/jobs/${encodeURIComponent(id)}`;
    let back = safeBack(ctx, body.back, jobPath);
    let kind: "ok" | "error" = "ok";
    let message: string;
    if (action === "cancel" || action === "abort") {
      const r = await q.cancel(id, { abort: action === "abort" });
      switch (r.outcome) {
        case "cancelled":
          message = `Job ${id} cancelled: it will not run.`;
          break;
        case "abort-requested":
          message = `Abort requested: job ${id} stops as soon as its worker sees it.`;
          break;
        case "active":
          kind = "error";
          message = `Job ${id} is running: abort it instead.`;
          break;
        case "finished":
          kind = "error";
          message = `Job ${id} had already ended (${r.previousState}); nothing changed.`;
          break;
        default:
          kind = "error";
          message = `No job ${id}.`;
      }
    } else if (action === "retry") {
      if (await q.retry(id)) {
        message = `Job ${id} re-queued with its attempts reset.`;
      } else {
        const job = await q.getJob(id);
        kind = "error";
        message = job ? `Job ${id} is ${job.state}: only failed or aborted jobs can be retried.` : `No job ${id}.`;
      }
    } else {
      const r = await q.deleteJob(id);
      if (r.outcome === "deleted") {
        message = `Job ${id} deleted.`;
        if (back.split("?")[0] === ctx.url(jobPath)) back = ctx.url(`/queues/${encodeURIComponent(q.name)}?state=${r.previousState}`);
      } else {
        kind = "error";
        message = r.outcome === "active" ? `Job ${id} is running: abort it before deleting it.` : `No job ${id}.`;
      }
    }
    flash(ctx, c, kind, message);
    return c.redirect(back, 303);
  };
  app.post("/queues/:queue/jobs/:id/cancel", jobAction("cancel"));
  app.post("/queues/:queue/jobs/:id/abort", jobAction("abort"));
  app.post("/queues/:queue/jobs/:id/retry", jobAction("retry"));
  app.post("/queues/:queue/jobs/:id/delete", jobAction("delete"));

  app.post("/queues/:queue/bulk", async (c) => {
    const q = await queueParam(ctx, c);
    const form = await c.req.parseBody({ all: true });
    const one = (k: string) => (typeof form[k] === "string" ? (form[k] as string) : undefined);
    const ids = form.ids === undefined ? undefined : (Array.isArray(form.ids) ? form.ids : [form.ids]).filter((x): x is string => typeof x === "string");
    const body = check(BulkBody, {
      action: one("action"),
      ...(one("state") ? { state: one("state") } : {}),
      ...(one("olderThan") ? { olderThan: one("olderThan") } : {}),
      ...(ids ? { ids } : {}),
    }, "form");
    const touched = await bulkAction(q, body);
    const what = { retry: "retried", clean: "deleted", promote: "promoted", cancel: "cancelled" }[body.action];
    flash(ctx, c, "ok", `${touched} ${touched === 1 ? "job" : "jobs"} ${what}.`);
    return c.redirect(safeBack(ctx, one("back"), `/queues/${encodeURIComponent(q.name)}`), 303);
  });

  for (const action of ["pause", "resume"] as const) {
    app.post(`/queues/:queue/${action}`, async (c) => {
      const q = await queueParam(ctx, c);
      const body = check(ActionBody, await formBody(c), "form");
      await (action === "pause" ? q.pause() : q.resume());
      flash(ctx, c, "ok", action === "pause" ? `${q.name} paused: running jobs finish, no worker starts another until it is resumed.` : `${q.name} resumed.`);
      return c.redirect(safeBack(ctx, body.back, `/queues/${encodeURIComponent(q.name)}`), 303);
    });
  }

  app.post("/queues/:queue/shutdown", async (c) => {
    const q = await queueParam(ctx, c);
    const body = check(ActionBody, await formBody(c), "form");
    const hard = body.hard === "1";
    const workers = (await ctx.workers()).filter((w) => w.queues.includes(q.name));
    await sendShutdown(ctx.send, { queue: q.name, hard, prefix: ctx.prefix });
    flash(ctx, c, "ok", `Asked ${workers.length} ${workers.length === 1 ? "worker" : "workers"} of ${q.name} to ${hard ? "stop now (running jobs are re-queued)" : "drain and stop"}.`);
    return c.redirect(safeBack(ctx, body.back, `/queues/${encodeURIComponent(q.name)}`), 303);
  });

  app.post("/workers/:id/shutdown", async (c) => {
    const id = check(JobId, c.req.param("id"), "worker id", "id");
    const body = check(ActionBody, await formBody(c), "form");
    const hard = body.hard === "1";
    const back = safeBack(ctx, body.back, "/workers");
    if (!(await ctx.workers()).some((w) => w.id === id)) {
      flash(ctx, c, "error", `Worker ${id} is no longer live.`);
      return c.redirect(back, 303);
    }
    await sendShutdown(ctx.send, { worker: id, hard, prefix: ctx.prefix });
    flash(ctx, c, "ok", hard ? `Worker ${id} asked to stop now: its running jobs are aborted and re-queued.` : `Worker ${id} asked to drain: it takes no new job and stops once its jobs finish.`);
    return c.redirect(back, 303);
  });

  return app;
}
