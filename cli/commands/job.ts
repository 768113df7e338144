/** `sluice job <queue> <id>`: prints one job. */
import type { JobInfo } from "../../src/job.ts";
import { CliError, COMMON_FLAGS, type Command, print, time, withQueue } from "../common.ts";

const flags = { ...COMMON_FLAGS } as const;

function text(job: JobInfo): string[] {
  const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
  const rows: [string, string | number | undefined][] = [
    ["id", job.id],
    ["queue", job.queue],
    ["task", job.name],
    ["state", job.state],
    ["attempt", `${job.attempt} of ${job.maxAttempts}`],
    ["data", JSON.stringify(job.data)],
    ["created", time(job.createdAt)],
    ["run at", time(job.runAt)],
    ["started", time(job.startedAt)],
    ["finished", time(job.finishedAt)],
    ["owner", job.owner],
    ["stalls", job.stalls || undefined],
    ["progress", job.progress === undefined ? undefined : show(job.progress)],
    ["abort", job.abortRequested],
    ["result", job.result === undefined ? undefined : show(job.result)],
    ["error", job.error ? `${job.error.name}: ${job.error.message}${job.error.abortReason ? ` (abort reason: ${job.error.abortReason})` : ""}` : undefined],
  ];
  return rows.filter(([, v]) => v !== undefined && v !== "").map(([k, v]) => `${(k + ":").padEnd(10)} ${v}`);
}

export const job: Command<typeof flags> = {
  name: "job",
  summary: "Show one job",
  usage: "sluice job <queue> <id> [options]",
  details: "Exit code 1 when there is no such job (never was, or removed by retention).",
  flags,
  positionals: { names: ["queue", "id"], min: 2 },
  async run(ctx) {
    const [queueName, id] = ctx.positionals as [string, string];
    return await withQueue(ctx, queueName, async (queue) => {
      const info = await queue.getJob(id);
      if (!info) throw new CliError(`no job ${JSON.stringify(id)} in queue ${JSON.stringify(queueName)}`);
      print(ctx, info, () => text(info));
      return 0;
    });
  },
};
