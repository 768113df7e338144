/**
 * A fault-injecting TCP proxy for tests: put it between a client and Redis, then cut a connection
 * right after a chosen command reached Redis (before its reply gets back), slow traffic down,
 * black-hole it, refuse new connections or drop every connection.
 *
 * It reads the client's bytes as RESP (arrays of bulk strings, which is all ioredis sends;
 * pipelined, or split anywhere across chunks; inline commands are read too) so it knows where each
 * command ends. Replies are passed through unparsed. Pure node:net, so it runs under Bun, Node and
 * Deno alike.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface FaultProxy {
  /** redis://127.0.0.1:<port>, pointing at the proxy. */
  url: string;
  port: number;
  /**
   * After the next `n` complete commands from clients (default 1; counted across all connections)
   * have been forwarded to Redis, cuts the connection the n-th one came on — the client socket is
   * destroyed and the bytes after that command are never forwarded — before Redis's reply is
   * passed back (reply bytes are dropped). `command` counts only commands of that name (the first
   * bulk string, case-insensitive), `match` only those whose decoded arguments it accepts (the
   * name included, as args[0]).
   *
   * Resolves once the cut has happened and Redis has read that command: the upstream connection is
   * half-closed after the command's bytes and the promise waits for Redis to close it, which Redis
   * does only after executing what it had read. So when it resolves, the command's effects are
   * visible to other connections. Rejects if the proxy is closed first.
   */
  cutAfter(opts?: { n?: number; command?: string | string[]; match?: (args: string[]) => boolean }): Promise<void>;
  /**
   * Delays every chunk in both directions by `ms` (0 turns it off); chunks keep their order.
   * Changing it re-times the chunks already waiting (each is due `ms` after it arrived), so
   * `delay(0)` releases everything held, in order.
   */
  delay(ms: number): void;
  /**
   * Black hole: connections stay open but every byte, both ways, is silently dropped, and new
   * connections are held (accepted, never connected to Redis) until `restore()`.
   */
  blackhole(): void;
  /**
   * Ends `blackhole()` and `refuse()`. A connection that lost bytes in the black hole is cut, as its
   * client and Redis are no longer in step (a client would take the next reply for a command Redis
   * never saw); held connections that lost nothing are connected to Redis and carry on.
   */
  restore(): void;
  /** Destroys every open connection (client and Redis sides) now. */
  cutAll(): void;
  /** Destroys new connections as soon as they are accepted, until `restore()`. */
  refuse(): void;
  /** Connections accepted so far, refused and held ones included. */
  readonly connections: number;
  /** Connections destroyed at once because of `refuse()`. */
  readonly refused: number;
  /** Connections open now. */
  readonly open: number;
  /** Bytes `delay()` is holding now, per direction. */
  readonly delayed: { toServer: number; toClient: number };
  /** Bytes dropped so far by `blackhole()`. */
  readonly dropped: number;
  /** Stops listening and destroys every connection; pending `cutAfter` promises reject. */
  close(): Promise<void>;
}

/** One complete command: where it ends in the chunk that completed it, and its arguments. */
interface ParsedCommand {
  end: number;
  args: string[];
}

const CR = 13;
const LF = 10;

/**
 * Incremental reader of client->server RESP: feed it chunks as they come, it reports the commands
 * each chunk completes. After malformed input it stops reporting (Redis would drop the client).
 */
export class CommandParser {
  #mode: "idle" | "arrayHeader" | "bulkHeader" | "bulkBody" | "inline" | "broken" = "idle";
  #line = "";
  #argsLeft = 0;
  #bodyLeft = 0; // bytes of the bulk string still to come, its CRLF included
  #parts: Buffer[] = [];
  #args: string[] = [];

