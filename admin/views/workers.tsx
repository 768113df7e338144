/** @jsxImportSource hono/jsx */
/** Live workers with their phase, jobs and shutdown buttons. */
import type { WorkerInfo } from "../../src/inspect.ts";
import { short } from "./overview.tsx";
import { ActionForm, duration, jobUrl, Layout, type PageContext, PhaseBadge, queueUrl, Time } from "./ui.tsx";

export function WorkersPage({ page, workers }: { page: PageContext; workers: WorkerInfo[] }) {
  const now = Date.now();
  return (
    <Layout page={page} title="Workers" nav="workers" live={{ poll: 3000 }}>
      <div class="pagehead">
        <h1>Workers</h1>
        <span class="sub">{workers.length} live</span>
      </div>
      <div class="card" data-live="workers">
        {workers.length === 0
          ? <div class="empty">No live worker. Workers register when they start and heartbeat while they run.</div>
          : (
            <div class="scroll">
              <table class="cards">
                <thead>
                  <tr>
                    <th>Worker</th>
                    <th>Phase</th>
                    <th>Queues</th>
                    <th class="num">Jobs</th>
                    <th>Running</th>
                    <th>Pool</th>
                    <th class="num">Loop lag</th>
                    <th>Host · pid · runtime</th>
                    <th>Up</th>
                    <th>Heartbeat</th>
                    <th class="num"><span class="muted">Shutdown</span></th>
                  </tr>
                </thead>
                <tbody>
                  {workers.map((w) => (
                    <tr data-worker={w.id}>
                      <td class="id" data-label="Worker">{w.id}</td>
                      <td data-label="Phase"><PhaseBadge phase={w.phase} /></td>
                      <td data-label="Queues">{w.queues.map((q, i) => <>{i > 0 ? ", " : ""}<a href={page.url(queueUrl(q))}>{q}</a></>)}</td>
                      <td class="num" data-label="Jobs">{w.active.length}/{w.concurrency}</td>
                      <td class="mono" data-label="Running">
                        {w.active.length === 0 ? <span class="muted">idle</span> : null}
                        {w.active.slice(0, 10).map((j, i) => <>{i > 0 ? ", " : ""}<a href={page.url(jobUrl(j.queue, j.id))} title={`${j.queue} / ${j.id}`}>{short(j.id)}</a></>)}
                        {w.active.length > 10 ? <span class="muted"> +{w.active.length - 10}</span> : null}
                      </td>
                      <td data-label="Pool">{w.pool ? `${w.pool.threads} thread${w.pool.threads === 1 ? "" : "s"}, ${w.pool.processes} process${w.pool.processes === 1 ? "" : "es"} (${w.pool.busy} busy)` : <span class="muted">—</span>}</td>
                      <td class="num" data-label="Loop lag">{w.loopLagMs !== undefined ? `${w.loopLagMs} ms` : "—"}</td>
                      <td class="muted" data-label="Host · pid · runtime">{w.host || "?"} · {w.pid || "?"} · {w.runtime || "?"}</td>
                      <td class="nowrap" data-label="Up">{w.startedAt ? duration(now - w.startedAt) : "—"}</td>
                      <td class="nowrap" data-label="Heartbeat"><Time ms={w.heartbeatAt} /></td>
                      <td class="actions" data-label="Shutdown">
                        {w.phase === "running"
                          ? <ActionForm page={page} action={`/workers/${encodeURIComponent(w.id)}/shutdown`} label="Drain" kind="danger" small title="Stop fetching; let running jobs finish" confirm={`Drain worker ${w.id}?`} />
                          : null}{" "}
                        {w.phase === "running" || w.phase === "draining"
                          ? <ActionForm page={page} action={`/workers/${encodeURIComponent(w.id)}/shutdown`} label="Stop now" kind="solid-danger" small fields={{ hard: "1" }} title="Abort running jobs (re-queued) and stop" confirm={`Abort the running jobs of ${w.id} and stop it?`} />
                          : <span class="muted">stopping…</span>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
      </div>
    </Layout>
  );
}
