/**
 * The worker's pool of threads and processes for tasks with `execution: "thread" | "process"`.
 * One job runs in a child at a time. Every abort, whatever its reason, climbs the same ladder: the
 * child's `ctx.signal` fires; a job that has not settled `abortGrace` later has its thread
 * terminated (its process killed), and only once the child has exited does the attempt settle and
 * free its slot. A child that was terminated, crashed or retired never reports an outcome again:
 * its messages are dropped (and the attempt's token fences it in Redis besides).
 *
 * Children start on demand, up to `size` at once (those still exiting count), and are replaced
 * after `maxJobsPerChild` jobs, above `memoryLimitMb`, and when they crash.
 * @module
 */
import { JobAborted, PoolChildError } from "../errors.ts";
import type { Context } from "../context.ts";
import { type ChildExit, type ChildHandle, type Execution, type FromChild, type PoolSpawner, rebuildError } from "./protocol.ts";

/** Options of `pool` in the worker options. */
export interface PoolOptions {
  /** Threads and processes alive at once, at most. @default the worker's concurrency */
  size?: number;
  /** Replace a thread or process after it ran this many jobs. @default unlimited */
  maxJobsPerChild?: number;
  /** How long a job may take to settle after its abort before its thread or process is ended. @default "5s" */
  abortGrace?: number | string;
  /** Replace a thread or process whose memory (heap of a thread, RSS of a process) is above this after a job; Node also enforces it as a heap limit. @default none */
  memoryLimitMb?: number;
}

/** `PoolOptions` resolved. */
export interface PoolSettings {
  size: number;
  maxJobsPerChild: number;
  abortGrace: number;
  memoryLimitMb: number | undefined;
}

/** What a pooled task tells the pool. */
export interface PooledTask {
  module: string;
  export: string;
  execution: Execution;
}

/** How a pooled attempt settled: what an inline handler would have returned or thrown. */
export type PoolResult = { ok: true; value: unknown } | { ok: false; error: unknown };


interface Child {
  handle: ChildHandle;
  kind: Execution;
  jobs: number;
  /** The run it is busy with. */
  run?: PoolRun;
  /** Being ended (terminated, retired or crashed): it takes no job and its messages are dropped. */
  ending: boolean;
  /** Resolves once it has exited. */
  exited: Promise<void>;
  /** The uncaught error it reported before it exited. */
  fatal?: string;
  markExited(exit: ChildExit): void;
}

interface PoolRun {
  token: string;
  ctx: Context;
  task: PooledTask;
  data: string;
  child?: Child;
  grace?: ReturnType<typeof setTimeout>;
  /** Ends the child of an aborted run and settles it: what the grace timer calls. */
  expire?: () => Promise<void>;
  settled: boolean;
  resolve(result: PoolResult): void;
  onAbort(): void;
}

/** A pool's state, for the registry and the admin app. */
export interface PoolStats {
  threads: number;
  processes: number;
  busy: number;
  waiting: number;
  /** Children started since the worker began (replacements included). */
  started: number;
}

/** The worker's logger, as the pool calls it. */
export type PoolLog = (level: "info" | "warn" | "error", event: string, message: string, fields?: Record<string, unknown>) => void;

export class Pool {
  readonly #settings: PoolSettings;
  readonly #spawner: () => Promise<PoolSpawner>;
  readonly #log: PoolLog;
  readonly #children = new Set<Child>();
  readonly #waiting: PoolRun[] = [];
  #spawnerReady: Promise<PoolSpawner> | undefined;
  #closed = false;
  #started = 0;

  constructor(settings: PoolSettings, spawner: () => Promise<PoolSpawner>, log: PoolLog) {
    this.#settings = settings;
    this.#spawner = spawner;
    this.#log = log;
  }

