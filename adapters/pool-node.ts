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
/** Whether a command-line value names tsx (its package, or a file inside it). */
const isTsx = (v: string | undefined) => v !== undefined && (/^tsx(\/|$)/.test(v) || /[\\/]node_modules[\\/]tsx[\\/]/.test(v));
const LOADER_FLAGS = new Set(["--import", "--require", "-r", "--loader", "--experimental-loader"]);
const hasTsxFlag = process.execArgv.some((a) => isTsx(a) || isTsx(a.split("=")[1]));

/** The parent's flags without the ones that load tsx (flag and value dropped as a pair). */
function withoutTsx(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (LOADER_FLAGS.has(a) && isTsx(argv[i + 1])) {
      i++;
      continue;
    }
    const [flag, value] = a.split("=", 2);
    if (LOADER_FLAGS.has(flag!) && isTsx(value)) continue;
    out.push(a);
  }
  return out;
}

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
    // the thread loads tsx itself (above): the parent's tsx flags would fail there
    ...(tsx ? { eval: true, execArgv: withoutTsx(process.execArgv) } : {}),
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
    const ended = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exited) return;
      exited = true;
      options.onExit({ code, signal, ...(error !== undefined ? { error } : {}) });
      resolve();
    };
    p.once("exit", ended);
    // a process that never started (ENOENT, EAGAIN, EMFILE) emits "error" and "close", no "exit"
    p.once("close", ended);
  });
  p.on("error", (e) => (error = e.message));
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
