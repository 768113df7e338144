/**
 * `sluice admin`: serves the admin app (JSON API, /metrics, events, dashboard) through the adapter
 * of the runtime it runs on, until SIGINT or SIGTERM. Credentials come from the environment, never
 * from flags (a command line is visible to every user of the machine).
 */
import { type AdminAuth, createAdminApp, isLoopback } from "../../admin/app.tsx";
import { adapter } from "../../adapters/auto.ts";
import { EXIT } from "../../src/runtime.ts";
import { UsageError } from "../args.ts";
import { checkQueue, CliError, COMMON_FLAGS, type Command, openRedis, redact, redisFor } from "../common.ts";

const flags = {
  port: { type: "int", min: 0, description: "TCP port (default 8080; 0 picks a free one)" },
  host: { type: "string", placeholder: "ADDRESS", description: "Address to bind (default 127.0.0.1; anything else needs auth)" },
  queues: { type: "list", description: "Queues to show (default: every queue found under the prefix)" },
  ...COMMON_FLAGS,
} as const;

export const admin: Command<typeof flags> = {
  name: "admin",
  summary: "Serve the admin app: JSON API, metrics, live events and dashboard",
  usage: "sluice admin [--port N] [--host ADDRESS] [--queues a,b] [options]",
  details: [
    "Auth comes from the environment: SLUICE_ADMIN_TOKEN (bearer token, also the dashboard sign-in),",
    "and/or SLUICE_ADMIN_USER with SLUICE_ADMIN_PASSWORD (basic auth). Without any, the app has no",
    "auth and serves loopback only: a --host other than 127.0.0.1, ::1 or localhost is refused.",
    "SIGINT/SIGTERM stops it. Exit codes: 0 stopped, 1 error, 2 bad arguments.",
  ].join("\n"),
  flags,
  positionals: { names: [], min: 0 },
  async run(ctx) {
    const f = ctx.flags;
    const env = (k: string) => ctx.io.env(k) || undefined;
    const token = env("SLUICE_ADMIN_TOKEN");
    const username = env("SLUICE_ADMIN_USER");
    const password = env("SLUICE_ADMIN_PASSWORD");
    if (username !== undefined && password === undefined) throw new UsageError("SLUICE_ADMIN_USER is set but SLUICE_ADMIN_PASSWORD is not");
    const auth: AdminAuth = token && username
      ? { token, username, password: password! }
      : token
      ? { token }
      : username
      ? { username, password: password! }
      : "none-on-loopback";
    const hostname = f.host ?? "127.0.0.1";
    if (auth === "none-on-loopback" && !isLoopback(hostname)) {
      throw new UsageError(`--host ${hostname} needs auth: set SLUICE_ADMIN_TOKEN, or SLUICE_ADMIN_USER and SLUICE_ADMIN_PASSWORD`);
    }
    if (f.port !== undefined && f.port > 65535) throw new UsageError(`--port must be at most 65535: got ${f.port}`);
    for (const q of f.queues ?? []) checkQueue(q, ctx.prefix);
    // fail fast on an unreachable Redis; once serving, requests ride out reconnects
    await (await openRedis(ctx)).quit();

    const connection = redisFor(ctx);
    const app = createAdminApp({ redis: connection.redis, queues: f.queues, prefix: ctx.prefix, auth });
    const { serveAdmin, hooks } = await adapter();
    let server;
    try {
      server = await serveAdmin(app, { port: f.port ?? 8080, hostname });
    } catch (e) {
      await app.close();
      await connection.close();
      throw new CliError(`cannot serve on ${hostname}:${f.port ?? 8080}: ${(e as Error).message}`);
    }
    const authText = auth === "none-on-loopback" ? "no auth, loopback only" : [token ? "bearer token" : "", username ? "basic auth" : ""].filter(Boolean).join(" and ");
    if (ctx.json) ctx.io.out(JSON.stringify({ event: "listening", url: server.url, port: server.port, auth: authText, redis: redact(ctx.redisUrl) }));
    else ctx.io.out(`sluice admin listening on ${server.url} (${authText}; Redis ${redact(ctx.redisUrl)})`);

    await new Promise<void>((resolve) => {
      const removers = (["SIGINT", "SIGTERM"] as const).map((s) => hooks.onSignal(s, () => {
        removers.forEach((r) => r());
        resolve();
      }));
    });
    await app.close();
    await server.close();
    await connection.close();
    if (ctx.json) ctx.io.out(JSON.stringify({ event: "stopped" }));
    else ctx.io.out("sluice admin stopped");
    return EXIT.ok;
  },
};
