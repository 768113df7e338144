/** @jsxImportSource hono/jsx */
/** One job in full, with the actions its state allows. */
import type { JobInfo } from "../../src/job.ts";
import { ActionForm, duration, Layout, type PageContext, pretty, queueUrl, StateBadge, Time } from "./ui.tsx";

export function JobPage({ page, job, log = [] }: { page: PageContext; job: JobInfo; log?: { t: number; attempt: number; message: string }[] }) {
  const base = `/queues/${encodeURIComponent(job.queue)}/jobs/${encodeURIComponent(job.id)}`;
  return (
    <Layout page={page} title={`Job ${job.id}`} nav="overview" live={{ queues: [job.queue] }}>
      <div class="crumbs">
        <a href={page.url("/")}>Queues</a> / <a href={page.url(queueUrl(job.queue))}>{job.queue}</a> /{" "}
        <a href={page.url(queueUrl(job.queue, job.state))}>{job.state}</a> /
      </div>
      <div data-live="job">
        <div class="pagehead">
          <h1 class="id">{job.id}</h1>
          <span id="job-state"><StateBadge state={job.state} big /></span>
          {job.abortRequested && job.state === "active" ? <span class="badge s-aborted">abort requested</span> : null}
          <span class="spacer" />
          <div class="actions-bar">
            {job.state === "waiting" || job.state === "delayed"
              ? <ActionForm page={page} action={`${base}/cancel`} label="Cancel job" kind="danger" />
              : null}
            {job.state === "active" && !job.abortRequested
              ? <ActionForm page={page} action={`${base}/abort`} label="Abort job" kind="solid-danger" confirm="Abort this running job? Its handler's signal aborts with reason 'user' and it ends aborted." />
              : null}
            {job.state === "failed" || job.state === "aborted" ? <ActionForm page={page} action={`${base}/retry`} label="Retry job" kind="primary" /> : null}
            {job.state !== "active"
              ? <ActionForm page={page} action={`${base}/delete`} label="Delete" confirm="Delete this job for good?" />
              : null}
          </div>
        </div>
        <div class="grid two">
          <div class="card">
            <header><h2>Details</h2></header>
            <div class="body">
              <dl class="props">
                <dt>Task</dt><dd><strong>{job.name}</strong></dd>
                <dt>Queue</dt><dd><a href={page.url(queueUrl(job.queue))}>{job.queue}</a></dd>
                <dt>Attempt</dt><dd>{job.attempt} of {job.maxAttempts}{job.stalls > 0 ? <span class="muted"> · stalled {job.stalls}×</span> : null}</dd>
                <dt>Enqueued</dt><dd><Time ms={job.createdAt} /></dd>
                {job.runAt ? <><dt>Run at</dt><dd><Time ms={job.runAt} /></dd></> : null}
                {job.startedAt ? <><dt>Started</dt><dd><Time ms={job.startedAt} /></dd></> : null}
                {job.finishedAt ? <><dt>Finished</dt><dd><Time ms={job.finishedAt} /></dd></> : null}
                {job.finishedAt && job.startedAt && job.state !== "cancelled"
                  ? <><dt>Took</dt><dd>{duration(job.finishedAt - job.startedAt)}</dd></>
                  : null}
                {job.owner ? <><dt>Worker</dt><dd class="id">{job.owner}</dd></> : null}
                {job.abortRequested ? <><dt>Abort</dt><dd>requested ({job.abortRequested})</dd></> : null}
                {job.progress !== undefined
                  ? (
                    <>
                      <dt>Progress</dt>
                      <dd>
                        {typeof job.progress === "number"
                          ? <><progress max="100" value={String(Math.max(0, Math.min(100, job.progress)))} /> {job.progress}%</>
                          : <code>{pretty(job.progress)}</code>}
                      </dd>
                    </>
                  )
                  : null}
              </dl>
            </div>
          </div>
          <div class="card">
            <header><h2>Data</h2></header>
            <div class="body"><pre class="json">{pretty(job.data)}</pre></div>
          </div>
        </div>
        {job.result !== undefined
          ? (
            <div class="card">
              <header><h2>Result</h2></header>
              <div class="body"><pre class="json">{pretty(job.result)}</pre></div>
            </div>
          )
          : null}
        {job.error
          ? (
            <div class="card">
              <header>
                <h2>{job.state === "failed" || job.state === "aborted" ? "Error" : "Last error"}</h2>
                {job.error.abortReason ? <span class="badge s-aborted">abort reason: {job.error.abortReason}</span> : null}
              </header>
              <div class="body">
                <pre class="json err">{job.error.stack ?? `${job.error.name}: ${job.error.message}`}</pre>
              </div>
            </div>
          )
          : null}
        <div class="card">
          <header><h2>Log</h2></header>
          {log.length === 0
            ? <div class="empty">No log lines. A handler writes them with <code>ctx.log(message)</code>.</div>
            : (
              <ol class="log">
                {log.map((l) => <li><Time ms={l.t} /> <span class="muted">attempt {l.attempt}</span> {l.message}</li>)}
              </ol>
            )}
        </div>
      </div>
    </Layout>
  );
}

export function MissingJobPage({ page, queue, id }: { page: PageContext; queue: string; id: string }) {
  return (
    <Layout page={page} title="No such job" nav="overview">
      <div class="crumbs"><a href={page.url("/")}>Queues</a> / <a href={page.url(queueUrl(queue))}>{queue}</a> /</div>
      <div class="pagehead"><h1 class="id">{id}</h1></div>
      <div class="card"><div class="empty">No such job: it never existed, was deleted, or was removed by the retention policy.</div></div>
    </Layout>
  );
}
