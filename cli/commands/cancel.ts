/** `sluice cancel <queue> <id>`: cancels a waiting or delayed job, or aborts a running one. */
import { COMMON_FLAGS, type Command, print, withQueue } from "../common.ts";

const flags = {
  abort: { type: "boolean", description: "If the job is running, abort it (reason user); it ends aborted" },
  delete: { type: "boolean", description: "Also remove the job (waiting or delayed jobs only)" },
  ...COMMON_FLAGS,
} as const;

const TEXT: Record<string, (prev: string | undefined) => string> = {
  cancelled: (p) => `cancelled (was ${p})`,
  "abort-requested": () => "abort requested: its worker aborts it with reason user",
  active: () => "running: nothing changed (add --abort to abort it)",
  finished: (p) => `already finished (${p}): nothing changed`,
  missing: () => "no such job",
};

export const cancel: Command<typeof flags> = {
  name: "cancel",
  summary: "Cancel a waiting or delayed job, or abort a running one",
  usage: "sluice cancel <queue> <id> [--abort] [--delete] [options]",
  details: [
    "Prints what happened: cancelled, abort-requested, active (running, --abort not given),",
    "finished (it had already ended; nothing changed) or missing. Exit code 1 when the job is missing.",
  ].join("\n"),
  flags,
  positionals: { names: ["queue", "id"], min: 2 },
  async run(ctx) {
    const [queueName, id] = ctx.positionals as [string, string];
    return await withQueue(ctx, queueName, async (queue) => {
      const result = await queue.cancel(id, { abort: !!ctx.flags.abort, delete: !!ctx.flags.delete });
      const deleted = ctx.flags.delete && result.outcome === "cancelled" ? " and deleted" : "";
      print(ctx, result, () => `${result.id} ${TEXT[result.outcome]?.(result.previousState) ?? result.outcome}${deleted}`);
      return result.outcome === "missing" ? 1 : 0;
    });
  },
};
