/**
 * What the routes of the admin app share: its Redis connection, the queues it shows, the
 * authenticator, and dedicated connections for event streams.
 * @module
 */
import { checkName, isValidName } from "../src/names.ts";
import { checkQueueName, Queue } from "../src/queue.ts";
import { type IORedis, connect, duplicate, isIORedis, type RedisInput, type Send, toSend } from "../src/redis.ts";
import { listWorkers, type WorkerInfo } from "../src/inspect.ts";
import { type AdminAuth, Authenticator, type AuthMethod, checkAuthOption } from "./auth.ts";

/** Options of `createAdminApp`. */
export interface AdminOptions {
  /** A `redis://` URL, an ioredis client, or anything that can send a command. @default "redis://127.0.0.1:6379" */
  redis?: RedisInput;
  /**
   * The queues the app shows and accepts. Omitted: every queue found under the prefix (streams
   * found by SCAN, and the queues live workers serve), looked up again every 10 s.
   */
  queues?: string[];
  /**
   * `{ token }` (bearer), `{ username, password }` (basic), both, or `"none-on-loopback"`: no auth,
   * and then `serveAdmin` refuses to bind anything but loopback and the app answers only requests
   * addressed to a loopback host. Required: there is no default.
   */
  auth: AdminAuth;
  /** Key prefix. @default "sluice" */
  prefix?: string;
  /** The path the app is served under, e.g. "/admin"; routes, links and cookies use it. @default "" */
  basePath?: string;
  /**
   * Key for session cookies and CSRF tokens. Set it when several app instances share a login.
   * @default derived from the credentials (random per process with "none-on-loopback")
   */
  secret?: string;
  /** How long a dashboard login lasts, in milliseconds. @default 12 hours */
  sessionMs?: number;
  /** Event streams (SSE) open at once, at most; each holds one Redis connection. @default 100 */
  maxEventStreams?: number;
  /**
   * Origins whose pages may call the JSON API from a browser (CORS), e.g. a page that enqueues with
   * `HttpProducer` and a bearer token: `["https://app.example.com"]`. @default none (same origin only)
   */
  corsOrigins?: string[];
}


export class AdminContext {
  readonly prefix: string;
  readonly basePath: string;
  readonly auth: Authenticator;
  readonly send: Send;
  readonly maxEventStreams: number;
  readonly corsOrigins: string[];
  readonly #fixed: string[] | undefined;
  readonly #client: IORedis | undefined;
  readonly #owned: IORedis | undefined;
  readonly #url: string | undefined;
  readonly #queues = new Map<string, Queue>();
  readonly #streams = new Set<{ close(): void }>();
  #discovered: { at: number; names: Promise<string[]> } | undefined;
  #warnings: { at: number; list: Promise<string[]> } | undefined;

