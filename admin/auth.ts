/**
 * Authentication and CSRF protection of the admin app, with web-standard crypto only.
 *
 * - Credentials: `Authorization: Bearer <token>`, `Authorization: Basic …`, or a session cookie
 *   that the login form sets after checking the same credentials. Every comparison is constant
 *   time (both sides are HMAC'd with a random key, then compared byte by byte without an early exit).
 * - The session cookie is stateless: `<expires>.<HMAC(key, expires)>`, the key derived from the
 *   configured credentials (or `secret`), so changing the credentials ends every session.
 * - CSRF: a request whose credentials the browser attaches by itself (cookie, basic auth, or none
 *   at all on loopback) may change state only if it is not cross-site (Origin / Sec-Fetch-Site)
 *   and either carries the form token (HMAC of a SameSite=Strict cookie) or is a non-simple
 *   request (JSON body, DELETE) that a cross-site page cannot send without a CORS preflight, which
 *   this app never grants. Bearer requests are never ambient and need no token.
 * - No auth (`"none-on-loopback"`): every request must name a loopback Host, so a DNS-rebinding
 *   page cannot read the app through the browser.
 * @module
 */
import { isLoopback } from "./serve.ts";

/** How the admin app checks who is calling. */
export type AdminAuth =
  | { token: string; username?: undefined; password?: undefined }
  | { username: string; password: string; token?: undefined }
  | { token: string; username: string; password: string }
  | "none-on-loopback";

/** How a request was authenticated. */
export type AuthMethod = "bearer" | "basic" | "cookie" | "none";

export const SESSION_COOKIE = "sluice_session";
export const CSRF_COOKIE = "sluice_csrf";
export const FLASH_COOKIE = "sluice_flash";

const enc = new TextEncoder();

