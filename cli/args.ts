/**
 * The command-line parser of `sluice`: long flags (`--name value`, `--name=value`), boolean
 * switches, `-h`, and `--` to end the flags. Values are checked here, so a bad number or duration
 * is reported with the flag's name before anything touches Redis.
 */
import { parseDuration } from "../src/duration.ts";

/** Bad command-line arguments: the CLI prints the message and the usage, and exits with code 2. */
export class UsageError extends Error {
  override name = "UsageError";
  static is(e: unknown): e is UsageError {
    return e instanceof Error && e.name === "UsageError";
  }
}

/** How a flag's value is read. */
export type FlagType = "boolean" | "string" | "int" | "duration" | "list";

/** One flag of a command. Its key in `FlagSpecs` is its long name without the dashes. */
export interface FlagSpec {
  type: FlagType;
  /** One line for `--help`. */
  description: string;
  /** The value's name in `--help` (`--concurrency N`). @default by type */
  placeholder?: string;
  /** Smallest accepted value of an `int` flag. @default 0 */
  min?: number;
  /** Values accepted by a `string` flag. */
  choices?: readonly string[];
  /** A one-letter alias (`h` for `-h`). */
  short?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<T extends FlagType> = T extends "boolean" ? boolean
  : T extends "int" | "duration" ? number
  : T extends "list" ? string[]
  : string;

/** Parsed flags: a key for each flag given, typed by its spec (durations in milliseconds). */
export type FlagValues<S extends FlagSpecs> = { [K in keyof S]?: ValueOf<S[K]["type"]> };

export interface Parsed<S extends FlagSpecs> {
  flags: FlagValues<S>;
  positionals: string[];
}

const PLACEHOLDER: Record<FlagType, string> = { boolean: "", string: "VALUE", int: "N", duration: "DURATION", list: "A,B,..." };

function readValue(name: string, spec: FlagSpec, raw: string): string | number | string[] {
  switch (spec.type) {
    case "int": {
      const min = spec.min ?? 0;
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(Number(raw)) || Number(raw) < min) {
        throw new UsageError(`--${name} must be an integer >= ${min}: got ${JSON.stringify(raw)}`);
      }
      return Number(raw);
    }
    case "duration":
      try {
        return parseDuration(raw, `--${name}`);
      } catch {
        throw new UsageError(
          `--${name} must be a duration (milliseconds, or a string like "500ms", "10s", "5m", "1 hour"): got ${JSON.stringify(raw)}`,
        );
      }
    case "list": {
      const items = raw.split(",").map((s) => s.trim());
      if (items.some((s) => s === "")) throw new UsageError(`--${name} must be a comma-separated list without empty items: got ${JSON.stringify(raw)}`);
      return items;
    }
    default:
      if (spec.choices && !spec.choices.includes(raw)) {
        throw new UsageError(`--${name} must be one of ${spec.choices.join(", ")}: got ${JSON.stringify(raw)}`);
      }
      return raw;
  }
}

/**
 * Parses `argv` (the arguments after the command name) against `specs`. Throws a `UsageError`
 * naming the problem: an unknown flag, a missing value, a value a flag does not take, a bad
 * number or duration. A token such as `-5` is a positional (a JSON number), not a flag.
 *
 * @example
 * ```ts
 * const { flags, positionals } = parseArgs(["q", "--delay", "10s"], { delay: { type: "duration", description: "" } });
 * flags.delay; // 10000
 * ```
 */
export function parseArgs<S extends FlagSpecs>(argv: readonly string[], specs: S): Parsed<S> {
  const flags: Record<string, unknown> = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(specs).filter(([, s]) => s.short).map(([n, s]) => [s.short!, n]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else if (/^-[a-zA-Z]$/.test(arg)) {
      const long = byShort.get(arg.slice(1));
      if (long === undefined) throw new UsageError(`unknown option ${arg}`);
      name = long;
    } else if (arg.startsWith("-") && arg.length > 1 && !/^-[\d.]/.test(arg)) {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (!spec) throw new UsageError(`unknown option --${name}`);
    if (spec.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} does not take a value: got ${JSON.stringify(inline)}`);
      flags[name] = true;
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) throw new UsageError(`--${name} needs a value (${spec.placeholder ?? PLACEHOLDER[spec.type]})`);
      raw = next;
      i++;
    }
    if (raw === "") throw new UsageError(`--${name} needs a value (${spec.placeholder ?? PLACEHOLDER[spec.type]})`);
    const value = readValue(name, spec, raw);
    flags[name] = spec.type === "list" && Array.isArray(flags[name]) ? [...(flags[name] as string[]), ...(value as string[])] : value;
  }
  return { flags: flags as FlagValues<S>, positionals };
}

/** The options part of a command's `--help`: one line per flag, descriptions aligned. */
export function formatFlags(specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, s]) => {
    const value = s.type === "boolean" ? "" : ` ${s.placeholder ?? PLACEHOLDER[s.type]}`;
    return [`${s.short ? `-${s.short}, ` : "    "}--${name}${value}`, s.description] as const;
  });
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, text]) => `  ${left.padEnd(width)}  ${text}`).join("\n");
}
