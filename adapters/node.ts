/**
 * Node adapter: maps SIGINT/SIGTERM onto the shutdown protocol and sets the exit code.
 *
 * @example
 * ```ts
 * import { runWorker } from "sluice/node";
 * await runWorker({ tasks, queues: ["default"], redis: process.env.REDIS_URL });
 * ```
 * @module
 */
import { hostname } from "node:os";
import { type ProcessRunOptions, type RuntimeHooks, runWorkerIn } from "../src/runtime.ts";
import { type RunSummary, Worker, type WorkerOptions } from "../src/worker.ts";

export const hooks: RuntimeHooks = {
  runtime: "node",
  host: hostname(),
  pid: process.pid,
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  exit: (code) => process.exit(code),
};

/**
 * Ends the process now with `code`. The CLI calls it once a worker has stopped: a handler that
 * ignored its abort (left behind on a third signal) would otherwise keep the process alive.
 */
export function exit(code: number): never {
  process.exit(code);
}

/** A Worker that knows its host, pid and runtime (shown in the admin app). */
export function createWorker(options: WorkerOptions): Worker {
  return new Worker({ ...options, identity: { host: hooks.host, pid: hooks.pid, runtime: "node", ...options.identity } });
}

/**
 * Runs a worker until it stops, with signal handling; sets `process.exitCode` (0 stopped cleanly,
 * 3 stopped on a third signal leaving jobs behind).
 */
export async function runWorker(options: WorkerOptions | Worker, run: ProcessRunOptions = {}): Promise<RunSummary> {
  const worker = options instanceof Worker ? options : createWorker(options);
  const { summary, code } = await runWorkerIn(worker, hooks, run);
  process.exitCode = code;
  return summary;
}
