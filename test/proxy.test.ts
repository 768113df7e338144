/**
 * The fault-injecting proxy (test/proxy.ts) and the crash-surviving server (startRedisWithAof):
 * each fault is shown by its cause and the order of what follows, never by how long anything took.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { Redis, type RedisOptions } from "ioredis";
import { client, redisUrl, startRedisWithAof, uniquePrefix, waitFor } from "./harness.ts";
import { CommandParser, startProxy, type FaultProxy } from "./proxy.ts";

// worker processes start slowly on a loaded machine: a test waits on causes, bounded by its own waits
setDefaultTimeout(60_000);

const opened: { proxies: FaultProxy[]; clients: Redis[]; sockets: Socket[] } = { proxies: [], clients: [], sockets: [] };

afterEach(async () => {
  for (const c of opened.clients.splice(0)) c.disconnect();
  for (const s of opened.sockets.splice(0)) s.destroy();
  for (const p of opened.proxies.splice(0)) await p.close();
});

async function proxy(): Promise<FaultProxy> {
  const p = await startProxy({ port: Number(new URL(redisUrl()).port) });
  opened.proxies.push(p);
  return p;
}

/** An ioredis client through the proxy, with ioredis's defaults (autoResendUnfulfilledCommands on). */
async function through(p: FaultProxy, options: RedisOptions = {}): Promise<Redis> {
  const c = new Redis(p.url, { maxRetriesPerRequest: null, retryStrategy: () => 20, ...options });
  c.on("error", () => {});
  opened.clients.push(c);
  await c.ping();
  return c;
}

function direct(): Redis {
  const c = client();
  opened.clients.push(c);
  return c;
}

/** Tracks whether a promise has settled yet. */
function watch<T>(p: Promise<T>): { settled: () => boolean } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { settled: () => done };
}

const cmd = (...args: string[]) => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

describe("CommandParser", () => {
  const stream = Buffer.from(cmd("PING") + cmd("SET", "k", "héllo\r\nworld") + cmd("GET", "") + "*0\r\n" + cmd("INCR", "k"));

  test("finds every command of a pipelined chunk, where it ends and its arguments", () => {
    const found = new CommandParser().feed(stream);
    expect(found.map((c) => c.args)).toEqual([["PING"], ["SET", "k", "héllo\r\nworld"], ["GET", ""], ["INCR", "k"]]);
    expect(found.at(-1)!.end).toBe(stream.length);
    expect(stream.subarray(0, found[0]!.end).toString()).toBe(cmd("PING"));
  });

  test("reads the same commands however the stream is split", () => {
    const whole = new CommandParser().feed(stream).map((c) => c.args);
    for (const size of [1, 2, 3, 5, 7, 16]) {
      const parser = new CommandParser();
      const found: { args: string[]; end: number }[] = [];
      for (let at = 0; at < stream.length; at += size) {
        for (const c of parser.feed(stream.subarray(at, at + size))) found.push({ args: c.args, end: at + c.end });
      }
      expect(found.map((c) => c.args)).toEqual(whole);
      // each command ends exactly where the whole-stream reading says
      expect(found.map((c) => c.end)).toEqual(new CommandParser().feed(stream).map((c) => c.end));
    }
  });

  test("reads inline commands too", () => {
    expect(new CommandParser().feed(Buffer.from("PING\r\nset a  b\n")).map((c) => c.args)).toEqual([["PING"], ["set", "a", "b"]]);
  });
});

