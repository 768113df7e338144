/**
 * Picks the adapter of the runtime this code runs on (Deno, Bun, else Node), for code that runs
 * unchanged on all three: the CLI and the examples.
 *
 * @example
 * ```ts
 * import { adapter } from "sluice/auto";
 * const { runWorker } = await adapter();
 * ```
 * @module
 */
import type { ProcessRunOptions, RuntimeHooks } from "../src/runtime.ts";
import type { RunSummary, Worker, WorkerOptions } from "../src/worker.ts";
import type { AdminServer, ServableApp, ServeAdminOptions } from "../admin/serve.ts";

/** What every adapter exports. */
export interface Adapter {
  hooks: RuntimeHooks;
  createWorker(options: WorkerOptions): Worker;
  runWorker(options: WorkerOptions | Worker, run?: ProcessRunOptions): Promise<RunSummary>;
  /** Ends the process now with `code`, even if handlers that ignored their abort still run. */
  exit(code: number): never;
  /** Serves the admin app; refuses a non-loopback bind when it has no auth. */
  serveAdmin(app: ServableApp, options?: ServeAdminOptions): Promise<AdminServer>;
}

/** The name of the runtime this code runs on. */
export function runtimeName(): "deno" | "bun" | "node" {
  const g = globalThis as Record<string, unknown>;
  if (g.Deno) return "deno";
  if (g.Bun) return "bun";
  return "node";
}

/** Loads the adapter of the current runtime. */
export async function adapter(): Promise<Adapter> {
  switch (runtimeName()) {
    case "deno":
      return await import("./deno.ts");
    case "bun":
      return await import("./bun.ts");
    default:
      return await import("./node.ts");
  }
}
