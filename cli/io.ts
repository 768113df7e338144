/**
 * What the CLI needs from its process besides signals and exit (those come from the runtime
 * adapters): its arguments, environment and working directory, and somewhere to write. Deno is
 * checked first, since Deno also provides a `process` global for npm compatibility.
 */

// Minimal declarations of the members used here.
interface DenoLike {
  args: string[];
  env: { get(name: string): string | undefined };
  cwd(): string;
}
interface Writable {
  write(chunk: string, callback: () => void): boolean;
}
interface ProcessLike {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd(): string;
  stdout?: Writable;
  stderr?: Writable;
}
const g = globalThis as { Deno?: DenoLike; process?: ProcessLike };

/** Where a command writes, and what it may read from its process. Tests pass their own. */
export interface Io {
  /** Writes one line to standard output. */
  out(line: string): void;
  /** Writes one line to standard error. */
  err(line: string): void;
  /** An environment variable, or undefined when unset (or not readable). */
  env(name: string): string | undefined;
  /** The working directory, against which relative paths are resolved. */
  cwd(): string;
}

/** The arguments after the script: `sluice enqueue q t` gives `["enqueue", "q", "t"]`. */
export function processArgs(): string[] {
  if (g.Deno) return [...g.Deno.args];
  return g.process ? g.process.argv.slice(2) : [];
}

/** The `Io` of the running process. */
export const processIo: Io = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  env(name) {
    try {
      return g.Deno ? g.Deno.env.get(name) : g.process?.env[name];
    } catch {
      return undefined; // Deno without --allow-env
    }
  },
  cwd() {
    return g.Deno ? g.Deno.cwd() : g.process?.cwd() ?? ".";
  },
};

/**
 * Resolves once what was written to stdout and stderr has been handed to the OS (at most
 * `timeoutMs` later), so an exit right after does not cut a large output short: Node writes to
 * a pipe asynchronously. Deno's console writes synchronously.
 */
export async function flushOutput(timeoutMs = 10_000): Promise<void> {
  const p = g.Deno ? undefined : g.process;
  if (!p) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drained = [p.stdout, p.stderr].map((s) =>
    new Promise<void>((resolve) => {
      try {
        // an empty write's callback runs after every earlier write was flushed
        if (!s) resolve();
        else s.write("", () => resolve());
      } catch {
        resolve();
      }
    })
  );
  await Promise.race([Promise.all(drained), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
  clearTimeout(timer);
}
