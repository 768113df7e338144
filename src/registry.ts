/**
 * The worker registry: each live worker keeps `<prefix>:worker:<id>` (its description, with a TTL
 * of a few heartbeats) and its score in the `<prefix>:workers` zset fresh. The admin app and
 * `listWorkers` read it; a worker killed without unregistering drops out when its key expires and
 * is forgotten from the zset after a day.
 * @module
 */
import { globalKeys } from "./keys.ts";
import type { WorkerInfo } from "./inspect.ts";
import type { Send } from "./send.ts";

/** Writes a worker's entry; it expires after `ttl` ms without another write. */
export async function register(send: Send, prefix: string, info: WorkerInfo, ttl: number): Promise<void> {
  const g = globalKeys(prefix);
  await Promise.all([
    send("ZADD", [g.workers, info.heartbeatAt, info.id]),
    // workers killed without unregistering: forget them after a day without a heartbeat
    send("ZREMRANGEBYSCORE", [g.workers, "-inf", info.heartbeatAt - 86_400_000]),
    send("SET", [g.worker(info.id), JSON.stringify(info), "PX", ttl]),
  ]);
}

/** Removes a stopped worker's entry. */
export async function unregister(send: Send, prefix: string, id: string): Promise<void> {
  const g = globalKeys(prefix);
  await Promise.all([send("ZREM", [g.workers, id]), send("DEL", [g.worker(id)])]);
}
