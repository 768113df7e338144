import { expect, setDefaultTimeout, test } from "bun:test";
import { RedisClient } from "bun";
import { tracingChannel } from "node:diagnostics_channel";
import { Redis } from "ioredis";
import { Queue, Worker } from "../mod.ts";
import { connect, ownSend } from "../src/redis.ts";
import { redisUrl, waitFor } from "./harness.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

test("Queue works on Bun's RedisClient, and a worker runs what it enqueued", async () => {
  const bunClient = new RedisClient(redisUrl());
  const queue = new Queue("bun-client", { redis: bunClient });
  const first = await queue.enqueue("double", { n: 21 }, { jobId: "double-21" });
  const again = await queue.enqueue("double", { n: 99 }, { jobId: "double-21" });
  const [later] = await queue.enqueueMany([{ task: "double", data: { n: 1 }, options: { delay: "1h" } }]);
  expect(first.duplicate).toBe(false);
  expect(again.duplicate).toBe(true);
  expect(later!.state).toBe("delayed");
  expect(await queue.cancel(later!.id)).toEqual({ id: later!.id, outcome: "cancelled", previousState: "delayed" });

  const worker = new Worker({ redis: redisUrl(), queues: ["bun-client"], tasks: { double: (d: { n: number }) => d.n * 2 } });
  const run = worker.run();
  const done = await waitFor(async () => {
    const j = await queue.getJob(first.id);
    return j?.state === "completed" ? j : null;
  }, "the job to complete");
  expect(done.result).toBe(42);
  expect(done.data).toEqual({ n: 21 }); // the duplicate wrote nothing
  await worker.stop();
  await run;
  expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, delayed: 0, completed: 1, cancelled: 1 });
  bunClient.close();
});

test("Queue works on any function that sends a command", async () => {
  const io = new Redis(redisUrl());
  const sent: string[] = [];
  const queue = new Queue("fn-client", {
    redis: (command: string, args: string[]) => {
      sent.push(command);
      return io.call(command, ...args);
    },
  });
  const job = await queue.enqueue("noop", { x: 1 });
  expect((await queue.getJob(job.id))?.state).toBe("waiting");
  expect((await queue.counts()).waiting).toBe(1);
  expect(sent.some((c) => c === "EVALSHA" || c === "EVAL")).toBe(true);
  io.disconnect();
});

test("a closed queue and a stopped worker leave no timer of theirs armed (it would hold a Node process open)", async () => {
  // under Node, with the compiled package as an app gets it; every timer is recorded with where it
  // was armed, and after the close no ref'd timer armed by sluice's own code may still be pending
  const dist = new URL("../dist/", import.meta.url).href;
  const script = `
    const pending = new Set();
    const st = globalThis.setTimeout, ct = globalThis.clearTimeout;
    globalThis.setTimeout = (fn, ms, ...a) => {
      const t = st(() => { pending.delete(t); fn(...a); }, ms);
      t.where = new Error().stack.split("\\n").slice(2, 4).join(" ");
      pending.add(t);
      return t;
    };
    globalThis.clearTimeout = (t) => { pending.delete(t); ct(t); };
    const { Queue, Worker } = await import(${JSON.stringify(dist + "mod.js")});
    const url = ${JSON.stringify(redisUrl())};
    const queue = new Queue("close-clean", { redis: url });
    await queue.enqueue("t", 1);
    const worker = new Worker({ redis: url, queues: ["close-clean"], wait: false, tasks: { t: () => 2 } });
    const summary = await worker.run();
    await queue.close();
    const ours = [...pending].filter((t) => t.hasRef() && t.where.includes(${JSON.stringify(dist)})).map((t) => t.where);
    console.log(JSON.stringify({ completed: summary.completed, ours }));
  `;
  const child = Bun.spawn(["node", "--input-type=module", "-e", script], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  expect([code, err]).toEqual([0, ""]);
  expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ completed: 1, ours: [] });
});

test("ioredis's command traces still reach whoever subscribes to them on a connection sluice opens (Bun's tracing channel cannot say whether it has subscribers)", async () => {
  const c = connect(redisUrl(), { enableAutoPipelining: false });
  const seen: string[] = [];
  const listener = {
    start: (m: unknown) => void seen.push(`start ${(m as { command: string }).command}`),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (m: unknown) => void seen.push(`done ${(m as { command: string }).command}`),
    error: () => {},
  };
  const channel = tracingChannel("ioredis:command");
  try {
    const send = ownSend(c);
    await send("SET", ["traced:k", "1"]); // nobody listens yet
    channel.subscribe(listener as never);
    expect(await send("GET", ["traced:k"])).toBe("1");
    channel.unsubscribe(listener as never);
    await send("DEL", ["traced:k"]);
    expect(seen).toEqual(["start GET", "done GET"]);
  } finally {
    channel.unsubscribe(listener as never);
    c.disconnect();
  }
});

test("a connection sluice opens writes each command as one flat text: any argument (unicode, CR LF, NUL, empty, numbers, hundreds of them) arrives as sent, and errors come back as errors", async () => {
  const c = connect(redisUrl(), { enableAutoPipelining: false });
  try {
    const send = ownSend(c);
    const args = ["héllo\r\nwörld", "", "a\0b", "𝄞 clef", 42, -1.5, 2 ** 70, "x".repeat(10_000)];
    for (let i = 0; i < 300; i++) args.push(`arg-${i}`);
    const echoed = await send("EVAL", ["return ARGV", 0, ...args]);
    // (an integer past 2^53 in full digits, as ioredis writes it)
    expect(echoed).toEqual(args.map((a) => (a === 2 ** 70 ? "1180591620717411303424" : String(a))));
    await send("SET", ["flat:k", "héllo\r\nwörld"]);
    expect(await send("GET", ["flat:k"])).toBe("héllo\r\nwörld");
    expect(await send("INCRBY", ["flat:n", 5])).toBe(5);
    await expect(send("INCR", ["flat:k"])).rejects.toThrow(/not an integer/);
    await send("DEL", ["flat:k", "flat:n"]);
  } finally {
    c.disconnect();
  }
});
