/**
 * The package is the product: `npm pack`, install the tarball in fresh apps (one without a
 * `"type"` field, one with `"type": "module"`), and use it as a user would — plain Node ESM and
 * CommonJS, a strict TypeScript consumer under `nodenext` and `bundler`, the `sluice` command,
 * and Bun and Deno running a worker of the app.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue } from "../mod.ts";
import { BIN, redisUrl, ROOT, uniquePrefix, waitFor } from "./harness.ts";

setDefaultTimeout(180_000);

let work: string;
let tarball: string;
const apps: Record<"commonjs" | "module", string> = { commonjs: "", module: "" };

/** Runs a command to its end; resolves with its exit code and output. */
function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}, timeout = 120_000): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd, env: { ...process.env, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeout);
    p.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const NODE = process.versions.bun ? "node" : process.execPath;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "sluice-pkg-"));
  // `npm pack` runs prepack (the build) and packs only `files`
  const packed = execFileSync("npm", ["pack", "--pack-destination", work, "--silent"], { cwd: ROOT, encoding: "utf8" }).trim().split("\n").pop()!;
  tarball = join(work, packed);
  for (const type of ["commonjs", "module"] as const) {
    const dir = join(work, type);
    execFileSync("mkdir", ["-p", dir]);
    const pkg: Record<string, unknown> = { name: `app-${type}`, version: "1.0.0", private: true };
    if (type === "module") pkg.type = "module";
    writeFileSync(join(dir, "package.json"), JSON.stringify(pkg, null, 2));
    // the npm cache already holds the dependencies (the repository installed them): no download
    const r = await run("npm", ["install", tarball, "@types/node", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], dir);
    if (r.code !== 0) throw new Error(`npm install in the ${type} app failed:\n${r.err}`);
    apps[type] = dir;
  }
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A script that enqueues one job and runs a worker until it completed; prints its result. */
function roundTrip(importLine: string, prefix: string): string {
  return `${importLine}
const redis = process.env.REDIS_URL;
const queue = new Queue("pkg", { redis, prefix: ${JSON.stringify(prefix)} });
const job = await queue.enqueue("double", { n: 21 });
const worker = new Worker({ redis, prefix: ${JSON.stringify(prefix)}, queues: ["pkg"], tasks: { double: (d) => d.n * 2 } });
const done = new Promise((resolve) => worker.addEventListener("completed", (e) => resolve(e.detail.result)));
const run = worker.run();
console.log("result", await done, (await queue.getJob(job.id)).state);
await worker.stop();
await run;
await queue.close();
`;
}

