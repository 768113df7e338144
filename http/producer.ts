/**
 * A producer that needs nothing but `fetch`: it enqueues, cancels and reads jobs through the
 * admin app's JSON API, so it runs in Cloudflare Workers, Vercel Edge Functions, Deno Deploy and
 * browsers, where no Redis connection can be opened. It imports no Node, Bun or Deno API and no
 * runtime code from the rest of sluice (types only).
 *
 * @example
 * ```ts
 * import { HttpProducer } from "sluice/http";
 * const sluice = new HttpProducer({ baseUrl: "https://admin.example.com", token: env.SLUICE_TOKEN });
 * export default {
 *   async fetch(req: Request) {
 *     const job = await sluice.enqueue("emails", "send-welcome", await req.json(), { attempts: 5 });
 *     return Response.json(job, { status: 202 });
 *   },
 * };
 * ```
 * @module
 */
import type { CancelResult, EnqueuedJob, JobCounts, JobInfo } from "../src/job.ts";
import type { EnqueueOptions } from "../src/options.ts";

export type { CancelResult, EnqueuedJob, EnqueueOptions, JobCounts, JobInfo };

/** Options of `new HttpProducer()`. Give `token` or `basic` (or neither, for an app without auth on loopback). */
export interface HttpProducerOptions {
  /** Where the admin app is served, with its base path: "https://host/admin". */
  baseUrl: string;
  /** Bearer token of the admin app. */
  token?: string;
  /** Basic-auth credentials of the admin app. */
  basic?: { username: string; password: string };
  /** The fetch to use (a service binding, a mock). @default globalThis.fetch */
  fetch?: (input: Request) => Promise<Response>;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /** Abort each request after this many milliseconds. @default 10000 */
  timeout?: number;
}

/** One job for `enqueueMany`. */
export interface HttpJobSpec {
  task: string;
  data?: unknown;
  options?: EnqueueOptions;
}

/** A field the admin app refused, as in its 400 answers. */
export interface HttpIssue {
  field: string;
  message: string;
  value?: unknown;
}

/**
 * The admin app answered with an error status (or could not be reached: `status` 0). `issues`
 * lists the refused fields of a 400.
 */
export class HttpProducerError extends Error {
  override name = "HttpProducerError";
  readonly status: number;
  readonly issues: HttpIssue[];
  constructor(message: string, status: number, issues: HttpIssue[] = []) {
    super(message);
    this.status = status;
    this.issues = issues;
  }
  static is(e: unknown): e is HttpProducerError {
    return e instanceof Error && e.name === "HttpProducerError";
  }
}

function utf8Base64(text: string): string {
  let s = "";
  for (const b of new TextEncoder().encode(text)) s += String.fromCharCode(b);
  return btoa(s);
}

/** Dates become epoch milliseconds, which survive JSON unchanged. */
function wireOptions(options: EnqueueOptions | undefined): Record<string, unknown> | undefined {
  if (!options) return undefined;
  const o: Record<string, unknown> = { ...options };
  if (options.runAt instanceof Date) o.runAt = options.runAt.getTime();
  return o;
}

/**
 * Enqueues, cancels and reads jobs through the admin app's API with `fetch` only.
 *
 * @example
 * ```ts
 * const producer = new HttpProducer({ baseUrl: "http://127.0.0.1:8080", token: "s3cret" });
 * const { id } = await producer.enqueue("default", "resize", { src: "a.png" }, { delay: "10s" });
 * console.log((await producer.getJob("default", id))?.state); // "delayed"
 * await producer.cancel("default", id);
 * ```
 */
export class HttpProducer {
  readonly baseUrl: string;
  readonly #headers: Record<string, string>;
  readonly #fetch: (input: Request) => Promise<Response>;
  readonly #timeout: number;

