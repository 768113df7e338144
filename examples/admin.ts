/**
 * Serves the admin app (JSON API, /metrics, events, dashboard). Runs unchanged on Bun, Deno and Node:
 *   bun run examples/admin.ts
 *   deno run -A examples/admin.ts
 *   node --import tsx examples/admin.ts
 * Environment:
 *   REDIS_URL            default redis://127.0.0.1:6379
 *   SLUICE_QUEUES        comma-separated queues to show; default: every queue found
 *   SLUICE_ADMIN_TOKEN   bearer token (and dashboard sign-in); without it and without a user, no auth
 *   SLUICE_ADMIN_USER / SLUICE_ADMIN_PASSWORD   basic auth instead of (or besides) the token
 *   SLUICE_ADMIN_HOST    default 127.0.0.1; any other address needs a token or a user
 *   SLUICE_ADMIN_PORT    default 8080 (0 picks a free port)
 * It prints one line `[admin] listening on <url>` once it serves, and stops on SIGINT/SIGTERM.
 */
import { type AdminAuth, createAdminApp } from "../admin/app.tsx";
import { adapter } from "../adapters/auto.ts";

const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};

const token = env.SLUICE_ADMIN_TOKEN;
const user = env.SLUICE_ADMIN_USER;
const auth: AdminAuth = token && user
  ? { token, username: user, password: env.SLUICE_ADMIN_PASSWORD ?? "" }
  : token
  ? { token }
  : user
  ? { username: user, password: env.SLUICE_ADMIN_PASSWORD ?? "" }
  : "none-on-loopback";

const app = createAdminApp({
  redis: env.REDIS_URL ?? "redis://127.0.0.1:6379",
  queues: env.SLUICE_QUEUES ? env.SLUICE_QUEUES.split(",") : undefined,
  prefix: env.SLUICE_PREFIX,
  auth,
});
const { serveAdmin, hooks } = await adapter();
const server = await serveAdmin(app, {
  hostname: env.SLUICE_ADMIN_HOST ?? "127.0.0.1",
  port: Number(env.SLUICE_ADMIN_PORT ?? 8080),
});
console.log(`[admin] listening on ${server.url} (${auth === "none-on-loopback" ? "no auth, loopback only" : "auth required"})`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await app.close();
  await server.close();
  console.log("[admin] stopped");
  removers.forEach((r) => r());
};
const removers = (["SIGINT", "SIGTERM"] as const).map((s) => hooks.onSignal(s, () => void stop()));
