/**
 * The `sluice` command: finds the command, parses its arguments, runs it and turns what it throws
 * into a message and an exit code (0 ok, 1 error, 2 bad arguments, 3 worker left jobs behind).
 * The entry point (cli/sluice.ts) exits with the code; tests call `main` with their own `Io`.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { RedisOptions } from "ioredis";
import { ValidationError } from "../src/errors.ts";
import { EXIT } from "../src/runtime.ts";
import { formatFlags, parseArgs, UsageError } from "./args.ts";
import { admin } from "./commands/admin.ts";
import { cancel } from "./commands/cancel.ts";
import { enqueue } from "./commands/enqueue.ts";
import { job } from "./commands/job.ts";
import { stats } from "./commands/stats.ts";
import { worker } from "./commands/worker.ts";
import { bulk, pause, resume, schedule } from "./commands/flow.ts";
import { checkRedisUrl, CliError, type Command, DEFAULT_REDIS_URL, redact } from "./common.ts";
import type { Io } from "./io.ts";

// deno-lint-ignore no-explicit-any
export const COMMANDS: Command<any>[] = [worker, enqueue, cancel, job, stats, bulk, pause, resume, schedule, admin];

function version(): string {
  try {
    return JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
  } catch {
    return "unknown";
  }
}

/** The top-level help. */
export function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "sluice: a job queue on Redis Streams",
    "",
    "Usage: sluice <command> [arguments] [options]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Every command takes --redis-url URL (default: $REDIS_URL, else " + DEFAULT_REDIS_URL + "),",
    "--prefix PREFIX and --json. Durations are milliseconds or strings such as 500ms, 10s, 5m, 1 hour.",
    "Run 'sluice <command> --help' for a command's options.",
  ].join("\n");
}

/** The help of one command. */
export function commandHelp(cmd: Command): string {
  return [`Usage: ${cmd.usage}`, "", cmd.summary + ".", ...(cmd.details ? ["", cmd.details] : []), "", "Options:", formatFlags(cmd.flags)].join("\n");
}

function fail(io: Io, json: boolean, cmd: Command | undefined, kind: "usage" | "error", message: string, code: number, extra: Record<string, unknown> = {}): number {
  if (json) {
    io.err(JSON.stringify({ error: { kind, message, exitCode: code, ...(cmd ? { command: cmd.name } : {}), ...extra } }));
  } else {
    io.err(`sluice${cmd ? " " + cmd.name : ""}: ${message}`);
    if (kind === "usage") {
      io.err(cmd ? `Usage: ${cmd.usage}\nRun 'sluice ${cmd.name} --help' for its options.` : "Run 'sluice --help' for the commands.");
    }
  }
  return code;
}

/** Runs the `sluice` command line `argv` (the arguments after the script); resolves with the exit code. */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const json = argv.includes("--json");
  const [name, ...rest] = argv;
  if (name === undefined) {
    io.err(help());
    return EXIT.usage;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = rest[0] === undefined ? undefined : COMMANDS.find((c) => c.name === rest[0]);
    if (rest[0] !== undefined && !topic) return fail(io, json, undefined, "usage", `unknown command ${JSON.stringify(rest[0])}`, EXIT.usage);
    io.out(topic ? commandHelp(topic) : help());
    return EXIT.ok;
  }
  if (name === "--version" || name === "-V") {
    io.out(json ? JSON.stringify({ version: version() }) : `sluice ${version()}`);
    return EXIT.ok;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    const what = name.startsWith("-") ? `expected a command before ${name}` : `unknown command ${JSON.stringify(name)}`;
    return fail(io, json, undefined, "usage", what, EXIT.usage);
  }
  try {
    const { flags, positionals } = parseArgs(rest, cmd.flags);
    if (flags.help) {
      io.out(commandHelp(cmd));
      return EXIT.ok;
    }
    const p = cmd.positionals;
    if (positionals.length < p.min) throw new UsageError(`missing <${p.names[positionals.length]}>`);
    if (!p.variadic && positionals.length > p.names.length) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[p.names.length])}`);
    }
    const envUrl = io.env("REDIS_URL");
    let redisUrl = flags["redis-url"] !== undefined
      ? checkRedisUrl(flags["redis-url"] as string, "--redis-url")
      : envUrl
      ? checkRedisUrl(envUrl, "REDIS_URL")
      : DEFAULT_REDIS_URL;
    // --redis-password (or REDIS_PASSWORD) and --redis-db go into the URL every command connects with
    const password = (flags["redis-password"] as string | undefined) ?? io.env("REDIS_PASSWORD");
    const db = flags["redis-db"] as number | undefined;
    if (password !== undefined || db !== undefined) {
      const u = new URL(redisUrl);
      if (password !== undefined) u.password = encodeURIComponent(password);
      if (db !== undefined) u.pathname = `/${db}`;
      redisUrl = u.toString();
    }
    // --redis-tls-ca (or REDIS_TLS_CA): a CA for rediss:// that the URL cannot carry
    const redisOptions: RedisOptions = {};
    const caFile = (flags["redis-tls-ca"] as string | undefined) ?? (io.env("REDIS_TLS_CA") || undefined);
    if (caFile !== undefined) {
      const from = flags["redis-tls-ca"] !== undefined ? "--redis-tls-ca" : "REDIS_TLS_CA";
      if (new URL(redisUrl).protocol !== "rediss:") throw new UsageError(`${from} needs a rediss:// URL: got ${JSON.stringify(redact(redisUrl))}`);
      let ca: string;
      try {
        ca = readFileSync(resolve(io.cwd(), caFile), "utf8");
      } catch (e) {
        throw new UsageError(`${from} ${JSON.stringify(caFile)} cannot be read: ${(e as Error).message}`);
      }
      if (!ca.includes("-----BEGIN CERTIFICATE-----")) throw new UsageError(`${from} ${JSON.stringify(caFile)} holds no PEM certificate`);
      redisOptions.tls = { ca };
    }
    return await cmd.run({ flags, positionals, io, json: !!flags.json, redisUrl, redisOptions, prefix: flags.prefix as string | undefined });
  } catch (e) {
    if (UsageError.is(e)) return fail(io, json, cmd, "usage", e.message, EXIT.usage);
    if (ValidationError.is(e)) return fail(io, json, cmd, "usage", e.message, EXIT.usage, { issues: e.issues });
    if (CliError.is(e)) return fail(io, json, cmd, "error", e.message, e.code);
    const err = e as Error;
    if (io.env("SLUICE_DEBUG") && err?.stack) io.err(err.stack);
    return fail(io, json, cmd, "error", err?.message ?? String(e), EXIT.error);
  }
}
