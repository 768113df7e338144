import { expect, setDefaultTimeout, test } from "bun:test";
import { runChaos } from "./chaos-scenario.ts";

setDefaultTimeout(180_000);

// Workers SIGKILLed, SIGTERMed once and twice, connections cut after a command reached Redis and
// all at once, Redis killed and restarted from its AOF: no job is lost, stuck or completed twice,
// and a job runs a second time only when the process that ran it first was killed.
test("chaos: 2,000 jobs through kills, signals, cut connections and a Redis restart: none lost, stuck or completed twice", async () => {
  const r = await runChaos({ jobs: 2000, jobMs: [20, 300], concurrency: 8 });
  expect(r.steps).toHaveLength(8);
  expect({ lost: r.lost, stuck: r.stuck, completedTwice: r.completedTwice, unexplainedDuplicates: r.unexplainedDuplicates })
    .toEqual({ lost: 0, stuck: 0, completedTwice: 0, unexplainedDuplicates: 0 });
  expect(r.counts).toMatchObject({ waiting: 0, active: 0, delayed: 0, completed: 2000, failed: 0, aborted: 0, cancelled: 0 });
  // the faults really happened: the killed worker's jobs were recovered, the hard stop interrupted jobs
  expect(r.stalled).toBeGreaterThan(0);
  expect(r.interrupted).toBeGreaterThan(0);
});