  constructor(options: AdminOptions) {
    if (typeof options !== "object" || options === null) throw new TypeError("Invalid admin options: expected an object");
    this.auth = new Authenticator(checkAuthOption(options.auth), { secret: options.secret, sessionMs: options.sessionMs });
    this.prefix = checkName(options.prefix ?? "sluice", "prefix");
    const base = options.basePath ?? "";
    if (typeof base !== "string" || (base !== "" && !/^\/[\w\-./~]*[^/]$/.test(base))) {
      throw new TypeError(`Invalid admin option 'basePath': must be "" or a path like "/admin" (no trailing slash): current value is ${JSON.stringify(base)}`);
    }
    this.basePath = base;
    if (options.queues !== undefined) {
      if (!Array.isArray(options.queues)) throw new TypeError("Invalid admin option 'queues': must be an array of queue names");
      this.#fixed = [...new Set(options.queues.map((q, i) => checkQueueName(q, `queues.${i}`)))];
    }
    this.maxEventStreams = options.maxEventStreams ?? 100;
    const origins = options.corsOrigins ?? [];
    if (!Array.isArray(origins) || origins.some((o) => typeof o !== "string" || !/^https?:\/\/[^/\s]+$/.test(o))) {
      throw new TypeError(`Invalid admin option 'corsOrigins': must be an array of origins like "https://app.example.com" (scheme and host, no path): current value is ${JSON.stringify(options.corsOrigins)}`);
    }
    this.corsOrigins = origins;
    const redis = options.redis ?? "redis://127.0.0.1:6379";
    if (typeof redis === "string") {
      this.#url = redis;
      this.#owned = this.#client = connect(redis);
      this.#owned.on("error", () => {}); // reconnects are retried; failures surface on the commands
    } else if (isIORedis(redis)) {
      this.#client = redis;
    }
    this.send = toSend(this.#client ?? (redis as Exclude<RedisInput, string>));
  }

  /** The URL of a path inside the app. */
  url(path: string): string {
    return this.basePath + path;
  }

  /** A queue the app shows, or null for a name it does not know. */
  async queue(name: string): Promise<Queue | null> {
    if (!isValidName(name)) return null;
    if (this.#fixed && !this.#fixed.includes(name)) return null;
    let q = this.#queues.get(name);
    if (!q) {
      q = new Queue(name, { redis: this.#client ?? this.send, prefix: this.prefix });
      this.#queues.set(name, q);
    }
    return q;
  }

  /** The names of the queues the app shows, sorted (configured order when given). */
  async queueNames(): Promise<string[]> {
    if (this.#fixed) return this.#fixed;
    const now = Date.now();
    if (!this.#discovered || now - this.#discovered.at > 10_000) {
      const names = this.#discover();
      this.#discovered = { at: now, names };
      names.catch(() => (this.#discovered = undefined));
    }
    return await this.#discovered.names;
  }

  async #discover(): Promise<string[]> {
    const found = new Set<string>();
    const head = `${this.prefix}:{`;
    const pattern = head.replace(/[*?[\]\\]/g, (c) => "\\" + c) + "*}:stream";
    const nodes: Send[] = this.#client && "nodes" in this.#client && typeof this.#client.nodes === "function"
      ? this.#client.nodes("master").map((n) => toSend(n))
      : [this.send];
    for (const send of nodes) {
      let cursor = "0";
      let rounds = 0;
      do {
        const [next, keys] = (await send("SCAN", [cursor, "MATCH", pattern, "COUNT", 1000, "TYPE", "stream"])) as [string, string[]];
        for (const k of keys) {
          const name = String(k).slice(head.length, -"}:stream".length);
          if (isValidName(name)) found.add(name);
        }
        cursor = String(next);
      } while (cursor !== "0" && ++rounds < 1000);
    }
    for (const w of await this.workers()) for (const q of w.queues) if (isValidName(q)) found.add(q);
    return [...found].sort();
  }

  /**
   * What an operator must know about the Redis under the queues: today, an eviction policy that
   * can drop queue keys (anything but `noeviction`). Read at most once a minute; a Redis that
   * refuses CONFIG (a managed service) gives no warning.
   */
  async warnings(): Promise<string[]> {
    const now = Date.now();
    if (!this.#warnings || now - this.#warnings.at > 60_000) {
      const list = (async () => {
        const reply = await this.send("CONFIG", ["GET", "maxmemory-policy"]).catch(() => undefined);
        const policy = Array.isArray(reply) ? String(reply[1] ?? "") : reply && typeof reply === "object" ? String(Object.values(reply)[0] ?? "") : "";
        return policy && policy !== "noeviction"
          ? [`Redis maxmemory-policy is '${policy}': Redis may evict queue keys and lose jobs. Set it to 'noeviction'.`]
          : [];
      })();
      this.#warnings = { at: now, list };
    }
    return await this.#warnings.list;
  }

  /** Live workers (registry entries that have not expired). */
  async workers(): Promise<WorkerInfo[]> {
    return await listWorkers(this.send, this.prefix, { prune: true });
  }

  /**
   * A connection of its own for a blocking read, or null when the app was given a plain command
   * sender (the event stream then polls).
   */
  dedicated(): IORedis | null {
    if (this.#url) {
      const c = connect(this.#url, { enableAutoPipelining: false, maxRetriesPerRequest: 1 });
      c.on("error", () => {});
      return c;
    }
    if (this.#client) return duplicate(this.#client, { enableAutoPipelining: false });
    return null;
  }

  /** Tracks an open event stream so `close()` can end it; false when too many are open. */
  openStream(s: { close(): void }): boolean {
    if (this.#streams.size >= this.maxEventStreams) return false;
    this.#streams.add(s);
    return true;
  }

  closeStream(s: { close(): void }): void {
    this.#streams.delete(s);
  }

  /** Ends open event streams and closes the connection the app opened itself. */
  async close(): Promise<void> {
    for (const s of [...this.#streams]) s.close();
    this.#streams.clear();
    if (this.#owned) await this.#owned.quit().catch(() => this.#owned!.disconnect());
  }
}

/** Per-request values the admin app's middleware sets. */
export type AdminEnv = {
  Variables: {
    /** How the request was authenticated. */
    auth: AuthMethod;
    /** Nonce of this response's inline script and style (Content-Security-Policy). */
    nonce: string;
    /** The CSRF form token of this browser. */
    csrf: string;
  };
};