describe("the packed tarball", () => {
  test("holds the compiled package and the README, not the tests, benchmarks or CI", () => {
    const list = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).split("\n").filter(Boolean);
    expect(list).toContain("package/dist/mod.js");
    expect(list).toContain("package/dist/mod.d.ts");
    expect(list).toContain("package/dist/cli/sluice.js");
    expect(list).toContain("package/README.md");
    for (const path of list) expect([path, /^package\/(test|bench|\.ci|examples|scripts)\/|deno\.lock|\.test\./.test(path)]).toEqual([path, false]);
  });

  for (const type of ["commonjs", "module"] as const) {
    describe(`in an app ${type === "module" ? 'with "type": "module"' : 'without a "type" field'}`, () => {
      test("plain Node runs an ESM script and a CommonJS require of it; a job is enqueued and completed", async () => {
        const dir = apps[type];
        const esmPrefix = uniquePrefix("pkg");
        writeFileSync(join(dir, "esm.mjs"), roundTrip(`import { Queue, Worker } from "sluice";`, esmPrefix));
        const esm = await run(NODE, ["esm.mjs"], dir, { REDIS_URL: redisUrl() });
        expect([esm.code, esm.out.trim(), esm.err]).toEqual([0, "result 42 completed", ""]);
        const cjsPrefix = uniquePrefix("pkg");
        writeFileSync(join(dir, "req.cjs"), `const { Queue, Worker } = require("sluice");\n(async () => {\n${roundTrip("", cjsPrefix)}\n})();\n`);
        const cjs = await run(NODE, ["req.cjs"], dir, { REDIS_URL: redisUrl() });
        expect([cjs.code, cjs.out.trim()]).toEqual([0, "result 42 completed"]);
      });

      test("a strict TypeScript consumer importing every entry type-checks under nodenext and bundler, with and without the DOM lib, without skipLibCheck", async () => {
        const dir = apps[type];
        writeFileSync(join(dir, "consumer.ts"), `import { Queue, Worker, type JobContext } from "sluice";
import { runWorker as bunRun } from "sluice/bun";
import { runWorker as denoRun } from "sluice/deno";
import { runWorker as nodeRun } from "sluice/node";
import { createAdminApp } from "sluice/admin";
import { HttpProducer } from "sluice/http";
const q: Queue = new Queue("q");
const w = new Worker({ tasks: { t: async (_d: unknown, ctx: JobContext) => ctx.job.id } });
export const all = [q, w, bunRun, denoRun, nodeRun, createAdminApp, HttpProducer];
`);
        // the last: a Node app whose types have no DOM lib
        for (const [resolution, lib] of [["nodenext", ["ES2023", "DOM"]], ["bundler", ["ES2023", "DOM"]], ["nodenext", ["ES2023"]]] as const) {
          writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
            compilerOptions: {
              strict: true, noEmit: true, target: "ES2022", lib, types: ["node"],
              module: resolution === "nodenext" ? "nodenext" : "esnext", moduleResolution: resolution,
              exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true,
            },
            files: ["consumer.ts"],
          }));
          const r = await run(join(BIN, "tsc"), ["-p", "tsconfig.json"], dir);
          expect([resolution, lib, r.code, r.out + r.err]).toEqual([resolution, lib, 0, ""]);
        }
      });

      test("npx sluice --help exits 0, and npx sluice admin serves the dashboard", async () => {
        const dir = apps[type];
        const help = await run("npx", ["--no-install", "sluice", "--help"], dir);
        expect([help.code, help.out]).toEqual([0, expect.stringContaining("Commands:")]);
        // the same bin through Bun and Deno, from a directory below the app
        const sub = join(dir, "src");
        execFileSync("mkdir", ["-p", sub]);
        for (const [what, cmd, args] of [
          ["bun run sluice", join(BIN, "bun"), ["run", "sluice", "--help"]],
          ["bunx sluice", join(BIN, "bunx"), ["sluice", "--help"]],
          ["deno run -A npm:sluice", join(BIN, "deno"), ["run", "-A", "npm:sluice", "--help"]],
        ] as const) {
          const r = await run(cmd, [...args], sub);
          expect([what, r.code, r.out, r.err.includes("Download")]).toEqual([what, 0, expect.stringContaining("Commands:"), false]);
        }
        const prefix = uniquePrefix("pkg");
        // the installed bin itself (npx would stand between the test's signal and the server)
        const admin = spawn(join(dir, "node_modules", ".bin", "sluice"), ["admin", "--port", "0", "--prefix", prefix, "--json"], {
          cwd: dir, env: { ...process.env, REDIS_URL: redisUrl(), SLUICE_ADMIN_TOKEN: "pkg-token-0123456789" }, stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        admin.stdout.on("data", (d) => (out += d));
        try {
          const line = await waitFor(() => out.split("\n").find((l) => l.includes('"event":"listening"')), `sluice admin to listen\n${out}`, 60_000);
          const url = JSON.parse(line).url as string;
          const page = await fetch(url + "/", { headers: { authorization: "Bearer pkg-token-0123456789" } });
          expect(page.status).toBe(200);
          expect(page.headers.get("content-type")).toContain("text/html");
          expect(await page.text()).toContain("<html");
        } finally {
          const closed = new Promise((r) => admin.once("close", r));
          admin.kill("SIGTERM");
          await closed;
        }
        expect(admin.exitCode).toBe(0);
      });

      test("Bun and Deno run a worker of the app that imports the installed package", async () => {
        const dir = apps[type];
        for (const runtime of ["bun", "deno"] as const) {
          const prefix = uniquePrefix("pkg");
          const file = join(dir, `${runtime}-app.ts`);
          writeFileSync(file, roundTrip(`import { Queue, Worker } from "sluice";\nconst process = { env: { REDIS_URL: ${JSON.stringify(redisUrl())} } };`, prefix).replaceAll("(d) =>", "(d: { n: number }) =>").replaceAll("(e) =>", "(e: Event) =>").replace("e.detail.result", "(e as CustomEvent).detail.result").replace("(await queue.getJob(job.id)).state", "(await queue.getJob(job.id))!.state"));
          const r = runtime === "bun" ? await run(join(BIN, "bun"), ["run", file], dir) : await run(join(BIN, "deno"), ["run", "-A", file], dir);
          expect([runtime, r.code, r.out.trim()]).toEqual([runtime, 0, "result 42 completed"]);
          // Deno reads the app's node_modules: nothing is downloaded at run time
          expect([runtime, r.err.includes("Download")]).toEqual([runtime, false]);
        }
      });
    });
  }
});

