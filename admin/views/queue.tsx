/** @jsxImportSource hono/jsx */
/** One queue: tabs per state, one page of jobs, and the queue's worker controls. */
import type { JobCounts, JobState } from "../../src/job.ts";
import type { JobPage, JobSummary } from "../../src/inspect.ts";
import type { ScheduleInfo } from "../../src/schedule.ts";
import { short } from "./overview.tsx";
import { ActionForm, duration, jobUrl, Layout, type PageContext, queueUrl, Time } from "./ui.tsx";

const STATES: JobState[] = ["waiting", "active", "delayed", "completed", "failed", "cancelled", "aborted"];

const EMPTY: Record<JobState, string> = {
  waiting: "No job is waiting to run.",
  active: "No job is running.",
  delayed: "No job is scheduled for later.",
  completed: "No completed job is kept.",
  failed: "No failed job. ",
  cancelled: "No cancelled job is kept.",
  aborted: "No aborted job is kept.",
};

export function QueuePage(props: {
  page: PageContext;
  queue: string;
  counts: JobCounts;
  state: JobState;
  jobs: JobPage;
  paged: boolean;
  workers: number;
  paused: boolean;
  schedules: ScheduleInfo[];
}) {
  const { page, queue, counts, state, jobs, paged, workers, paused, schedules } = props;
  const qurl = `/queues/${encodeURIComponent(queue)}`;
  return (
    <Layout page={page} title={`${queue} · ${state}`} nav="overview" live={{ queues: [queue] }}>
      <div class="crumbs"><a href={page.url("/")}>Queues</a> /</div>
      <div class="pagehead">
        <h1>{queue}</h1>
        <span class="sub" data-live="sub">{workers} {workers === 1 ? "worker" : "workers"}</span>
        {paused ? <span class="badge warn" title="Workers start none of its jobs until it is resumed">paused</span> : null}
        <span class="spacer" />
        {paused
          ? <ActionForm page={page} action={`${qurl}/resume`} label="Resume" kind="primary" />
          : <ActionForm page={page} action={`${qurl}/pause`} label="Pause" confirm={`Pause ${queue}? Running jobs finish; no worker starts another until it is resumed.`} />}
        <a class="btn primary" href={page.url(`/queues/${encodeURIComponent(queue)}/new`)}>Enqueue a job</a>
      </div>
      <div class="card" data-live="jobs">
        <nav class="tabs" aria-label="Job states">
          {STATES.map((s) => (
            <a href={page.url(queueUrl(queue, s))} class={s === state ? "on" : ""} aria-current={s === state ? "page" : undefined}>
              {s} <span class="n">{counts[s]}</span>
            </a>
          ))}
        </nav>
        {jobs.jobs.length === 0
          ? <div class="empty">{paged ? "No more jobs on this page." : EMPTY[state]}</div>
          : <JobTable page={page} queue={queue} state={state} jobs={jobs.jobs} />}
        {paged || jobs.nextCursor
          ? (
            <div class="pager">
              {paged ? <a class="btn sm" href={page.url(queueUrl(queue, state))}>First page</a> : null}
              {jobs.nextCursor
                ? <a class="btn sm" href={page.url(`${queueUrl(queue, state)}&cursor=${encodeURIComponent(jobs.nextCursor)}`)}>Next page →</a>
                : null}
            </div>
          )
          : null}
      </div>
      <div class="card">
        <header><h2>Schedules</h2></header>
        {schedules.length === 0
          ? <div class="empty">No schedules. Set one with <code>queue.upsertSchedule()</code> or <code>sluice schedule {queue} set</code>.</div>
          : (
            <div class="scroll"><table>
              <thead><tr><th>id</th><th>when</th><th>task</th><th>next run</th><th>last run</th><th>misfire</th></tr></thead>
              <tbody>
                {schedules.map((s) => (
                  <tr>
                    <td data-label="id"><code>{s.id}</code></td>
                    <td data-label="when">{s.cron !== undefined ? <><code>{s.cron}</code>{s.tz ? ` (${s.tz})` : ""}</> : `every ${s.every! / 1000} s`}</td>
                    <td data-label="task">{s.task}</td>
                    <td data-label="next run">{s.next !== undefined ? <Time ms={s.next} /> : "—"}</td>
                    <td data-label="last run">{s.last !== undefined ? <Time ms={s.last} /> : "—"}</td>
                    <td data-label="misfire">{s.misfire}</td>
                  </tr>
                ))}
              </tbody>
            </table></div>
          )}
      </div>
      <div class="card">
        <div class="body">
          <details class="danger-zone">
            <summary>Stop the workers of this queue</summary>
            <p class="muted">
              Graceful: they stop fetching and let running jobs finish. Hard: running jobs are aborted (reason
              <code> shutdown</code>) and re-queued without counting the attempt.
            </p>
            <div class="actions-bar">
              <ActionForm page={page} action={`/queues/${encodeURIComponent(queue)}/shutdown`} label="Drain workers" kind="danger" confirm={`Drain every worker of ${queue}?`} />
              <ActionForm page={page} action={`/queues/${encodeURIComponent(queue)}/shutdown`} label="Stop workers now" kind="solid-danger" fields={{ hard: "1" }} confirm={`Abort running jobs and stop every worker of ${queue}?`} />
            </div>
          </details>
        </div>
      </div>
    </Layout>
  );
}

