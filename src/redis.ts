/**
 * ioredis connections for the worker and the admin app (which need a client of their own: blocking
 * reads, subscriptions). The producer side needs only src/send.ts.
 * @module
 */
import { Buffer } from "node:buffer";
import { tracingChannel } from "node:diagnostics_channel";
import { Cluster, Command, Redis } from "ioredis";
import { type IORedis, type Send, toSend } from "./send.ts";

export * from "./send.ts";

/** Opens an ioredis client for a URL. Auto-pipelining batches concurrent commands into one write. */
export function connect(url: string, extra: Record<string, unknown> = {}): Redis {
  const client = new Redis(url, { enableAutoPipelining: true, maxRetriesPerRequest: null, ...extra });
  client.on("error", () => {}); // it reconnects by itself; failures surface on the commands waiting
  return client;
}

/** An argument as ioredis sends it: a number as text (an integer beyond 2^53 in full). */
function toText(a: string | number): string {
  if (typeof a === "string") return a;
  return Number.isInteger(a) && !Number.isSafeInteger(a) ? BigInt(a).toString() : String(a);
}

/** (what a command is first made with: its arguments are set after) */
const NO_ARGS: string[] = [];

/**
 * A command whose text is joined from an array. ioredis builds a command's text by appending each
 * argument to one string, which a runtime that keeps such a string as a chain of pieces (Bun)
 * writes more slowly: for the worker's finish script (hundreds of arguments) a fifth of the
 * write's cost. Joined, the text is flat when it is built.
 *
 * Its arguments are copied (numbers made text), not flattened: ioredis flattens a command's
 * arguments with `Array.prototype.flat`, which Node 20 runs at about 110 ns an argument (4 µs for
 * a finish of 5 jobs, 18 µs for one of 50), where the copy takes a few. sluice's arguments are
 * flat already.
 * (ioredis's argument transformers, which it would skip too, are for lower-case `hset`, `hmset`,
 * `mset` and `msetnx` given an object: sluice sends neither.)
 */
class FlatCommand extends Command {
  constructor(name: string, args: (string | number)[], options: { replyEncoding: "utf8" }) {
    super(name, NO_ARGS, options);
    // numbers to text, as ioredis's constructor does (here, not with its private method, which a
    // later ioredis may not have)
    this.args = args.map(toText);
  }

  override toWritable(): string {
    // (every argument is text by now: `Send` takes strings and numbers, and the constructor
    // turned the numbers into text)
    const args = this.args as string[];
    const parts: string[] = new Array(args.length + 1);
    parts[0] = `*${args.length + 1}\r\n$${this.name.length}\r\n${this.name}\r\n`;
    for (let i = 0; i < args.length; i++) {
      const a = args[i]!;
      parts[i + 1] = `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
    }
    return parts.join("");
  }
}

/**
 * Whether anyone listens to ioredis's command traces, where ioredis cannot tell. ioredis traces a
 * command (its arguments copied to text, a traced promise) unless its tracing channel says it has
 * no subscribers, and a runtime whose tracing channel lacks `hasSubscribers` (Bun) is taken to
 * have some: every command paid for a trace nobody read, a twentieth of a Bun worker's CPU. There
 * the channel's five parts, which do tell, are asked instead. Undefined where ioredis can tell.
 */
const listened: (() => boolean) | undefined = (() => {
  try {
    const t = tracingChannel("ioredis:command") as unknown as Record<string, { hasSubscribers?: unknown } | undefined>;
    if (typeof t.hasSubscribers === "boolean") return undefined;
    const parts = [t.start, t.end, t.asyncStart, t.asyncEnd, t.error];
    if (!parts.every((c) => typeof c?.hasSubscribers === "boolean")) return undefined;
    return () => parts.some((c) => c!.hasSubscribers);
  } catch {
    return undefined; // no tracing channels: ioredis traces nothing either
  }
})();

/**
 * A `Send` for a connection sluice opened itself (no key prefix, no auto-pipelining): each
 * command goes out as a `FlatCommand`. A client the user gave is sent to as usual (`toSend`).
 */
export function ownSend(client: IORedis): Send {
  if (!(client instanceof Redis)) return toSend(client);
  return (name, args) => {
    const command = new FlatCommand(name, args, { replyEncoding: "utf8" });
    // (a command marked traced is not traced again)
    if (listened && !listened()) (command as unknown as { isTraced: boolean }).isTraced = true;
    return client.sendCommand(command as never) as Promise<unknown>;
  };
}

/** A new connection with the same settings (a cluster duplicates as a cluster). */
export function duplicate(client: IORedis, options: Record<string, unknown> = {}): IORedis {
  const c = client instanceof Cluster || "nodes" in client
    ? (client as Cluster).duplicate(undefined, options as never)
    : (client as Redis).duplicate(options as never);
  c.on("error", () => {}); // reconnects are retried; failures surface on the commands
  return c;
}
