/**
 * Node adapter: maps SIGINT/SIGTERM onto the shutdown protocol and sets the exit code.
 *
 * @example
 * ```ts
 * import { runWorker } from "sluice/node";
 * await runWorker({ tasks, queues: ["default"], redis: process.env.REDIS_URL });
 * ```
 * @module
 */
import { hostname } from "node:os";
import { type RuntimeHooks, type WorkerFunctions, workerFunctions } from "../src/runtime.ts";
import { type AdminServer, checkServeOptions, type ServableApp, type ServeAdminOptions, serverUrl } from "../admin/serve.ts";

export const hooks: RuntimeHooks = {
  runtime: "node",
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
const functions: WorkerFunctions = workerFunctions(hooks, "node", (code) => {
  process.exitCode = code;
});

/** A Worker that knows its host, pid and runtime: see `WorkerFunctions`. */
export const createWorker: WorkerFunctions["createWorker"] = functions.createWorker;
/** Runs a worker until it stops, signals handled, exit code set: see `WorkerFunctions`. */
export const runWorker: WorkerFunctions["runWorker"] = functions.runWorker;

/**
 * Serves the admin app (`createAdminApp` from `sluice/admin`) through `@hono/node-server`. Binds
 * 127.0.0.1 unless told otherwise, and refuses any other address when the app has no auth.
 *
 * @example
 * ```ts
 * const server = await serveAdmin(createAdminApp({ redis, auth: { token } }), { port: 8080, hostname: "0.0.0.0" });
 * ```
 */
export async function serveAdmin(app: ServableApp, options: ServeAdminOptions = {}): Promise<AdminServer> {
  const { port, hostname } = checkServeOptions(app, options);
  const { serve } = await import("@hono/node-server");
  return await new Promise((resolve, reject) => {
    const server = serve({ fetch: (req) => app.fetch(req), port, hostname }, (info) => {
      resolve({
        port: info.port,
        hostname,
        url: serverUrl(hostname, info.port),
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
    server.once("error", reject);
  });
}
