/**
 * What sluice needs of a Redis connection, without loading a Redis client: the producer side runs
 * on anything that sends a command (an HTTP Redis client in an edge function, Bun's RedisClient),
 * and loads ioredis only when it is given a URL. Nothing here imports ioredis at load time.
 * @module
 */
import type { Cluster, Redis } from "ioredis";

/**
 * Anything that can send one Redis command and resolve with its reply. sluice's producer side
 * needs nothing more, so it runs on ioredis, Bun's `RedisClient` (`send`), or an HTTP Redis client
 * wrapped in a function.
 */
export type CommandSender =
  | ((command: string, args: string[]) => Promise<unknown>)
  | { send(command: string, args: string[]): Promise<unknown> }
  | { call(command: string, ...args: (string | number)[]): Promise<unknown> };

/** A Redis connection given to sluice: a URL (`redis://…`), an ioredis client, or a command sender. */
export type RedisInput = string | Redis | Cluster | CommandSender;

export type Send = (command: string, args: (string | number)[]) => Promise<unknown>;

/** An ioredis client or cluster. */
export type IORedis = Redis | Cluster;

export function isIORedis(x: unknown): x is IORedis {
  return typeof x === "object" && x !== null && "duplicate" in x && "call" in x && "pipeline" in x;
}

/** Turns any accepted client into a `Send` function. */
export function toSend(client: Exclude<RedisInput, string>): Send {
  if (typeof client === "function") return (c, a) => client(c, a.map(String));
  if ("call" in client && typeof client.call === "function") {
    const c = client as { call(command: string, ...args: (string | number)[]): Promise<unknown> };
    return (cmd, args) => c.call(cmd, ...args);
  }
  if ("send" in client && typeof client.send === "function") {
    const c = client as { send(command: string, args: string[]): Promise<unknown> };
    return (cmd, args) => c.send(cmd, args.map(String));
  }
  throw new TypeError("Invalid 'redis': expected a URL, an ioredis client, or an object with send()/call()");
}

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A Lua script run by EVALSHA, falling back to EVAL once when the server does not know it yet
 * (a restart, a failover, a new cluster node).
 */
export class Script {
  readonly source: string;
  #sha: string | undefined;
  #shaPromise: Promise<string>;
  constructor(source: string) {
    this.source = source;
    this.#shaPromise = sha1(source).then((s) => (this.#sha = s));
  }

  /** Arguments for EVALSHA after the command name, once the hash is known. */
  args(keys: string[], argv: (string | number)[]): (string | number)[] {
    return [this.#sha!, keys.length, ...keys, ...argv];
  }

  async run(send: Send, keys: string[], argv: (string | number)[]): Promise<unknown> {
    if (this.#sha === undefined) await this.#shaPromise;
    try {
      return await send("EVALSHA", this.args(keys, argv));
    } catch (e) {
      if (e instanceof Error && e.message.includes("NOSCRIPT")) {
        return await send("EVAL", [this.source, keys.length, ...keys, ...argv]);
      }
      throw e;
    }
  }

  async ready(): Promise<void> {
    await this.#shaPromise;
  }
}


/** A connection opened from a URL on first use: ioredis is loaded only then. */
export interface LazyConnection {
  send: Send;
  /** Closes the connection if it was opened (QUIT, bounded; a connection without Redis is dropped). */
  close(): Promise<void>;
}

/**
 * A `Send` for a URL that opens an ioredis client (auto-pipelining, retrying while Redis is away)
 * on its first command, importing ioredis then. Code given a command sender never loads it.
 */
export function lazyConnection(url: string): LazyConnection {
  let client: Promise<Redis> | undefined;
  // a specifier bundlers do not follow: an edge bundle given a command sender carries no ioredis
  const ioredis = "ioredis";
  const open = () => (client ??= (import(ioredis) as Promise<typeof import("ioredis")>).then(({ Redis }) => {
    const c = new Redis(url, { enableAutoPipelining: true, maxRetriesPerRequest: null });
    c.on("error", () => {}); // it reconnects by itself; failures surface on the commands waiting
    return c;
  }));
  return {
    send: async (cmd, args) => (await open()).call(cmd, ...args),
    async close() {
      if (!client) return;
      const c = await client;
      if (c.status === "end") return;
      if (c.status !== "ready") return c.disconnect();
      let timer: ReturnType<typeof setTimeout> | undefined;
      // the bound's timer is cleared: left armed, it would hold the process open for its 3 s
      await Promise.race([c.quit(), new Promise((r) => (timer = setTimeout(r, 3000)))]).catch(() => {});
      clearTimeout(timer);
      if ((c.status as string) !== "end") c.disconnect();
    },
  };
}
