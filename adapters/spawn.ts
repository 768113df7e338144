/**
 * The pool spawner of the runtime this code runs on, for a `Worker` built without an adapter's
 * `createWorker` (which passes its own). Loaded only when a task runs in a thread or process.
 * @module
 */
import type { PoolSpawner } from "../src/pool/protocol.ts";

/** Bun's spawner (Web Workers and `Bun.spawn`), else the one of Node and Deno. */
export async function defaultSpawner(): Promise<PoolSpawner> {
  if ("Bun" in globalThis) return (await import("./pool-bun.ts")).spawner;
  return (await import("./pool-node.ts")).spawner;
}
