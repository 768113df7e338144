/** @jsxImportSource hono/jsx */
/**
 * sluice's admin app: a Hono app with a JSON API, `/metrics`, server-sent events and a small
 * server-rendered dashboard. It never binds a port: serve it with `serveAdmin` from the runtime
 * adapter (`sluice/bun`, `sluice/deno`, `sluice/node`), or mount it in your own Hono app.
 *
 * @example
 * ```ts
 * import { createAdminApp } from "sluice/admin";
 * import { serveAdmin } from "sluice/bun";
 * const app = createAdminApp({ redis: "redis://localhost:6379", queues: ["default"], auth: { token: Bun.env.ADMIN_TOKEN! } });
 * const server = await serveAdmin(app, { port: 8080, hostname: "0.0.0.0" });
 * console.log(`admin on ${server.url}`);
 * ```
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { getCookie, setCookie } from "hono/cookie";
import { ValidationError } from "../src/errors.ts";
import { apiRoutes, HttpError } from "./api.ts";
import { CSRF_COOKIE, hostIsLoopback, isCrossSite, SESSION_COOKIE } from "./auth.ts";
import { AdminContext, type AdminEnv, type AdminOptions } from "./context.ts";
import { dashboardRoutes, safeBack, secureCookie } from "./dashboard.tsx";
import { renderMetrics } from "./metrics.ts";
import { markLoopbackOnly } from "./serve.ts";
import { LoginPage } from "./views/forms.tsx";
import { Bare } from "./views/ui.tsx";

export type { AdminOptions } from "./context.ts";
export type { AdminAuth } from "./auth.ts";
export type { JobEvent } from "./events.ts";
export { type AdminServer, isLoopback, type ServeAdminOptions } from "./serve.ts";

/** An issue's value as the response shows it: long values are cut (a 1,000-job batch is not echoed back). */
function clipIssues(issues: readonly { field: string; value: unknown; message: string }[]) {
  return issues.map((i) => {
    let value = i.value;
    if (typeof value === "string" && value.length > 200) value = value.slice(0, 200) + "…";
    else if (value !== null && typeof value === "object") {
      let json: string | undefined;
      try {
        json = JSON.stringify(value);
      } catch {
        json = "(a value that cannot be shown)";
      }
      if (json === undefined || json.length > 200) value = (json ?? "").slice(0, 200) + "…";
    } else if (typeof value === "bigint" || typeof value === "symbol" || typeof value === "function") value = String(value);
    return { ...i, value };
  });
}

/** The admin app: a Hono app, plus `close()` for the connections it opened. */
export type AdminApp = Hono<AdminEnv> & {
  /** Ends open event streams and closes the Redis connection the app opened (not one passed in). */
  close(): Promise<void>;
};

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Creates the admin app. See `AdminOptions`; `auth` is required: `{ token }`, `{ username, password }`
 * or `"none-on-loopback"`.
 *
 * @example
 * ```ts
 * const app = createAdminApp({ redis, queues: ["emails"], auth: { username: "ops", password: secret } });
 * const res = await app.request("/api/queues", { headers: { authorization: "Basic " + btoa("ops:" + secret) } });
 * ```
 */
