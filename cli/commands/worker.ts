/**
 * `sluice worker`: runs a Worker for the tasks of a module, through the adapter of the runtime it
 * runs on. SIGINT/SIGTERM once drains, twice aborts running jobs (reason `shutdown`; they are
 * re-queued), three times re-queues the jobs that ignore their abort and stops without them.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { adapter, runtimeName } from "../../adapters/auto.ts";
import { EXIT, exitCode } from "../../src/runtime.ts";
import type { JobEventDetail, LogEntry, Tasks, WorkerOptions } from "../../src/worker.ts";
import { UsageError } from "../args.ts";
import { CliError, COMMON_FLAGS, type Command, openRedis, redact, redisFor, time } from "../common.ts";
import type { Io } from "../io.ts";

const flags = {
  tasks: { type: "string", placeholder: "MODULE", description: "Module whose default export (or export `tasks`) maps task names to handlers" },
  queues: { type: "list", description: 'Queues in priority order (default "default")' },
  concurrency: { type: "int", min: 1, description: "Jobs run at once, at most (default 10)" },
  "shutdown-graceful-timeout": { type: "duration", description: "On a graceful stop, abort jobs still running after this long (default: wait)" },
  "no-wait": { type: "boolean", description: "Drain mode: stop once the queues are empty and nothing runs" },
  "max-jobs": { type: "int", min: 1, description: "Stop (gracefully) after fetching this many jobs" },
  timeout: { type: "duration", description: "Default attempt timeout of tasks without their own" },
  "stalled-timeout": { type: "duration", description: "Recover jobs of workers silent for this long (default 30s)" },
  "log-format": { type: "string", placeholder: "text|json", choices: ["text", "json"], description: "Lifecycle log lines as text or JSON lines (default text; json with --json)" },
  "pool-size": { type: "int", min: 1, description: "Threads and processes of tasks with `execution` alive at once (default: --concurrency)" },
  "pool-max-jobs-per-child": { type: "int", min: 1, description: "Replace a pool thread or process after this many jobs (default: never)" },
  "pool-memory-limit-mb": { type: "int", min: 16, description: "Replace a pool thread or process above this many MB (default: no limit)" },
  "abort-grace": { type: "duration", description: "How long an aborted job in a thread or process may take to settle before it is ended (default 5s)" },
  ...COMMON_FLAGS,
} as const;

/** Imports the tasks module: a path relative to the working directory, or a URL. */
export async function loadTasks(spec: string, cwd: string): Promise<Tasks> {
  let url: string;
  if (/^(file|https?|npm|jsr|data):/i.test(spec)) {
    url = spec;
  } else {
    const path = resolve(cwd, spec);
    if (!existsSync(path)) throw new UsageError(`--tasks: no such file: ${path}`);
    url = pathToFileURL(path).href;
  }
  let mod: Record<string, unknown>;
  try {
    const typescript = /\.[cm]?tsx?$/i.test(new URL(url).pathname);
    mod = typescript && runtimeName() === "node" && !nodeStripsTypes() ? await importWithTsx(url, cwd, spec) : await import(url);
  } catch (e) {
    if (e instanceof CliError || e instanceof UsageError) throw e;
    throw new CliError(`cannot load the tasks module ${spec}: ${(e as Error)?.message ?? e}`);
  }
  const isObject = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x);
  // a named `tasks`, or the default export; a CommonJS module's `exports.tasks` arrives as default.tasks
  const fromDefault = isObject(mod.default) && isObject((mod.default as Record<string, unknown>).tasks) && !isFunctionMap(mod.default)
    ? (mod.default as Record<string, unknown>).tasks
    : mod.default;
  const tasks = isObject(mod.tasks) ? mod.tasks : fromDefault;
  if (!isObject(tasks) || Object.keys(tasks as object).length === 0) {
    throw new UsageError(
      `--tasks ${spec}: the module must export its tasks (an object of task name to handler, { handler, timeout?, endCondition? } or { module, export?, execution, timeout? }) as default or as 'tasks'`,
    );
  }
  return tasks as Tasks;
}

/** An object whose values are all handlers: a tasks object itself, not a module holding one. */
function isFunctionMap(o: unknown): boolean {
  return Object.values(o as object).every((v) => typeof v === "function");
}

/** Whether this Node runs TypeScript by itself (type stripping, on by default from Node 23.6). */
function nodeStripsTypes(): boolean {
  return Boolean((process as { features?: { typescript?: unknown } }).features?.typescript);
}

/**
 * Imports a TypeScript tasks module under a Node that cannot run TypeScript: through tsx, taken
 * from the app (the working directory), scoped to this one import so it works in packages with or
 * without `"type": "module"`. Without tsx in the app, a clear message says what to do.
 */
async function importWithTsx(url: string, cwd: string, spec: string): Promise<Record<string, unknown>> {
  let api: string;
  try {
    // the ESM entry of tsx's API, found through its package.json (require.resolve gives the CJS one)
    const pkgPath = createRequire(join(cwd, "package.json")).resolve("tsx/package.json");
    const pkg = JSON.parse(readFileSync(pkgPath, "utf8")) as { exports: Record<string, { import: { default: string } }> };
    api = join(dirname(pkgPath), pkg.exports["./esm/api"]!.import.default);
  } catch {
    throw new UsageError(
      `--tasks ${spec}: this Node (${process.version}) cannot run TypeScript by itself. Install tsx in your app ` +
        `(npm install --save-dev tsx), compile the tasks module to .js, or run the worker under Bun or Deno.`,
    );
  }
  const { tsImport } = (await import(pathToFileURL(api).href)) as { tsImport(specifier: string, parent: string): Promise<Record<string, unknown>> };
  return await tsImport(url, pathToFileURL(join(cwd, "index.js")).href);
}

