/**
 * Test harness: a throwaway `redis-server` on a free port (or the server at REDIS_URL), helpers to
 * wait for conditions, and to spawn worker processes under Bun, Deno and Node.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Redis, type RedisOptions } from "ioredis";

// under Bun, this file's directory; bundled for Node (`npm run bench:node`), the directory npm runs in
export const ROOT = (import.meta as { dir?: string }).dir ? resolve((import.meta as { dir?: string }).dir!, "..") : process.cwd();
export const BIN = join(ROOT, "node_modules", ".bin");

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * Starts `redis-server` (or `valkey-server` when SLUICE_TEST_SERVER=valkey) on a free port with no
 * persistence; resolves once it answers PING.
 */
export async function startRedis(extraArgs: string[] = []): Promise<RedisServer> {
  const { url, port, stop } = await launchServer("sluice-redis-", extraArgs);
  return { url, port, stop };
}

/** The Redis every test uses: set by test/setup.ts. */
export function redisUrl(): string {
  const url = process.env.SLUICE_TEST_REDIS_URL;
  if (!url) throw new Error("SLUICE_TEST_REDIS_URL is not set: run the tests with `bun test` (test/setup.ts starts Redis)");
  return url;
}

/** A fresh key prefix, so tests never see each other's keys. */
export function uniquePrefix(name = "t"): string {
  return `${name}-${crypto.randomUUID().slice(0, 8)}`;
}

/** A plain ioredis client on the test server; disconnect it at the end of the test. */
export function client(): Redis {
  return new Redis(redisUrl(), { maxRetriesPerRequest: null });
}

/** Polls `fn` until it returns a truthy value, or throws after `timeout` ms with `what` in the message. */
export async function waitFor<T>(fn: () => T | Promise<T>, what: string, timeout = 10_000, every = 20): Promise<NonNullable<T>> {
  const until = Date.now() + timeout;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, every));
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

export type Runtime = "bun" | "deno" | "node";
export const RUNTIMES: Runtime[] = ["bun", "deno", "node"];

/** The command line that runs a TypeScript file under a runtime, as the README gives it. */
export function runtimeCommand(runtime: Runtime, file: string, args: string[] = []): [string, string[]] {
  switch (runtime) {
    case "bun":
      return [join(BIN, "bun"), ["run", file, ...args]];
    case "deno":
      return [join(BIN, "deno"), ["run", "-A", file, ...args]];
    case "node":
      return [process.execPath === join(BIN, "bun") || process.versions.bun ? "node" : process.execPath, ["--import", "tsx", file, ...args]];
  }
}

export interface Spawned {
  proc: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** Resolves with the first stdout line matching `pattern` (JSON lines are parsed). */
  line(pattern: RegExp, timeout?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

/** Every process spawnTs started that has not exited yet. */
const live = new Set<ChildProcess>();

/** SIGKILLs every spawned process still running (test/setup.ts calls it after the last test). */
export function killSpawned(): number {
  let n = 0;
  for (const p of live) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill("SIGKILL");
      n++;
    }
  }
  live.clear();
  return n;
}