describe("cutAfter", () => {
  test("cuts after Redis got the command and before its reply: ioredis re-sends it on the new connection", async () => {
    const p = await proxy();
    const c = await through(p);
    const d = direct();
    const key = uniquePrefix("incr");
    // keep the reconnection out until we have looked at Redis, so what we see there is the first INCR alone
    p.refuse();
    const cut = p.cutAfter({ command: "INCR" });
    const incr = c.incr(key);
    const incrSettled = watch(incr);
    await cut;
    expect(await d.get(key)).toBe("1"); // Redis ran it...
    expect(incrSettled.settled()).toBe(false); // ...but its reply (1) never reached the client
    p.restore();
    // autoResendUnfulfilledCommands: the INCR is sent again once the client is back, and runs twice
    expect(await incr).toBe(2);
    expect(await d.get(key)).toBe("2");
    expect(p.connections).toBeGreaterThanOrEqual(2);
  });

  test("counts only matching commands; what was pipelined after the n-th never reaches Redis", async () => {
    const p = await proxy();
    const c = await through(p);
    const d = direct();
    const k = uniquePrefix("k");
    p.refuse(); // no re-send, so Redis keeps exactly what got through before the cut
    const cut = p.cutAfter({ command: ["incr", "INCRBY"], n: 2 });
    // one pipeline is one write: the proxy must find the command boundaries inside the chunk
    void c.pipeline().set(`${k}:a`, "1").incr(k).get(k).incrby(k, 10).set(`${k}:b`, "1").incr(k).exec().catch(() => {});
    await cut;
    expect(await d.mget(`${k}:a`, k, `${k}:b`)).toEqual(["1", "11", null]);
  });

  test("`match` picks the command by its arguments", async () => {
    const p = await proxy();
    const c = await through(p);
    const d = direct();
    const k = uniquePrefix("m");
    p.refuse();
    const cut = p.cutAfter({ command: "SET", match: (args) => args[1] === `${k}:2` });
    void c.pipeline().set(`${k}:1`, "x").set(`${k}:2`, "x").set(`${k}:3`, "x").exec().catch(() => {});
    await cut;
    expect(await d.mget(`${k}:1`, `${k}:2`, `${k}:3`)).toEqual(["x", "x", null]);
  });

  test("finds the boundary of a command split across chunks and drops its reply", async () => {
    const p = await proxy();
    const d = direct();
    const k = uniquePrefix("raw");
    const s = connect({ host: "127.0.0.1", port: p.port });
    opened.sockets.push(s);
    s.setNoDelay(true);
    let got = "";
    s.on("data", (b) => (got += b));
    const closed = new Promise((r) => s.once("close", r));
    s.on("error", () => {});
    await new Promise((r) => s.once("connect", r));
    const cut = p.cutAfter({ command: "INCR", n: 2 });
    const bytes = Buffer.from(cmd("PING") + cmd("INCR", k) + cmd("INCR", k) + cmd("INCR", k));
    for (let i = 0; i < bytes.length; i++) {
      s.write(bytes.subarray(i, i + 1));
      if (i % 3 === 0) await new Promise((r) => setImmediate(r));
    }
    await cut;
    await closed;
    expect(await d.get(k)).toBe("2");
    expect(got).not.toContain(":2\r\n");
  });

  test("with a delay, the cut waits until the delayed command has been forwarded", async () => {
    const p = await proxy();
    const c = await through(p);
    const d = direct();
    const k = uniquePrefix("late-cut");
    p.refuse();
    p.delay(3_600_000);
    const cut = p.cutAfter({ command: "INCR" });
    const cutDone = watch(cut);
    void c.incr(k).catch(() => {});
    await waitFor(() => p.delayed.toServer > 0, "the INCR to be held");
    expect(await d.get(k)).toBeNull();
    expect(cutDone.settled()).toBe(false);
    p.delay(0);
    await cut;
    expect(await d.get(k)).toBe("1");
  });

  test("rejects when the connection is cut before the matched command was forwarded", async () => {
    const p = await proxy();
    const c = await through(p);
    p.refuse();
    p.delay(3_600_000);
    const cut = p.cutAfter({ command: "INCR" });
    void c.incr(uniquePrefix("never")).catch(() => {});
    await waitFor(() => p.delayed.toServer > 0, "the INCR to be held");
    p.cutAll();
    await expect(cut).rejects.toThrow(/before the command was forwarded/);
  });

  test("rejects when the proxy closes before any command matched", async () => {
    const p = await startProxy({ port: Number(new URL(redisUrl()).port) });
    const cut = p.cutAfter({ command: "NEVER" });
    await p.close();
    await expect(cut).rejects.toThrow(/closed/);
  });
});

test("delay holds bytes both ways, in order, until it is lifted", async () => {
  const p = await proxy();
  const c = await through(p);
  const d = direct();
  const list = uniquePrefix("list");
  const k = uniquePrefix("k");

  // server -> client: a reply Redis has sent waits at the proxy
  const popped = c.blpop(list, 0);
  await waitFor(async () => /blocked_clients:[1-9]/.test(await d.info("clients")), "the BLPOP to block in Redis");
  p.delay(3_600_000);
  await d.lpush(list, "x");
  await waitFor(() => p.delayed.toClient > 0, "the BLPOP reply to reach the proxy");
  expect(await d.llen(list)).toBe(0); // Redis served the BLPOP...
  const pop = watch(popped);
  expect(pop.settled()).toBe(false); // ...and its reply is held

  // client -> server: commands wait too, and keep their order
  const first = c.append(k, "a");
  await waitFor(() => p.delayed.toServer > 0, "the APPEND to reach the proxy");
  expect(await d.get(k)).toBeNull();
  p.delay(1); // re-times what waits: the held APPEND is due now, the next one after it
  const second = c.append(k, "b");
  expect(await popped).toEqual([list, "x"]);
  expect(await first).toBe(1);
  expect(await second).toBe(2);
  expect(await d.get(k)).toBe("ab");

  p.delay(0);
  expect(await c.incr(k + ":n")).toBe(1);
  expect(p.delayed).toEqual({ toServer: 0, toClient: 0 });
});

