/**
 * TLS: a server that accepts TLS only, with a certificate from a private CA. The library given an
 * ioredis client with the CA, and the CLI under Bun, Deno and Node with `rediss://` and
 * `--redis-tls-ca` (or REDIS_TLS_CA), enqueue and complete jobs; a URL whose scheme does not match
 * the server is named as such instead of ending in a connect timeout.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { Io } from "../cli/io.ts";
import { main } from "../cli/main.ts";
import { Queue, Worker } from "../mod.ts";
import { redisUrl, ROOT, RUNTIMES, spawnTs, startTlsRedis, type TlsRedisServer, uniquePrefix } from "./harness.ts";

setDefaultTimeout(60_000);

let server: TlsRedisServer;
beforeAll(async () => {
  server = await startTlsRedis();
});
afterAll(async () => {
  await server?.stop();
});

/** Runs the CLI in this process with `env`; resolves with the exit code and what it wrote. */
async function inProcess(argv: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l), env: (n) => env[n], cwd: () => ROOT };
  const code = await main(argv, io);
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

function tlsClient(): Redis {
  const c = new Redis(server.url, { tls: { ca: server.ca }, maxRetriesPerRequest: null });
  c.on("error", () => {});
  return c;
}

test("the library over TLS: a Queue and a Worker given ioredis clients with the private CA enqueue and complete a job", async () => {
  const prefix = uniquePrefix("tls");
  const redis = tlsClient();
  const queue = new Queue("q", { redis, prefix });
  const worker = new Worker({ redis, prefix, queues: ["q"], tasks: { double: (d: { n: number }) => d.n * 2 }, wait: false });
  try {
    const job = await queue.enqueue("double", { n: 21 });
    await worker.run();
    expect(await queue.getJob(job.id)).toMatchObject({ state: "completed", result: 42 });
  } finally {
    await worker.stop();
    redis.disconnect();
  }
});

test("the CLI under Bun, Deno and Node: rediss:// with --redis-tls-ca (or REDIS_TLS_CA) enqueues, runs a worker and shows the job", async () => {
  const prefix = uniquePrefix("tls");
  const redis = tlsClient();
  const queue = new Queue("default", { redis, prefix });
  try {
    for (const runtime of RUNTIMES) {
      const enqueue = spawnTs(runtime, "cli/sluice.ts", ["enqueue", "default", "echo", JSON.stringify({ runtime }), "--prefix", prefix, "--redis-url", server.url, "--redis-tls-ca", server.caFile, "--json"], {});
      expect([runtime, await enqueue.exited, enqueue.stderr()]).toEqual([runtime, 0, ""]);
      const id = (JSON.parse(enqueue.stdout()) as { id: string }).id;
      // the worker takes the CA from the environment
      const worker = spawnTs(runtime, "cli/sluice.ts", ["worker", "--tasks", "test/fixtures/cli-tasks.ts", "--prefix", prefix, "--no-wait"], { REDIS_URL: server.url, REDIS_TLS_CA: server.caFile });
      expect([runtime, await worker.exited, worker.stderr()]).toEqual([runtime, 0, ""]);
      expect([runtime, await queue.getJob(id)]).toEqual([runtime, expect.objectContaining({ state: "completed", result: { runtime } })]);
      const show = spawnTs(runtime, "cli/sluice.ts", ["job", "default", id, "--prefix", prefix, "--json"], { REDIS_URL: server.url, REDIS_TLS_CA: server.caFile });
      expect([runtime, await show.exited]).toEqual([runtime, 0]);
      expect(JSON.parse(show.stdout())).toMatchObject({ id, state: "completed" });
    }
  } finally {
    redis.disconnect();
  }
});

describe("a URL that does not match the server is named, not left to a connect timeout", () => {
  test("rediss:// to a plain Redis port says the server speaks plain Redis", async () => {
    const plain = redisUrl().replace(/^redis:/, "rediss:");
    const r = await inProcess(["stats", "--redis-url", plain]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringContaining("the server speaks plain Redis, not TLS — use a redis:// URL")]);
  });

  test("redis:// to a TLS port says the server expects TLS", async () => {
    const r = await inProcess(["stats", "--redis-url", server.url.replace(/^rediss:/, "redis:")]);
    expect([r.code, r.stderr]).toEqual([1, expect.stringContaining("the server expects TLS — use a rediss:// URL")]);
  });

  test("rediss:// without the private CA names the certificate and the flag", async () => {
    const r = await inProcess(["stats", "--redis-url", server.url]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/certificate/);
    expect(r.stderr).toContain("--redis-tls-ca FILE");
  });

  test("a CA for a redis:// URL, an unreadable CA file and a file without a certificate are usage errors naming the flag and the value", async () => {
    const notPem = join(tmpdir(), `sluice-not-pem-${process.pid}.txt`);
    writeFileSync(notPem, "not a certificate\n");
    const cases: [string[], Record<string, string>, string][] = [
      [["--redis-url", server.url.replace(/^rediss:/, "redis:"), "--redis-tls-ca", server.caFile], {}, "--redis-tls-ca needs a rediss:// URL"],
      [["--redis-url", server.url], { REDIS_TLS_CA: "/nonexistent/ca.pem" }, 'REDIS_TLS_CA "/nonexistent/ca.pem" cannot be read'],
      [["--redis-url", server.url, "--redis-tls-ca", notPem], {}, `--redis-tls-ca ${JSON.stringify(notPem)} holds no PEM certificate`],
    ];
    for (const [args, env, message] of cases) {
      const r = await inProcess(["stats", ...args], env);
      expect([r.code, r.stderr]).toEqual([2, expect.stringContaining(message)]);
    }
  });
});