/** A worker logger writing text lines or JSON lines. */
export function lineLogger(io: Io, format: "text" | "json"): (entry: LogEntry) => void {
  return (entry) => {
    const time = new Date().toISOString();
    if (format === "json") {
      io.out(JSON.stringify({ time, ...entry }));
      return;
    }
    const { level, event, message, worker: _worker, ...fields } = entry;
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : Array.isArray(v) ? v.join(",") : JSON.stringify(v)}`)
      .join(" ");
    io.out(`${time} ${level.toUpperCase().padEnd(5)} ${event}: ${message}${extra ? `  ${extra}` : ""}`);
  };
}

export const worker: Command<typeof flags> = {
  name: "worker",
  summary: "Run a worker for the tasks of a module",
  usage: "sluice worker --tasks <module> [--queues a,b,c] [--concurrency N] [options]",
  details: [
    "Stopping: the 1st SIGINT/SIGTERM drains (no new jobs; running jobs finish, up to",
    "--shutdown-graceful-timeout); the 2nd aborts running jobs (reason shutdown), which are re-queued",
    "with their attempt not counted; the 3rd re-queues the jobs that ignore their abort and exits.",
    "Exit codes: 0 stopped, 3 stopped leaving jobs that ignored their abort (re-queued),",
    "1 fatal error, 2 bad arguments.",
  ].join("\n"),
  flags,
  positionals: { names: [], min: 0 },
  async run(ctx) {
    const f = ctx.flags;
    if (f.tasks === undefined) throw new UsageError("--tasks is required (the module that exports the task handlers)");
    const format = f["log-format"] === "json" || f["log-format"] === "text" ? f["log-format"] : ctx.json ? "json" : "text";
    const log = lineLogger(ctx.io, format);
    const tasks = await loadTasks(f.tasks, ctx.io.cwd());
    const options: WorkerOptions = { tasks, redis: ctx.redisUrl, logger: log };
    const connection = redisFor(ctx);
    options.redis = connection.redis;
    if (ctx.prefix !== undefined) options.prefix = ctx.prefix;
    if (f.queues !== undefined) options.queues = f.queues;
    if (f.concurrency !== undefined) options.concurrency = f.concurrency;
    if (f["shutdown-graceful-timeout"] !== undefined) options.shutdownGracefulTimeout = f["shutdown-graceful-timeout"];
    if (f["no-wait"]) options.wait = false;
    if (f["max-jobs"] !== undefined) options.maxJobs = f["max-jobs"];
    if (f.timeout !== undefined) options.timeout = f.timeout;
    if (f["stalled-timeout"] !== undefined) options.stalledTimeout = f["stalled-timeout"];
    const pool = {
      ...(f["pool-size"] !== undefined ? { size: f["pool-size"] } : {}),
      ...(f["pool-max-jobs-per-child"] !== undefined ? { maxJobsPerChild: f["pool-max-jobs-per-child"] } : {}),
      ...(f["pool-memory-limit-mb"] !== undefined ? { memoryLimitMb: f["pool-memory-limit-mb"] } : {}),
      ...(f["abort-grace"] !== undefined ? { abortGrace: f["abort-grace"] } : {}),
    };
    if (Object.keys(pool).length > 0) options.pool = pool;

    const { createWorker, runWorker } = await adapter();
    let w;
    try {
      w = createWorker(options); // a ValidationError here is a usage error
      // fail fast on an unreachable Redis; once running, the worker rides out reconnects itself
      await (await openRedis(ctx)).quit();
    } catch (e) {
      await connection.close();
      throw e;
    }

    const jobFields = (d: JobEventDetail) => ({ job: d.job.id, queue: d.job.queue, task: d.job.name, attempt: d.job.attempt });
    const reason = (d: JobEventDetail) => (d.abortReason ? ` (abort reason: ${d.abortReason})` : "");
    const errorText = (e: unknown) => {
      try {
        return e instanceof Error ? String(e.message) : String(e);
      } catch {
        return "(an error that cannot be shown)";
      }
    };
    w.addEventListener("failed", (e) => {
      const d = (e as CustomEvent<JobEventDetail>).detail;
      log({ level: "warn", event: "job-failed", message: `job ${d.job.id} failed for good: ${errorText(d.error)}${reason(d)}`, worker: w.id, ...jobFields(d) });
    });
    w.addEventListener("retrying", (e) => {
      const d = (e as CustomEvent<JobEventDetail & { retryAt: number }>).detail;
      log({
        level: "warn", event: "job-retrying",
        message: `job ${d.job.id} attempt ${d.job.attempt} of ${d.job.maxAttempts} failed: ${errorText(d.error)}${reason(d)}; retry at ${time(d.retryAt) ?? d.retryAt}`,
        worker: w.id, ...jobFields(d),
      });
    });

    let summary;
    try {
      // the command reports, then ends the process itself (with code 3 after an abandon)
      summary = await runWorker(w, { exitOnAbandon: false });
    } catch (e) {
      throw new CliError(`worker failed (${redact(ctx.redisUrl)}): ${errorText(e)}`, EXIT.error);
    } finally {
      await connection.close();
    }
    return exitCode(summary);
  },
};
