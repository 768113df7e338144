/**
 * `/metrics` in the Prometheus text format (version 0.0.4). Everything is read from Redis at
 * scrape time, so every instance of the app reports the same numbers.
 * @module
 */
import { HISTOGRAM_BUCKETS, JOB_STATES } from "../src/job.ts";
import { toObject } from "../src/queue.ts";
import type { AdminContext } from "./context.ts";

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
  /** A histogram family from non-cumulative bucket counts (`le` → count) and a sum, per label set. */
  histogram(name: string, help: string, series: { labels: Record<string, string>; buckets: Map<number, number>; sum: number }[]): void {
    this.#lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} histogram`);
    for (const s of series) {
      let cumulative = 0;
      for (const le of [...HISTOGRAM_BUCKETS, Infinity]) {
        cumulative += s.buckets.get(le) ?? 0;
        this.#lines.push(`${name}_bucket${labels({ ...s.labels, le: le === Infinity ? "+Inf" : String(le) })} ${cumulative}`);
      }
      this.#lines.push(`${name}_sum${labels(s.labels)} ${s.sum}`, `${name}_count${labels(s.labels)} ${cumulative}`);
    }
  }
  toString(): string {
    return this.#lines.join("\n") + "\n";
  }
}

/**
 * The per-queue counters the transition scripts keep in `<queue>:stats` (HINCRBY in the same
 * script as the transition, so they count every job whatever retention removed since), with the
 * help text of each Prometheus counter.
 */
const COUNTERS: [field: string, help: string][] = [
  ["completed", "Jobs completed."],
  ["failed", "Jobs failed for good (attempts spent, unrecoverable, or stalled too often)."],
  ["retried", "Failed attempts scheduled for a retry."],
  ["aborted", "Jobs aborted at a user's request."],
  ["interrupted", "Attempts stopped by a hard shutdown and re-queued, not counted."],
  ["stalled", "Attempts recovered from workers that stopped heartbeating."],
  ["lost", "Attempts whose worker found the job taken over by another worker; nothing was written for them."],
  ["requeued", "Jobs a worker handed back after a reply was lost with its connection."],
  ["missing", "Stream entries dropped because their job's hash was gone."],
];

/** Renders the metrics of every queue the app shows and of the live workers. */
export async function renderMetrics(ctx: AdminContext): Promise<string> {
  const names = await ctx.queueNames();
  const now = Date.now();
  const rows = await Promise.all(names.map(async (name) => {
    const q = (await ctx.queue(name))!;
    const [counts, stats, hist] = await Promise.all([q.counts(), q.stats(), q.send("HGETALL", [q.keys.base + "hist"])]);
    return { name, counts, stats, hist: toObject(hist) };
  }));
  const workers = await ctx.workers();
  const m = new Metrics();
  m.family("sluice_jobs", "gauge", "Jobs per queue and state.", rows.flatMap((r) => JOB_STATES.map((s) => [{ queue: r.name, state: s }, r.counts[s]] as [Record<string, string>, number])));
  m.family("sluice_jobs_in_flight", "gauge", "Jobs being run by workers now (delivered and not yet settled).", rows.map((r) => [{ queue: r.name }, r.counts.active]));
  for (const [field, help] of COUNTERS) {
    m.family(`sluice_jobs_${field}_total`, "counter", help, rows.map((r) => [{ queue: r.name }, r.stats[field] ?? 0]));
  }
  const reasons = ["user", "timeout", "end-condition", "shutdown", "lost"];
  m.family("sluice_job_aborts_total", "counter", "Attempts whose signal was aborted, by reason (user, timeout, end-condition, shutdown, lost).", rows.flatMap((r) => reasons.map((reason) => [{ queue: r.name, reason }, r.stats[`abort:${reason}`] ?? 0] as [Record<string, string>, number])));
  const series = (kind: "d" | "w") => rows.map((r) => {
    const buckets = new Map<number, number>();
    for (const [field, v] of Object.entries(r.hist)) {
      const [k, le] = field.split(":");
      if (k === kind && le !== "sum") buckets.set(le === "Infinity" ? Infinity : Number(le), Number(v));
    }
    return { labels: { queue: r.name }, buckets, sum: Number(r.hist[`${kind}:sum`] ?? 0) };
  });
  m.histogram("sluice_job_duration_seconds", "Time from an attempt's start to its end (completed, failed, retried or aborted), as its worker measured it.", series("d"));
  m.histogram("sluice_job_wait_seconds", "Time from a job's enqueue to the start of an attempt (delays and earlier attempts included).", series("w"));
  const phases = new Map<string, number>([["running", 0], ["draining", 0], ["aborting", 0], ["stopped", 0]]);
  for (const w of workers) phases.set(w.phase, (phases.get(w.phase) ?? 0) + 1);
  m.family("sluice_workers", "gauge", "Live workers by shutdown phase.", [...phases].map(([phase, n]) => [{ phase }, n]));
  m.family("sluice_worker_in_flight", "gauge", "Jobs each live worker is running.", workers.map((w) => [{ worker: w.id, host: w.host }, w.active.length]));
  m.family("sluice_worker_concurrency", "gauge", "Concurrency of each live worker.", workers.map((w) => [{ worker: w.id, host: w.host }, w.concurrency]));
  m.family("sluice_worker_heartbeat_age_seconds", "gauge", "Seconds since each live worker last heartbeated.", workers.map((w) => [{ worker: w.id, host: w.host }, Math.max(0, (now - w.heartbeatAt) / 1000)]));
  m.family("sluice_worker_event_loop_lag_seconds", "gauge", "The largest event-loop lag each live worker measured between its last two heartbeats.", workers.map((w) => [{ worker: w.id, host: w.host }, (w.loopLagMs ?? 0) / 1000]));
  m.family("sluice_worker_pool_children", "gauge", "Threads and processes of each live worker's pool.", workers.flatMap((w) => w.pool ? [[{ worker: w.id, host: w.host, kind: "thread" }, w.pool.threads], [{ worker: w.id, host: w.host, kind: "process" }, w.pool.processes]] as [Record<string, string>, number][] : []));
  return m.toString();
}