test("jobs in a thread and in a process from the installed package: plain Node (compiled JS), Bun and Deno", async () => {
  const dir = apps.module;
  writeFileSync(join(dir, "heavy.mjs"), `export function crunch(d) { let x = 0; for (let i = 0; i < 1e6; i++) x += i; return { n: d.n * 2, pid: process.pid }; }\n`);
  writeFileSync(join(dir, "pooled.mjs"), `import { Queue, Worker } from "sluice";
const redis = process.env.REDIS_URL;
const prefix = process.env.PREFIX;
const queue = new Queue("pkg", { redis, prefix });
const a = await queue.enqueue("inThread", { n: 1 });
const b = await queue.enqueue("inProcess", { n: 2 });
const module = new URL("./heavy.mjs", import.meta.url);
const worker = new Worker({ redis, prefix, queues: ["pkg"], wait: false, tasks: {
  inThread: { module, export: "crunch", execution: "thread" },
  inProcess: { module, export: "crunch", execution: "process" },
} });
await worker.run();
const [ja, jb] = [await queue.getJob(a.id), await queue.getJob(b.id)];
console.log(JSON.stringify([ja.state, ja.result.n, ja.result.pid === process.pid, jb.state, jb.result.n, jb.result.pid === process.pid]));
await queue.close();
`);
  for (const [runtime, cmd, args] of [["node", NODE, ["pooled.mjs"]], ["bun", join(BIN, "bun"), ["run", "pooled.mjs"]], ["deno", join(BIN, "deno"), ["run", "-A", "pooled.mjs"]]] as const) {
    const r = await run(cmd, [...args], dir, { REDIS_URL: redisUrl(), PREFIX: uniquePrefix("pkg") });
    // the thread shares the worker's pid, the process has its own
    expect([runtime, r.code, r.out.trim(), r.err]).toEqual([runtime, 0, JSON.stringify(["completed", 2, true, "completed", 4, false]), ""]);
  }
});

test("a TypeScript tasks module under the Node CLI: through the app's tsx, or a clear message without it", async () => {
  const dir = apps.commonjs;
  const prefix = uniquePrefix("pkg");
  writeFileSync(join(dir, "tasks.ts"), `export const tasks = { echo: (d: unknown): unknown => d };\n`);
  const q = new Queue("default", { redis: redisUrl(), prefix });
  try {
    const job = await q.enqueue("echo", "hi");
    // this app has no tsx: a clear message
    const without = await run("npx", ["--no-install", "sluice", "worker", "--tasks", "./tasks.ts", "--prefix", prefix, "--no-wait"], dir, { REDIS_URL: redisUrl() });
    // the Node that runs the CLI (not this test runner) decides whether tsx is needed
    const nodeStrips = execFileSync(NODE, ["-p", "Boolean(process.features.typescript)"], { encoding: "utf8" }).trim() === "true";
    if (!nodeStrips) {
      expect(without.code).toBe(2);
      expect(without.err).toContain("tsx");
      // with tsx in the app (a package without "type": "module"), it runs
      const add = await run("npm", ["install", "tsx", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], dir);
      expect(add.code).toBe(0);
      const withTsx = await run("npx", ["--no-install", "sluice", "worker", "--tasks", "./tasks.ts", "--prefix", prefix, "--no-wait"], dir, { REDIS_URL: redisUrl() });
      expect([withTsx.code, withTsx.err, withTsx.out]).toEqual([0, "", expect.stringContaining("completed=1")]);
    }
    else expect(without.code).toBe(0);
    expect((await q.getJob(job.id))?.result).toBe("hi");
  } finally {
    await q.close();
  }
});

