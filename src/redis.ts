/**
 * ioredis connections for the worker and the admin app (which need a client of their own: blocking
 * reads, subscriptions). The producer side needs only src/send.ts.
 * @module
 */
import { Cluster, Redis } from "ioredis";
import type { IORedis } from "./send.ts";

export * from "./send.ts";

/** Opens an ioredis client for a URL. Auto-pipelining batches concurrent commands into one write. */
export function connect(url: string, extra: Record<string, unknown> = {}): Redis {
  const client = new Redis(url, { enableAutoPipelining: true, maxRetriesPerRequest: null, ...extra });
  client.on("error", () => {}); // it reconnects by itself; failures surface on the commands waiting
  return client;
}

/** A new connection with the same settings (a cluster duplicates as a cluster). */
export function duplicate(client: IORedis, options: Record<string, unknown> = {}): IORedis {
  const c = client instanceof Cluster || "nodes" in client
    ? (client as Cluster).duplicate(undefined, options as never)
    : (client as Redis).duplicate(options as never);
  c.on("error", () => {}); // reconnects are retried; failures surface on the commands
  return c;
}