  /**
   * Runs one attempt in a pool thread or child. Never rejects: resolves with the handler's result,
   * its error, the abort that ended it (a `JobAborted` whose reason is the context's), or a
   * `PoolChildError` when its child crashed.
   */
  run(token: string, ctx: Context, task: PooledTask, data: string): Promise<PoolResult> {
    return new Promise((resolve) => {
      const run: PoolRun = {
        token, ctx, task, data, settled: false,
        resolve: (result) => {
          if (run.settled) return;
          run.settled = true;
          clearTimeout(run.grace);
          ctx.signal.removeEventListener("abort", run.onAbort);
          resolve(result);
        },
        onAbort: () => this.#abort(run),
      };
      if (this.#closed) return run.resolve({ ok: false, error: new JobAborted("shutdown", "the worker's pool is closed") });
      if (ctx.signal.aborted) return this.#abort(run);
      ctx.signal.addEventListener("abort", run.onAbort, { once: true });
      this.#waiting.push(run);
      this.#dispatch();
    });
  }

  /** Threads and processes alive (those still exiting included), busy ones, waiting jobs. */
  stats(): PoolStats {
    let threads = 0;
    let processes = 0;
    let busy = 0;
    for (const c of this.#children) {
      if (c.kind === "thread") threads++;
      else processes++;
      if (c.run) busy++;
    }
    return { threads, processes, busy, waiting: this.#waiting.length, started: this.#started };
  }

  /**
   * Ends every thread and process and resolves once all have exited. Jobs still waiting for a
   * child, or still running in one (left behind by a stop that did not wait), settle as aborted
   * with reason `shutdown`; nothing is left running.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const run of this.#waiting.splice(0)) run.resolve({ ok: false, error: new JobAborted("shutdown", "the worker stopped before a thread or process was free") });
    const children = [...this.#children];
    await Promise.all(children.map((c) => this.#end(c, "the worker stopped")));
    // the jobs their children ran (left behind by a stop that did not wait) end with them
    for (const c of children) {
      const run = c.run;
      if (!run || run.settled) continue;
      const reason = run.ctx.abortReason ?? "shutdown";
      run.resolve({ ok: false, error: new JobAborted(reason, `job ${run.ctx.job.id} was still running when the worker stopped; its ${c.kind} was ended`) });
    }
  }

  /** Starts waiting runs on idle children, starting children while the pool has room. */
  #dispatch(): void {
    while (this.#waiting.length > 0 && !this.#closed) {
      const run = this.#waiting[0]!;
      const idle = [...this.#children].find((c) => !c.run && !c.ending && c.kind === run.task.execution);
      if (idle) {
        this.#waiting.shift();
        this.#assign(idle, run);
        continue;
      }
      if (this.#children.size < this.#settings.size) {
        this.#waiting.shift();
        this.#start(run);
        continue;
      }
      // full: an idle child of the other kind makes room once it has exited (one at a time: a
      // child already on its way out is room coming)
      if ([...this.#children].some((c) => c.ending && !c.run)) return;
      const other = [...this.#children].find((c) => !c.run && !c.ending);
      if (other) void this.#end(other, "room for a job of the other kind");
      return;
    }
  }

  /** Starts a child for `run` (the spawner is loaded on first use). */
  #start(run: PoolRun): void {
    const placeholder = this.#placeholder(run.task.execution);
    this.#children.add(placeholder);
    placeholder.run = run;
    run.child = placeholder;
    // a spawner that failed to load is tried again by the next job
    this.#spawnerReady ??= this.#spawner().catch((e) => {
      this.#spawnerReady = undefined;
      throw e;
    });
    this.#spawnerReady.then((spawner) => {
      // ended before it started (the job's abort grace ran out, or the pool closed): nothing to start
      if (placeholder.ending || this.#closed) {
        this.#children.delete(placeholder);
        placeholder.markExited({ code: 0 });
        if (this.#closed) run.resolve({ ok: false, error: new JobAborted("shutdown", "the worker stopped before the job started") });
        this.#dispatch();
        return;
      }
      let handle: ChildHandle;
      try {
        handle = spawner.spawn(run.task.execution, {
          ...(this.#settings.memoryLimitMb !== undefined ? { memoryLimitMb: this.#settings.memoryLimitMb } : {}),
          onMessage: (m) => this.#message(placeholder, m),
          onExit: (exit) => this.#exited(placeholder, exit),
        });
      } catch (e) {
        this.#children.delete(placeholder);
        placeholder.markExited({ code: null });
        run.resolve({ ok: false, error: new PoolChildError(`could not start a ${run.task.execution} for job ${run.ctx.job.id}: ${(e as Error)?.message ?? e}`) });
        this.#dispatch();
        return;
      }
      this.#started++;
      placeholder.handle = handle;
      this.#post(placeholder, run);
    }, (e) => {
      this.#children.delete(placeholder);
      placeholder.markExited({ code: null });
      run.resolve({ ok: false, error: new PoolChildError(`no ${run.task.execution} can be started here: ${(e as Error)?.message ?? e}`) });
      this.#dispatch();
    });
  }

  #placeholder(kind: Execution): Child {
    let markExited!: (exit: ChildExit) => void;
    const exited = new Promise<void>((resolve) => (markExited = () => resolve()));
    const pending: ChildHandle = { label: `${kind} (starting)`, post() {}, kill: () => exited };
    return { handle: pending, kind, jobs: 0, ending: false, exited, markExited };
  }

  #assign(child: Child, run: PoolRun): void {
    child.run = run;
    run.child = child;
    this.#post(child, run);
  }

