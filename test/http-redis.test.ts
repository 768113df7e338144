import { expect, setDefaultTimeout, test } from "bun:test";
import { Redis } from "ioredis";
import { Queue, Worker } from "../mod.ts";
import { redisUrl, waitFor } from "./harness.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

/**
 * An HTTP front with the Upstash REST protocol (POST a JSON array `[command, ...args]`, get
 * `{ result }` or `{ error }`) in front of the test's real Redis: the producer is exercised over
 * HTTP exactly as the README shows it for Upstash, with every command run by Redis itself.
 */
function restFront(redis: Redis, token: string) {
  return Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      if (req.headers.get("authorization") !== `Bearer ${token}`) return Response.json({ error: "Unauthorized" }, { status: 401 });
      const [command, ...args] = (await req.json()) as string[];
      try {
        return Response.json({ result: await redis.call(command!, ...args) });
      } catch (e) {
        return Response.json({ error: (e as Error).message }, { status: 400 });
      }
    },
  });
}

test("the producer runs over an HTTP Redis client (the README's Upstash function), EVALSHA falling back to EVAL", async () => {
  const redis = new Redis(redisUrl());
  await redis.script("FLUSH"); // the first EVALSHA must meet NOSCRIPT and fall back
  const token = "rest-token";
  const server = restFront(redis, token);
  const env = { UPSTASH_REDIS_REST_URL: `http://127.0.0.1:${server.port}`, UPSTASH_REDIS_REST_TOKEN: token };
  const commands: string[] = [];

  // as in the README
  const upstash = async (command: string, args: string[]) => {
    commands.push(command);
    const res = await fetch(env.UPSTASH_REDIS_REST_URL, {
      method: "POST",
      headers: { authorization: `Bearer ${env.UPSTASH_REDIS_REST_TOKEN}` },
      body: JSON.stringify([command, ...args]),
    });
    const { result, error } = (await res.json()) as { result?: unknown; error?: string };
    if (error) throw new Error(error); // a NOSCRIPT error makes sluice resend the script with EVAL
    return result;
  };

  const queue = new Queue("over-http", { redis: upstash });
  const job = await queue.enqueue("square", { n: 12 }, { jobId: "sq-12" });
  expect(job).toEqual({ id: "sq-12", queue: "over-http", state: "waiting", duplicate: false });
  expect(commands.slice(0, 2)).toEqual(["EVALSHA", "EVAL"]);
  expect((await queue.enqueue("square", { n: 99 }, { jobId: "sq-12" })).duplicate).toBe(true);
  const later = await queue.enqueue("square", { n: 1 }, { delay: "1h" });
  expect((await queue.cancel(later.id)).outcome).toBe("cancelled");
  expect(await queue.counts()).toMatchObject({ waiting: 1, cancelled: 1 });

  const worker = new Worker({ redis: redisUrl(), queues: ["over-http"], tasks: { square: (d: { n: number }) => d.n * d.n } });
  const run = worker.run();
  const done = await waitFor(async () => {
    const j = await queue.getJob("sq-12");
    return j?.state === "completed" ? j : null;
  }, "the job to complete");
  expect(done.result).toBe(144);
  expect(done.data).toEqual({ n: 12 });
  await worker.stop();
  await run;
  server.stop(true);
  redis.disconnect();
});
