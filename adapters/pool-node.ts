/**
 * The pool spawner of Node and Deno: threads through `node:worker_threads` (on Deno a module Web
 * Worker underneath, which unlike a plain Web Worker reports its exit, also after `Deno.exit` in
 * a job), processes through `child_process.fork` with structured-clone IPC. Node enforces
 * `memoryLimitMb` as a process's heap limit (`--max-old-space-size`); a thread's heap is checked
 * after each job.
 * @module
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Worker as ThreadWorker } from "node:worker_threads";
import type { ChildHandle, Execution, PoolSpawner, SpawnOptions } from "../src/pool/protocol.ts";

/** The child entry beside this file (.ts from the sources, .js from the compiled package). */
export const CHILD_ENTRY: URL = new URL(`./pool-child.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url);

const isDeno = "Deno" in globalThis;

/**
 * tsx's API where the app has tsx (Node only: Bun and Deno run TypeScript themselves). Node does
 * not carry a parent's `--import tsx` into worker threads, nor does the CLI's `tsImport` of a
 * tasks module reach a child: a thread then starts through tsx's `tsImport`, and a process with
 * `--import tsx`, so TypeScript task modules load there as they do in the worker.
 */
const tsx: { api: string; loader: string } | undefined = (() => {
  if (isDeno) return undefined;
  try {
    return { api: import.meta.resolve("tsx/esm/api"), loader: import.meta.resolve("tsx") };
  } catch {
    return undefined;
  }
})();
const hasTsxFlag = process.execArgv.some((a) => a.includes("tsx"));

export const spawner: PoolSpawner = {
  spawn(kind: Execution, options: SpawnOptions): ChildHandle {
    return kind === "thread" ? thread(options) : childProcess(options);
  },
};

function thread(options: SpawnOptions): ChildHandle {
  // no `resourceLimits` heap cap: a thread that reaches it with one large allocation takes the
  // whole process down (Node 20); the pool checks the thread's heap after each job instead
  const entry = tsx
    ? `import(${JSON.stringify(tsx.api)}).then((m) => m.tsImport(${JSON.stringify(CHILD_ENTRY.href)}, ${JSON.stringify(import.meta.url)}))`
    : CHILD_ENTRY;
  const w = new ThreadWorker(entry, {
    ...(tsx ? { eval: true, execArgv: process.execArgv.filter((a, i, all) => !a.includes("tsx") && !(a === "--import" && all[i + 1]?.includes("tsx"))) } : {}),
    workerData: { sluicePool: true },
  });
  let error: string | undefined;
  let exited = false;
  const gone = new Promise<void>((resolve) => {
    w.once("exit", (code) => {
      exited = true;
      options.onExit({ code, ...(error !== undefined ? { error } : {}) });
      resolve();
    });
  });
  w.on("error", (e: Error) => (error = `${e?.name ?? "Error"}: ${e?.message ?? e}`));
  w.on("message", (m) => options.onMessage(m));
  w.on("messageerror", (e) => (error = `a message from the thread could not be read: ${e?.message ?? e}`));
  return {
    label: `thread ${w.threadId}`,
    post: (m) => w.postMessage(m),
    async kill() {
      if (!exited) await w.terminate().catch(() => {});
      await gone;
    },
  };
}

function childProcess(options: SpawnOptions): ChildHandle {
  const limit = options.memoryLimitMb;
  const execArgv = [
    ...process.execArgv,
    ...(tsx && !hasTsxFlag ? ["--import", tsx.loader] : []),
    ...(limit !== undefined && !isDeno ? [`--max-old-space-size=${limit}`] : []),
  ];
  const p = fork(fileURLToPath(CHILD_ENTRY), ["--sluice-pool-child"], { serialization: "advanced", stdio: ["inherit", "inherit", "inherit", "ipc"], execArgv });
  let exited = false;
  let error: string | undefined;
  const gone = new Promise<void>((resolve) => {
    p.once("exit", (code, signal) => {
      exited = true;
      options.onExit({ code, signal, ...(error !== undefined ? { error } : {}) });
      resolve();
    });
  });
  p.on("error", (e) => (error = e.message)); // a failed spawn or send; "exit" follows a failed spawn
  p.on("message", (m) => options.onMessage(m as never));
  return {
    label: `process ${p.pid ?? "?"}`,
    post(m) {
      p.send(m);
    },
    async kill() {
      if (!exited) p.kill("SIGKILL");
      await gone;
    },
  };
}