function b64url(bytes: ArrayBuffer | Uint8Array): string {
  const u = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let s = "";
  for (const b of u) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function hmacKey(raw: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey("raw", raw as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

async function hmac(key: CryptoKey, text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(text)));
}

function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** Validates the `auth` option; throws a clear error for anything else. */
export function checkAuthOption(auth: unknown): AdminAuth {
  if (auth === "none-on-loopback") return auth;
  const bad = () =>
    new TypeError(
      `Invalid admin option 'auth': expected { token }, { username, password } or "none-on-loopback": current value is ${
        auth === undefined ? "undefined" : typeof auth === "string" ? JSON.stringify(auth) : typeof auth
      }`,
    );
  if (typeof auth !== "object" || auth === null) throw bad();
  const a = auth as Record<string, unknown>;
  const hasToken = a.token !== undefined;
  const hasBasic = a.username !== undefined || a.password !== undefined;
  if (!hasToken && !hasBasic) throw bad();
  if (hasToken && (typeof a.token !== "string" || a.token.length === 0)) {
    throw new TypeError("Invalid admin option 'auth.token': must be a non-empty string");
  }
  if (hasBasic) {
    if (typeof a.username !== "string" || a.username === "" || a.username.includes(":")) {
      throw new TypeError("Invalid admin option 'auth.username': must be a non-empty string without ':'");
    }
    if (typeof a.password !== "string" || a.password === "") {
      throw new TypeError("Invalid admin option 'auth.password': must be a non-empty string");
    }
  }
  return auth as AdminAuth;
}

/** Checks credentials and issues/verifies session and CSRF tokens for one app. */
export class Authenticator {
  readonly auth: AdminAuth;
  readonly #compareKey: Promise<CryptoKey> = hmacKey(randomBytes(32));
  readonly #sessionKey: Promise<CryptoKey>;
  readonly sessionMs: number;

  constructor(auth: AdminAuth, options: { secret?: string; sessionMs?: number } = {}) {
    this.auth = auth;
    this.sessionMs = options.sessionMs ?? 12 * 3_600_000;
    const material = options.secret !== undefined
      ? enc.encode("secret\0" + options.secret)
      : auth === "none-on-loopback"
      ? randomBytes(32)
      : enc.encode(`creds\0${auth.token ?? ""}\0${auth.username ?? ""}\0${auth.password ?? ""}`);
    this.#sessionKey = crypto.subtle.digest("SHA-256", material as BufferSource).then((d) => hmacKey(new Uint8Array(d)));
  }

  get required(): boolean {
    return this.auth !== "none-on-loopback";
  }

  /** Which login fields the form shows. */
  get modes(): { token: boolean; basic: boolean } {
    const a = this.auth;
    return a === "none-on-loopback" ? { token: false, basic: false } : { token: a.token !== undefined, basic: a.username !== undefined };
  }

  /** Constant-time string equality (lengths are hidden too: both sides are HMAC'd first). */
  async equal(a: string, b: string): Promise<boolean> {
    const key = await this.#compareKey;
    const [x, y] = await Promise.all([hmac(key, a), hmac(key, b)]);
    let diff = 0;
    for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
    return diff === 0;
  }

  async checkToken(token: string): Promise<boolean> {
    const a = this.auth;
    if (a === "none-on-loopback" || a.token === undefined) return false;
    return await this.equal(token, a.token);
  }

  async checkBasic(username: string, password: string): Promise<boolean> {
    const a = this.auth;
    if (a === "none-on-loopback" || a.username === undefined) return false;
    // both compared, always: the time taken does not tell which one was wrong
    const [u, p] = await Promise.all([this.equal(username, a.username), this.equal(password, a.password!)]);
    return u && p;
  }

  /** Authenticates a request from its headers; null when it carries no valid credentials. */
  async authenticate(headers: Headers, cookies: Record<string, string>): Promise<AuthMethod | null> {
    if (!this.required) return "none";
    const h = headers.get("authorization");
    if (h) {
      const m = /^(\w+)\s+(.+)$/.exec(h.trim());
      if (m && m[1]!.toLowerCase() === "bearer") return (await this.checkToken(m[2]!)) ? "bearer" : null;
      if (m && m[1]!.toLowerCase() === "basic") {
        let decoded: string;
        try {
          decoded = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(atob(m[2]!), (c) => c.charCodeAt(0)));
        } catch {
          return null;
        }
        const i = decoded.indexOf(":");
        if (i < 0) return null;
        return (await this.checkBasic(decoded.slice(0, i), decoded.slice(i + 1))) ? "basic" : null;
      }
      return null;
    }
    const session = cookies[SESSION_COOKIE];
    if (session && (await this.verifySession(session))) return "cookie";
    return null;
  }

  /** A new session cookie value, valid for `sessionMs`. */
  async issueSession(now = Date.now()): Promise<string> {
    const expires = String(now + this.sessionMs);
    return `${expires}.${b64url(await hmac(await this.#sessionKey, "session\0" + expires))}`;
  }

  async verifySession(value: string, now = Date.now()): Promise<boolean> {
    const m = /^(\d{1,16})\.([\w-]{43})$/.exec(value);
    if (!m) return false;
    const expected = b64url(await hmac(await this.#sessionKey, "session\0" + m[1]));
    const ok = await this.equal(m[2]!, expected);
    return ok && Number(m[1]) > now;
  }

  /** A fresh value for the CSRF cookie. */
  newCsrfSeed(): string {
    return b64url(randomBytes(24));
  }

  /** The form token that goes with a CSRF cookie value. */
  async csrfToken(seed: string): Promise<string> {
    return b64url(await hmac(await this.#sessionKey, "csrf\0" + seed));
  }

  async checkCsrf(seed: string | undefined, token: string | undefined): Promise<boolean> {
    if (!seed || !token) return false;
    return await this.equal(token, await this.csrfToken(seed));
  }
}

/** True when the request's Host header names a loopback address (DNS-rebinding guard). */
export function hostIsLoopback(host: string | null): boolean {
  if (!host) return false;
  // strictly `name[:port]` or `[v6][:port]`: anything after the bracket but a port is not a loopback
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\[\]:/\s]+)(?::\d{1,5})?$/.exec(host);
  return m !== null && isLoopback(m[1]!);
}

/**
 * Whether the request comes from another site, by the headers browsers add to every
 * state-changing request. Requests without them (curl, servers) are not cross-site.
 */
export function isCrossSite(headers: Headers, requestUrl: string): boolean {
  const site = headers.get("sec-fetch-site");
  if (site && site !== "same-origin" && site !== "none") return true;
  const origin = headers.get("origin");
  if (origin) {
    if (origin === "null") return true;
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      return true;
    }
    // behind a proxy the public host may arrive as X-Forwarded-Host; a cross-site page cannot set it
    const hosts = [headers.get("host") ?? new URL(requestUrl).host, headers.get("x-forwarded-host")];
    if (!hosts.includes(o.host)) return true;
  }
  return false;
}
