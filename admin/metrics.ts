/**
 * `/metrics` in the Prometheus text format (version 0.0.4). Everything is read from Redis at
 * scrape time, so every instance of the app reports the same numbers.
 * @module
 */
import { JOB_STATES } from "../src/job.ts";
import type { AdminContext } from "./context.ts";

const WINDOW_MS = 60_000;

function label(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(l: Record<string, string>): string {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${label(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

class Metrics {
  readonly #lines: string[] = [];
  family(name: string, type: "gauge" | "counter", help: string, samples: [Record<string, string>, number][]): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) this.#lines.push(`${name}${labels(l)} ${Number.isFinite(v) ? v : 0}`);
  }
  toString(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/** Renders the metrics of every queue the app shows and of the live workers. */
export async function renderMetrics(ctx: AdminContext): Promise<string> {
  const names = await ctx.queueNames();
  const now = Date.now();
  const rows = await Promise.all(names.map(async (name) => {
    const q = (await ctx.queue(name))!;
    const k = q.keys;
    const [counts, completed, failed, aborted] = await Promise.all([
      q.counts(),
      q.send("ZCOUNT", [k.completed, now - WINDOW_MS, "+inf"]),
      q.send("ZCOUNT", [k.failed, now - WINDOW_MS, "+inf"]),
      q.send("ZCOUNT", [k.aborted, now - WINDOW_MS, "+inf"]),
    ]);
    return { name, counts, completed: Number(completed), failed: Number(failed), aborted: Number(aborted) };
  }));
  const workers = await ctx.workers();
  const m = new Metrics();
  m.family("sluice_jobs", "gauge", "Jobs per queue and state.", rows.flatMap((r) => JOB_STATES.map((s) => [{ queue: r.name, state: s }, r.counts[s]] as [Record<string, string>, number])));
  m.family("sluice_jobs_in_flight", "gauge", "Jobs being run by workers now (delivered and not yet settled).", rows.map((r) => [{ queue: r.name }, r.counts.active]));
  m.family(
    "sluice_jobs_finished_last_minute",
    "gauge",
    "Jobs that finished in the last 60 seconds, by outcome (read from the retention sets, so bounded by the retention policy).",
    rows.flatMap((r) => [
      [{ queue: r.name, outcome: "completed" }, r.completed],
      [{ queue: r.name, outcome: "failed" }, r.failed],
      [{ queue: r.name, outcome: "aborted" }, r.aborted],
    ] as [Record<string, string>, number][]),
  );
  m.family("sluice_throughput_per_second", "gauge", "Completed jobs per second over the last 60 seconds.", rows.map((r) => [{ queue: r.name }, Math.round((r.completed / (WINDOW_MS / 1000)) * 1000) / 1000]));
  m.family("sluice_failures_last_minute", "gauge", "Jobs that failed for good in the last 60 seconds.", rows.map((r) => [{ queue: r.name }, r.failed]));
  const phases = new Map<string, number>([["running", 0], ["draining", 0], ["aborting", 0], ["stopped", 0]]);
  for (const w of workers) phases.set(w.phase, (phases.get(w.phase) ?? 0) + 1);
  m.family("sluice_workers", "gauge", "Live workers by shutdown phase.", [...phases].map(([phase, n]) => [{ phase }, n]));
  m.family("sluice_worker_in_flight", "gauge", "Jobs each live worker is running.", workers.map((w) => [{ worker: w.id, host: w.host }, w.active.length]));
  m.family("sluice_worker_concurrency", "gauge", "Concurrency of each live worker.", workers.map((w) => [{ worker: w.id, host: w.host }, w.concurrency]));
  m.family("sluice_worker_heartbeat_age_seconds", "gauge", "Seconds since each live worker last heartbeated.", workers.map((w) => [{ worker: w.id, host: w.host }, Math.max(0, (now - w.heartbeatAt) / 1000)]));
  return m.toString();
}
