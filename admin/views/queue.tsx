/** @jsxImportSource hono/jsx */
/** One queue: tabs per state, one page of jobs, and the queue's worker controls. */
import type { JobCounts, JobState } from "../../src/job.ts";
import type { JobPage, JobSummary } from "../../src/inspect.ts";
import type { ScheduleInfo } from "../../src/schedule.ts";
import { short } from "./overview.tsx";
import { ActionForm, duration, jobUrl, Layout, type PageContext, queueUrl, ThroughputChart, Time } from "./ui.tsx";

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
  throughput: { minute: number; completed: number; failed: number }[];
  filter: { search: string; task: string };
}) {
  const { page, queue, counts, state, jobs, paged, workers, paused, schedules, throughput, filter } = props;
  const filtered = filter.search !== "" || filter.task !== "";
  const filterQuery = (filtered ? `&search=${encodeURIComponent(filter.search)}&task=${encodeURIComponent(filter.task)}` : "");
  const selectable = state === "failed" || state === "aborted";
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
      <div class="card">
        <form class="search card-search" method="get" action={page.url(qurl)} role="search">
          <input type="hidden" name="state" value={state} />
          <label>Search <input type="search" name="search" value={filter.search} placeholder="id, data or error text" maxlength={200} /></label>
          <label>Task <input type="text" name="task" value={filter.task} placeholder="any" maxlength={200} /></label>
          <button class="btn sm" type="submit">Find</button>
          {filtered ? <a class="btn sm" href={page.url(queueUrl(queue, state))}>Clear</a> : null}
        </form>
      </div>
      <div class="card" data-live="jobs">
        <nav class="tabs" aria-label="Job states">
          {STATES.map((s) => (
            <a href={page.url(queueUrl(queue, s))} class={s === state ? "on" : ""} aria-current={s === state ? "page" : undefined}>
              {s} <span class="n">{counts[s]}</span>
            </a>
          ))}
        </nav>
        <BulkBar page={page} queue={queue} state={state} count={counts[state]} />
        {jobs.jobs.length === 0
          ? <div class="empty">{paged || filtered ? (filtered ? "No job on this page matches." : "No more jobs on this page.") : EMPTY[state]}</div>
          : <JobTable page={page} queue={queue} state={state} jobs={jobs.jobs} selectable={selectable} />}
        {selectable && jobs.jobs.length > 0
          ? (
            <form id="selected" class="inline actions-bar" method="post" action={page.url(`${qurl}/bulk`)} data-confirm="Retry the selected jobs?">
              <input type="hidden" name="_csrf" value={page.csrf} />
              <input type="hidden" name="action" value="retry" />
              <input type="hidden" name="back" value={`${queueUrl(queue, state)}${filterQuery}`} />
              <button class="btn sm" type="submit">Retry selected</button>
            </form>
          )
          : null}
        {paged || jobs.nextCursor
          ? (
            <div class="pager">
              {paged ? <a class="btn sm" href={page.url(queueUrl(queue, state))}>First page</a> : null}
              {jobs.nextCursor
                ? <a class="btn sm" href={page.url(`${queueUrl(queue, state)}${filterQuery}&cursor=${encodeURIComponent(jobs.nextCursor)}`)}>Next page →</a>
                : null}
            </div>
          )
          : null}
      </div>
      <div class="card">
        <header><h2>Finished per minute, last hour</h2></header>
        <ThroughputChart rows={throughput} />
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

/** The bulk actions of a state's tab, each confirmed; they act on the whole state, not the page. */
function BulkBar({ page, queue, state, count }: { page: PageContext; queue: string; state: JobState; count: number }) {
  if (count === 0) return null;
  const action = `/queues/${encodeURIComponent(queue)}/bulk`;
  const back = {};
  const clean = (label: string, olderThan: string) => (
    <ActionForm page={page} action={action} label={label} small kind="danger" fields={{ ...back, action: "clean", state, olderThan }} confirm={`Delete ${olderThan === "0" ? "every" : "each"} ${state} job${olderThan === "0" ? "" : ` finished more than ${olderThan} ago`}?`} />
  );
  switch (state) {
    case "waiting":
      return <div class="actions-bar bulk"><ActionForm page={page} action={action} label={`Cancel all ${count} waiting`} small kind="danger" fields={{ ...back, action: "cancel" }} confirm={`Cancel all ${count} waiting jobs of ${queue}?`} /></div>;
    case "delayed":
      return <div class="actions-bar bulk"><ActionForm page={page} action={action} label={`Promote all ${count} delayed`} small fields={{ ...back, action: "promote" }} confirm={`Run all ${count} delayed jobs of ${queue} now?`} /></div>;
    case "failed":
    case "aborted":
      return (
        <div class="actions-bar bulk">
          <ActionForm page={page} action={action} label={`Retry all ${count} ${state}`} small fields={{ ...back, action: "retry", state }} confirm={`Retry all ${count} ${state} jobs of ${queue}?`} />
          {clean("Clean older than 1 day", "1d")}
          {clean("Clean all", "0")}
        </div>
      );
    case "completed":
    case "cancelled":
      return <div class="actions-bar bulk">{clean("Clean older than 1 hour", "1h")}{clean("Clean older than 1 day", "1d")}{clean("Clean all", "0")}</div>;
    default:
      return null;
  }
}

function JobTable({ page, queue, state, jobs, selectable }: { page: PageContext; queue: string; state: JobState; jobs: JobSummary[]; selectable: boolean }) {
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
      <table class="cards">
        <thead>
          <tr>
            {selectable ? <th><span class="sr-only">Select</span></th> : null}
            <th>Job</th>
            <th>Task</th>
            <th>Data</th>
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
              {selectable ? <td><input type="checkbox" name="ids" value={j.id} form="selected" aria-label={`Select job ${j.id}`} /></td> : null}
              <td data-label="Job"><a class="id" href={page.url(jobUrl(queue, j.id))} title={j.id}>{short(j.id)}</a></td>
              <td data-label="Task">{j.name}</td>
              <td data-label="Data" class="preview">{j.dataPreview !== undefined ? <code title={j.dataPreview}>{j.dataPreview.length > 40 ? j.dataPreview.slice(0, 40) + "…" : j.dataPreview}</code> : <span class="muted">—</span>}</td>
              <td class="num" data-label="Attempt">{j.attempt}/{j.maxAttempts}</td>
              <td data-label={whenLabel}><Time ms={whenOf(j)} /></td>
              {state === "active"
                ? (
                  <>
                    <td class="id" title={j.owner} data-label="Worker">{j.owner ?? "—"}</td>
                    <td data-label="Progress">{typeof j.progress === "number" ? <progress max="100" value={String(Math.max(0, Math.min(100, j.progress)))} /> : j.progress !== undefined ? <code>{JSON.stringify(j.progress).slice(0, 40)}</code> : <span class="muted">—</span>}</td>
                  </>
                )
                : null}
              {state === "completed" ? <td class="num" data-label="Took">{j.finishedAt && j.startedAt ? duration(j.finishedAt - j.startedAt) : "—"}</td> : null}
              {showError ? <td data-label="Last error">{j.error ? <span class="err" title={`${j.error.name}: ${j.error.message}`}>{j.error.message || j.error.name}</span> : <span class="muted">—</span>}</td> : null}
              <td class="actions" data-label="Actions"><RowActions page={page} queue={queue} job={j} /></td>
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
