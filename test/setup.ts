/**
 * Preloaded by `bun test` (bunfig.toml): starts one throwaway redis-server for the whole run, or
 * uses REDIS_URL when it is set. Tests isolate themselves by key prefix.
 */
import { afterAll, beforeEach, setDefaultTimeout } from "bun:test";
import { Redis } from "ioredis";
import { killSpawned, startRedis } from "./harness.ts";
// test/procs.ts registers an afterEach that kills the worker processes a test spawned with
// spawnWorker; imported here, in the preload, that hook applies to every test file, not only to
// the first file that imports it
import "./procs.ts";

// subprocess and recovery tests take seconds; bunfig's [test] timeout is not applied by every bun version
setDefaultTimeout(60_000);

if (process.env.REDIS_URL) {
  process.env.SLUICE_TEST_REDIS_URL = process.env.REDIS_URL;
} else if (!process.env.SLUICE_TEST_REDIS_URL) {
  const server = await startRedis();
  process.env.SLUICE_TEST_REDIS_URL = server.url;
  afterAll(async () => {
    await server.stop();
  });
}

// every test starts from an empty Redis, when the Redis is our own (never flush a server given by REDIS_URL:
// tests use fresh key prefixes, so they do not need it)
if (!process.env.REDIS_URL) {
  const cleaner = new Redis(process.env.SLUICE_TEST_REDIS_URL!, { maxRetriesPerRequest: null, lazyConnect: true });
  beforeEach(async () => {
    await cleaner.flushall();
  });
  afterAll(() => cleaner.disconnect());
}

// nothing a test spawned outlives the run (a process left waiting on a stopped Redis would
// otherwise reconnect forever)
afterAll(() => {
  killSpawned();
});
