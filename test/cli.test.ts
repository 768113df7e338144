/**
 * The `sluice` command line: argument parsing, the short commands against a real Redis, and the
 * worker command as a real process under Bun, Deno and Node, stopped with real signals.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, UsageError } from "../cli/args.ts";
import type { Io } from "../cli/io.ts";
import { main } from "../cli/main.ts";
import { Redis } from "ioredis";
import { Queue } from "../mod.ts";
import { freePort, redisUrl, ROOT, type Runtime, runtimeCommand, RUNTIMES, type Spawned, spawnTs, uniquePrefix, waitFor } from "./harness.ts";
import { gateFile } from "./procs.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const CLI = "cli/sluice.ts";
const TASKS = "test/fixtures/cli-tasks.ts";

const running: Spawned[] = [];
const queues: Queue[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill("SIGKILL");
  await Promise.all(queues.splice(0).map((q) => q.close()));
});

function queue(name: string, prefix: string): Queue {
  const q = new Queue(name, { redis: redisUrl(), prefix });
  queues.push(q);
  return q;
}

/** An `Io` that records what a command writes. */
function recorder(env: Record<string, string> = {}): { io: Io; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l) => out.push(l), err: (l) => err.push(l), env: (n) => env[n], cwd: () => ROOT }, out, err };
}

/** Runs the CLI in this process; resolves with the exit code and what it wrote. */
async function inProcess(argv: string[], env: Record<string, string> = { REDIS_URL: redisUrl() }) {
  const r = recorder(env);
  const code = await main(argv, r.io);
  return { code, stdout: r.out.join("\n"), stderr: r.err.join("\n") };
}

/** Runs the CLI as a process under `runtime`; resolves once it has exited and its output is read. */
async function cli(args: string[], runtime: Runtime = "bun", env: Record<string, string> = { REDIS_URL: redisUrl() }) {
  const s = spawnTs(runtime, CLI, args, env);
  running.push(s);
  const closed = new Promise((r) => s.proc.once("close", r));
  const code = await s.exited;
  await closed;
  return { code, stdout: s.stdout(), stderr: s.stderr() };
}

// deno-lint-ignore no-explicit-any
type Line = Record<string, any>;

/** The JSON lines a worker process wrote so far (lifecycle logs and the fixture's own lines). */
function lines(s: Spawned): Line[] {
  const out: Line[] = [];
  for (const l of s.stdout().split("\n")) {
    if (!l.startsWith("{")) continue;
    try {
      out.push(JSON.parse(l));
    } catch {
      // a line still being written
    }
  }
  return out;
}

function waitLine(s: Spawned, what: string, pred: (l: Line) => boolean, timeout = 60_000): Promise<Line> {
  return waitFor(() => lines(s).find(pred), `${what}\nstdout: ${s.stdout()}\nstderr: ${s.stderr()}`, timeout, 25);
}

function startWorker(runtime: Runtime, prefix: string, args: string[]): Spawned {
  const s = spawnTs(runtime, CLI, ["worker", "--tasks", TASKS, "--prefix", prefix, "--log-format", "json", ...args], { REDIS_URL: redisUrl() });
  running.push(s);
  return s;
}

