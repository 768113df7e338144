/**
 * The contract between a worker's pool and the threads and processes it runs jobs in: the
 * messages each side sends (structured clones), and what a runtime adapter supplies to start and
 * end a child (`PoolSpawner`). The core knows nothing of `worker_threads`, Web Workers or
 * Bun's spawn; adapters/ implement this in a few lines each.
 * @module
 */
import type { JobDescriptor } from "../context.ts";
import type { AbortReason } from "../errors.ts";

/** Where a pooled task runs. */
export type Execution = "thread" | "process";

/** An error as it crosses from a child: enough to rebuild it for the retry policy and the job's record. */
export interface CrossedError {
  name: string;
  message: string;
  stack?: string;
}

/** Parent → child. */
export type ToChild =
  | {
    t: "run";
    /** The attempt's fencing token: every message about the attempt carries it. */
    token: string;
    /** The module's URL (`file:` for local files). */
    module: string;
    /** The export that is the handler. */
    export: string;
    /** The job's data as stored (JSON): parsed in the child, not cloned twice. */
    data: string;
    job: JobDescriptor;
    workerId: string;
    /** Report the memory in use after the job (a memory limit is set). */
    measure: boolean;
  }
  | { t: "abort"; token: string; reason: AbortReason }
  | { t: "progress-ack"; seq: number; error?: string };

/** Child → parent. `memory`: bytes in use after the job (heap for a thread, RSS for a process), when known. */
export type FromChild =
  | { t: "progress"; token: string; seq: number; value: unknown }
  | { t: "done"; token: string; ok: true; value: unknown; memory?: number }
  | { t: "done"; token: string; ok: false; error: CrossedError; memory?: number }
  | { t: "log"; token: string; message: string }
  /** An error no handler caught ends the child (a process says so before it exits). */
  | { t: "fatal"; error: CrossedError };

/** How a child ended: an exit code or a signal, and the uncaught error that ended it, if one did. */
export interface ChildExit {
  code?: number | null;
  signal?: string | null;
  error?: string;
}

/** What a spawner is told when it starts a child. */
export interface SpawnOptions {
  /** Heap limit of the child where the runtime can enforce one (Node threads and processes). */
  memoryLimitMb?: number;
  onMessage(message: FromChild): void;
  /** Called once, when the child has exited (whatever the cause, a `kill()` included). */
  onExit(exit: ChildExit): void;
}

/** One running thread or process, as the pool sees it. */
export interface ChildHandle {
  /** For logs and the registry: "thread 3", "process 12345". */
  readonly label: string;
  /** Sends a message; throws if it cannot be cloned. */
  post(message: ToChild): void;
  /** Terminates the thread (kills the process); resolves once it has exited. */
  kill(): Promise<void>;
}

/** Starts children: what a runtime adapter supplies (`spawner` of adapters/bun.ts, deno.ts, node.ts). */
export interface PoolSpawner {
  spawn(kind: Execution, options: SpawnOptions): ChildHandle;
}

/** Rebuilds an error that crossed from a child: its name (so `UnrecoverableError.is` holds), message and stack. */
export function rebuildError(e: CrossedError): Error {
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack !== undefined) err.stack = e.stack;
  return err;
}

/** An error, as it can cross to the parent (anything thrown, even a hostile value). */
export function crossError(e: unknown): CrossedError {
  try {
    if (e instanceof Error) {
      const out: CrossedError = { name: String(e.name), message: String(e.message) };
      if (typeof e.stack === "string") out.stack = e.stack;
      return out;
    }
    return { name: "Error", message: typeof e === "string" ? e : `non-Error value thrown: ${String(e)}` };
  } catch {
    return { name: "Error", message: "the handler threw a value that cannot be shown" };
  }
}
