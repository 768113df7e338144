/**
 * Renders the JSON lines of bench/matrix.sh (one bench/throughput.ts summary each) as one table.
 *
 *   node_modules/.bin/bun bench/matrix-table.ts bench/.out/matrix.jsonl
 */
import { readFileSync } from "node:fs";

interface Summary {
  runtime: string;
  concurrency: number;
  payload: number;
  medians: Record<string, { enqueue: number; process: number; redisUsPerJob: number; workerUsPerJob?: number }>;
}

const file = process.argv[2] ?? "bench/.out/matrix.jsonl";
const rows = readFileSync(file, "utf8").split("\n").filter((l) => l.trim().startsWith("{")).map((l) => JSON.parse(l) as Summary);
const w = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(1));
const n = (x: number | undefined) => (x === undefined ? "-" : Math.round(x).toLocaleString("en-US"));
const r = (a: number | undefined, b: number | undefined, pct = false) =>
  a && b ? (pct ? `${Math.round((a / b) * 100)}%` : `${(a / b).toFixed(2)}×`) : "-";
console.log("| runtime | concurrency | payload | sluice process/s | % of floor | × BullMQ | sluice enqueue/s | × bee-queue | sluice Redis µs/job | floor µs/job | BullMQ µs/job | worker µs/job: sluice / floor / BullMQ |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const s of rows) {
  const m = s.medians;
  console.log(
    `| ${s.runtime.split(" ")[0]} | ${s.concurrency} | ${s.payload ? `${s.payload} B` : "noop"} | ${n(m.sluice?.process)} | ${r(m.sluice?.process, m.floor?.process, true)} | ` +
      `${r(m.sluice?.process, m.bullmq?.process)} | ${n(m.sluice?.enqueue)} | ${r(m.sluice?.enqueue, m.bee?.enqueue)} | ` +
      `${m.sluice?.redisUsPerJob.toFixed(1) ?? "-"} | ${m.floor?.redisUsPerJob.toFixed(1) ?? "-"} | ${m.bullmq?.redisUsPerJob.toFixed(1) ?? "-"} | ` +
      `${w(m.sluice?.workerUsPerJob)} / ${w(m.floor?.workerUsPerJob)} / ${w(m.bullmq?.workerUsPerJob)} |`,
  );
}