async function exitCodeOf(s: Spawned, timeout = 30_000): Promise<number | string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<string>((r) => (timer = setTimeout(() => r(`still running after ${timeout} ms`), timeout)));
  try {
    return await Promise.race([s.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe("parseArgs", () => {
  const specs = {
    delay: { type: "duration", description: "" },
    attempts: { type: "int", min: 1, description: "" },
    queues: { type: "list", description: "" },
    json: { type: "boolean", description: "" },
    help: { type: "boolean", short: "h", description: "" },
  } as const;

  test("reads values, inline values, lists, switches, -h and positionals after --", () => {
    const { flags, positionals } = parseArgs(
      ["q", "--delay", "10s", "--attempts=4", "--queues", "a,b", "--queues=c", "--json", "-h", "-5", "--", "--not-a-flag"],
      specs,
    );
    expect(flags).toEqual({ delay: 10_000, attempts: 4, queues: ["a", "b", "c"], json: true, help: true });
    expect(positionals).toEqual(["q", "-5", "--not-a-flag"]);
  });

  test("names the problem of each bad argument", () => {
    const problem = (argv: string[]) => {
      try {
        parseArgs(argv, specs);
      } catch (e) {
        expect(UsageError.is(e)).toBe(true);
        return (e as Error).message;
      }
      throw new Error(`no error for ${argv.join(" ")}`);
    };
    expect(problem(["--bogus"])).toBe("unknown option --bogus");
    expect(problem(["-x"])).toBe("unknown option -x");
    expect(problem(["--delay"])).toContain("--delay needs a value");
    expect(problem(["--delay", "--json"])).toContain("--delay needs a value");
    expect(problem(["--delay", "soon"])).toContain('--delay must be a duration');
    expect(problem(["--delay", "soon"])).toContain('"soon"');
    expect(problem(["--attempts", "0"])).toBe('--attempts must be an integer >= 1: got "0"');
    expect(problem(["--attempts", "2.5"])).toBe('--attempts must be an integer >= 1: got "2.5"');
    expect(problem(["--queues", "a,,b"])).toContain("--queues must be a comma-separated list");
    expect(problem(["--json=yes"])).toBe('--json does not take a value: got "yes"');
  });
});

describe("sluice (in process)", () => {
  test("--help lists the commands and exits 0; no command prints it to stderr and exits 2", async () => {
    const help = await inProcess(["--help"]);
    expect(help.code).toBe(0);
    for (const c of ["worker", "enqueue", "cancel", "job", "stats", "admin"]) expect(help.stdout).toContain(`  ${c} `);
    const cmdHelp = await inProcess(["worker", "--help"]);
    expect(cmdHelp.code).toBe(0);
    expect(cmdHelp.stdout).toContain("--shutdown-graceful-timeout DURATION");
    expect(cmdHelp.stdout).toContain("--no-wait");
    const none = await inProcess([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("Usage: sluice <command>");
  });

  test("bad arguments exit 2 with a message naming the problem", async () => {
    const cases: [string[], string][] = [
      [["frob"], 'unknown command "frob"'],
      [["enqueue", "q"], "missing <task>"],
      [["enqueue", "q", "t", "1", "2"], 'unexpected argument "2"'],
      [["enqueue", "q", "t", "--delay"], "--delay needs a value"],
      [["enqueue", "q", "t", "--delay", "tomorrow"], "--delay must be a duration"],
      [["enqueue", "q", "t", "--attempts", "none"], "--attempts must be an integer >= 1"],
      [["enqueue", "q", "t", "{not json"], "json-data is not valid JSON"],
      [["enqueue", "q", "t", "--job-id", "a b"], "'jobId' must not contain whitespace"],
      [["enqueue", "bad{queue}", "t"], "Invalid queue name"],
      [["cancel", "q", "id", "--hard"], "unknown option --hard"],
      [["stats", "--redis-url", "http://localhost"], "--redis-url must be a redis:// or rediss:// URL"],
      [["worker"], "--tasks is required"],
      [["worker", "--tasks", "no/such/tasks.ts"], "--tasks: no such file"],
      [["worker", "--tasks", TASKS, "--concurrency", "0"], "--concurrency must be an integer >= 1"],
      [["worker", "--tasks", TASKS, "--shutdown-graceful-timeout", "10 parsecs"], "--shutdown-graceful-timeout must be a duration"],
      [["worker", "--tasks", TASKS, "--log-format", "xml"], "--log-format must be one of text, json"],
      [["worker", "--tasks", "data:text/javascript,export default { broken: 42 }"], "'tasks.broken' must be a function"],
      [["worker", "--tasks", "data:text/javascript,export const other = 1"], "the module must export its tasks"],
    ];
    for (const [argv, message] of cases) {
      const r = await inProcess(argv);
      expect({ argv, code: r.code }).toEqual({ argv, code: 2 });
      expect(r.stderr).toContain(message);
      expect(r.stdout).toBe("");
    }
  });

  test("REDIS_URL is checked like --redis-url, and --redis-url wins over it", async () => {
    const bad = await inProcess(["stats"], { REDIS_URL: "localhost:6379" });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("REDIS_URL must be a redis:// or rediss:// URL");
    const prefix = uniquePrefix("cli");
    const good = await inProcess(["stats", "--json", "--prefix", prefix, "--redis-url", redisUrl()], { REDIS_URL: "localhost:6379" });
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout)).toEqual({});
  });

  test("--json errors are one JSON object on stderr", async () => {
    const r = await inProcess(["enqueue", "q", "t", "--attempts", "-1", "--json"]);
    expect(r.code).toBe(2);
    const e = JSON.parse(r.stderr).error;
    expect(e).toMatchObject({ kind: "usage", exitCode: 2, command: "enqueue" });
    expect(e.message).toContain("--attempts");
  });

  test("an unreachable Redis, a missing job and a tasks module that throws exit 1", async () => {
    const down = await inProcess(["stats", "--redis-url", "redis://127.0.0.1:1"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("cannot connect to Redis at redis://127.0.0.1:1");
    const missing = await inProcess(["job", "q", "nope", "--prefix", uniquePrefix("cli")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no job "nope" in queue "q"');
    const broken = await inProcess(["worker", "--tasks", "data:text/javascript,throw new Error('broken on import')"]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain("cannot load the tasks module");
    expect(broken.stderr).toContain("broken on import");
  });

  test("stats finds the queues under its prefix only, glob characters included", async () => {
    const base = uniquePrefix("cli");
    await queue("emails", `${base}*`).enqueue("send", 1);
    await queue("images", `${base}*`).enqueue("resize", 1, { delay: "1h" });
    await queue("other", `${base}zz`).enqueue("x", 1);
    const r = await inProcess(["stats", "--json", "--prefix", `${base}*`]);
    expect(r.code).toBe(0);
    const stats = JSON.parse(r.stdout);
    expect(Object.keys(stats)).toEqual(["emails", "images"]);
    expect(stats.emails).toMatchObject({ waiting: 1, delayed: 0 });
    expect(stats.images).toMatchObject({ waiting: 0, delayed: 1 });
    const text = await inProcess(["stats", "--prefix", `${base}*`, "emails"]);
    expect(text.stdout.split("\n")[0]).toMatch(/^QUEUE\s+WAITING\s+ACTIVE\s+DELAYED\s+COMPLETED\s+FAILED\s+CANCELLED\s+ABORTED$/);
    expect(text.stdout.split("\n")[1]).toMatch(/^emails\s+1\s+0\s+0\s+0\s+0\s+0\s+0$/);
  });
});

describe("sluice enqueue / job / cancel / stats (processes)", () => {
  test("round trip with --json under Bun", async () => {
    const prefix = uniquePrefix("cli");
    const p = ["--prefix", prefix, "--json"];

    const added = await cli(["enqueue", "mail", "send", '{"to":"a@example.com"}', "--attempts", "5", "--timeout", "30s", ...p]);
    expect(added.code).toBe(0);
    const job = JSON.parse(added.stdout);
    expect(job).toMatchObject({ queue: "mail", state: "waiting", duplicate: false });

    const delayed = JSON.parse((await cli(["enqueue", "mail", "send", "--delay", "1h", "--job-id", "later-1", ...p])).stdout);
    expect(delayed).toEqual({ id: "later-1", queue: "mail", state: "delayed", duplicate: false });
    const dup = JSON.parse((await cli(["enqueue", "mail", "send", "--job-id", "later-1", ...p])).stdout);
    expect(dup).toEqual({ id: "later-1", queue: "mail", state: "delayed", duplicate: true });

    const shown = await cli(["job", "mail", job.id, ...p]);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: job.id, queue: "mail", name: "send", state: "waiting", data: { to: "a@example.com" }, attempt: 0, maxAttempts: 5 });

    const stats = await cli(["stats", ...p]);
    expect(JSON.parse(stats.stdout)).toEqual({ mail: { waiting: 1, active: 0, delayed: 1, completed: 0, failed: 0, cancelled: 0, aborted: 0 } });

    const cancelled = await cli(["cancel", "mail", "later-1", ...p]);
    expect(cancelled.code).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toEqual({ id: "later-1", outcome: "cancelled", previousState: "delayed" });
    const again = await cli(["cancel", "mail", "later-1", ...p]);
    expect(JSON.parse(again.stdout)).toEqual({ id: "later-1", outcome: "finished", previousState: "cancelled" });
    expect(JSON.parse((await cli(["job", "mail", "later-1", ...p])).stdout).state).toBe("cancelled");

    const deleted = await cli(["cancel", "mail", job.id, "--delete", ...p]);
    expect(JSON.parse(deleted.stdout)).toEqual({ id: job.id, outcome: "cancelled", previousState: "waiting" });
    const gone = await cli(["job", "mail", job.id, ...p]);
    expect(gone.code).toBe(1);
    expect(JSON.parse(gone.stderr).error.message).toContain("no job");
    const missing = await cli(["cancel", "mail", job.id, ...p]);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toEqual({ id: job.id, outcome: "missing" });

    const after = await cli(["stats", "mail", ...p]);
    expect(JSON.parse(after.stdout).mail).toMatchObject({ waiting: 0, delayed: 0, cancelled: 1 });
  }, 120_000);

  test("text output is one line per result", async () => {
    const prefix = uniquePrefix("cli");
    const added = await cli(["enqueue", "q", "echo", "42", "--prefix", prefix]);
    expect(added.code).toBe(0);
    const [id, state] = added.stdout.trim().split(" ");
    expect(state).toBe("waiting");
    const shown = await cli(["job", "q", id!, "--prefix", prefix]);
    expect(shown.stdout).toContain(`id:        ${id}`);
    expect(shown.stdout).toContain("state:     waiting");
    expect(shown.stdout).toContain("attempt:   0 of 3");
    const cancelled = await cli(["cancel", "q", id!, "--prefix", prefix]);
    expect(cancelled.stdout.trim()).toBe(`${id} cancelled (was waiting)`);
  }, 60_000);

  for (const runtime of ["deno", "node"] as const) {
    test(`enqueue, job and a bad argument under ${runtime}`, async () => {
      const prefix = uniquePrefix("cli");
      const added = await cli(["enqueue", "q", "echo", '{"n":1}', "--json", "--prefix", prefix], runtime);
      expect(added.code).toBe(0);
      const { id } = JSON.parse(added.stdout);
      const shown = await cli(["job", "q", id, "--json", "--prefix", prefix, "--redis-url", redisUrl()], runtime, {});
      expect(shown.code).toBe(0);
      expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: "waiting", data: { n: 1 } });
      const bad = await cli(["enqueue", "q", "echo", "--delay", "soon"], runtime);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("--delay must be a duration");
    }, 90_000);
  }
});

describe("sluice output and launcher", () => {
  test("a large result is printed whole under Node, whose pipe writes are asynchronous", async () => {
    const prefix = uniquePrefix("cli");
    const blob = "x".repeat(300_000);
    await queue("big", prefix).enqueue("echo", { blob }, { jobId: "big-1" });
    // a slow reader: it starts reading once the process has exited, or after 3 s. The pipe fills and
    // the writes queue up in the process; exiting without waiting for them would cut the output short
    const [cmd, argv] = runtimeCommand("node", CLI, ["job", "big", "big-1", "--json", "--prefix", prefix]);
    const proc = spawn(cmd, argv, { cwd: ROOT, env: { ...process.env, REDIS_URL: redisUrl() }, stdio: ["ignore", "pipe", "inherit"] });
    proc.stdout.pause();
    const exited = new Promise((r) => proc.once("exit", r));
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stdout.resume();
    await new Promise((r) => proc.stdout.once("close", r));
    expect(await exited).toBe(0);
    expect(out.length).toBeGreaterThan(blob.length);
    expect(JSON.parse(out).data.blob).toBe(blob);
  }, 60_000);

  test("--redis-db picks the database and --redis-password is sent as the password", async () => {
    const prefix = uniquePrefix("cli");
    const r = await cli(["enqueue", "q", "echo", "7", "--json", "--prefix", prefix, "--redis-db", "3"]);
    expect(r.code).toBe(0);
    const { id } = JSON.parse(r.stdout);
    const db3 = new Redis(redisUrl() + "/3");
    try {
      // (a new job lives in its stream entry, whose id is its id)
      expect((await db3.xrange(`${prefix}:{q}:stream`, id, id)).length).toBe(1);
      expect(await queue("q", prefix).getJob(id)).toBeNull(); // not in database 0
      await db3.flushdb();
    } finally {
      db3.disconnect();
    }
    // a Redis with a password: the command connects with the flag's (or REDIS_PASSWORD's)
    const port = await freePort();
    const server = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", "s3cret pw"], { stdio: "ignore" });
    try {
      const url = `redis://127.0.0.1:${port}`;
      const probe = new Redis(url, { password: "s3cret pw", lazyConnect: true, retryStrategy: () => 50 });
      probe.on("error", () => {});
      await waitFor(async () => (await probe.ping().catch(() => "")) === "PONG", "the password-protected Redis to start");
      probe.disconnect();
      const ok = await cli(["enqueue", "q", "echo", "1", "--json", "--prefix", prefix, "--redis-password", "s3cret pw"], "bun", { REDIS_URL: url });
      expect([ok.code, ok.stderr]).toEqual([0, ""]);
      const fromEnv = await cli(["stats", "--json", "--prefix", prefix], "bun", { REDIS_URL: url, REDIS_PASSWORD: "s3cret pw" });
      expect(JSON.parse(fromEnv.stdout)).toMatchObject({ q: { waiting: 1 } });
    } finally {
      server.kill("SIGKILL");
    }
  }, 60_000);

  test("package.json's bin launcher runs the CLI under Node from any directory", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const bin = join(ROOT, pkg.bin.sluice);
    const prefix = uniquePrefix("cli");
    const proc = spawn(process.versions.bun ? "node" : process.execPath, [bin, "enqueue", "q", "echo", "7", "--json", "--prefix", prefix], {
      cwd: tmpdir(),
      env: { ...process.env, REDIS_URL: redisUrl() },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    const code = await new Promise((r) => proc.once("close", r));
    expect(code).toBe(0);
    const { id } = JSON.parse(out);
    expect((await queue("q", prefix).getJob(id))?.data).toBe(7);
  }, 60_000);
});

for (const runtime of RUNTIMES) {
  describe(`sluice worker under ${runtime}`, () => {
    test("runs the jobs of a tasks module; SIGTERM lets the running job finish, fetches nothing more, exits 0", async () => {
      const prefix = uniquePrefix("cliw");
      const q = queue("work", prefix);
      const quick = await Promise.all([1, 2, 3].map((i) => q.enqueue("echo", { i })));
      // runs until the test opens the gate: still running when the signal comes, however slow the machine
      const gate = gateFile();
      const slow = await q.enqueue("untilFile", { file: gate.path });
      const w = startWorker(runtime, prefix, ["--queues", "other,work", "--concurrency", "4"]);
      await waitLine(w, "the started log", (l) => l.event === "started");
      await waitLine(w, "the slow job to start", (l) => l.ev === "start" && l.job === slow.id);
      await waitFor(async () => (await Promise.all(quick.map((j) => q.getJob(j.id)))).every((j) => j?.state === "completed"), "the quick jobs to complete");
      expect((await q.getJob(quick[0]!.id))?.result).toEqual({ i: 1 });

      w.kill("SIGTERM");
      const draining = await waitLine(w, "the draining log", (l) => l.event === "draining");
      expect(draining).toMatchObject({ level: "info", source: "SIGTERM", running: 1 });
      const late = await q.enqueue("echo", { late: true });
      gate.open();
      expect(await exitCodeOf(w)).toBe(0);

      expect(await q.getJob(slow.id)).toMatchObject({ state: "completed", result: "released" });
      expect((await q.getJob(late.id))?.state).toBe("waiting");
      expect(lines(w).find((l) => l.event === "stopped")).toMatchObject({ completed: 4, interrupted: 0, abandoned: 0 });
      expect(w.stderr()).toBe("");
    }, 120_000);

    test("a third signal re-queues a job that ignores its abort, uncounted, and exits 3", async () => {
      const prefix = uniquePrefix("cliw");
      const q = queue("work", prefix);
      const job = await q.enqueue("stubborn", null, { attempts: 2 });
      const w = startWorker(runtime, prefix, ["--queues", "work"]);
      await waitLine(w, "the stubborn job to start", (l) => l.ev === "start" && l.job === job.id);

      w.kill("SIGTERM");
      await waitLine(w, "the draining log", (l) => l.event === "draining");
      w.kill("SIGINT");
      await waitLine(w, "the aborting log", (l) => l.event === "aborting" && l.source === "SIGINT");
      expect(await waitLine(w, "the handler to see its abort", (l) => l.ev === "abort-ignored")).toMatchObject({ job: job.id, reason: "shutdown" });
      expect(w.proc.exitCode).toBeNull(); // the ignored abort keeps it in `aborting`

      w.kill("SIGTERM");
      expect(await exitCodeOf(w)).toBe(3);
      expect(lines(w).find((l) => l.event === "job-abandoned")).toMatchObject({ job: job.id, queue: "work" });
      expect(lines(w).find((l) => l.event === "stopped")).toMatchObject({ abandoned: 1, completed: 0 });
      const after = await q.getJob(job.id);
      expect(after).toMatchObject({ state: "waiting", attempt: 0 });
      expect(after?.owner).toBeUndefined();
    }, 120_000);
  });
}

describe("sluice pause, resume and schedule", () => {
  test("pause and resume a queue; set, list and remove a schedule; bad input is a usage error naming the flag", async () => {
    const prefix = uniquePrefix("cliflow");
    const q = queue("work", prefix);
    const env = { REDIS_URL: redisUrl() };
    expect((await inProcess(["pause", "work", "--prefix", prefix], env)).code).toBe(0);
    expect(await q.isPaused()).toBe(true);
    const resumed = await inProcess(["resume", "work", "--prefix", prefix, "--json"], env);
    expect([resumed.code, JSON.parse(resumed.stdout)]).toEqual([0, { queue: "work", paused: false }]);
    expect(await q.isPaused()).toBe(false);
    const set = await inProcess(["schedule", "work", "set", "nightly", "--cron", "0 0 3 * * *", "--tz", "Europe/Berlin", "--task", "report", "--data", '{"full":true}', "--prefix", prefix], env);
    expect([set.code, set.stdout]).toEqual([0, expect.stringContaining("nightly set; next tick 20")]);
    const list = await inProcess(["schedule", "work", "--prefix", prefix, "--json"], env);
    expect(JSON.parse(list.stdout)).toEqual([expect.objectContaining({ id: "nightly", cron: "0 0 3 * * *", tz: "Europe/Berlin", task: "report", data: { full: true }, misfire: "run-once" })]);
    const bad = await inProcess(["schedule", "work", "set", "x", "--every", "10ms", "--task", "t", "--prefix", prefix], env);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining("'every' must be at least 1 s")]);
    expect((await inProcess(["schedule", "work", "remove", "nightly", "--prefix", prefix], env)).code).toBe(0);
    expect((await inProcess(["schedule", "work", "remove", "nightly", "--prefix", prefix], env)).code).toBe(1);
    expect(await q.listSchedules()).toEqual([]);
  });
});

describe("sluice worker options", () => {
  test("--max-jobs stops after that many jobs and --no-wait once the queue is empty, both with exit 0", async () => {
    const prefix = uniquePrefix("cliw");
    const q = queue("work", prefix);
    const jobs = await Promise.all([1, 2, 3, 4, 5].map((i) => q.enqueue("echo", i)));

    const limited = spawnTs("bun", CLI, ["worker", "--tasks", TASKS, "--queues", "work", "--prefix", prefix, "--concurrency", "1", "--max-jobs", "2"], { REDIS_URL: redisUrl() });
    running.push(limited);
    expect(await exitCodeOf(limited)).toBe(0);
    expect(limited.stdout()).toMatch(/ INFO  started: worker \S+ started  queues=work concurrency=1\n/);
    expect(limited.stdout()).toMatch(/ INFO  draining: draining \(maxJobs\)/);
    expect(limited.stdout()).toMatch(/ INFO  stopped: worker \S+ stopped  completed=2 /);
    expect((await q.counts()).completed).toBe(2);

    const drain = spawnTs("bun", CLI, ["worker", "--tasks", TASKS, "--queues", "work", "--prefix", prefix, "--no-wait", "--json"], { REDIS_URL: redisUrl() });
    running.push(drain);
    expect(await exitCodeOf(drain)).toBe(0);
    expect(lines(drain).find((l) => l.event === "draining")).toMatchObject({ source: "drained" });
    const states = await Promise.all(jobs.map(async (j) => (await q.getJob(j.id))?.state));
    expect(states).toEqual(["completed", "completed", "completed", "completed", "completed"]);
  }, 120_000);

  for (const runtime of RUNTIMES) {
    test(`${runtime}: --pool-size, --pool-max-jobs-per-child and --abort-grace configure the pool of a task that runs in a thread`, async () => {
      const prefix = uniquePrefix("cliw");
      const q = queue("work", prefix);
      const jobs = await Promise.all([1, 2, 3].map(() => q.enqueue("inThread", null)));
      const w = spawnTs(runtime, CLI, ["worker", "--tasks", TASKS, "--queues", "work", "--prefix", prefix, "--no-wait", "--pool-size", "1", "--pool-max-jobs-per-child", "1", "--abort-grace", "1s"], { REDIS_URL: redisUrl() });
      running.push(w);
      expect(await exitCodeOf(w)).toBe(0);
      const results = await Promise.all(jobs.map(async (j) => (await q.getJob(j.id))?.result as { child: string } | undefined));
      // one job per thread: three threads, one after the other
      expect(new Set(results.map((r) => r?.child)).size).toBe(3);
      expect(w.stdout().match(/pool-child-end: ending thread/g)?.length).toBeGreaterThanOrEqual(2);
    }, 120_000);
  }

  test("cancel --abort from another process aborts a running job (reason user); --timeout aborts with reason timeout", async () => {
    const prefix = uniquePrefix("cliw");
    const q = queue("work", prefix);
    const long = await q.enqueue("sleep", { ms: 60_000 }, { timeout: "5m" }); // its own timeout wins over --timeout
    const timed = await q.enqueue("sleep", { ms: 60_000 }, { attempts: 1 });
    const w = startWorker("bun", prefix, ["--queues", "work", "--timeout", "1500ms"]);
    await waitLine(w, "the long job to start", (l) => l.ev === "start" && l.job === long.id);

    const r = await cli(["cancel", "work", long.id, "--abort", "--json", "--prefix", prefix]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ id: long.id, outcome: "abort-requested", previousState: "active" });
    await waitFor(async () => (await q.getJob(long.id))?.state === "aborted", "the job to end aborted");
    expect((await q.getJob(long.id))?.error?.abortReason).toBe("user");

    await waitFor(async () => (await q.getJob(timed.id))?.state === "failed", "the timed job to fail", 20_000);
    expect((await q.getJob(timed.id))?.error?.abortReason).toBe("timeout");
    expect(await waitLine(w, "the job-failed log", (l) => l.event === "job-failed" && l.job === timed.id)).toMatchObject({ level: "warn", task: "sleep" });

    w.kill("SIGINT");
    expect(await exitCodeOf(w)).toBe(0);
  }, 120_000);
});
