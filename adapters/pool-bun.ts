/**
 * The pool spawner of Bun: threads are Web Workers (their `terminate()` stops even a busy loop,
 * and a `close` event reports every exit), processes come from `Bun.spawn` with structured-clone
 * IPC. Bun has no per-thread heap limit: `memoryLimitMb` is checked after each job.
 * @module
 */
import { fileURLToPath } from "node:url";
import type { ChildHandle, Execution, FromChild, PoolSpawner, SpawnOptions } from "../src/pool/protocol.ts";

/** The members of Bun's global and Web Worker this file uses. */
interface BunSpawned {
  pid: number;
  send(message: unknown): void;
  kill(signal?: number | string): void;
  exited: Promise<number>;
  exitCode: number | null;
  signalCode: string | null;
}
interface BunGlobal {
  spawn(cmd: string[], options: {
    ipc(message: unknown): void;
    serialization: "advanced";
    stdio: ["inherit", "inherit", "inherit"];
  }): BunSpawned;
}
interface WebWorker {
  postMessage(message: unknown): void;
  terminate(): void;
  addEventListener(type: "message", listener: (e: { data: FromChild }) => void): void;
  addEventListener(type: "error", listener: (e: { message?: string; preventDefault(): void }) => void): void;
  addEventListener(type: "close", listener: (e: { code?: number }) => void): void;
}
const g = globalThis as unknown as { Bun: BunGlobal; Worker: new (url: string, options: { type: "module"; name: string }) => WebWorker; process: { execPath: string } };

/** The child entry beside this file (.ts from the sources, .js from the compiled package). */
const CHILD_ENTRY = new URL(`./pool-child.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

export const spawner: PoolSpawner = {
  spawn(kind: Execution, options: SpawnOptions): ChildHandle {
    return kind === "thread" ? thread(options) : childProcess(options);
  },
};

let threads = 0;

function thread(options: SpawnOptions): ChildHandle {
  const w = new g.Worker(CHILD_ENTRY.href, { type: "module", name: "sluice-pool" });
  const n = ++threads;
  let error: string | undefined;
  let exited = false;
  const gone = new Promise<void>((resolve) => {
    w.addEventListener("close", (e) => {
      exited = true;
      options.onExit({ code: e?.code ?? null, ...(error !== undefined ? { error } : {}) });
      resolve();
    });
  });
  w.addEventListener("error", (e) => {
    error = e?.message ?? "uncaught error";
    e.preventDefault();
  });
  w.addEventListener("message", (e) => options.onMessage(e.data));
  return {
    label: `thread ${n}`,
    post: (m) => w.postMessage(m),
    async kill() {
      if (!exited) w.terminate();
      await gone;
    },
  };
}

function childProcess(options: SpawnOptions): ChildHandle {
  const p = g.Bun.spawn([g.process.execPath, fileURLToPath(CHILD_ENTRY), "--sluice-pool-child"], {
    ipc: (m) => options.onMessage(m as FromChild),
    serialization: "advanced",
    stdio: ["inherit", "inherit", "inherit"],
  });
  let exited = false;
  const gone = p.exited.then(() => {
    exited = true;
    options.onExit({ code: p.exitCode, signal: p.signalCode });
  });
  return {
    label: `process ${p.pid}`,
    post: (m) => p.send(m),
    async kill() {
      if (!exited) p.kill("SIGKILL");
      await gone;
    },
  };
}
