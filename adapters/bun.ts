/**
 * Bun adapter: maps SIGINT/SIGTERM onto the shutdown protocol and sets the exit code.
 *
 * @example
 * ```ts
 * import { runWorker } from "sluice/bun";
 * await runWorker({ tasks, queues: ["default"], redis: Bun.env.REDIS_URL });
 * ```
 * @module
 */
import { hostname } from "node:os";
import { type RuntimeHooks, type WorkerFunctions, workerFunctions } from "../src/runtime.ts";
import { type AdminServer, checkServeOptions, type ServableApp, type ServeAdminOptions, serverUrl } from "../admin/serve.ts";

/** The few members of Bun's global this adapter uses (no dependency on Bun's type package). */
interface BunRuntime {
  version: string;
  serve(options: {
    port: number;
    hostname: string;
    fetch(req: Request): Response | Promise<Response>;
    error(e: unknown): Response;
    idleTimeout: number;
  }): { port?: number; stop(closeActive?: boolean): Promise<void> | void };
}
const Bun = (globalThis as unknown as { Bun: BunRuntime }).Bun;

export const hooks: RuntimeHooks = {
  runtime: "bun",
  host: hostname(),
  pid: process.pid,
  onSignal(signal, handler) {
    process.on(signal, handler);
    return () => process.off(signal, handler);
  },
  exit,
};

/**
 * Ends the process now with `code`. The CLI calls it once a worker has stopped: a handler that
 * ignored its abort (left behind on a third signal) would otherwise keep the process alive.
 */
export function exit(code: number): never {
  process.exit(code);
}

/** `createWorker(options)` and `runWorker(options, run?)`: see `WorkerFunctions`. */
const functions: WorkerFunctions = workerFunctions(hooks, `bun ${Bun.version}`, (code) => {
  process.exitCode = code;
});

/** A Worker that knows its host, pid and runtime: see `WorkerFunctions`. */
export const createWorker: WorkerFunctions["createWorker"] = functions.createWorker;
/** Runs a worker until it stops, signals handled, exit code set: see `WorkerFunctions`. */
export const runWorker: WorkerFunctions["runWorker"] = functions.runWorker;

/**
 * Serves the admin app (`createAdminApp` from `sluice/admin`) with `Bun.serve`. Binds 127.0.0.1
 * unless told otherwise, and refuses any other address when the app has no auth.
 *
 * @example
 * ```ts
 * const server = await serveAdmin(createAdminApp({ redis, auth: { token } }), { port: 8080, hostname: "0.0.0.0" });
 * ```
 */
export async function serveAdmin(app: ServableApp, options: ServeAdminOptions = {}): Promise<AdminServer> {
  const { port, hostname } = checkServeOptions(app, options);
  // event streams send a keep-alive every 15 s; Bun's default idle timeout (10 s) would cut them
  const server = Bun.serve({
    port,
    hostname,
    // a request without a usable Host header (HTTP/1.0, `Host: a b`) gets no URL from Bun: a 400,
    // as Node and Deno answer, instead of an error in the app
    fetch: (req: Request) => {
      try {
        new URL(req.url);
      } catch {
        return new Response(JSON.stringify({ error: "Bad request: missing or invalid Host header" }), { status: 400, headers: { "content-type": "application/json" } });
      }
      return app.fetch(req);
    },
    error: () => new Response(JSON.stringify({ error: "Bad request" }), { status: 400, headers: { "content-type": "application/json" } }),
    idleTimeout: 60,
  });
  const bound = server.port ?? port;
  return { port: bound, hostname, url: serverUrl(hostname, bound), close: async () => void (await server.stop(true)) };
}
