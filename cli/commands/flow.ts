/**
 * `sluice pause <queue>`, `sluice resume <queue>` and `sluice schedule <queue> [list|set|remove]`:
 * flow control from the command line.
 */
import { COMMON_FLAGS, type Command, print, time, withQueue } from "../common.ts";
import { UsageError } from "../args.ts";

const none = { ...COMMON_FLAGS } as const;

export const pause: Command<typeof none> = {
  name: "pause",
  summary: "Pause a queue for every worker (running jobs finish; enqueueing goes on)",
  usage: "sluice pause <queue> [options]",
  flags: none,
  positionals: { names: ["queue"], min: 1 },
  async run(ctx) {
    return await withQueue(ctx, ctx.positionals[0]!, async (queue) => {
      await queue.pause();
      print(ctx, { queue: queue.name, paused: true }, () => `${queue.name} paused`);
      return 0;
    });
  },
};

export const resume: Command<typeof none> = {
  name: "resume",
  summary: "Resume a paused queue",
  usage: "sluice resume <queue> [options]",
  flags: none,
  positionals: { names: ["queue"], min: 1 },
  async run(ctx) {
    return await withQueue(ctx, ctx.positionals[0]!, async (queue) => {
      await queue.resume();
      print(ctx, { queue: queue.name, paused: false }, () => `${queue.name} resumed`);
      return 0;
    });
  },
};

const scheduleFlags = {
  cron: { type: "string", placeholder: "EXPR", description: 'set: a cron expression, seconds optional ("0 3 * * *", "*/10 * * * * *")' },
  every: { type: "duration", description: "set: an interval instead of --cron (at least 1s)" },
  tz: { type: "string", placeholder: "ZONE", description: 'set: the time zone of --cron (IANA, e.g. "Europe/Berlin"; default UTC)' },
  task: { type: "string", placeholder: "NAME", description: "set: the task of the jobs" },
  data: { type: "string", placeholder: "JSON", description: "set: the jobs' data as JSON" },
  misfire: { type: "string", placeholder: "run-once|skip", choices: ["run-once", "skip"], description: "set: ticks missed while no worker ran: one job for them, or none (default run-once)" },
  ...COMMON_FLAGS,
} as const;

export const schedule: Command<typeof scheduleFlags> = {
  name: "schedule",
  summary: "List, set or remove a queue's schedules",
  usage: "sluice schedule <queue> [list | set <id> --cron EXPR|--every DURATION --task NAME | remove <id>] [options]",
  details: [
    "Any worker of the queue enqueues a schedule's ticks, one job per tick (its id: sched:<id>:<tick ms>).",
    "Setting a schedule again with the same spec keeps its next tick.",
  ].join("\n"),
  flags: scheduleFlags,
  positionals: { names: ["queue", "action", "id"], min: 1 },
  async run(ctx) {
    const [queueName, action = "list", id] = ctx.positionals as [string, string?, string?];
    const f = ctx.flags;
    return await withQueue(ctx, queueName, async (queue) => {
      if (action === "list") {
        const list = await queue.listSchedules();
        print(ctx, list, () => list.length === 0 ? "no schedules" : list.map((s) =>
          `${s.id}  ${s.cron !== undefined ? `cron "${s.cron}"${s.tz ? ` ${s.tz}` : ""}` : `every ${s.every} ms`}  task ${s.task}  next ${time(s.next) ?? "-"}  last ${time(s.last) ?? "-"}  misfire ${s.misfire}`
        ));
        return 0;
      }
      if (id === undefined) throw new UsageError(`schedule ${action} needs <id>`);
      if (action === "remove") {
        const removed = await queue.removeSchedule(id);
        print(ctx, { id, removed }, () => removed ? `${id} removed` : `no schedule ${id}`);
        return removed ? 0 : 1;
      }
      if (action !== "set") throw new UsageError(`unknown schedule action ${JSON.stringify(action)}: list, set or remove`);
      if (f.task === undefined) throw new UsageError("schedule set needs --task");
      let data: unknown;
      if (f.data !== undefined) {
        try {
          data = JSON.parse(f.data);
        } catch (e) {
          throw new UsageError(`--data must be JSON: ${(e as Error).message}`);
        }
      }
      const spec = {
        task: f.task,
        ...(f.cron !== undefined ? { cron: f.cron } : {}),
        ...(f.every !== undefined ? { every: f.every } : {}),
        ...(f.tz !== undefined ? { tz: f.tz } : {}),
        ...(data !== undefined ? { data } : {}),
        ...(f.misfire !== undefined ? { misfire: f.misfire as "run-once" | "skip" } : {}),
      };
      const r = await queue.upsertSchedule(id, spec);
      print(ctx, r, () => `${id} set; next tick ${time(r.next) ?? "-"}`);
      return 0;
    });
  },
};

const bulkFlags = {
  state: { type: "string", placeholder: "STATE", description: "retry: failed (default) or aborted; clean: completed, failed, cancelled or aborted" },
  "older-than": { type: "string", placeholder: "DURATION", description: 'clean: jobs finished more than this long ago ("1h", "7d"; 0 for all)' },
  ...COMMON_FLAGS,
} as const;

export const bulk: Command<typeof bulkFlags> = {
  name: "bulk",
  summary: "Retry, clean, promote or cancel many jobs of a queue at once",
  usage: "sluice bulk <queue> retry [--state failed|aborted] | clean --state STATE --older-than DURATION | promote | cancel [options]",
  details: "retry: failed (or aborted) jobs back to waiting; clean: delete finished jobs; promote: delayed jobs now; cancel: every waiting job.\nPrints how many jobs it touched.",
  flags: bulkFlags,
  positionals: { names: ["queue", "action"], min: 2 },
  async run(ctx) {
    const [queueName, action] = ctx.positionals as [string, string];
    const f = ctx.flags;
    return await withQueue(ctx, queueName, async (queue) => {
      let touched: number;
      if (action === "retry") {
        if (f.state !== undefined && f.state !== "failed" && f.state !== "aborted") throw new UsageError(`--state must be failed or aborted for retry: got ${JSON.stringify(f.state)}`);
        touched = await queue.retryAll({ state: (f.state as "failed" | "aborted" | undefined) ?? "failed" });
      } else if (action === "clean") {
        if (f.state === undefined || f["older-than"] === undefined) throw new UsageError("clean needs --state and --older-than");
        const age = /^\d+$/.test(f["older-than"]) ? Number(f["older-than"]) : f["older-than"];
        touched = await queue.clean(f.state as "completed", age);
      } else if (action === "promote") {
        touched = await queue.promoteAll();
      } else if (action === "cancel") {
        touched = await queue.cancelAll();
      } else {
        throw new UsageError(`unknown bulk action ${JSON.stringify(action)}: retry, clean, promote or cancel`);
      }
      print(ctx, { queue: queue.name, action, touched }, () => `${touched} ${touched === 1 ? "job" : "jobs"} ${{ retry: "retried", clean: "deleted", promote: "promoted", cancel: "cancelled" }[action]}`);
      return 0;
    });
  },
};