  #post(child: Child, run: PoolRun): void {
    // an abort that came while the child started: the ladder starts now
    try {
      child.handle.post({ t: "run", token: run.token, module: run.task.module, export: run.task.export, data: run.data, job: run.ctx.job, workerId: run.ctx.workerId, measure: this.#settings.memoryLimitMb !== undefined });
    } catch (e) {
      // the slot frees once the child has exited
      void this.#end(child, "it could not be sent a job").then(() => {
        child.run = undefined;
        run.resolve({ ok: false, error: new PoolChildError(`could not send job ${run.ctx.job.id} to its ${child.kind}: ${(e as Error)?.message ?? e}`) });
      });
      return;
    }
    if (run.ctx.signal.aborted) this.#abort(run);
  }

  #message(child: Child, m: FromChild): void {
    if (m.t === "fatal") {
      child.fatal = `${m.error.name}: ${m.error.message}`;
      return;
    }
    const run = child.run;
    // a child being ended, or a message about another attempt: dropped (fenced)
    if (child.ending || !run || run.token !== m.token) return;
    if (m.t === "log") {
      void run.ctx.log(m.message);
      return;
    }
    if (m.t === "progress") {
      run.ctx.progress(m.value).then(
        () => this.#ack(child, m.seq),
        (e) => this.#ack(child, m.seq, (e as Error)?.message ?? String(e)),
      );
      return;
    }
    // done
    child.run = undefined;
    child.jobs++;
    run.resolve(m.ok ? { ok: true, value: m.value } : { ok: false, error: rebuildError(m.error) });
    const s = this.#settings;
    if (child.jobs >= s.maxJobsPerChild) {
      void this.#end(child, `it ran ${child.jobs} job(s) (maxJobsPerChild)`, "info");
    } else if (s.memoryLimitMb !== undefined && m.memory !== undefined && m.memory > s.memoryLimitMb * 1024 * 1024) {
      void this.#end(child, `it uses ${Math.round(m.memory / 1048576)} MB (memoryLimitMb ${s.memoryLimitMb})`, "warn");
    }
    this.#dispatch();
  }

  #ack(child: Child, seq: number, error?: string): void {
    if (child.ending) return;
    try {
      child.handle.post(error === undefined ? { t: "progress-ack", seq } : { t: "progress-ack", seq, error });
    } catch {
      // the child is going away
    }
  }

  /** The ladder: the signal fired (the child is told); `abortGrace` later the child is ended. */
  #abort(run: PoolRun): void {
    if (run.settled) return;
    const reason = run.ctx.abortReason ?? "shutdown";
    const child = run.child;
    if (!child) {
      const i = this.#waiting.indexOf(run);
      if (i >= 0) this.#waiting.splice(i, 1);
      run.resolve({ ok: false, error: new JobAborted(reason, `job ${run.ctx.job.id} was aborted (${reason}) before a thread or process was free`) });
      return;
    }
    try {
      child.handle.post({ t: "abort", token: run.token, reason });
    } catch {
      // ended below, after the grace
    }
    if (run.grace !== undefined) return;
    run.expire = async () => {
      run.expire = undefined;
      clearTimeout(run.grace);
      if (run.settled || child.run !== run) return;
      const grace = this.#settings.abortGrace;
      await this.#end(child, `job ${run.ctx.job.id} ignored its abort (${reason}) for ${grace} ms`, "warn");
      // only now, the child gone, is the slot free and the outcome written
      run.resolve({
        ok: false,
        error: new JobAborted(reason, `job ${run.ctx.job.id} did not settle within abortGrace (${grace} ms) of its abort (${reason}); its ${child.kind} was ${child.kind === "thread" ? "terminated" : "killed"}`),
      });
    };
    run.grace = setTimeout(() => void run.expire?.(), this.#settings.abortGrace);
  }

  /**
   * Ends now, without the rest of their grace, the children of every aborted job (a worker told
   * to stop without waiting: a third signal, `abandon()`). Their jobs settle as their abort says.
   */
  hurry(): void {
    for (const c of this.#children) if (c.run?.expire) void c.run.expire();
  }

  /** Ends a child (once) and resolves when it has exited; the pool refills afterwards. */
  async #end(child: Child, why: string, level: "info" | "warn" = "info"): Promise<void> {
    if (!child.ending) {
      child.ending = true;
      this.#log(level, "pool-child-end", `ending ${child.handle.label}: ${why}`, { child: child.handle.label });
      child.handle.kill().catch(() => {});
    }
    await child.exited;
  }

  /** A child exited: expected (ended by the pool) or not (a crash, which fails its job). */
  #exited(child: Child, exit: ChildExit): void {
    this.#children.delete(child);
    const run = child.run;
    const expected = child.ending;
    child.ending = true;
    child.markExited(exit);
    if (run && !expected) {
      child.run = undefined;
      const how = exit.error ?? child.fatal ?? (exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`);
      this.#log("error", "pool-child-crash", `${child.handle.label} exited while it ran job ${run.ctx.job.id}: ${how}`, { child: child.handle.label, job: run.ctx.job.id });
      run.resolve({ ok: false, error: new PoolChildError(`the ${child.kind} running job ${run.ctx.job.id} exited before the job settled: ${how}`) });
    }
    this.#dispatch();
  }
}
