import { ValidationError } from "./errors.ts";
import { globalKeys } from "./keys.ts";
import { Cluster } from "ioredis";
import { connect, type RedisInput, toSend } from "./redis.ts";

/** Options of `sendShutdown`: whom the request is for, and how hard. */
export interface SendShutdownOptions {
  /** Only the worker with this id (its consumer name, `worker.id`). */
  worker?: string;
  /** Only workers that consume this queue. Given with `worker`, both must match. */
  queue?: string;
  /** Abort running jobs at once (reason `shutdown`; they are re-queued) instead of draining. @default false */
  hard?: boolean;
  /** Key prefix of the workers. @default "sluice" */
  prefix?: string;
}

/**
 * Asks running workers, in whatever process or host, to stop: one message on the control channel
 * `<prefix>:control`, which every worker subscribes to. A worker the message is for treats it as a
 * signal would be treated: graceful drains (no new jobs, running ones finish), `hard` aborts its
 * running jobs with reason `shutdown`, and a second request to a worker already stopping
 * escalates. With neither `worker` nor `queue`, every worker under the prefix stops.
 *
 * Resolves with the number of connections subscribed to the channel, that is every running worker
 * under the prefix, whether or not the message is for it. Given a URL, it opens a connection and
 * closes it again; a client passed in is left open.
 *
 * @example
 * ```ts
 * import { sendShutdown } from "sluice";
 * await sendShutdown("redis://localhost:6379", { queue: "emails" });        // drain every worker of "emails"
 * await sendShutdown(redis, { worker: "host-1a2b3c4d", hard: true });      // abort one worker's jobs now
 * ```
 */
export async function sendShutdown(redis: RedisInput, options: SendShutdownOptions = {}): Promise<number> {
  const issues = [];
  for (const field of ["worker", "queue", "prefix"] as const) {
    const v = options[field];
    if (v !== undefined && (typeof v !== "string" || v === "")) issues.push({ field, value: v, message: "must be a non-empty string" });
  }
  if (options.hard !== undefined && typeof options.hard !== "boolean") issues.push({ field: "hard", value: options.hard, message: "must be a boolean" });
  if (issues.length > 0) throw new ValidationError("Invalid sendShutdown options", issues);

  const message: Record<string, unknown> = { action: "shutdown", hard: options.hard === true };
  if (options.worker !== undefined) message.worker = options.worker;
  if (options.queue !== undefined) message.queue = options.queue;
  const channel = globalKeys(options.prefix ?? "sluice").control;
  const owned = typeof redis === "string" ? connect(redis) : undefined;
  try {
    const client = owned ?? (redis as Exclude<RedisInput, string>);
    const send = toSend(client);
    const local = Number(await send("PUBLISH", [channel, JSON.stringify(message)]));
    // on a Redis Cluster, PUBLISH reaches every node but counts only the subscribers of the node
    // that took it: count them on every node instead
    if (client instanceof Cluster) {
      const counts = await Promise.all(client.nodes("all").map(async (node) => {
        const reply = (await node.call("PUBSUB", "NUMSUB", channel).catch(() => [channel, 0])) as [string, number];
        return Number(reply[1] ?? 0);
      }));
      return counts.reduce((a, b) => a + b, 0);
    }
    return local;
  } finally {
    if (owned) await owned.quit().catch(() => owned.disconnect());
  }
}