  feed(chunk: Buffer): ParsedCommand[] {
    const out: ParsedCommand[] = [];
    let i = 0;
    while (i < chunk.length && this.#mode !== "broken") {
      if (this.#mode === "idle") {
        this.#line = "";
        this.#args = [];
        if (chunk[i] === 0x2a /* '*' */) {
          this.#mode = "arrayHeader";
          i++;
        } else {
          this.#mode = "inline";
        }
        continue;
      }
      if (this.#mode === "bulkBody") {
        const take = Math.min(this.#bodyLeft, chunk.length - i);
        this.#parts.push(chunk.subarray(i, i + take));
        this.#bodyLeft -= take;
        i += take;
        if (this.#bodyLeft === 0) {
          const body = Buffer.concat(this.#parts);
          this.#parts = [];
          this.#args.push(body.subarray(0, body.length - 2).toString("utf8"));
          if (--this.#argsLeft === 0) {
            out.push({ end: i, args: this.#args });
            this.#mode = "idle";
          } else {
            this.#mode = "bulkHeader";
          }
        }
        continue;
      }
      // a line: the array header, a bulk string's header or an inline command
      const nl = chunk.indexOf(LF, i);
      if (nl === -1) {
        this.#line += chunk.toString("latin1", i);
        i = chunk.length;
        break;
      }
      let line = this.#line + chunk.toString("latin1", i, nl);
      this.#line = "";
      i = nl + 1;
      if (line.charCodeAt(line.length - 1) === CR) line = line.slice(0, -1);
      if (this.#mode === "arrayHeader") {
        const n = Number(line);
        if (!Number.isInteger(n)) this.#mode = "broken";
        else if (n <= 0) this.#mode = "idle"; // Redis skips empty arrays
        else {
          this.#argsLeft = n;
          this.#mode = "bulkHeader";
        }
      } else if (this.#mode === "bulkHeader") {
        const len = line.startsWith("$") ? Number(line.slice(1)) : NaN;
        if (!Number.isInteger(len) || len < 0) this.#mode = "broken";
        else {
          this.#bodyLeft = len + 2;
          this.#mode = "bulkBody";
        }
      } else {
        const args = line.trim().split(/\s+/).filter(Boolean);
        if (args.length) out.push({ end: i, args });
        this.#mode = "idle";
      }
    }
    return out;
  }
}

/**
 * Bytes (or an action) in one direction, run in order, each no earlier than `delay` ms after it
 * arrived; the delay is read when the lane runs, so changing it re-times what is waiting.
 */
class Lane {
  #items: { at: number; bytes: number; run: () => void }[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** bytes waiting */
  held = 0;

  constructor(readonly delay: () => number) {}

  push(run: () => void, bytes = 0): void {
    if (this.#items.length === 0 && this.delay() <= 0) {
      run();
      return;
    }
    this.#items.push({ at: Date.now(), bytes, run });
    this.held += bytes;
    this.#schedule();
  }

  /** Re-reads the delay (after it changed). */
  retime(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#schedule();
  }

  clear(): void {
    this.#items = [];
    this.held = 0;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#items.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = Date.now();
      while (this.#items.length && this.#items[0]!.at + this.delay() <= now) {
        const item = this.#items.shift()!;
        this.held -= item.bytes;
        item.run();
      }
      this.#schedule();
    }, Math.max(0, this.#items[0]!.at + this.delay() - Date.now()));
  }
}

interface CutWatch {
  left: number;
  names: Set<string> | null;
  match: ((args: string[]) => boolean) | undefined;
  resolve(): void;
  reject(e: Error): void;
}

class Conn {
  upstream: Socket | undefined;
  readonly parser = new CommandParser();
  readonly toServer: Lane;
  readonly toClient: Lane;
  /** bytes were dropped in a black hole: client and server are out of step */
  desynced = false;
  /** a cut is under way or done: nothing more is forwarded either way */
  cutting = false;
  closed = false;
  /** cutAfter promises whose cut is waiting in the toServer lane (behind delayed bytes) */
  pendingCut: CutWatch[] = [];
  upstreamConnected = false;

  constructor(
    readonly client: Socket,
    delay: () => number,
  ) {
    this.toServer = new Lane(delay);
    this.toClient = new Lane(delay);
  }
}

export function startProxy(target: { host?: string; port: number }): Promise<FaultProxy> {
  const host = target.host ?? "127.0.0.1";
  const conns = new Set<Conn>();
  const watches = new Set<CutWatch>();
  let delayMs = 0;
  let holing = false;
  let refusing = false;
  let accepted = 0;
  let refusedCount = 0;
  let droppedBytes = 0;

  function drop(c: Conn, bytes: number): void {
    c.desynced = true;
    droppedBytes += bytes;
  }

  function destroyConn(c: Conn): void {
    for (const w of c.pendingCut.splice(0)) w.reject(new Error("the connection was cut before the command was forwarded"));
    c.cutting = true;
    c.toServer.clear();
    c.toClient.clear();
    c.client.destroy();
    c.upstream?.destroy();
    forget(c);
  }

  function forget(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    conns.delete(c);
  }

  function connectUpstream(c: Conn): void {
    const up = connect({ host, port: target.port });
    c.upstream = up;
    up.setNoDelay(true);
    up.on("error", () => {});
    up.once("connect", () => (c.upstreamConnected = true));
    up.on("data", (chunk: Buffer) => {
      if (c.cutting) return; // the reply to a cut command, or anything after it
      if (holing) {
        drop(c, chunk.length);
        return;
      }
      c.toClient.push(() => {
        if (c.cutting) return;
        if (holing) {
          drop(c, chunk.length);
          return;
        }
        c.client.write(chunk);
      }, chunk.length);
    });
    up.on("close", () => {
      if (c.cutting) return;
      // Redis went away: pass on what was already on its way, then close the client
      c.toClient.push(() => {
        c.client.end();
        forget(c);
      });
    });
  }

  /** Forwards the command's bytes (already queued), then cuts, once the lane gets there. */
  function scheduleCut(c: Conn, fired: CutWatch[]): void {
    c.pendingCut.push(...fired);
    c.toServer.push(() => {
      c.pendingCut = [];
      const settle = () => {
        if (c.upstreamConnected) for (const w of fired) w.resolve();
        else for (const w of fired) w.reject(new Error("Redis could not be reached: the command was never forwarded"));
      };
      c.cutting = true;
      c.toClient.clear();
      c.client.destroy();
      const up = c.upstream;
      if (!up || up.destroyed) {
        forget(c);
        settle();
        return;
      }
      // half-close after the command's bytes; Redis closes its side once it has read (and so
      // executed) everything before our FIN, and we wait for that before reporting the cut
      up.once("close", () => {
        forget(c);
        settle();
      });
      up.once("end", () => up.destroy());
      up.end();
    });
  }

  function onClientData(c: Conn, chunk: Buffer): void {
    if (c.cutting) return;
    if (holing || !c.upstream) {
      // dropped; still parsed, so the reading stays in step with the client's framing
      c.parser.feed(chunk);
      drop(c, chunk.length);
      return;
    }
    const commands = c.parser.feed(chunk);
    for (const cmd of commands) {
      const fired: CutWatch[] = [];
      const name = (cmd.args[0] ?? "").toUpperCase();
      for (const w of watches) {
        if (w.names && !w.names.has(name)) continue;
        if (w.match && !w.match(cmd.args)) continue;
        if (--w.left === 0) {
          fired.push(w);
          watches.delete(w);
        }
      }
      if (fired.length) {
        forward(c, chunk.subarray(0, cmd.end));
        scheduleCut(c, fired);
        c.cutting = true; // the rest of this chunk, and anything later, is never forwarded
        return;
      }
    }
    forward(c, chunk);
  }

  function forward(c: Conn, bytes: Buffer): void {
    if (bytes.length === 0) return;
    c.toServer.push(() => {
      if (holing) {
        drop(c, bytes.length);
        return;
      }
      c.upstream?.write(bytes);
    }, bytes.length);
  }

  const server: Server = createServer((socket) => {
    accepted++;
    socket.on("error", () => {});
    if (refusing) {
      refusedCount++;
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const c = new Conn(socket, () => delayMs);
    conns.add(c);
    socket.on("data", (chunk: Buffer) => onClientData(c, chunk));
    socket.on("close", () => {
      if (c.cutting || c.closed) return;
      // the client hung up: let what it sent reach Redis, then close that side too
      if (!c.upstream) {
        forget(c);
        return;
      }
      c.toServer.push(() => {
        c.upstream?.end();
        forget(c);
      });
    });
    if (!holing) connectUpstream(c);
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      const port = (server.address() as { port: number }).port;
      const proxy: FaultProxy = {
        url: `redis://127.0.0.1:${port}`,
        port,
        cutAfter(opts = {}) {
          const n = opts.n ?? 1;
          if (!Number.isInteger(n) || n < 1) return Promise.reject(new Error(`cutAfter: n must be a positive integer, not ${n}`));
          const names = opts.command === undefined ? null : new Set((Array.isArray(opts.command) ? opts.command : [opts.command]).map((s) => s.toUpperCase()));
          return new Promise<void>((res, rej) => {
            watches.add({ left: n, names, match: opts.match, resolve: res, reject: rej });
          });
        },
        delay(ms) {
          delayMs = Math.max(0, ms);
          for (const c of conns) {
            c.toServer.retime();
            c.toClient.retime();
          }
        },
        blackhole() {
          holing = true;
        },
        restore() {
          holing = false;
          refusing = false;
          for (const c of [...conns]) {
            if (c.cutting) continue;
            if (c.desynced) destroyConn(c);
            else if (!c.upstream) connectUpstream(c);
          }
        },
        cutAll() {
          for (const c of [...conns]) destroyConn(c);
        },
        refuse() {
          refusing = true;
        },
        get connections() {
          return accepted;
        },
        get refused() {
          return refusedCount;
        },
        get open() {
          return conns.size;
        },
        get delayed() {
          let toServer = 0;
          let toClient = 0;
          for (const c of conns) {
            toServer += c.toServer.held;
            toClient += c.toClient.held;
          }
          return { toServer, toClient };
        },
        get dropped() {
          return droppedBytes;
        },
        close() {
          for (const w of watches) w.reject(new Error("proxy closed before the cut"));
          watches.clear();
          for (const c of [...conns]) destroyConn(c);
          return new Promise<void>((r) => server.close(() => r()));
        },
      };
      resolve(proxy);
    });
  });
}