test("the edge, in real workerd without nodejs_compat: a Worker bundling sluice/http enqueues through the admin app, a Worker bundling sluice/core enqueues over an Upstash-style REST front, and a worker process of the app completes both", async () => {
  const dir = apps.module;
  const { build } = await import("esbuild");
  const { Miniflare } = await import("miniflare");
  writeFileSync(join(dir, "edge-core.js"), `import { Queue } from "sluice/core";
export default {
  async fetch(request, env) {
    // the README's Upstash pattern: one command per POST, {"result"} or {"error"} back
    const send = async (command, args) => {
      const res = await fetch(env.REST_URL, { method: "POST", headers: { authorization: "Bearer " + env.REST_TOKEN }, body: JSON.stringify([command, ...args]) });
      const body = await res.json();
      if (body.error) throw new Error(body.error);
      return body.result;
    };
    const queue = new Queue("edge", { redis: send, prefix: env.PREFIX });
    return Response.json(await queue.enqueue("double", { n: 21 }));
  },
};
`);
  writeFileSync(join(dir, "edge-http.js"), `import { HttpProducer } from "sluice/http";
export default {
  async fetch(request, env) {
    const sluice = new HttpProducer({ baseUrl: env.ADMIN_URL, token: env.ADMIN_TOKEN });
    return Response.json(await sluice.enqueue("edge", "double", { n: 4 }));
  },
};
`);
  const bundles: Record<string, string> = {};
  for (const name of ["edge-core", "edge-http"]) {
    // what wrangler does: esbuild with the worker conditions, no Node polyfills
    const out = await build({ entryPoints: [join(dir, `${name}.js`)], bundle: true, format: "esm", platform: "browser", conditions: ["workerd", "worker", "browser"], minify: true, write: false, absWorkingDir: dir, logLevel: "silent" });
    const code = out.outputFiles[0]!.text;
    bundles[name] = code;
    // nothing of ioredis (its options) and no Node built-in: the browser platform would have refused those
    expect([name, /autoResendUnfulfilledCommands|from"node:|require\("node:/.test(code)]).toEqual([name, false]);
  }
  console.log(`[package] workerd bundles (minified): core Queue ${(bundles["edge-core"]!.length / 1024).toFixed(1)} KiB, sluice/http ${(bundles["edge-http"]!.length / 1024).toFixed(1)} KiB`);

  const prefix = uniquePrefix("edge");
  const REST_TOKEN = "rest-token-0123456789";
  const ADMIN_TOKEN = "admin-token-0123456789";
  // an HTTP front speaking the Upstash REST protocol over the test Redis
  const redis = new (await import("ioredis")).Redis(redisUrl());
  const front = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      if (req.headers.get("authorization") !== `Bearer ${REST_TOKEN}`) return Response.json({ error: "Unauthorized" }, { status: 401 });
      const [command, ...args] = (await req.json()) as string[];
      try {
        return Response.json({ result: await redis.call(command!, ...args) });
      } catch (e) {
        return Response.json({ error: (e as Error).message }, { status: 400 });
      }
    },
  });
  const { createAdminApp } = await import("../admin/app.tsx");
  const admin = createAdminApp({ redis: redisUrl(), prefix, queues: ["edge"], auth: { token: ADMIN_TOKEN } });
  const adminServer = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: admin.fetch });
  const workers: InstanceType<typeof Miniflare>[] = [];
  const q = new Queue("edge", { redis: redisUrl(), prefix });
  try {
    const enqueued: { id: string; state: string }[] = [];
    for (const name of ["edge-core", "edge-http"]) {
      // no compatibilityFlags: no nodejs_compat
      const mf = new Miniflare({
        // the bundle as one module, as wrangler hands it over (a Worker given a URL would import
        // ioredis at run time; this one is given a command sender and never does)
        modules: [{ type: "ESModule", path: `${name}.mjs`, contents: bundles[name]! }],
        compatibilityDate: "2025-06-01",
        bindings: { REST_URL: `http://127.0.0.1:${front.port}`, REST_TOKEN, PREFIX: prefix, ADMIN_URL: `http://127.0.0.1:${adminServer.port}`, ADMIN_TOKEN },
      });
      workers.push(mf);
      const res = await mf.dispatchFetch("http://edge.example/enqueue");
      const text = await res.text();
      expect([name, res.status, text]).toEqual([name, 200, expect.stringContaining('"state":"waiting"')]);
      enqueued.push(JSON.parse(text));
    }
    // a worker process of the app (the installed CLI, plain Node) completes both jobs
    writeFileSync(join(dir, "edge-tasks.mjs"), `export const tasks = { double: (d) => d.n * 2 };\n`);
    const worker = await run("npx", ["--no-install", "sluice", "worker", "--tasks", "./edge-tasks.mjs", "--queues", "edge", "--prefix", prefix, "--no-wait"], dir, { REDIS_URL: redisUrl() });
    expect([worker.code, worker.err]).toEqual([0, ""]);
    const results = await Promise.all(enqueued.map(async (j) => {
      const job = await q.getJob(j.id);
      return [job?.state, job?.result];
    }));
    expect(results).toEqual([["completed", 42], ["completed", 8]]);
  } finally {
    for (const mf of workers) await mf.dispose();
    await q.close();
    await admin.close();
    adminServer.stop(true);
    front.stop(true);
    redis.disconnect();
  }
});

