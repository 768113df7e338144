/** @jsxImportSource hono/jsx */
/** Shared pieces of the dashboard: the page layout, badges, times and action forms. */
import { raw } from "hono/html";
import type { Child } from "hono/jsx";
import { LIVE_SCRIPT } from "./live.ts";
import { CSS } from "./style.ts";

/** What every page needs from the request. */
export interface PageContext {
  /** `basePath + path`. */
  url(path: string): string;
  nonce: string;
  csrf: string;
  authRequired: boolean;
  prefix: string;
  flash?: { kind: "ok" | "error"; message: string };
  /** The path and query of this page, for forms that come back to it. */
  here: string;
}

const ICON = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2f5bea"/><path d="M7 11c3-3 6 3 9 0s6 3 9 0M7 17c3-3 6 3 9 0s6 3 9 0M7 23c3-3 6 3 9 0s6 3 9 0" stroke="#fff" stroke-width="2.4" fill="none" stroke-linecap="round"/></svg>',
)}`;

function Logo() {
  return (
    <svg width="22" height="22" viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="7" fill="#2f5bea" />
      <path d="M7 11c3-3 6 3 9 0s6 3 9 0M7 17c3-3 6 3 9 0s6 3 9 0M7 23c3-3 6 3 9 0s6 3 9 0" stroke="#fff" stroke-width="2.4" fill="none" stroke-linecap="round" />
    </svg>
  );
}

/** JSON for a `<script type="application/json">` block: `<` escaped so it cannot end the element. */
function jsonBlock(x: unknown): string {
  return JSON.stringify(x).replace(/</g, "\\u003c");
}

export interface LayoutProps {
  page: PageContext;
  title: string;
  nav?: "overview" | "workers";
  /** Live updates: the queues whose events refresh the page, and/or a poll interval in ms. */
  live?: { queues?: string[]; poll?: number };
  children?: Child;
}

/** The document head of every page; `refresh`: reload every 10 s where JavaScript is off. */
function Head({ title, nonce, refresh }: { title: string; nonce: string; refresh?: boolean }) {
  return (
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="color-scheme" content="light dark" />
      <title>{title} · sluice</title>
      <link rel="icon" href={ICON} />
      {refresh ? <noscript><meta http-equiv="refresh" content="10" /></noscript> : null}
      <style nonce={nonce} dangerouslySetInnerHTML={{ __html: CSS }} />
    </head>
  );
}

export function Layout({ page, title, nav, live, children }: LayoutProps) {
  const events = live?.queues && live.queues.length > 0 ? page.url(`/api/events?queues=${live.queues.map(encodeURIComponent).join(",")}`) : undefined;
  return (
    <>
    {raw("<!DOCTYPE html>")}
    <html lang="en">
      <Head title={title} nonce={page.nonce} refresh={!!live} />
      <body>
        <header class="top">
          <div class="wrap">
            <a class="brand" href={page.url("/")}><Logo />sluice</a>
            <nav class="main">
              <a href={page.url("/")} class={nav === "overview" ? "on" : ""}>Queues</a>
              <a href={page.url("/workers")} class={nav === "workers" ? "on" : ""}>Workers</a>
            </nav>
            <span class="spacer" />
            <div class="meta">
              {live ? <span id="live-status" class="live"><i /><span>{events ? "connecting" : "auto-refresh"}</span></span> : null}
              <span class="prefix" title="Redis key prefix">prefix <code>{page.prefix}</code></span>
              {page.authRequired
                ? (
                  <form method="post" action={page.url("/logout")}>
                    <input type="hidden" name="_csrf" value={page.csrf} />
                    <button type="submit">Sign out</button>
                  </form>
                )
                : <span title="This app has no auth and answers loopback requests only">local, no auth</span>}
            </div>
          </div>
        </header>
        <main class="wrap">
          {page.flash ? <div class={`flash ${page.flash.kind}`} role="status">{page.flash.message}</div> : null}
          {children}
        </main>
        {live ? <script type="application/json" id="live-config" dangerouslySetInnerHTML={{ __html: jsonBlock({ events, poll: live.poll }) }} /> : null}
        <script nonce={page.nonce} dangerouslySetInnerHTML={{ __html: LIVE_SCRIPT }} />
      </body>
    </html>
    </>
  );
}

/** A bare page (login) without navigation. */
export function Bare({ nonce, title, children }: { nonce: string; title: string; children?: Child }) {
  return (
    <>
    {raw("<!DOCTYPE html>")}
    <html lang="en">
      <Head title={title} nonce={nonce} />
      <body>
        <main class="wrap">{children}</main>
      </body>
    </html>
    </>
  );
}

export function StateBadge({ state, label, big }: { state: string; label?: string; big?: boolean }) {
  return <span class={`badge s-${state}${big ? " big" : ""}`}>{label ?? state}</span>;
}

export function PhaseBadge({ phase }: { phase: string }) {
  return <span class={`badge p-${phase}`}>{phase}</span>;
}

/** "3 s ago" / "in 2 min", with the exact time in the tooltip. */
export function relative(ms: number, now = Date.now()): string {
  const d = Math.round((ms - now) / 1000);
  const a = Math.abs(d);
  const text = a < 1 ? "now" : a < 60 ? `${a} s` : a < 3600 ? `${Math.floor(a / 60)} min` : a < 86400 ? `${Math.floor(a / 3600)} h` : `${Math.floor(a / 86400)} d`;
  if (text === "now") return "just now";
  return d < 0 ? `${text} ago` : `in ${text}`;
}

export function Time({ ms }: { ms?: number }) {
  // a time no Date can hold (written by an older version, or by hand) shows as unknown, not a 500
  if (!ms || !Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return <span class="muted">—</span>;
  const iso = new Date(ms).toISOString();
  return <time datetime={iso} title={iso.replace("T", " ").replace(/\.\d+Z$/, " UTC")}>{relative(ms)}</time>;
}

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms < 60_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(ms / 3_600_000)} h ${Math.round((ms % 3_600_000) / 60_000)} min`;
}