/** Spawns a TypeScript file under a runtime with the repository as working directory. */
export function spawnTs(runtime: Runtime, file: string, args: string[] = [], env: Record<string, string> = {}): Spawned {
  const [cmd, argv] = runtimeCommand(runtime, file, args);
  const proc = spawn(cmd, argv, {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  proc.stdout!.on("data", (d) => (out += d));
  proc.stderr!.on("data", (d) => (err += d));
  live.add(proc);
  const exited = new Promise<number | string>((r) => proc.once("exit", (code, sig) => {
    live.delete(proc);
    r(code ?? sig ?? -1);
  }));
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    async line(pattern, timeout = 30_000) {
      return await waitFor(() => out.split("\n").find((l) => pattern.test(l)), `a line matching ${pattern} from ${runtime} ${file}\nstdout: ${out}\nstderr: ${err}`, timeout);
    },
    kill(signal = "SIGTERM") {
      proc.kill(signal);
    },
  };
}

/** The server binary the tests start: `valkey-server` when SLUICE_TEST_SERVER=valkey, else `redis-server`. */
export function serverBinary(): string {
  const which = process.env.SLUICE_TEST_SERVER || "redis";
  if (which === "redis") return "redis-server";
  if (which === "valkey") return "valkey-server";
  throw new Error(`SLUICE_TEST_SERVER must be "redis" or "valkey", not ${JSON.stringify(which)}`);
}

/** A server whose data survives a crash: see startRedisWithAof. */
export interface PersistentRedisServer extends RedisServer {
  /** The server's working directory (its append-only files live under it). */
  dir: string;
  /**
   * Kills the server with SIGKILL (no shutdown, no final save) and starts it again on the same
   * port and directory; resolves once it answers PING, with every write it acknowledged replayed
   * from the append-only file.
   */
  restart(): Promise<void>;
}

/**
 * Starts a server like startRedis, but with `appendonly yes` and `appendfsync always`, so every
 * acknowledged write is on disk and a SIGKILL loses nothing; `restart()` crashes and restarts it.
 */
export async function startRedisWithAof(extraArgs: string[] = []): Promise<PersistentRedisServer> {
  return await launchServer("sluice-redis-aof-", ["--appendonly", "yes", "--appendfsync", "always", ...extraArgs]);
}

/** Starts the server in a fresh directory on a free port; `restart()` SIGKILLs it and starts it again there. */
async function launchServer(dirPrefix: string, args: string[]): Promise<PersistentRedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), dirPrefix));
  let proc = spawnServer(port, dir, args);
  const url = `redis://127.0.0.1:${port}`;
  await untilPing(url, proc).catch(async (e) => {
    await killServer(proc);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  return {
    url,
    port,
    dir,
    async restart() {
      await killServer(proc);
      proc = spawnServer(port, dir, args);
      await untilPing(url, proc);
    },
    async stop() {
      await killServer(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const spawnErrors = new WeakMap<ChildProcess, Error>();

/** Spawns the server binary on 127.0.0.1:`port` in `dir`; later flags override earlier ones. */
function spawnServer(port: number, dir: string, extraArgs: string[]): ChildProcess {
  const bin = serverBinary();
  const proc = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extraArgs], {
    stdio: "ignore",
  });
  // a missing binary is reported by untilPing, not as an unhandled error event
  proc.on("error", (e) => spawnErrors.set(proc, e));
  return proc;
}

/** Resolves once the server at `url` answers PING (not while it is still loading its data). */
async function untilPing(url: string, proc: ChildProcess, options: RedisOptions = {}): Promise<void> {
  const until = Date.now() + 10_000;
  while (true) {
    const spawnError = spawnErrors.get(proc);
    if (spawnError) throw new Error(`could not start ${serverBinary()}: ${spawnError.message}`);
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${serverBinary()} exited (${proc.exitCode ?? proc.signalCode}) before answering on ${url}`);
    // one connection per attempt, without retries or an offline queue, so a refused connection
    // fails the attempt instead of waiting for a server that may never come
    const probe = new Redis(url, { ...options, lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    probe.on("error", () => {});
    try {
      await probe.connect();
      if ((await probe.ping()) === "PONG") return;
    } catch {
      // not up yet, or still loading
    } finally {
      probe.disconnect();
    }
    if (Date.now() > until) throw new Error(`${serverBinary()} did not start on ${url}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGKILLs a server and resolves once it has exited (at once if it already had). */
async function killServer(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || spawnErrors.has(proc)) return;
  const exited = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGKILL");
  await exited;
}

/** A server that speaks TLS only: see startTlsRedis. */
export interface TlsRedisServer extends RedisServer {
  /** PEM of the private CA that signed the server's certificate. */
  ca: string;
  /** The CA's file. */
  caFile: string;
}

/**
 * Starts a server on a free port that accepts TLS only (`--port 0 --tls-port P`), with a
 * certificate for 127.0.0.1 and localhost signed by a fresh private CA (made by `openssl`).
 * `url` is its rediss:// URL.
 */
export async function startTlsRedis(): Promise<TlsRedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sluice-redis-tls-"));
  const sh = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  sh(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=sluice test CA"]);
  sh(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]);
  writeFileSync(join(dir, "ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  sh(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf"]);
  const ca = readFileSync(join(dir, "ca.crt"), "utf8");
  const proc = spawn(serverBinary(), [
    "--port", "0", "--tls-port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
    "--tls-cert-file", "server.crt", "--tls-key-file", "server.key", "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
  ], { cwd: dir, stdio: "ignore" });
  proc.on("error", (e) => spawnErrors.set(proc, e));
  const url = `rediss://127.0.0.1:${port}`;
  await untilPing(url, proc, { tls: { ca } }).catch(async (e) => {
    await killServer(proc);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  return {
    url,
    port,
    ca,
    caFile: join(dir, "ca.crt"),
    async stop() {
      await killServer(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
