/** @jsxImportSource hono/jsx */
/** The overview: totals, every queue with its counts, and the latest lifecycle events. */
import type { JobCounts } from "../../src/job.ts";
import type { JobEvent } from "../events.ts";
import { jobUrl, Layout, type PageContext, queueUrl, StateBadge, Time } from "./ui.tsx";

export interface QueueRow {
  name: string;
  counts: JobCounts;
  workers: number;
  /** Completed in the last minute. */
  completedLastMinute: number;
}

const COLUMNS = ["waiting", "active", "delayed", "completed", "failed", "cancelled", "aborted"] as const;

export function OverviewPage({ page, queues, workers, events, warnings = [] }: { page: PageContext; queues: QueueRow[]; workers: number; events: JobEvent[]; warnings?: string[] }) {
  const total = (s: (typeof COLUMNS)[number]) => queues.reduce((n, q) => n + q.counts[s], 0);
  const perMinute = queues.reduce((n, q) => n + q.completedLastMinute, 0);
  return (
    <Layout page={page} title="Queues" nav="overview" live={{ queues: queues.map((q) => q.name), poll: 15_000 }}>
      <div class="pagehead">
        <h1>Queues</h1>
        <span class="sub">{queues.length} {queues.length === 1 ? "queue" : "queues"}</span>
      </div>
      {warnings.map((w) => <div class="card warning" role="alert">{w}</div>)}
      <div data-live="stats" class="grid stats">
        <div class="card stat"><div class="k">Waiting</div><div class="v">{total("waiting")}</div></div>
        <div class="card stat"><div class="k">Active</div><div class="v">{total("active")}</div></div>
        <div class="card stat"><div class="k">Delayed</div><div class="v">{total("delayed")}</div></div>
        <div class="card stat"><div class="k">Failed</div><div class="v">{total("failed")}</div></div>
        <div class="card stat"><div class="k">Throughput</div><div class="v">{perMinute} <small>/ min</small></div></div>
        <div class="card stat"><div class="k">Workers</div><div class="v"><a href={page.url("/workers")}>{workers}</a></div></div>
      </div>
      <div class="card" data-live="queues">
        <header><h2>Jobs by state</h2></header>
        {queues.length === 0
          ? <div class="empty">No queues yet. Enqueue a job or start a worker and it shows up here.</div>
          : (
            <div class="scroll">
              <table>
                <thead>
                  <tr>
                    <th>Queue</th>
                    {COLUMNS.map((c) => <th class="num">{c}</th>)}
                    <th class="num">workers</th>
                  </tr>
                </thead>
                <tbody>
                  {queues.map((q) => (
                    <tr>
                      <td><a href={page.url(queueUrl(q.name))}><strong>{q.name}</strong></a></td>
                      {COLUMNS.map((c) => (
                        <td class={`num${q.counts[c] === 0 ? " zero" : ""}`}>
                          <a href={page.url(queueUrl(q.name, c))}>{q.counts[c]}</a>
                        </td>
                      ))}
                      <td class={`num${q.workers === 0 ? " zero" : ""}`}>{q.workers}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
      </div>
      <div class="card" data-live="events">
        <header><h2>Recent activity</h2></header>
        {events.length === 0
          ? <div class="empty">No lifecycle events yet.</div>
          : (
            <ul class="events">
              {events.map((e) => (
                <li>
                  <StateBadge state={eventState(e.event)} label={e.detail ? `${e.event} (${e.detail})` : e.event} />
                  <a href={page.url(queueUrl(e.queue))}>{e.queue}</a>
                  <span class="id">
                    {e.ids.slice(0, 3).map((id, i) => <>{i > 0 ? ", " : ""}<a href={page.url(jobUrl(e.queue, id))}>{short(id)}</a></>)}
                    {e.ids.length > 3 ? <span class="muted"> +{e.ids.length - 3} more</span> : null}
                  </span>
                  <span class="t"><Time ms={e.t} /></span>
                </li>
              ))}
            </ul>
          )}
      </div>
    </Layout>
  );
}

/** The badge colour an event kind borrows. */
function eventState(kind: string): string {
  switch (kind) {
    case "retrying":
    case "interrupted":
    case "stalled":
      return "delayed";
    case "deleted":
      return "cancelled";
    default:
      return kind;
  }
}

export function short(id: string): string {
  return id.length > 18 ? id.slice(0, 8) + "…" + id.slice(-4) : id;
}