test("blackhole drops everything and holds new connections; restore cuts what lost bytes and the clients recover", async () => {
  const p = await proxy();
  const c = await through(p, { connectionName: "old" });
  const d = direct();
  const k = uniquePrefix("bh");

  p.blackhole();
  const incr = c.incr(k);
  await waitFor(() => p.dropped > 0, "the INCR to be dropped");
  const droppedBefore = p.dropped;
  const late = new Redis(p.url, { maxRetriesPerRequest: null, retryStrategy: () => 20, connectionName: "late" });
  late.on("error", () => {});
  opened.clients.push(late);
  const latePing = late.ping();
  await waitFor(() => p.connections === 2, "the late connection to be accepted");
  await waitFor(() => p.dropped > droppedBefore, "the late client's handshake to be dropped");
  expect(await d.get(k)).toBeNull(); // the INCR never reached Redis
  expect(await d.client("LIST")).not.toContain("name=late"); // nor the late client's handshake
  expect(watch(incr).settled()).toBe(false);
  expect(late.status).not.toBe("ready");
  const openDuring = p.open;
  expect(openDuring).toBe(2); // nothing was closed

  p.restore();
  // both connections lost bytes, so both are cut; ioredis reconnects, and re-sends the INCR once
  expect(await incr).toBe(1);
  expect(await latePing).toBe("PONG");
  expect(await d.get(k)).toBe("1");
  expect(await d.client("LIST")).toContain("name=late");
  expect(p.connections).toBeGreaterThanOrEqual(4);
});

test("blackhole lets a connection that sent nothing carry on after restore", async () => {
  const p = await proxy();
  const c = await through(p);
  p.blackhole();
  p.restore();
  const before = p.connections;
  expect(await c.incr(uniquePrefix("ok"))).toBe(1);
  expect(p.connections).toBe(before);
});

test("refuse turns new connections away and leaves open ones alone, until restore", async () => {
  const p = await proxy();
  const open = await through(p);
  const d = direct();
  const k = uniquePrefix("refuse");
  p.refuse();
  const fresh = new Redis(p.url, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
  fresh.on("error", () => {});
  opened.clients.push(fresh);
  const set = fresh.set(k, "v");
  await waitFor(() => p.refused >= 2, "the new client to be refused, and again after its retry");
  expect(await open.ping()).toBe("PONG"); // the connection made before refuse() works
  expect(await d.get(k)).toBeNull();
  expect(watch(set).settled()).toBe(false);
  p.restore();
  expect(await set).toBe("OK");
  expect(await d.get(k)).toBe("v");
});

test("cutAll drops every connection, and clients reconnect", async () => {
  const p = await proxy();
  const a = await through(p);
  const b = await through(p);
  expect(p.open).toBe(2);
  const closedA = new Promise((r) => a.once("close", r));
  const closedB = new Promise((r) => b.once("close", r));
  p.cutAll();
  await Promise.all([closedA, closedB]);
  expect(await a.ping()).toBe("PONG");
  expect(await b.ping()).toBe("PONG");
  expect(p.connections).toBe(4);
});

test("startRedisWithAof: restart() kills the server with SIGKILL and brings back every acknowledged write", async () => {
  const server = await startRedisWithAof();
  const c = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 20 });
  c.on("error", () => {});
  try {
    await c.set("kept", "1");
    await c.xadd("stream", "*", "f", "v");
    const runId = (await c.info("server")).match(/run_id:(\w+)/)![1];
    await server.restart();
    expect(await c.get("kept")).toBe("1");
    expect(await c.xlen("stream")).toBe(1);
    expect((await c.info("server")).match(/run_id:(\w+)/)![1]).not.toBe(runId); // a new process
  } finally {
    c.disconnect();
    await server.stop();
  }
});