/** A one-button POST form with the CSRF token. */
export function ActionForm(props: {
  page: PageContext;
  action: string;
  label: string;
  kind?: "primary" | "danger" | "solid-danger" | "";
  small?: boolean;
  confirm?: string;
  fields?: Record<string, string>;
  title?: string;
}) {
  const { page, action, label, kind = "", small, confirm, fields = {}, title } = props;
  return (
    <form class="inline" method="post" action={page.url(action)} data-confirm={confirm}>
      <input type="hidden" name="_csrf" value={page.csrf} />
      <input type="hidden" name="back" value={page.here} />
      {Object.entries(fields).map(([k, v]) => <input type="hidden" name={k} value={v} />)}
      <button type="submit" class={`btn ${kind}${small ? " sm" : ""}`} title={title}>{label}</button>
    </form>
  );
}

/** Pretty JSON for a `<pre>`. */
export function pretty(x: unknown): string {
  if (x === undefined) return "";
  try {
    return JSON.stringify(x, null, 2) ?? String(x);
  } catch {
    return String(x);
  }
}

export function jobUrl(queue: string, id: string): string {
  return `/queues/${encodeURIComponent(queue)}/jobs/${encodeURIComponent(id)}`;
}

export function queueUrl(queue: string, state?: string): string {
  return `/queues/${encodeURIComponent(queue)}${state ? `?state=${state}` : ""}`;
}

/**
 * Jobs finished per minute as a server-rendered SVG bar chart (completed up, failed down from the
 * middle line): no script, no chart library.
 */
export function ThroughputChart({ rows }: { rows: { minute: number; completed: number; failed: number }[] }) {
  const w = 600;
  const h = 120;
  const mid = 80;
  const bw = w / Math.max(1, rows.length);
  const top = Math.max(1, ...rows.map((r) => r.completed));
  const bottom = Math.max(1, ...rows.map((r) => r.failed));
  const total = rows.reduce((s, r) => s + r.completed, 0);
  const failed = rows.reduce((s, r) => s + r.failed, 0);
  const busiest = Math.max(0, ...rows.map((r) => r.completed));
  const label = `Last ${rows.length} minutes: ${total} completed, ${failed} failed or aborted${busiest > 0 ? `; busiest minute ${busiest} completed` : ""}.`;
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${w} ${h}`} role="img" aria-label={label} preserveAspectRatio="none">
        <line x1="0" y1={mid} x2={w} y2={mid} class="axis" />
        {rows.map((r, i) => (
          <g>
            <title>{`${new Date(r.minute).toISOString().slice(11, 16)} UTC: ${r.completed} completed, ${r.failed} failed`}</title>
            {r.completed > 0 ? <rect class="ok" x={i * bw + 0.5} width={Math.max(1, bw - 1)} y={mid - (r.completed / top) * (mid - 4)} height={(r.completed / top) * (mid - 4)} /> : null}
            {r.failed > 0 ? <rect class="bad" x={i * bw + 0.5} width={Math.max(1, bw - 1)} y={mid} height={(r.failed / bottom) * (h - mid - 2)} /> : null}
          </g>
        ))}
      </svg>
      <figcaption>{label}</figcaption>
    </figure>
  );
}