function JobTable({ page, queue, state, jobs }: { page: PageContext; queue: string; state: JobState; jobs: JobSummary[] }) {
  const when: Record<JobState, [string, (j: JobSummary) => number | undefined]> = {
    waiting: ["Enqueued", (j) => j.createdAt],
    active: ["Started", (j) => j.startedAt],
    delayed: ["Runs", (j) => j.runAt],
    completed: ["Finished", (j) => j.finishedAt],
    failed: ["Failed", (j) => j.finishedAt],
    cancelled: ["Cancelled", (j) => j.finishedAt],
    aborted: ["Aborted", (j) => j.finishedAt],
  };
  const [whenLabel, whenOf] = when[state];
  const showError = state === "failed" || state === "aborted" || state === "delayed" || state === "waiting";
  return (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            <th>Job</th>
            <th>Task</th>
            <th class="num">Attempt</th>
            <th>{whenLabel}</th>
            {state === "active" ? <><th>Worker</th><th>Progress</th></> : null}
            {state === "completed" ? <th class="num">Took</th> : null}
            {showError ? <th>Last error</th> : null}
            <th class="num"><span class="muted">Actions</span></th>
          </tr>
        </thead>
        <tbody>
          {jobs.map((j) => (
            <tr data-job={j.id}>
              <td><a class="id" href={page.url(jobUrl(queue, j.id))} title={j.id}>{short(j.id)}</a></td>
              <td>{j.name}</td>
              <td class="num">{j.attempt}/{j.maxAttempts}</td>
              <td><Time ms={whenOf(j)} /></td>
              {state === "active"
                ? (
                  <>
                    <td class="id" title={j.owner}>{j.owner ?? "—"}</td>
                    <td>{typeof j.progress === "number" ? <progress max="100" value={String(Math.max(0, Math.min(100, j.progress)))} /> : j.progress !== undefined ? <code>{JSON.stringify(j.progress).slice(0, 40)}</code> : <span class="muted">—</span>}</td>
                  </>
                )
                : null}
              {state === "completed" ? <td class="num">{j.finishedAt && j.startedAt ? duration(j.finishedAt - j.startedAt) : "—"}</td> : null}
              {showError ? <td>{j.error ? <span class="err" title={`${j.error.name}: ${j.error.message}`}>{j.error.message || j.error.name}</span> : <span class="muted">—</span>}</td> : null}
              <td class="actions"><RowActions page={page} queue={queue} job={j} /></td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function RowActions({ page, queue, job }: { page: PageContext; queue: string; job: JobSummary }) {
  const base = jobUrl(queue, job.id);
  switch (job.state) {
    case "waiting":
    case "delayed":
      return <ActionForm page={page} action={`${base}/cancel`} label="Cancel" kind="danger" small />;
    case "active":
      return job.abortRequested
        ? <span class="muted">aborting…</span>
        : <ActionForm page={page} action={`${base}/abort`} label="Abort" kind="danger" small confirm={`Abort job ${job.id}?`} />;
    case "failed":
    case "aborted":
      return <ActionForm page={page} action={`${base}/retry`} label="Retry" small />;
    default:
      return <ActionForm page={page} action={`${base}/delete`} label="Delete" small confirm={`Delete job ${job.id}?`} />;
  }
}
