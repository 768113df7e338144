/**
 * The side of the pool that runs inside a thread or a child process: it imports the task's
 * module, runs the export with the same `ctx` an inline handler gets (`job`, `signal`,
 * `shouldAbort()`, `abortReason`, `progress()`), and posts how the attempt ended. The runtime's
 * channel (a Web Worker's `self`, `worker_threads`' `parentPort`, a process's IPC) is handed in
 * by adapters/pool-child.ts, so this file uses web-standard globals only.
 * @module
 */
import { Context } from "../context.ts";
import { type CrossedError, crossError, type FromChild, type ToChild } from "./protocol.ts";

/** A child's link to its parent. */
export interface ChildChannel {
  post(message: FromChild): void;
  onMessage(handler: (message: ToChild) => void): void;
  /** Bytes in use now (heap for a thread, RSS for a process), if the runtime tells; asked after a job when a memory limit is set. */
  memory(): number | undefined;
  /** "thread" or "process", for error messages. */
  kind: string;
}

/**
 * Serves runs until the child ends. One attempt at a time: a thread or process runs one job, so
 * terminating it for an attempt that ignored its abort ends nothing else.
 */
export function serveChild(channel: ChildChannel): void {
  const modules = new Map<string, Promise<Record<string, unknown>>>();
  const running = new Map<string, Context>();
  const acks = new Map<number, { token: string; resolve(): void; reject(e: Error): void }>();
  let seq = 0;

  const done = (token: string, ok: boolean, value: unknown, error?: CrossedError, measure = false) => {
    running.delete(token);
    // progress the worker will no longer answer (the attempt is over) does not wait forever
    for (const [n, a] of acks) {
      if (a.token !== token) continue;
      acks.delete(n);
      a.reject(new Error("the attempt ended before its progress was stored"));
    }
    const memory = measure ? safeMemory(channel) : undefined;
    const message: FromChild = ok ? { t: "done", token, ok: true, value, memory } : { t: "done", token, ok: false, error: error!, memory };
    try {
      // a process's IPC may fail only later, asynchronously (Deno's): find out here
      if (ok && channel.kind === "process") structuredClone(value);
      channel.post(message);
    } catch (e) {
      // the result is not a structured clone (a function, a symbol, a class with private state…)
      channel.post({
        t: "done", token, ok: false, memory,
        error: {
          name: "UnrecoverableError",
          message: `the result cannot cross from the ${channel.kind} to the worker: ${(e as Error)?.message ?? e}. ` +
            "Results cross as structured clones and are stored as JSON: return plain data (no functions, symbols or class instances).",
        },
      });
    }
  };

  const run = async (m: Extract<ToChild, { t: "run" }>) => {
    const ctx = new Context(m.job, m.workerId, (value) => {
      const n = ++seq;
      const p = new Promise<void>((resolve, reject) => {
        acks.set(n, { token: m.token, resolve, reject });
        try {
          if (channel.kind === "process") structuredClone(value); // see done()
          channel.post({ t: "progress", token: m.token, seq: n, value });
        } catch (e) {
          acks.delete(n);
          reject(new TypeError(`progress of job ${m.job.id} cannot cross to the worker (a structured clone): ${(e as Error)?.message ?? e}`));
        }
      });
      p.catch(() => {}); // a rejected progress nobody awaited is the handler's business, not the child's
      return p;
    }, (message) => {
      channel.post({ t: "log", token: m.token, message });
      return Promise.resolve();
    });
    running.set(m.token, ctx);
    let handler: unknown;
    try {
      let mod = modules.get(m.module);
      if (!mod) modules.set(m.module, (mod = import(m.module) as Promise<Record<string, unknown>>));
      const loaded = await mod.catch((e) => {
        modules.delete(m.module); // a later job tries again (the file may be deployed by then)
        throw new Error(`cannot load the module of task ${m.job.name} (${m.module}): ${(e as Error)?.message ?? e}`);
      });
      handler = loaded[m.export];
      if (typeof handler !== "function") {
        throw new TypeError(`the module of task ${m.job.name} (${m.module}) has no export "${m.export}" that is a function: found ${typeof handler}`);
      }
    } catch (e) {
      return done(m.token, false, undefined, crossError(e), m.measure);
    }
    try {
      const value = await (handler as (data: unknown, ctx: Context) => unknown)(JSON.parse(m.data), ctx);
      done(m.token, true, value, undefined, m.measure);
    } catch (e) {
      done(m.token, false, undefined, crossError(e), m.measure);
    }
  };

  channel.onMessage((m) => {
    if (m.t === "run") void run(m);
    else if (m.t === "abort") running.get(m.token)?.abort(m.reason);
    else if (m.t === "progress-ack") {
      const a = acks.get(m.seq);
      acks.delete(m.seq);
      if (m.error === undefined) a?.resolve();
      else a?.reject(new Error(m.error));
    }
  });
}

function safeMemory(channel: ChildChannel): number | undefined {
  try {
    return channel.memory();
  } catch {
    return undefined;
  }
}
