/**
 * The entry of every pool thread and process (see src/pool/child.ts): it finds the channel to its
 * worker — a child process's IPC, Bun's Web Worker `self`, or `worker_threads`' `parentPort`
 * (Node, and Deno, whose `worker_threads` is a module Web Worker that also reports its exit) —
 * and serves jobs on it.
 * @module
 */
import { type ChildChannel, serveChild } from "../src/pool/child.ts";
import { crossError, type FromChild, type ToChild } from "../src/pool/protocol.ts";

interface ProcessLike {
  argv: string[];
  send?(message: unknown, handle?: undefined, options?: undefined, callback?: () => void): boolean;
  on(event: string, handler: (message: never) => void): void;
  exit(code?: number): never;
  memoryUsage(): { rss: number };
}
const g = globalThis as unknown as { process?: ProcessLike; Bun?: unknown; self?: { postMessage(m: unknown): void; onmessage: ((e: { data: ToChild }) => void) | null } };

/** Heap in use by this thread's isolate, where the runtime tells. */
async function heapReader(): Promise<() => number | undefined> {
  try {
    const v8 = await import("node:v8");
    return () => v8.getHeapStatistics().used_heap_size;
  } catch {
    return () => undefined;
  }
}

const proc = g.process;
let channel: ChildChannel;
if (proc && proc.argv.includes("--sluice-pool-child") && typeof proc.send === "function") {
  const send = proc.send.bind(proc);
  channel = {
    kind: "process",
    post: (m: FromChild) => void send(m),
    onMessage: (h) => proc.on("message", h as (m: never) => void),
    memory: () => proc.memoryUsage().rss,
  };
  // the worker went away (killed without ending this process): end too
  proc.on("disconnect", () => proc.exit(0));
  // an error no handler catches ends this process, as it would a thread; the worker learns which
  const fatal = (e: unknown) => {
    console.error(e);
    const exit = () => proc.exit(1);
    try {
      send({ t: "fatal", error: crossError(e) } satisfies FromChild, undefined, undefined, exit);
    } catch {
      exit();
    }
    setTimeout(exit, 1000); // the message did not go out
  };
  proc.on("uncaughtException", fatal as (m: never) => void);
  proc.on("unhandledRejection", fatal as (m: never) => void);
} else if (g.Bun && g.self) {
  const self = g.self;
  const bun = g.Bun as { gc(force: boolean): void };
  const heap = await heapReader();
  channel = {
    kind: "thread",
    post: (m: FromChild) => self.postMessage(m),
    onMessage: (h) => void (self.onmessage = (e) => h(e.data)),
    // Bun's heap size lags until a collection (about a millisecond here)
    memory: () => {
      bun.gc(true);
      return heap();
    },
  };
} else {
  const { parentPort } = await import("node:worker_threads");
  if (!parentPort) throw new Error("adapters/pool-child.ts runs inside a sluice worker's thread or process, not on its own");
  channel = {
    kind: "thread",
    post: (m: FromChild) => parentPort.postMessage(m),
    onMessage: (h) => void parentPort.on("message", h),
    memory: await heapReader(),
  };
}
serveChild(channel);
