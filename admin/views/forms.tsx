/** @jsxImportSource hono/jsx */
/** The sign-in page and the enqueue form. */
import { Bare, Layout, type PageContext, queueUrl } from "./ui.tsx";

export function LoginPage(props: { nonce: string; action: string; next: string; token: boolean; basic: boolean; error?: string }) {
  const { nonce, action, next, token, basic, error } = props;
  return (
    <Bare nonce={nonce} title="Sign in">
      <div class="login">
        <div class="card">
          <div class="body">
            <h1>Sign in to sluice</h1>
            <p>This admin app needs {token && basic ? "the API token or a username and password" : token ? "the API token" : "a username and password"}.</p>
            {error ? <div class="flash error" role="alert">{error}</div> : null}
            <form method="post" action={action}>
              <input type="hidden" name="next" value={next} />
              {token
                ? (
                  <div class="field">
                    <label for="token">Token</label>
                    <input type="password" id="token" name="token" autocomplete="current-password" autofocus />
                  </div>
                )
                : null}
              {token && basic ? <div class="or">or</div> : null}
              {basic
                ? (
                  <>
                    <div class="field">
                      <label for="username">Username</label>
                      <input type="text" id="username" name="username" autocomplete="username" autofocus={!token} />
                    </div>
                    <div class="field">
                      <label for="password">Password</label>
                      <input type="password" id="password" name="password" autocomplete="current-password" />
                    </div>
                  </>
                )
                : null}
              <button class="btn primary" type="submit">Sign in</button>
            </form>
          </div>
        </div>
      </div>
    </Bare>
  );
}

export interface EnqueueValues {
  task?: string;
  data?: string;
  delay?: string;
  attempts?: string;
  jobId?: string;
}

export function EnqueuePage({ page, queue, values = {}, error }: { page: PageContext; queue: string; values?: EnqueueValues; error?: string }) {
  return (
    <Layout page={page} title={`Enqueue · ${queue}`} nav="overview">
      <div class="crumbs"><a href={page.url("/")}>Queues</a> / <a href={page.url(queueUrl(queue))}>{queue}</a> /</div>
      <div class="pagehead"><h1>Enqueue a job</h1></div>
      {error ? <div class="flash error" role="alert">{error}</div> : null}
      <div class="card">
        <div class="body">
          <form method="post" action={page.url(`/queues/${encodeURIComponent(queue)}/new`)}>
            <input type="hidden" name="_csrf" value={page.csrf} />
            <div class="field">
              <label for="task">Task</label>
              <input type="text" id="task" name="task" required value={values.task ?? ""} placeholder="send-email" />
              <div class="hint">The name a worker's tasks know it by.</div>
            </div>
            <div class="field">
              <label for="data">Data (JSON)</label>
              <textarea id="data" name="data" placeholder='{ "to": "ada@example.com" }'>{values.data ?? ""}</textarea>
            </div>
            <div class="row">
              <div class="field">
                <label for="delay">Delay</label>
                <input type="text" id="delay" name="delay" value={values.delay ?? ""} placeholder="e.g. 30s, 5m" />
              </div>
              <div class="field">
                <label for="attempts">Attempts</label>
                <input type="number" id="attempts" name="attempts" min="1" value={values.attempts ?? ""} placeholder="3" />
              </div>
              <div class="field">
                <label for="jobId">Job id</label>
                <input type="text" id="jobId" name="jobId" value={values.jobId ?? ""} placeholder="optional, deduplicates" />
              </div>
            </div>
            <button class="btn primary" type="submit">Enqueue</button>{" "}
            <a class="btn" href={page.url(queueUrl(queue))}>Cancel</a>
          </form>
        </div>
      </div>
    </Layout>
  );
}
