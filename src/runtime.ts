import { type RunOptions, type RunSummary, Worker, type WorkerOptions } from "./worker.ts";

/**
 * What a runtime adapter supplies: the few process facilities the core may not touch itself.
 * Each adapter (adapters/bun.ts, deno.ts, node.ts) implements it in a few lines.
 */
export interface RuntimeHooks {
  /** "bun", "deno" or "node". */
  runtime: string;
  host: string;
  pid: number;
  /** Calls `handler` on each delivery of `signal`; returns a function that removes it. */
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): () => void;
  /** Ends the process at once with `code`. */
  exit?(code: number): void;
}

/** Options of `runWorkerIn` and of the adapters' `runWorker`. */
export interface ProcessRunOptions extends RunOptions {
  /**
   * After a third signal re-queued jobs that ignored their abort, end the process at once (exit
   * code 3): their handlers may still be running, and would otherwise keep the process alive and
   * run on beside the worker that takes the jobs over. `false` leaves the process to the caller,
   * who must end it soon. @default true
   */
  exitOnAbandon?: boolean;
}

/** Exit codes of a worker process: */
export const EXIT = {
  /** Stopped; every job it had settled (completed, failed, or interrupted and re-queued). */
  ok: 0,
  /** A fatal error. */
  error: 1,
  /** Bad command-line arguments. */
  usage: 2,
  /** Stopped on a third signal, re-queuing jobs that ignored their abort. */
  abandoned: 3,
} as const;

/**
 * Maps SIGINT and SIGTERM onto a worker's `ShutdownController`: the first signal drains, the
 * second aborts running jobs (reason `shutdown`), the third re-queues the jobs that still ignore
 * their signal and lets the worker stop without them. Returns a function that removes the handlers.
 */
export function handleSignals(worker: Worker, hooks: RuntimeHooks): () => void {
  const removers = (["SIGINT", "SIGTERM"] as const).map((sig) =>
    hooks.onSignal(sig, () => {
      worker.shutdown.request({ source: sig });
    })
  );
  return () => removers.forEach((r) => r());
}

/** The exit code a worker process should end with, from its run summary. */
export function exitCode(summary: RunSummary): number {
  return summary.abandoned > 0 ? EXIT.abandoned : EXIT.ok;
}

/**
 * Runs a worker inside a process: signals handled (unless `installSignalHandlers: false`), and the
 * exit code worked out. Adapters wrap it as `runWorker(options)`.
 */
export async function runWorkerIn(worker: Worker, hooks: RuntimeHooks, options: ProcessRunOptions = {}): Promise<{ summary: RunSummary; code: number }> {
  const remove = worker.options.installSignalHandlers === false ? () => {} : handleSignals(worker, hooks);
  let summary: RunSummary;
  try {
    summary = await worker.run({ signal: options.signal, hardSignal: options.hardSignal });
  } finally {
    remove();
  }
  const code = exitCode(summary);
  if (code === EXIT.abandoned && options.exitOnAbandon !== false) hooks.exit?.(code);
  return { summary, code };
}

/** What every runtime adapter exports for running workers. */
export interface WorkerFunctions {
  /** A Worker that knows its host, pid and runtime (shown in the worker registry and the admin app). */
  createWorker(options: WorkerOptions): Worker;
  /**
   * Runs a worker until it stops, with SIGINT/SIGTERM handled, and sets the process exit code
   * (0 stopped cleanly, 3 stopped on a third signal leaving re-queued jobs behind).
   */
  runWorker(options: WorkerOptions | Worker, run?: ProcessRunOptions): Promise<RunSummary>;
}

/**
 * Builds an adapter's `createWorker` and `runWorker` from its hooks. `runtime` is shown in the
 * registry ("bun 1.4.5"); `setExitCode` sets the process exit code without exiting.
 */
export function workerFunctions(hooks: RuntimeHooks, runtime: string, setExitCode: (code: number) => void): WorkerFunctions {
  const createWorker = (options: WorkerOptions) =>
    new Worker({ ...options, identity: { host: hooks.host, pid: hooks.pid, runtime, ...options.identity } });
  return {
    createWorker,
    async runWorker(options, run = {}) {
      const worker = options instanceof Worker ? options : createWorker(options);
      const { summary, code } = await runWorkerIn(worker, hooks, run);
      setExitCode(code);
      return summary;
    },
  };
}