export function createAdminApp(options: AdminOptions): AdminApp {
  const ctx = new AdminContext(options);
  const root = new Hono<AdminEnv>();
  const app = ctx.basePath ? root.basePath(ctx.basePath) : root;
  const isApi = (c: Context) => {
    const p = c.req.path.slice(ctx.basePath.length);
    return p.startsWith("/api/") || p === "/api" || p === "/metrics";
  };

  // headers for every response; a nonce for the inline script and style of HTML pages
  app.use("*", async (c, next) => {
    const nonce = b64url(crypto.getRandomValues(new Uint8Array(16)));
    c.set("nonce", nonce);
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "same-origin");
    c.header("X-Frame-Options", "DENY");
    if (c.res.headers.get("content-type")?.startsWith("text/html")) {
      c.header(
        "Content-Security-Policy",
        `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
      );
      c.header("Cache-Control", "no-store");
    }
  });

  // CORS for the configured origins' pages: the JSON API, with its preflights answered before auth
  if (ctx.corsOrigins.length > 0) {
    app.use("/api/*", cors({
      origin: ctx.corsOrigins,
      allowMethods: ["GET", "POST", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type"],
      maxAge: 600,
    }));
  }

  // without auth, answer only requests addressed to loopback (a DNS-rebinding page names its own host)
  if (!ctx.auth.required) {
    markLoopbackOnly(app);
    markLoopbackOnly(root);
    app.use("*", async (c, next) => {
      if (!hostIsLoopback(c.req.header("host") ?? new URL(c.req.url).host)) {
        return c.json({ error: "This admin app has no auth and answers requests to a loopback host only" }, 403);
      }
      await next();
    });
  }

  app.use("*", bodyLimit({ maxSize: 1024 * 1024, onError: (c) => c.json({ error: "Request body larger than 1 MiB" }, 413) }));

  // ---- sign-in (the only pages served without credentials)
  const loginPath = ctx.url("/login");
  const renderLogin = (c: Context<AdminEnv>, next: string, error?: string, status: 200 | 401 = 200) =>
    c.html(<LoginPage nonce={c.get("nonce")} action={loginPath} next={next} error={error} {...ctx.auth.modes} />, status);

  app.get("/login", async (c) => {
    const next = safeBack(ctx, c.req.query("next"), "/");
    if (!ctx.auth.required) return c.redirect(next, 303);
    return renderLogin(c, next);
  });

  app.post("/login", async (c) => {
    if (isCrossSite(c.req.raw.headers, c.req.url)) return c.text("Cross-site sign-in refused", 403);
    const body = await c.req.parseBody();
    const field = (k: string) => (typeof body[k] === "string" ? (body[k] as string) : "");
    const next = safeBack(ctx, field("next"), "/");
    if (!ctx.auth.required) return c.redirect(next, 303);
    const ok = field("token") !== ""
      ? await ctx.auth.checkToken(field("token"))
      : await ctx.auth.checkBasic(field("username"), field("password"));
    if (!ok) {
      await new Promise((r) => setTimeout(r, 300)); // slows guessing down a little
      return renderLogin(c, next, "Those credentials are not right.", 401);
    }
    setCookie(c, SESSION_COOKIE, await ctx.auth.issueSession(), {
      path: ctx.basePath || "/",
      httpOnly: true,
      sameSite: "Strict",
      secure: secureCookie(c),
      maxAge: Math.floor(ctx.auth.sessionMs / 1000),
    });
    return c.redirect(next, 303);
  });

  // ---- everything else needs credentials
  app.use("*", async (c, next) => {
    const method = await ctx.auth.authenticate(c.req.raw.headers, getCookie(c));
    if (!method) {
      if (isApi(c)) {
        const schemes = [ctx.auth.modes.token ? 'Bearer realm="sluice"' : "", ctx.auth.modes.basic ? 'Basic realm="sluice", charset="UTF-8"' : ""].filter(Boolean);
        c.header("WWW-Authenticate", schemes.join(", "));
        return c.json({ error: "Authentication required: send Authorization: Bearer <token> or Basic credentials" }, 401);
      }
      const url = new URL(c.req.url);
      if (c.req.method === "GET") return c.redirect(`${loginPath}?next=${encodeURIComponent(url.pathname + url.search)}`, 303);
      return c.text("Authentication required", 401);
    }
    c.set("auth", method);
    await next();
  });

  // CSRF: the browser attaches cookies, cached basic credentials, and (on loopback) nothing at all
  // by itself, so such requests must prove they come from our own pages
  app.use("*", async (c, next) => {
    let seed = getCookie(c, CSRF_COOKIE);
    if ((!seed || !/^[\w-]{32}$/.test(seed)) && !isApi(c)) {
      seed = ctx.auth.newCsrfSeed();
      setCookie(c, CSRF_COOKIE, seed, { path: ctx.basePath || "/", httpOnly: true, sameSite: "Strict", secure: secureCookie(c) });
    }
    c.set("csrf", seed ? await ctx.auth.csrfToken(seed) : "");
    if (!SAFE_METHODS.has(c.req.method) && c.get("auth") !== "bearer") {
      const refuse = (why: string) => isApi(c) ? c.json({ error: why }, 403) : c.text(why, 403);
      if (isCrossSite(c.req.raw.headers, c.req.url)) return refuse("Cross-site request refused");
      const type = c.req.header("content-type") ?? "";
      // a cross-site page can send neither a JSON body nor a DELETE without a CORS preflight
      const preflighted = c.req.method !== "POST" || /^application\/json\s*(;|$)/i.test(type);
      if (!preflighted) {
        const form = /^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type) ? await c.req.parseBody() : {};
        const token = typeof form._csrf === "string" ? form._csrf : c.req.header("x-csrf-token");
        if (!(await ctx.auth.checkCsrf(getCookie(c, CSRF_COOKIE), token))) {
          return refuse("CSRF check failed: reload the page and try again (API clients: send Content-Type: application/json)");
        }
      }
    }
    await next();
  });

  app.post("/logout", (c) => {
    setCookie(c, SESSION_COOKIE, "", { path: ctx.basePath || "/", httpOnly: true, sameSite: "Strict", secure: secureCookie(c), maxAge: 0 });
    return c.redirect(ctx.auth.required ? loginPath : ctx.url("/"), 303);
  });

  app.get("/metrics", async (c) => {
    return c.body(await renderMetrics(ctx), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  app.route("/api", apiRoutes(ctx));
  app.route("/", dashboardRoutes(ctx));

  app.notFound((c) => {
    if (isApi(c)) return c.json({ error: `Not found: ${c.req.method} ${c.req.path}` }, 404);
    return c.html(errorPage(c, 404, "There is no page here."), 404);
  });

  app.onError((err, c) => {
    let status: 400 | 401 | 403 | 404 | 409 | 413 | 500 | 503 = 500;
    let body: { error: string; issues?: unknown };
    if (err instanceof HttpError) {
      status = err.status;
      body = err.issues ? { error: err.message, issues: clipIssues(err.issues) } : { error: err.message };
    } else if (ValidationError.is(err)) {
      status = 400;
      body = { error: err.message, issues: clipIssues(err.issues) };
    } else {
      console.error("sluice admin:", err);
      body = { error: "Internal error: see the server log" };
    }
    if (isApi(c)) return c.json(body, status);
    const detail = body.issues ? (body.issues as { field: string; message: string }[]).map((i) => `${i.field} ${i.message}`).join("; ") : "";
    return c.html(errorPage(c, status, body.error + (detail ? `: ${detail}` : "")), status);
  });

  const errorPage = (c: Context<AdminEnv>, status: number, message: string) => (
    <Bare nonce={c.get("nonce") ?? ""} title={`Error ${status}`}>
      <div class="login">
        <div class="card">
          <div class="body">
            <h1>{status === 404 ? "Not found" : `Error ${status}`}</h1>
            <p>{message}</p>
            <a class="btn" href={ctx.url("/")}>Back to the queues</a>
          </div>
        </div>
      </div>
    </Bare>
  );

  return Object.assign(app, { close: () => ctx.close() });
}
