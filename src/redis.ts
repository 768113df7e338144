import { Redis, Cluster } from "ioredis";

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
  return x instanceof Redis || x instanceof Cluster ||
    (typeof x === "object" && x !== null && "duplicate" in x && "call" in x && "pipeline" in x);
}

/** Opens an ioredis client for a URL. Auto-pipelining batches concurrent commands into one write. */
export function connect(url: string, extra: Record<string, unknown> = {}): Redis {
  const client = new Redis(url, { enableAutoPipelining: true, maxRetriesPerRequest: null, ...extra });
  client.on("error", () => {}); // it reconnects by itself; failures surface on the commands waiting
  return client;
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

/** A new connection with the same settings (a cluster duplicates as a cluster). */
export function duplicate(client: IORedis, options: Record<string, unknown> = {}): IORedis {
  const c = client instanceof Cluster || "nodes" in client
    ? (client as Cluster).duplicate(undefined, options as never)
    : (client as Redis).duplicate(options as never);
  c.on("error", () => {}); // reconnects are retried; failures surface on the commands
  return c;
}
