/**
 * `sluice admin` under Bun, Deno and Node: serves the admin app through the runtime's adapter,
 * takes its credentials from the environment, refuses a public bind without them, and stops on
 * SIGTERM.
 */
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { HttpProducer } from "../http/producer.ts";
import { Queue } from "../src/queue.ts";
import { redisUrl, RUNTIMES, type Spawned, spawnTs, uniquePrefix } from "./harness.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const TOKEN = "cli-admin-token-0123456789";
const procs: Spawned[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) if (p.proc.exitCode === null && p.proc.signalCode === null) p.kill("SIGKILL");
});

for (const runtime of RUNTIMES) {
  test(`sluice admin serves the API under ${runtime} with the token from the environment, and stops on SIGTERM`, async () => {
    const prefix = uniquePrefix("cli");
    const queue = new Queue("mail", { redis: redisUrl(), prefix });
    try {
      await queue.enqueue("send", { to: "ada@example.com" }, { jobId: "m1" });
      const p = spawnTs(runtime, "cli/sluice.ts", ["admin", "--port", "0", "--prefix", prefix, "--queues", "mail", "--json"], {
        REDIS_URL: redisUrl(),
        SLUICE_ADMIN_TOKEN: TOKEN,
      });
      procs.push(p);
      const line = JSON.parse(await p.line(/"event":"listening"/, 60_000));
      expect(line).toMatchObject({ event: "listening", auth: "bearer token" });
      const producer = new HttpProducer({ baseUrl: line.url, token: TOKEN });
      expect(await producer.getJob("mail", "m1")).toMatchObject({ id: "m1", name: "send", state: "waiting" });
      expect(await producer.cancel("mail", "m1")).toEqual({ id: "m1", outcome: "cancelled", previousState: "waiting" });
      expect((await fetch(`${line.url}/api/queues`)).status).toBe(401);
      const metrics = await fetch(`${line.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(await metrics.text()).toContain('sluice_jobs{queue="mail",state="cancelled"} 1');
      p.kill("SIGTERM");
      expect(await p.exited).toBe(0);
      expect(p.stdout()).toContain('"event":"stopped"');
    } finally {
      await queue.close();
    }
  });
}

test("sluice admin refuses a non-loopback address without auth (exit 2), and serves one with basic auth", async () => {
  const refused = spawnTs("bun", "cli/sluice.ts", ["admin", "--host", "0.0.0.0", "--port", "0"], { REDIS_URL: redisUrl(), SLUICE_ADMIN_TOKEN: "" });
  procs.push(refused);
  expect(await refused.exited).toBe(2);
  expect(refused.stderr()).toContain("needs auth");

  const p = spawnTs("bun", "cli/sluice.ts", ["admin", "--host", "0.0.0.0", "--port", "0"], { REDIS_URL: redisUrl(), SLUICE_ADMIN_USER: "ops", SLUICE_ADMIN_PASSWORD: "pw-0123456789" });
  procs.push(p);
  const line = await p.line(/listening on/, 60_000);
  expect(line).toContain("basic auth");
  const port = /:(\d+) /.exec(line)![1];
  const producer = new HttpProducer({ baseUrl: `http://127.0.0.1:${port}`, basic: { username: "ops", password: "pw-0123456789" } });
  expect(await producer.counts("default")).toEqual({ waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0, cancelled: 0, aborted: 0 });
  p.kill("SIGINT");
  expect(await p.exited).toBe(0);
});
