/**
 * What the runtime adapters need to serve the admin app safely: whether a bind address is
 * loopback, and whether an app may be exposed beyond it. The app cannot know where it is bound,
 * so `createAdminApp` records its auth mode here and each adapter's `serveAdmin` checks it.
 * @module
 */

/** Anything with a fetch handler: the admin app, or a Hono app it is mounted in. */
export interface ServableApp {
  fetch(request: Request): Response | Promise<Response>;
}

/** What `serveAdmin` takes in every runtime adapter. */
export interface ServeAdminOptions {
  /** TCP port; 0 picks a free one (read it back from the result). @default 8080 */
  port?: number;
  /** Address to bind. Anything but loopback needs an app created with real auth. @default "127.0.0.1" */
  hostname?: string;
}

/** A running admin server, the same shape on Bun, Deno and Node. */
export interface AdminServer {
  port: number;
  hostname: string;
  /** `http://<host>:<port>` (IPv6 hosts in brackets). */
  url: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

const unauthenticated = new WeakSet<object>();

/** Marks an app created with `auth: "none-on-loopback"` (called by `createAdminApp`). */
export function markLoopbackOnly(app: object): void {
  unauthenticated.add(app);
}

/** True for 127.0.0.0/8, ::1 and `localhost` names. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (/^::ffff:127\.\d+\.\d+\.\d+$/.test(h)) return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Resolves the bind options and refuses to expose an app without auth: throws when `hostname` is
 * not loopback and the app was created with `auth: "none-on-loopback"`.
 */
export function checkServeOptions(app: object, options: ServeAdminOptions = {}): { port: number; hostname: string } {
  const hostname = options.hostname ?? "127.0.0.1";
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot serve the admin app as 'port' must be an integer from 0 to 65535: current value is ${JSON.stringify(port)}`);
  }
  if (unauthenticated.has(app) && !isLoopback(hostname)) {
    throw new Error(
      `Refusing to serve the admin app on ${JSON.stringify(hostname)} without auth: it was created with ` +
        `auth "none-on-loopback". Bind to 127.0.0.1 or ::1, or pass auth: { token } or { username, password }.`,
    );
  }
  return { port, hostname };
}

/** `http://host:port`, with IPv6 hosts in brackets. */
export function serverUrl(hostname: string, port: number): string {
  const h = hostname.includes(":") && !hostname.startsWith("[") ? `[${hostname}]` : hostname;
  return `http://${h === "0.0.0.0" ? "127.0.0.1" : h === "[::]" ? "[::1]" : h}:${port}`;
}
