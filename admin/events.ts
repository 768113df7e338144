/**
 * The admin app's server-sent events: lifecycle events of the queues, read from each queue's
 * capped `…:events` stream with XREAD BLOCK on a connection of its own, which is closed when the
 * client goes away.
 * @module
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { IORedis, Send } from "../src/redis.ts";
import { queueKeys } from "../src/keys.ts";
import { streamEntries } from "../src/worker.ts";
import type { AdminContext } from "./context.ts";

/** One lifecycle event as the stream sends it (`event: job`, data as JSON). */
export interface JobEvent {
  queue: string;
  /** waiting, delayed, completed, failed, aborted, retrying, interrupted, stalled, cancelled, deleted */
  event: string;
  /** The jobs it concerns (a `completed` event covers a batch). */
  ids: string[];
  /** When, in epoch milliseconds. */
  t: number;
  /** Extra detail some events carry (`retry`, `stalled`). */
  detail?: string;
}

const BLOCK_MS = 15_000;

/** Parses `Last-Event-ID`: the stream position per queue, as the stream sent it. */
function parsePositions(value: string | undefined): Record<string, string> {
  if (!value) return {};
  try {
    const o = JSON.parse(value);
    if (typeof o !== "object" || o === null) return {};
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(o)) if (typeof v === "string" && /^\d+-\d+$/.test(v)) out[k] = v;
    return out;
  } catch {
    return {};
  }
}

function toEvent(queue: string, fields: string[]): JobEvent | null {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
  if (!f.e) return null;
  const e: JobEvent = { queue, event: f.e, ids: (f.id ?? "").split(" ").filter(Boolean), t: Number(f.t ?? 0) };
  if (f.x) e.detail = f.x;
  return e;
}

/** Streams the events of `queues` to the client until it disconnects or the app closes. */
export function eventStream(c: Context, ctx: AdminContext, queues: string[]): Response {
  const positions = parsePositions(c.req.header("last-event-id"));
  const streams = new Map(queues.map((q) => [queueKeys(ctx.prefix, q).events, q] as const));
  return streamSSE(c, async (stream) => {
    let conn: IORedis | null = null;
    let closed = false;
    const handle = {
      close() {
        closed = true;
        conn?.disconnect();
        stream.abort();
      },
    };
    if (!ctx.openStream(handle)) {
      await stream.writeSSE({ event: "error", data: JSON.stringify({ error: "too many event streams open" }) });
      return;
    }
    stream.onAbort(() => {
      closed = true;
      conn?.disconnect();
    });
    try {
      // resolve "from now" to real ids, so nothing between two reads is missed
      const last: Record<string, string> = {};
      for (const [key, q] of streams) {
        if (positions[q]) {
          last[key] = positions[q]!;
          continue;
        }
        const r = (await ctx.send("XREVRANGE", [key, "+", "-", "COUNT", 1])) as [string, string[]][];
        last[key] = r[0]?.[0] ?? "0-0";
      }
      const position = () => {
        const o: Record<string, string> = {};
        for (const [key, q] of streams) o[q] = last[key]!;
        return JSON.stringify(o);
      };
      await stream.writeSSE({ event: "ready", data: JSON.stringify({ queues }), id: position(), retry: 2000 });
      conn = ctx.dedicated();
      const isCluster = !!conn && "nodes" in conn && typeof (conn as { nodes?: unknown }).nodes === "function";
      const keys = [...streams.keys()];
      const blocking = conn !== null && !(isCluster && keys.length > 1);
      const reader: Send = conn ? (cmd, args) => conn!.call(cmd, ...args) : ctx.send;
      let idleSince = Date.now();
      while (!closed) {
        let reply: unknown;
        try {
          reply = blocking
            ? await reader("XREAD", ["COUNT", 500, "BLOCK", BLOCK_MS, "STREAMS", ...keys, ...keys.map((k) => last[k]!)])
            : await pollEach(reader, keys, last);
        } catch (e) {
          if (closed) break;
          throw e;
        }
        let sent = 0;
        for (const [key, entries] of streamEntries(reply)) {
          const q = streams.get(key);
          if (!q) continue;
          for (const [id, fields] of entries) {
            last[key] = id;
            const ev = toEvent(q, fields);
            if (ev) {
              await stream.writeSSE({ event: "job", data: JSON.stringify(ev), id: position() });
              sent++;
            }
          }
        }
        if (sent > 0) idleSince = Date.now();
        else if (Date.now() - idleSince >= (blocking ? 0 : BLOCK_MS)) {
          // a comment line keeps proxies from closing the stream and finds clients that left
          await stream.write(": keep-alive\n\n");
          idleSince = Date.now();
        }
        if (!blocking && sent === 0) await stream.sleep(500);
      }
    } finally {
      closed = true;
      ctx.closeStream(handle);
      conn?.disconnect();
    }
  }, async (err, stream) => {
    await stream.writeSSE({ event: "error", data: JSON.stringify({ error: err.message }) }).catch(() => {});
  });
}

/** One non-blocking XREAD per stream (cluster slots differ, or no connection of our own). */
async function pollEach(send: Send, keys: string[], last: Record<string, string>): Promise<unknown> {
  const out: [string, [string, string[]][]][] = [];
  for (const key of keys) {
    const r = await send("XREAD", ["COUNT", 500, "STREAMS", key, last[key]!]);
    for (const s of streamEntries(r)) out.push(s);
  }
  return out;
}