test("publint and @arethetypeswrong/cli pass on the tarball (attw's esm-only profile: the package is ESM, which require() loads on Node >= 20.19)", async () => {
  const lint = await run(join(BIN, "publint"), [tarball, "--strict"], work);
  expect([lint.code, lint.out + lint.err]).toEqual([0, expect.stringContaining("All good!")]);
  const types = await run(join(BIN, "attw"), [tarball, "--profile", "esm-only", "--format", "json"], work);
  expect(types.code).toBe(0);
  // the only findings are those of the resolutions the profile leaves out: node10 (no `exports`)
  // and node16-cjs (attw does not model require() of ESM)
  const report = JSON.parse(types.out) as { problems: Record<string, { resolutionKind?: string }[]> };
  const kept = Object.values(report.problems).flat().filter((p) => !["node10", "node16-cjs"].includes(p.resolutionKind ?? ""));
  expect(kept).toEqual([]);
});

test("JSR / Deno: deno check passes on every entry of deno.json, the CLI and the pool's child entry, and deno publish --dry-run succeeds", async () => {
  const entries = ["mod.ts", "src/core.ts", "adapters/bun.ts", "adapters/deno.ts", "adapters/node.ts", "adapters/pool-child.ts", "adapters/pool-node.ts", "adapters/pool-bun.ts", "adapters/spawn.ts", "admin/app.tsx", "http/producer.ts", "cli/sluice.ts"];
  const check = await run(join(BIN, "deno"), ["check", ...entries], ROOT);
  expect([check.code, check.err.includes("error")]).toEqual([0, false]);
  const publish = await run(join(BIN, "deno"), ["publish", "--dry-run", "--allow-dirty"], ROOT);
  expect([publish.code, publish.out + publish.err]).toEqual([0, expect.stringContaining("Dry run complete")]);
});

test("the tarball lists every entry in exports with types and default", () => {
  const dir = apps.module;
  const pkg = JSON.parse(execFileSync("cat", [join(dir, "node_modules", "sluice", "package.json")], { encoding: "utf8" }));
  for (const entry of [".", "./core", "./bun", "./deno", "./node", "./admin", "./http"]) {
    expect(pkg.exports[entry]).toMatchObject({ types: expect.stringMatching(/\.d\.ts$/), default: expect.stringMatching(/\.js$/) });
  }
  expect(readdirSync(join(dir, "node_modules", "sluice"))).not.toContain("test");
});
