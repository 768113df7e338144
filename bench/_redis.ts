/**
 * The Redis the benchmarks run against: a throwaway `redis-server` on a free port (no persistence),
 * or the server at REDIS_URL. Flushing a server given by REDIS_URL wipes it, so the benchmarks only
 * do that when asked with `--flush`.
 */
import { Redis } from "ioredis";
import { startRedis } from "../test/harness.ts";

export interface BenchRedis {
  url: string;
  host: string;
  port: number;
  /** True when the benchmark started this server itself. */
  own: boolean;
  /** FLUSHALL (its own server, or REDIS_URL with `--flush`). */
  flush(): Promise<void>;
  /** A plain ioredis client; disconnect it when done. */
  client(): Redis;
  stop(): Promise<void>;
}

export async function benchRedis(options: { allowFlushOfGiven?: boolean } = {}): Promise<BenchRedis> {
  const given = process.env.REDIS_URL;
  let url: string;
  let stopServer = async () => {};
  if (given) {
    if (!options.allowFlushOfGiven) {
      console.error(`REDIS_URL is set (${given}): the benchmark runs FLUSHALL between runs; pass --flush to allow it, or unset REDIS_URL to use a throwaway server`);
      process.exit(2);
    }
    url = given;
  } else {
    const server = await startRedis();
    url = server.url;
    stopServer = () => server.stop();
  }
  const u = new URL(url);
  const admin = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true });
  return {
    url,
    host: u.hostname || "127.0.0.1",
    port: Number(u.port || 6379),
    own: !given,
    async flush() {
      await admin.flushall();
    },
    client: () => new Redis(url, { maxRetriesPerRequest: null }),
    async stop() {
      admin.disconnect();
      await stopServer();
    },
  };
}

/** The value at quantile q (0..1) of a list, nearest rank. */
export function quantile(values: number[], q: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i]!;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Reads `--name value` (or `--name=value`) from argv as a positive integer. */
export function intArg(argv: string[], name: string, def: number): number {
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return def;
  const raw = argv[i]!.includes("=") ? argv[i]!.split("=")[1] : argv[i + 1];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a positive integer, got ${raw}`);
    process.exit(2);
  }
  return n;
}

export function hasFlag(argv: string[], name: string): boolean {
  return argv.includes(`--${name}`);
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}
