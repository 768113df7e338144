/**
 * Deno adapter: maps SIGINT/SIGTERM onto the shutdown protocol and sets the exit code.
 *
 * @example
 * ```ts
 * import { runWorker } from "sluice/deno";
 * await runWorker({ tasks, queues: ["default"], redis: Deno.env.get("REDIS_URL") });
 * ```
 * @module
 */
import { type RuntimeHooks, type WorkerFunctions, workerFunctions } from "../src/runtime.ts";
import { type AdminServer, checkServeOptions, type ServableApp, type ServeAdminOptions, serverUrl } from "../admin/serve.ts";

// Minimal declarations of the Deno APIs used here.
declare const Deno: {
  pid: number;
  hostname(): string;
  version: { deno: string };
  addSignalListener(signal: "SIGINT" | "SIGTERM", handler: () => void): void;
  removeSignalListener(signal: "SIGINT" | "SIGTERM", handler: () => void): void;
  exitCode: number;
  exit(code?: number): never;
  serve(
    options: { port: number; hostname: string; signal: AbortSignal; onListen(): void },
    handler: (req: Request) => Response | Promise<Response>,
  ): { addr: { port: number }; finished: Promise<void> };
};

export const hooks: RuntimeHooks = {
  runtime: "deno",
  host: Deno.hostname(),
  pid: Deno.pid,
  onSignal(signal, handler) {
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  },
  exit,
};

/**
 * Ends the process now with `code`. The CLI calls it once a worker has stopped: a handler that
 * ignored its abort (left behind on a third signal) would otherwise keep the process alive.
 */
export function exit(code: number): never {
  Deno.exit(code);
}

/** `createWorker(options)` and `runWorker(options, run?)`: see `WorkerFunctions`. */
const functions: WorkerFunctions = workerFunctions(hooks, `deno ${Deno.version.deno}`, (code) => {
  Deno.exitCode = code;
});

/** A Worker that knows its host, pid and runtime: see `WorkerFunctions`. */
export const createWorker: WorkerFunctions["createWorker"] = functions.createWorker;
/** Runs a worker until it stops, signals handled, exit code set: see `WorkerFunctions`. */
export const runWorker: WorkerFunctions["runWorker"] = functions.runWorker;

/**
 * Serves the admin app (`createAdminApp` from `sluice/admin`) with `Deno.serve`. Binds 127.0.0.1
 * unless told otherwise, and refuses any other address when the app has no auth.
 *
 * @example
 * ```ts
 * const server = await serveAdmin(createAdminApp({ redis, auth: { token } }), { port: 8080, hostname: "0.0.0.0" });
 * ```
 */
export async function serveAdmin(app: ServableApp, options: ServeAdminOptions = {}): Promise<AdminServer> {
  const { port, hostname } = checkServeOptions(app, options);
  const stop = new AbortController();
  const server = Deno.serve({ port, hostname, signal: stop.signal, onListen() {} }, (req) => app.fetch(req));
  const bound = server.addr.port;
  return {
    port: bound,
    hostname,
    url: serverUrl(hostname, bound),
    close: async () => {
      stop.abort();
      await server.finished;
    },
  };
}
