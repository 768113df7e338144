/** `sluice enqueue <queue> <task> [json-data]`: adds one job and prints its id and state. */
import type { EnqueueOptions } from "../../src/options.ts";
import { UsageError } from "../args.ts";
import { COMMON_FLAGS, type Command, print, withQueue } from "../common.ts";

const flags = {
  delay: { type: "duration", description: 'Run no earlier than this long from now ("10s", "5m", or milliseconds)' },
  attempts: { type: "int", min: 1, description: "Attempts in all, the first included (default 3)" },
  backoff: { type: "duration", description: "Fixed delay between attempts (default: exponential from 1s)" },
  timeout: { type: "duration", description: "Abort each attempt after this long (reason timeout)" },
  "job-id": { type: "string", placeholder: "ID", description: "Deduplication id: if a job with it exists, nothing is added" },
  ...COMMON_FLAGS,
} as const;

export const enqueue: Command<typeof flags> = {
  name: "enqueue",
  summary: "Add a job to a queue",
  usage: "sluice enqueue <queue> <task> [json-data] [options]",
  details: [
    "json-data is the job's data as JSON (default null), e.g. '{\"to\":\"a@example.com\"}'.",
    "Prints the job id and its state (waiting, or delayed); with --job-id of an existing job,",
    "that job's state and duplicate: true.",
  ].join("\n"),
  flags,
  positionals: { names: ["queue", "task", "json-data"], min: 2 },
  async run(ctx) {
    const [queueName, task, rawData] = ctx.positionals as [string, string, string | undefined];
    let data: unknown = null;
    if (rawData !== undefined) {
      try {
        data = JSON.parse(rawData);
      } catch (e) {
        throw new UsageError(`json-data is not valid JSON (${(e as Error).message}): got ${JSON.stringify(rawData)}`);
      }
    }
    const f = ctx.flags;
    const options: EnqueueOptions = {};
    if (f.delay !== undefined) options.delay = f.delay;
    if (f.attempts !== undefined) options.attempts = f.attempts;
    if (f.backoff !== undefined) options.backoff = f.backoff;
    if (f.timeout !== undefined) options.timeout = f.timeout;
    if (f["job-id"] !== undefined) options.jobId = f["job-id"];
    return await withQueue(ctx, queueName, async (queue) => {
      const job = await queue.enqueue(task, data, options);
      print(ctx, job, () =>
        job.duplicate
          ? `${job.id} ${job.state} (duplicate: a job with this id exists; nothing was added)`
          : `${job.id} ${job.state}`);
      return 0;
    });
  },
};
