/** `sluice stats [queue…]`: job counts per state, per queue. */
import type { Redis } from "ioredis";
import { JOB_STATES, type JobCounts } from "../../src/job.ts";
import { Queue } from "../../src/queue.ts";
import { COMMON_FLAGS, checkQueue, type Command, openRedis, print } from "../common.ts";

const flags = { ...COMMON_FLAGS } as const;

/** Escapes the glob characters of a SCAN pattern. */
function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, "\\$&");
}

/** Finds the queues under `prefix` by their streams (`<prefix>:{<queue>}:stream`). */
export async function discoverQueues(redis: Redis, prefix: string): Promise<string[]> {
  const head = `${prefix}:{`;
  const found = new Set<string>();
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${globEscape(head)}*}:stream`, "COUNT", 1000, "TYPE", "stream");
    cursor = next;
    for (const key of keys) {
      const name = key.slice(head.length, key.length - "}:stream".length);
      if (name && !/[{}]/.test(name)) found.add(name);
    }
  } while (cursor !== "0");
  return [...found].sort();
}

function table(rows: [string, JobCounts][]): string[] {
  const head = ["QUEUE", ...JOB_STATES.map((s) => s.toUpperCase())];
  const body = rows.map(([q, c]) => [q, ...JOB_STATES.map((s) => String(c[s]))]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(head), ...body.map(line)];
}

export const stats: Command<typeof flags> = {
  name: "stats",
  summary: "Count jobs per state, per queue",
  usage: "sluice stats [queue...] [options]",
  details: [
    "Without queue names, every queue under the prefix is shown (found by its stream key).",
    "--json prints an object: queue name -> { waiting, active, delayed, completed, failed, cancelled, aborted }.",
  ].join("\n"),
  flags,
  positionals: { names: ["queue"], min: 0, variadic: true },
  async run(ctx) {
    for (const name of ctx.positionals) checkQueue(name, ctx.prefix);
    const redis = await openRedis(ctx);
    try {
      const names = ctx.positionals.length > 0 ? [...new Set(ctx.positionals)] : await discoverQueues(redis, ctx.prefix ?? "sluice");
      const rows: [string, JobCounts][] = [];
      for (const name of names) rows.push([name, await new Queue(name, { redis, prefix: ctx.prefix }).counts()]);
      print(ctx, Object.fromEntries(rows), () => (rows.length === 0 ? "no queues" : table(rows)));
      return 0;
    } finally {
      redis.disconnect();
    }
  },
};
