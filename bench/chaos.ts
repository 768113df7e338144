/**
 * The chaos run at scale: worker processes under Bun, Node and Deno work through a queue while
 * one is SIGKILLed, one SIGTERMed once and one twice, connections are cut after a command reached
 * Redis and all at once, and Redis is killed and restarted from its append-only file
 * (`appendfsync always`). The same scenario as test/chaos.test.ts (test/chaos-scenario.ts), with
 * more jobs. Prints lost / stuck / duplicate executions / completed-twice; exits 1 unless lost,
 * stuck, completed-twice and unexplained duplicates are all 0.
 *
 *   node_modules/.bin/bun run bench/chaos.ts [--jobs 50000] [--concurrency 20] [--min-ms 1] [--max-ms 20]
 *
 * A duplicate execution is a job whose handler finished more than once; it is explained when every
 * earlier run was on the SIGKILLed process (at-least-once: its outcome died with it).
 */
import { runChaos } from "../test/chaos-scenario.ts";
import { intArg } from "./_redis.ts";

const argv = process.argv.slice(2);
const jobs = intArg(argv, "jobs", 50_000);
const r = await runChaos({
  jobs,
  jobMs: [intArg(argv, "min-ms", 1), intArg(argv, "max-ms", 20)],
  concurrency: intArg(argv, "concurrency", 20),
  verbose: true,
  timeout: 600_000,
});
console.log("");
console.log(`jobs                    ${r.jobs}`);
console.log(`lost                    ${r.lost}`);
console.log(`stuck                   ${r.stuck}`);
console.log(`completed twice         ${r.completedTwice}`);
console.log(`duplicate executions    ${r.duplicateExecutions} (unexplained: ${r.unexplainedDuplicates})`);
console.log(`stalled (recovered)     ${r.stalled}`);
console.log(`interrupted (hard stop) ${r.interrupted}`);
console.log(`requeued (lost replies) ${r.requeued}`);
console.log(`took                    ${(r.ms / 1000).toFixed(1)} s`);
console.log(JSON.stringify({ ...r, steps: undefined }));
process.exit(r.lost + r.stuck + r.completedTwice + r.unexplainedDuplicates === 0 ? 0 : 1);
