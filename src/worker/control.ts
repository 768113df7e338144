/**
 * The worker's subscription: abort requests for its running jobs (one channel per queue) and
 * remote shutdown requests (one control channel per prefix).
 * @module
 */
import { globalKeys } from "../keys.ts";
import { duplicate, type IORedis } from "../redis.ts";
import type { WorkerCore } from "./core.ts";
import type { Executor } from "./executor.ts";
import type { RunningJobs } from "./running-jobs.ts";

/** Subscribes on a connection of its own. Returns it (closed by the worker at stop). */
export async function subscribe(core: WorkerCore, cmd: IORedis, running: RunningJobs, executor: Executor, onConnection: (c: IORedis) => void): Promise<IORedis> {
  const sub = duplicate(cmd);
  onConnection(sub);
  const control = globalKeys(core.settings.prefix).control;
  sub.on("message", (channel: string, message: string) => {
    if (channel === control) return onControl(core, message);
    const q = core.queues.find((x) => x.keys.abortChannel === channel);
    const r = q && running.newest(q, message);
    if (r) executor.abort(r, "user");
  });
  await sub.subscribe(control, ...core.queues.map((q) => q.keys.abortChannel));
  return sub;
}

function onControl(core: WorkerCore, message: string): void {
  let m: { action?: string; worker?: string; queue?: string; hard?: boolean };
  try {
    m = JSON.parse(message);
  } catch {
    return;
  }
  if (typeof m !== "object" || m === null) return;
  if (m.action === "pause" || m.action === "resume") {
    const q = core.queues.find((x) => x.name === m.queue);
    if (q) core.onPause?.(q, m.action === "pause");
    return;
  }
  if (m.action !== "shutdown") return;
  // both filters must match when both are given; none given: every worker under the prefix
  const forMe = (m.worker === undefined || m.worker === core.id) && (m.queue === undefined || core.queues.some((q) => q.name === m.queue));
  if (!forMe) return;
  core.log("info", "remote-shutdown", `remote ${m.hard ? "hard" : "graceful"} shutdown requested`);
  core.shutdown.request({ hard: !!m.hard, source: "remote" });
}