  constructor(options: HttpProducerOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("Invalid HttpProducer options: expected an object");
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`Invalid HttpProducer option 'baseUrl': must be an absolute http(s) URL: current value is ${JSON.stringify(options.baseUrl)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`Invalid HttpProducer option 'baseUrl': must be an absolute http(s) URL: current value is ${JSON.stringify(options.baseUrl)}`);
    }
    this.baseUrl = url.href.replace(/\/+$/, "");
    this.#headers = { accept: "application/json", ...options.headers };
    if (options.token !== undefined) {
      if (typeof options.token !== "string" || options.token === "") throw new TypeError("Invalid HttpProducer option 'token': must be a non-empty string");
      this.#headers.authorization = `Bearer ${options.token}`;
    } else if (options.basic !== undefined) {
      const { username, password } = options.basic;
      if (typeof username !== "string" || typeof password !== "string" || username.includes(":")) {
        throw new TypeError("Invalid HttpProducer option 'basic': must be { username, password } (username without ':')");
      }
      this.#headers.authorization = `Basic ${utf8Base64(`${username}:${password}`)}`;
    }
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== "function") throw new TypeError("Invalid HttpProducer option 'fetch': no fetch function available");
    this.#fetch = options.fetch ? f : (req) => globalThis.fetch(req);
    this.#timeout = options.timeout ?? 10_000;
  }

  async #call<T>(method: string, path: string, body?: unknown, accept: number[] = []): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { ...this.#headers };
    if (body !== undefined) headers["content-type"] = "application/json";
    const req = new Request(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(this.#timeout),
    });
    let res: Response;
    try {
      res = await this.#fetch(req);
    } catch (e) {
      throw new HttpProducerError(`${method} ${path} failed: ${(e as Error).message}`, 0);
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (res.ok || accept.includes(res.status)) return { status: res.status, body: parsed as T };
    const err = (parsed ?? {}) as { error?: string; issues?: HttpIssue[] };
    throw new HttpProducerError(
      `${method} ${path} answered ${res.status}: ${err.error ?? (text.slice(0, 200) || res.statusText)}`,
      res.status,
      Array.isArray(err.issues) ? err.issues : [],
    );
  }

  #q(queue: string): string {
    return `/api/queues/${encodeURIComponent(queue)}`;
  }

  /** Adds a job for `task` to `queue`; see `Queue.enqueue` for the options. */
  async enqueue(queue: string, task: string, data?: unknown, options?: EnqueueOptions): Promise<EnqueuedJob> {
    const body: Record<string, unknown> = { task };
    if (data !== undefined) body.data = data;
    const o = wireOptions(options);
    if (o) body.options = o;
    return (await this.#call<EnqueuedJob>("POST", `${this.#q(queue)}/jobs`, body)).body;
  }

  /** Adds up to 1000 jobs in one request; nothing is written if any of them is invalid. */
  async enqueueMany(queue: string, jobs: HttpJobSpec[]): Promise<EnqueuedJob[]> {
    const body = jobs.map((j) => ({ task: j.task, ...(j.data !== undefined ? { data: j.data } : {}), ...(j.options ? { options: wireOptions(j.options) } : {}) }));
    return (await this.#call<{ jobs: EnqueuedJob[] }>("POST", `${this.#q(queue)}/jobs`, body)).body.jobs;
  }

  /**
   * Cancels a waiting or delayed job; with `abort: true` also aborts it if it runs. The result
   * says what happened (`missing` when there is no such job), as `Queue.cancel` does.
   */
  async cancel(queue: string, id: string, options: { abort?: boolean; delete?: boolean } = {}): Promise<CancelResult> {
    const path = `${this.#q(queue)}/jobs/${encodeURIComponent(id)}/${options.abort ? "abort" : "cancel"}`;
    const r = await this.#call<CancelResult & { error?: string }>("POST", path, options.delete ? { delete: true } : {}, [404]);
    if (r.status === 404 && !r.body?.outcome) throw new HttpProducerError(`POST ${path} answered 404: ${r.body?.error ?? "not found"}`, 404);
    const { error: _error, ...result } = r.body;
    return result;
  }

  /** Reads one job, or null when there is no such job. */
  async getJob(queue: string, id: string): Promise<JobInfo | null> {
    const path = `${this.#q(queue)}/jobs/${encodeURIComponent(id)}`;
    const r = await this.#call<JobInfo & { error?: string }>("GET", path, undefined, [404]);
    if (r.status !== 404) return r.body;
    // a missing job is null; an unknown queue (or a wrong baseUrl) is an error
    if (r.body?.error?.startsWith("No job")) return null;
    throw new HttpProducerError(`GET ${path} answered 404: ${r.body?.error ?? "not found"}`, 404);
  }

  /** Number of jobs in each state of `queue`. */
  async counts(queue: string): Promise<JobCounts> {
    return (await this.#call<{ counts: JobCounts }>("GET", this.#q(queue))).body.counts;
  }
}
