/**
 * Key names. Every key of one queue shares one hash tag, `{<queue>}`, so a queue lives on one
 * Redis Cluster shard and every script touches one slot.
 */
export interface QueueKeys {
  /** `<prefix>:{<queue>}:` — the base every per-queue key starts with; scripts derive job keys from it. */
  base: string;
  stream: string;
  delayed: string;
  completed: string;
  failed: string;
  cancelled: string;
  aborted: string;
  events: string;
  /** The queue's settings every worker reads: paused, rate limit (hash). */
  config: string;
  /** Records of completed jobs that never had a hash of their own (hash: job id → record). */
  done: string;
  /** Schedules: specs by id (hash), next tick by id (zset), last tick enqueued by id (hash). */
  schedules: string;
  scheduleNext: string;
  scheduleLast: string;
  /** Pub/sub channel for abort requests of this queue's active jobs. */
  abortChannel: string;
  job(id: string): string;
  /** A job's log (list of JSON lines). */
  log(id: string): string;
}

/** The consumer group every worker of a queue joins. */
export const GROUP = "sluice";

export function queueKeys(prefix: string, queue: string): QueueKeys {
  const base = `${prefix}:{${queue}}:`;
  return {
    base,
    stream: base + "stream",
    delayed: base + "delayed",
    completed: base + "completed",
    failed: base + "failed",
    cancelled: base + "cancelled",
    aborted: base + "aborted",
    events: base + "events",
    config: base + "config",
    done: base + "done",
    schedules: base + "schedules",
    scheduleNext: base + "schedules:next",
    scheduleLast: base + "schedules:last",
    abortChannel: base + "abort",
    job: (id) => base + "job:" + id,
    log: (id) => base + "log:" + id,
  };
}

/** Keys shared by all queues under one prefix (worker registry, control channel). */
export function globalKeys(prefix: string) {
  return {
    workers: `${prefix}:workers`,
    worker: (id: string) => `${prefix}:worker:${id}`,
    control: `${prefix}:control`,
  };
}
