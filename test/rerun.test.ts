/**
 * Every script is correct when run twice with the same arguments: a client re-sends a command whose
 * reply a cut connection lost, and Redis may have run it already (DESIGN section 6). Each test
 * runs a script, then runs it again exactly as a re-send would, and checks nothing was lost,
 * duplicated or stranded, and that the repeat answers what the first run answered.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { Queue } from "../src/queue.ts";
import { GROUP, queueKeys } from "../src/keys.ts";
import { BULK, CANCEL, CHECK, ENQUEUE, FINISH_AND_FETCH, GROUP_CONCURRENCY, PROGRESS, PROMOTE, RECONCILE, RECOVER, RELEASE_CONSUMER, RETRY, SCHEDULE_ADVANCE, SCHEDULE_DUE, SWEEP, TRIM } from "../src/lua.ts";
import { packJob } from "../src/job.ts";
import { Script, type Send } from "../src/redis.ts";
import { entryIdBefore, finishAndFetch, type FetchedJob, type OutcomeKind, type OutcomeWrite } from "../src/worker/scripts.ts";
import { client, redisUrl, uniquePrefix } from "./harness.ts";

setDefaultTimeout(30_000);

const scripts = {
  enqueue: new Script(ENQUEUE),
  finish: new Script(FINISH_AND_FETCH),
  reconcile: new Script(RECONCILE),
  recover: new Script(RECOVER),
  check: new Script(CHECK),
  progress: new Script(PROGRESS),
  cancel: new Script(CANCEL),
  retry: new Script(RETRY),
  promote: new Script(PROMOTE),
  trim: new Script(TRIM),
  release: new Script(RELEASE_CONSUMER),
};

function setup() {
  const redis = client();
  const send: Send = (c, a) => redis.call(c, ...a) as Promise<unknown>;
  const prefix = uniquePrefix("rerun");
  const k = queueKeys(prefix, "q");
  const queue = new Queue("q", { redis: redisUrl(), prefix });
  const twice = async (s: Script, keys: string[], argv: (string | number)[]) => [await s.run(send, keys, argv), await s.run(send, keys, argv)];
  const finishKeys = [k.stream, k.delayed, k.completed, k.failed, k.aborted, k.events];
  // outcomes: [id, token, kind, payload, retryAt, group?], sent with started = now and attempt 1;
  // a job its entry held (id = token) carries its packed p, as the fetch gave it
  // the highest token of the outcomes with id = token, as the worker sends it
  const highest = (outcomes: (string | number)[][]) => {
    const own = outcomes.filter(([id, token]) => id === token).map(([, token]) => String(token)).sort((a, b) => (entryIdBefore(a, b) ? -1 : 1));
    return own.at(-1) ?? "";
  };
  // the outcomes of jobs with a hash first, then those of jobs their entries hold (id = token),
  // each in the order given: the reply's flags follow that order
  const finishArgv = (consumer: string, fetch: number, outcomes: (string | number)[][] = [], now = Date.now()) => {
    const hashed = outcomes.filter(([id, token]) => id !== token), own = outcomes.filter(([id, token]) => id === token);
    return [
      k.base, GROUP, consumer, now, fetch, 1000, 86_400_000, -1, -1, 1000, hashed.length, own.length, highest(outcomes),
      ...hashed.flatMap(([id, token, kind, payload, retryAt, group = ""]) => [id!, token!, payload!, `${kind}${now} 1 ${retryAt} ${group}`]),
      ...own.flatMap(([id, , kind, payload, retryAt, group = ""]) => {
        const p = packedOf.get(String(id))!;
        return [id!, retryAt ? `${kind}${retryAt}` : String(kind), `${now} ${now} 1 ${Buffer.byteLength(p)}\0${p}${payload}`];
      }),
    ];
  };
  const close = async () => {
    redis.disconnect();
    await queue.close();
  };
  return { redis, send, k, queue, twice, finishKeys, finishArgv, close };
}

/** Runs SWEEP over every SCAN step; returns the ids it re-queued. */
async function sweepAll(send: Send, k: ReturnType<typeof queueKeys>, deleted: string[]): Promise<string[]> {
  let cursor = "0";
  const found: string[] = [];
  do {
    const [next, ids] = (await new Script(SWEEP).run(send, [k.stream, k.events], [k.base, cursor, 10, Date.now(), 100, ...deleted])) as [string, string[]];
    found.push(...ids);
    cursor = String(next);
  } while (cursor !== "0");
  return found;
}

/** The packed p of each job a fetch returned, by id: an outcome of a job its entry held sends it back. */
const packedOf = new Map<string, string>();

/** The jobs a fetch returned (rows after the head, see FINISH_AND_FETCH): id, token (its entry id) and group. */
function rowsOf(reply: unknown): { id: string; token: string; group: string }[] {
  // the rows are one string of LF-separated parts; a part with a NUL: id NUL token NUL attempts
  // NUL stalls NUL group NUL p (a job with a hash); one without: the entry id of a job its entry
  // holds, then its p
  // (or, when long, the parts as elements after an empty one)
  const rep = reply as string[];
  const r = rep.length > 2 ? rep.slice(2) : rep[1] ? rep[1].split("\n") : [];
  const rows: { id: string; token: string; group: string }[] = [];
  for (let i = 0; i < r.length; i++) {
    if (!r[i]!.includes("\0")) {
      packedOf.set(r[i]!, r[i + 1]!);
      rows.push({ id: r[i]!, token: r[i]!, group: "" });
      i++;
      continue;
    }
    const [id, token, , , group, ...p] = r[i]!.split("\0");
    packedOf.set(id!, p.join("\0"));
    rows.push({ id: id!, token: token!, group: group! });
  }
  return rows;
}

describe("a script run twice (a re-sent command)", () => {
  test("FINISH_AND_FETCH: outcomes sent in any order, run twice, are each applied once (the highest entry the client names is the newest, whatever their order)", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    await queue.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ task: "t", data: i })));
    const fetched = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 5)));
    expect(fetched).toHaveLength(5);
    // finished in an order unlike their entries': the middle one first, the oldest last
    const order = [fetched[2]!, fetched[4]!, fetched[1]!, fetched[3]!, fetched[0]!];
    const [first, second] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 0, order.map((row) => [row.id, row.token, "c", `"${row.id}"`, 0])))) as [string[], string[]];
    expect(first[0]).toBe("11111||");
    expect(second[0]).toBe("11111||");
    expect(await queue.counts()).toMatchObject({ completed: 5, active: 0, waiting: 0 });
    for (const row of fetched) expect((await queue.getJob(row.id))?.result).toBe(row.id);
    expect(await redis.hlen(k.done)).toBe(5);
    expect(Number(await redis.hget(k.base + "stats", "completed"))).toBe(5);
    await close();
  });

  test("FINISH_AND_FETCH: rows of more than 8,000 bytes come back an element a part (after an empty one), shorter ones joined; both give each job its data, and a repeat fetches nothing twice", async () => {
    const { send, queue, twice, finishKeys, finishArgv, close } = setup();
    const big = await queue.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ task: "t", data: { i, pad: "é\n".repeat(1000) } })));
    const small = await queue.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ task: "t", data: { i } })));
    const long = (await scripts.finish.run(send, finishKeys, finishArgv("w1", 6))) as string[];
    expect(long[1]).toBe("");
    expect(long).toHaveLength(2 + 12);
    const longRows = rowsOf(long);
    expect(longRows.map((r) => r.id)).toEqual(big.map((j) => j.id));
    for (const r of longRows) expect(packedOf.get(r.id)!.split("\0")[1]).toContain("é\\n");
    const [first, second] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 3, longRows.map((r) => [r.id, r.token, "c", "1", 0])))) as [string[], string[]];
    expect(first).toHaveLength(2);
    expect(rowsOf(first).map((r) => r.id)).toEqual(small.map((j) => j.id));
    expect(rowsOf(second)).toEqual([]); // the first run's fetch took them all
    expect(await queue.counts()).toMatchObject({ completed: 6, active: 3, waiting: 0 });
    for (const j of big) expect((await queue.getJob(j.id))?.data).toMatchObject({ pad: "é\n".repeat(1000) });
    await close();
  });

  test("FINISH_AND_FETCH: a call that names no highest entry compares each one when it trims, and applies its outcomes once when run twice", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    await queue.enqueueMany(Array.from({ length: 4 }, (_, i) => ({ task: "t", data: i })));
    const fetched = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 4)));
    // the oldest stays running: the others' entries are after the oldest pending one, and go by XDEL
    const argv = finishArgv("w1", 0, fetched.slice(1).map((row) => [row.id, row.token, "c", "7", 0]));
    argv[12] = "";
    const [first, second] = (await twice(scripts.finish, finishKeys, argv)) as [string[], string[]];
    expect(first[0]).toBe("111||");
    expect(second[0]).toBe("111||");
    expect(await queue.counts()).toMatchObject({ completed: 3, active: 1, waiting: 0 });
    expect((await redis.xrange(k.stream, "-", "+")).map(([sid]) => sid)).toEqual([fetched[0]!.token]);
    for (const row of fetched.slice(1)) expect((await queue.getJob(row.id))?.result).toBe(7);
    await close();
  });

  test("FINISH_AND_FETCH: in a batch of jobs with no hash, one whose entry is no longer pending is fenced and the others are applied, also when run twice", async () => {
    const { send, k, redis, queue, twice, finishKeys, finishArgv, close } = setup();
    await queue.enqueueMany(Array.from({ length: 3 }, (_, i) => ({ task: "t", data: i })));
    const fetched = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 3)));
    // the middle one's entry went the way every path that takes such a job from its worker leaves
    // it (acknowledged and deleted), and nothing of it is left (its hash, written then, is gone too)
    await redis.xack(k.stream, GROUP, fetched[1]!.token);
    await redis.xdel(k.stream, fetched[1]!.token);
    const argv = finishArgv("w1", 0, fetched.map((row) => [row.id, row.token, "c", "7", 0]));
    const [first, second] = (await twice(scripts.finish, finishKeys, argv)) as [string[], string[]];
    expect(first[0]).toBe("101||");
    expect(second[0]).toBe("101||");
    expect(await queue.counts()).toMatchObject({ completed: 2, active: 0, waiting: 0 });
    expect((await queue.getJob(fetched[0]!.id))?.result).toBe(7);
    expect((await queue.getJob(fetched[2]!.id))?.result).toBe(7);
    expect(await redis.hexists(k.done, fetched[1]!.id)).toBe(0);
    expect(await queue.getJob(fetched[1]!.id)).toBeNull();
    expect(await redis.xlen(k.stream)).toBe(0);
    await close();
  });

  test("entryIdBefore orders stream entry ids by time, then sequence (compared as digit strings)", () => {
    expect(entryIdBefore("1700000000000-9", "1700000000000-10")).toBe(true);
    expect(entryIdBefore("1700000000000-10", "1700000000000-9")).toBe(false);
    expect(entryIdBefore("999999999999-5", "1700000000000-0")).toBe(true);
    expect(entryIdBefore("1700000000001-0", "1700000000000-99")).toBe(false);
    expect(entryIdBefore("1700000000000-99", "1700000000001-0")).toBe(true);
    expect(entryIdBefore("1700000000001-10", "1700000000002-9")).toBe(true);
    expect(entryIdBefore("1700000000000-18446744073709551614", "1700000000000-18446744073709551615")).toBe(true);
    expect(entryIdBefore("1700000000000-3", "1700000000000-3")).toBe(false);
  });

  test("FINISH_AND_FETCH: a repeated finish reports its outcomes as applied, not lost; the repeat's fetch leaves the first batch pending, and RECONCILE hands it back with no stall and no attempt counted", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const jobs = await queue.enqueueMany(Array.from({ length: 4 }, (_, i) => ({ task: "t", data: i })));
    // a first call fetches two jobs
    const fetched = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 2)));
    expect(fetched).toHaveLength(2);
    // the worker completes them; this call is run twice, and also fetches
    const outcomes = fetched.map((row) => [row.id, row.token, "c", '"ok"', 0]);
    const [first, second] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 1, outcomes))) as [string[], string[]];
    expect(first[0]).toBe("11||");
    expect(second[0]).toBe("11||"); // applied by the first run: still reported applied
    expect(rowsOf(first)).toHaveLength(1);
    expect(rowsOf(second)).toHaveLength(1);
    const strandedId = rowsOf(first)[0]!.id; // the first run's row: its reply was lost
    const runningRow = rowsOf(second)[0]!; // the repeat's row: the worker runs this one
    expect(runningRow.id).not.toBe(strandedId);
    expect(await queue.counts()).toMatchObject({ completed: 2, active: 2, waiting: 0 });
    // RECONCILE with what the worker holds: the stranded job goes back at once, uncounted
    const handed = (await scripts.reconcile.run(send, [k.stream, k.events], [k.base, GROUP, "w1", Date.now(), 100, `${runningRow.id} ${runningRow.token}`])) as string[];
    expect(handed).toEqual([strandedId]);
    const h = await redis.hgetall(k.job(strandedId));
    expect(h.state).toBe("waiting");
    expect(h.attempt ?? "0").toBe("0");
    expect(h.stalls ?? "0").toBe("0");
    expect(await queue.counts()).toMatchObject({ completed: 2, active: 1, waiting: 1 });
    // the job the worker runs is untouched
    expect((await queue.getJob(runningRow.id))?.state).toBe("active");
    expect(jobs).toHaveLength(4);
    await close();
  });

  test("FINISH_AND_FETCH: a repeated retry or interruption is applied once (the interruption's attempt not counted, one stream entry each)", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const a = await queue.enqueue("t", 1);
    const b = await queue.enqueue("t", 2);
    const rows = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 2)));
    const byId = new Map(rows.map((r) => [r.id, r.token]));
    const [first, second] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 0, [
      [a.id, byId.get(a.id)!, "i", '{"name":"JobAborted"}', 0],
      [b.id, byId.get(b.id)!, "r", '{"name":"Error"}', 0],
    ]))) as [string[], string[]];
    expect(first[0]).toBe("11||");
    expect(second[0]).toBe("11||");
    expect(await redis.hget(k.job(a.id), "attempt") ?? "0").toBe("0");
    expect(await redis.hget(k.job(b.id), "attempt")).toBe("1");
    expect(await redis.xlen(k.stream)).toBe(2);
    expect(await queue.counts()).toMatchObject({ waiting: 2, active: 0 });
    await close();
  });

  test("ENQUEUE: a repeat writes no second stream entry for a generated id and reports the job as new, not as a duplicate", async () => {
    const { redis, send, k, twice, close } = setup();
    const now = Date.now();
    const p = packJob("t", "{}", "", 3, now);
    const [first, second] = (await twice(scripts.enqueue, [k.stream, k.delayed, k.events], [k.base, GROUP, now, 100, 0, "call-a", 5, "gen-1", p, 0, "", ""])) as [string[], string[]];
    expect(first).toEqual(["+waiting"]);
    expect(second).toEqual(["+waiting"]);
    expect(await redis.xlen(k.stream)).toBe(1);
    // the short form (stride 1: p only) of a batch of plain jobs: each lives in its entry alone, its
    // id the entry's; the repeat answers the same ids and writes nothing
    const plain = [k.base, GROUP, now, 100, 0, "call-p", 1, p, p];
    const [pf, ps] = (await twice(scripts.enqueue, [k.stream, k.delayed, k.events], plain)) as [string[], string[]];
    expect(pf[0]).toBe("#");
    expect(ps).toEqual(pf);
    const plainIds = pf[1]!.split(" ");
    expect((await redis.xrange(k.stream, "-", "+")).slice(1).map(([sid, f]) => [sid, f])).toEqual(plainIds.map((sid) => [sid, ["p", p]]));
    expect(await redis.exists(plainIds.map((sid) => k.job(sid)))).toBe(0);
    await redis.xtrim(k.stream, "MAXLEN", 1); // (one entry again, as before the short form, for the counts below)
    // a caller's jobId: the repeat is recognised by the call's nonce; another call with the very
    // same fields (same millisecond, same data) is a duplicate
    const [f2, s2] = (await twice(scripts.enqueue, [k.stream, k.delayed, k.events], [k.base, GROUP, now, 100, 60_000, "call-b", 5, "mine", p, 0, "call-1", ""])) as [string[], string[]];
    expect([f2, s2]).toEqual([["+waiting"], ["+waiting"]]);
    expect(await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], [k.base, GROUP, now, 100, 60_000, "call-c", 5, "mine", p, 0, "call-2", ""])).toEqual(["=waiting"]);
    expect(await redis.xlen(k.stream)).toBe(2);
    // the job ran and retention removed it before the re-send arrived: it is not written again
    const gone = packJob("t", "{}", "", 3, now + 2);
    const argv = [k.base, GROUP, now, 100, 0, "call-d", 5, "gen-2", gone, 0, "", ""];
    expect(await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], argv)).toEqual(["+waiting"]);
    await redis.xtrim(k.stream, "MAXLEN", 0);
    await redis.del(k.job("gen-2"));
    expect(await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], argv)).toEqual(["+removed"]);
    expect(await redis.exists(k.job("gen-2"))).toBe(0);
    expect(await redis.xlen(k.stream)).toBe(0);
    await close();
  });

  test("a fetch drops a stream entry that is not its job's current entry instead of running the job twice", async () => {
    const { redis, send, k, queue, finishKeys, finishArgv, close } = setup();
    const job = await queue.enqueue("t", 1, { jobId: "stale" }); // (a caller's id: its hash holds it)
    const p = await redis.hget(k.job(job.id), "p");
    expect(p).toBeTruthy();
    // a second entry for the same job (what a repeated ENQUEUE wrote before)
    await redis.xadd(k.stream, "*", "j", job.id);
    const rows = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 10)));
    expect(rows.map((r) => r.id)).toEqual([job.id]);
    expect(await redis.xlen(k.stream)).toBe(1);
    await close();
  });

  test("a fetch of an entry whose job hash is gone drops the entry and says so with a `missing` event", async () => {
    const { redis, send, k, finishKeys, finishArgv, close } = setup();
    await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], [k.base, GROUP, Date.now(), 100, 0, "call-x", 5, "x", packJob("t", "1", "", 3, 1), 0, "", ""]);
    await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], [k.base, GROUP, Date.now(), 100, 0, "call-y", 5, "y", packJob("t", "1", "", 3, 1), 0, "", ""]);
    await redis.del(k.job("x"));
    expect(rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 1)))).toEqual([]);
    await redis.del(k.job("y"));
    expect(rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 5)))).toEqual([]);
    expect(await redis.xlen(k.stream)).toBe(0);
    expect(((await redis.xpending(k.stream, GROUP)) as unknown[])[0]).toBe(0);
    expect(await redis.exists(k.job("x"), k.job("y"))).toBe(0); // no half hash written
    const events = (await redis.xrange(k.events, "-", "+")).map(([, f]) => `${f[1]}:${f[3]}`);
    expect(events).toContain("missing:x");
    expect(events).toContain("missing:y");
    expect(await redis.hget(k.base + "stats", "missing")).toBe("2");
    await close();
  });

  test("CANCEL and RETRY: the repeat answers what the first run answered", async () => {
    const { redis, k, queue, twice, close } = setup();
    const job = await queue.enqueue("t", 1);
    const cancelArgv = [k.base, GROUP, job.id, Date.now(), 0, 0, 100, k.abortChannel, "call-1"];
    const [c1, c2] = await twice(scripts.cancel, [k.stream, k.delayed, k.cancelled, k.events], cancelArgv);
    expect(c1).toEqual(["cancelled", "waiting"]);
    expect(c2).toEqual(["cancelled", "waiting"]);
    const failed = await queue.enqueue("t", 2);
    await redis.hset(k.job(failed.id), "state", "failed");
    await redis.xtrim(k.stream, "MAXLEN", 0);
    const [r1, r2] = await twice(scripts.retry, [k.stream, k.failed, k.aborted, k.events], [k.base, failed.id, Date.now(), 100, "call-2"]);
    expect(r1).toEqual([1, "failed"]);
    expect(r2).toEqual([1, "failed"]);
    expect(await redis.xlen(k.stream)).toBe(1);
    await close();
  });

  test("PROGRESS is fenced in Redis: a stale attempt writes nothing and never re-creates a deleted hash", async () => {
    const { redis, k, queue, send, finishKeys, finishArgv, close } = setup();
    const job = await queue.enqueue("t", 1);
    const [row] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 1)));
    const token = row!.token;
    const progress = (t: string, v: string) => scripts.progress.run(send, [k.job(job.id), k.stream], [t, v, GROUP, job.id]);
    // the job's entry held it: its first progress writes its hash, as it waits on the entry
    expect(await redis.exists(k.job(job.id))).toBe(0);
    expect(await progress(token, "10")).toBe(1);
    expect(await redis.hmget(k.job(job.id), "state", "sid", "p", "progress")).toEqual(["waiting", token, packedOf.get(job.id)!, "10"]);
    expect(await progress("1-1", "99")).toBe(0);
    expect(await redis.hget(k.job(job.id), "progress")).toBe("10");
    // once the job moved on to another entry (recovered elsewhere), the old attempt writes nothing
    await redis.hset(k.job(job.id), "sid", "9-9");
    expect(await progress(token, "99")).toBe(0);
    expect(await redis.hget(k.job(job.id), "progress")).toBe("10");
    // finished and removed by retention (its entry acknowledged): nothing re-creates the hash
    await redis.xack(k.stream, GROUP, token);
    await redis.del(k.job(job.id));
    expect(await progress(token, "50")).toBe(0);
    expect(await redis.exists(k.job(job.id))).toBe(0);
    // a job its entry holds that no worker was delivered: nothing written either
    const waiting = await queue.enqueue("t", 2);
    expect(await scripts.progress.run(send, [k.job(waiting.id), k.stream], [waiting.id, "5", GROUP, waiting.id])).toBe(0);
    expect(await redis.exists(k.job(waiting.id))).toBe(0);
    await close();
  });
});

describe("the maintenance scripts run twice", () => {
  test("RECONCILE, CHECK, PROGRESS, PROMOTE, TRIM and RELEASE_CONSUMER: the repeat answers the same or finds nothing left, and changes nothing more", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const jobs = await queue.enqueueMany([{ task: "t", data: 1 }, { task: "t", data: 2 }]);
    const rows = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 2)));
    expect(rows).toHaveLength(2);
    const [held, stranded] = rows as [{ id: string; token: string; group: string }, { id: string; token: string; group: string }];
    // RECONCILE: hands back the job it does not hold, once
    const [r1, r2] = (await twice(scripts.reconcile, [k.stream, k.events], [k.base, GROUP, "w1", Date.now(), 100, `${held.id} ${held.token}`])) as [string[], string[]];
    expect([r1, r2]).toEqual([[stranded.id], []]);
    expect(await redis.xlen(k.stream)).toBe(2);
    expect(await redis.hget(k.job(stranded.id), "attempt") ?? "0").toBe("0");
    // CHECK: the same answer both times; the claim keeps the entry's delivery time at the attempt's start
    const started = Date.now() - 5000;
    const checkArgv = [k.base, GROUP, "w1", 1, Date.now(), held.id, held.token, started];
    expect(await twice(scripts.check, [k.stream], checkArgv)).toEqual([[0], [0]]);
    const startedAt = (await queue.getJob(held.id))?.startedAt ?? 0;
    expect(startedAt).toBeLessThanOrEqual(started + 1000);
    // PROGRESS: the same write twice
    expect(await twice(scripts.progress, [k.job(held.id), k.stream], [held.token, "50", GROUP, held.id])).toEqual([1, 1]);
    expect(await redis.hget(k.job(held.id), "progress")).toBe("50");
    // PROMOTE: a due delayed job moves once
    const later = await queue.enqueue("t", 3, { runAt: Date.now() + 60_000 });
    const [p1, p2] = (await twice(scripts.promote, [k.stream, k.delayed, k.events], [k.base, Date.now() + 120_000, 100, 100])) as [[number, string], [number, string]];
    expect([p1[0], p2[0]]).toEqual([1, 0]);
    expect(await redis.hget(k.job(later.id), "state")).toBe("waiting");
    expect(await redis.xlen(k.stream)).toBe(3);
    // TRIM: keeps the newest N, whatever the number of runs
    // (with their records in done, where a job completed with no hash keeps it, and one with a hash)
    for (let i = 0; i < 3; i++) await redis.zadd(k.completed, String(i), `1-${i}`);
    await redis.hset(k.done, "1-0", "r0", "1-1", "r1", "1-2", "r2");
    await redis.zadd(k.completed, "-1", "hashed");
    await redis.hset(k.job("hashed"), "state", "completed");
    await twice(scripts.trim, [k.completed, k.failed, k.aborted, k.cancelled], [k.base, Date.now(), 1, -1, -1, -1, -1, -1]);
    expect(await redis.zrange(k.completed, "0", "-1")).toEqual(["1-2"]);
    expect(await redis.hgetall(k.done)).toEqual({ "1-2": "r2" });
    expect(await redis.exists(k.job("hashed"))).toBe(0);
    // RELEASE_CONSUMER: the held job is still pending under w1, so w1 is kept; the repeat says the same
    expect(await twice(scripts.release, [k.stream], [k.base, GROUP, "w1", `${held.id} ${held.token}`])).toEqual([1, 1]);
    // without the worker holding it, the entry goes back to the stream once, and w1 leaves the group
    expect(await twice(scripts.release, [k.stream], [k.base, GROUP, "w1"])).toEqual([0, 0]);
    expect((await queue.getJob(held.id))?.state).toBe("waiting");
    expect(await redis.xlen(k.stream)).toBe(3);
    expect(jobs).toHaveLength(2);
    await close();
  });
});

describe("recovery edge cases", () => {
  test("an attempt whose job recovery failed (stalled too often) is fenced out, not reported as applied", async () => {
    const { redis, k, queue, send, finishKeys, finishArgv, close } = setup();
    const job = await queue.enqueue("t", 1);
    const [row] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("slow", 1)));
    // the owner looks dead: recovery with maxStalled 0 fails the job
    const r = (await scripts.recover.run(send, [k.stream, k.failed, k.events], [k.base, GROUP, "rescuer", Date.now(), 0, "0-0", 100, 0, 100])) as unknown[];
    expect(r[2]).toEqual([job.id]);
    // the slow attempt was alive after all, and now reports its outcome
    const [flags] = (await scripts.finish.run(send, finishKeys, finishArgv("slow", 0, [[job.id, row!.token, "c", '"late"', 0]]))) as string[];
    expect(flags).toBe("0||");
    expect(await redis.hget(k.job(job.id), "state")).toBe("failed");
    await close();
  });

  test("the sweep finds jobs of queues whose names hold glob characters, and only theirs", async () => {
    const redis = client();
    const send: Send = (c, a) => redis.call(c, ...a) as Promise<unknown>;
    const prefix = uniquePrefix("rerun");
    for (const name of ["a\\b", "x[y", "s*"]) {
      const k = queueKeys(prefix, name);
      const q = new Queue(name, { redis: redisUrl(), prefix });
      // (a caller's id: the sweep finds jobs by their hashes, and only such a job has one while it runs)
      const job = await q.enqueue("t", 1, { jobId: "swept" });
      // a job of another queue whose key the glob would match if it were not escaped
      const other = new Queue("sX", { redis: redisUrl(), prefix });
      await other.enqueue("t", 1, { jobId: "other" });
      await other.close();
      const [row] = rowsOf(await scripts.finish.run(send, [k.stream, k.delayed, k.completed, k.failed, k.aborted, k.events], [
        k.base, GROUP, "dead", Date.now(), 1, 1000, 86_400_000, -1, -1, 1000, 0, 0, "", "",
      ]));
      const sid = row!.token;
      await redis.xdel(k.stream, sid);
      expect([name, await sweepAll(send, k, [sid])]).toEqual([name, [job.id]]);
      await q.close();
    }
    redis.disconnect();
  });
});

describe("recovery respects live owners", () => {
  test("RECOVER leaves an idle entry whose owner heartbeats, and takes it once the owner is silent", async () => {
    const { redis, k, queue, send, finishKeys, finishArgv, close } = setup();
    const job = await queue.enqueue("t", 1);
    const [row] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("owner", 1)));
    const now = Date.now();
    // the owner heartbeats (CHECK with claim writes its time in `alive`)
    expect(await scripts.check.run(send, [k.stream], [k.base, GROUP, "owner", 1, now, job.id, row!.token, now])).toEqual([0]);
    const recoverArgv = (at: number) => [k.base, GROUP, "rescuer", at, 0, "0-0", 100, 1, 100];
    // idle 0 >= minIdle 0, but the owner was seen within minIdle: nothing taken
    const recoverKeys = [k.stream, k.failed, k.events];
    const stay = (await scripts.recover.run(send, recoverKeys, [k.base, GROUP, "rescuer", now, 5000, "0-0", 100, 1, 100])) as unknown[];
    expect(stay[1]).toEqual([]);
    expect((await queue.getJob(job.id))?.state).toBe("active");
    // the owner's last heartbeat is older than minIdle: it is taken
    await redis.zadd(k.base + "alive", now - 60_000, "owner");
    const taken = (await scripts.recover.run(send, recoverKeys, recoverArgv(now))) as unknown[];
    expect(taken[1]).toEqual([job.id]);
    const h = await redis.hgetall(k.job(job.id));
    expect([h.state, h.stalls]).toEqual(["waiting", "1"]);
    // the repeat finds nothing more to do
    const again = (await scripts.recover.run(send, recoverKeys, recoverArgv(now))) as unknown[];
    expect(again[1]).toEqual([]);
    expect(await redis.hget(k.job(job.id), "stalls")).toBe("1");
    await close();
  });

  test("RECOVER drops a pending entry deleted from the stream and names it; it deletes consumers that own nothing and stopped heartbeating", async () => {
    const { redis, k, queue, send, finishKeys, finishArgv, close } = setup();
    // (callers' ids: a job with a hash can be found again once its entry is deleted; a job its
    // entry alone held is deleted with it)
    await queue.enqueue("t", 1, { jobId: "d1" });
    await queue.enqueue("t", 2, { jobId: "d2" });
    const rows = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("dead", 2)));
    const sid = rows[0]!.token;
    await redis.xdel(k.stream, sid);
    await redis.xgroup("CREATECONSUMER", k.stream, GROUP, "idle-ghost");
    const r = (await scripts.recover.run(send, [k.stream, k.failed, k.events], [k.base, GROUP, "rescuer", Date.now(), 0, "0-0", 100, 1, 100])) as unknown[];
    expect(r[3]).toEqual([sid]);
    expect((r[1] as string[]).length).toBe(1);
    const consumers = ((await redis.xinfo("CONSUMERS", k.stream, GROUP)) as string[][]).map((c) => c[1]);
    expect(consumers).not.toContain("dead");
    expect(consumers).not.toContain("idle-ghost");
    expect(((await redis.xpending(k.stream, GROUP)) as unknown[])[0]).toBe(0);
    // the job of the deleted entry still waits on it (its attempt ran under a dead owner): the sweep finds it
    const orphan = rows[0]!.id;
    expect(await redis.hget(k.job(orphan), "sid")).toBe(sid);
    expect(await sweepAll(send, k, [sid])).toEqual([orphan]);
    // run again: the job has a new entry now, nothing more is found
    expect(await sweepAll(send, k, [sid])).toEqual([]);
    expect(await redis.hget(k.job(orphan), "state")).toBe("waiting");
    expect(await queue.counts()).toMatchObject({ waiting: 2, active: 0 });
    await close();
  });
});

describe("flow-control scripts run twice", () => {
  test("FINISH_AND_FETCH of a rate-limited queue: a repeat records each finish once and starts nothing more than the limit allows", async () => {
    const { redis, k, queue, twice, finishKeys, finishArgv, close } = setup();
    try {
      await queue.setRateLimit({ max: 2, duration: 60_000 });
      await queue.enqueueMany([1, 2, 3].map((i) => ({ task: "t", data: i })));
      const now = Date.now();
      const [a] = (await twice(scripts.finish, finishKeys, finishArgv("c1", 3, [], now))) as [string[]];
      // two started (the limit), none more on the repeat: the third stays in the stream
      expect(rowsOf(a)).toHaveLength(2);
      const { id: id1, token: tok1 } = rowsOf(a)[0]!;
      const [fin1, fin2] = (await twice(scripts.finish, finishKeys, finishArgv("c1", 1, [[id1, tok1, "c", "1", 0]], now + 1))) as [string[], string[]];
      expect([fin1[0], fin2[0]]).toEqual([fin1[0], fin1[0]]);
      expect(await redis.zcard(k.base + "rl")).toBe(1);
      // one finished and one running: the limit (2) is reached, the third waits with a hint
      expect(fin1[0]).toMatch(/^1\|w\d+\|$/);
      expect((await queue.counts()).waiting).toBe(1);
    } finally {
      await close();
    }
  });

  test("FINISH_AND_FETCH of a paused queue starts nothing, says so, and names the newest entry for the wait; a repeat answers the same", async () => {
    const { redis, k, queue, twice, finishKeys, finishArgv, close } = setup();
    try {
      await queue.enqueue("t", 1);
      const second = await queue.enqueue("t", 2);
      await queue.pause();
      const [f1, f2] = (await twice(scripts.finish, finishKeys, finishArgv("c1", 5))) as [string[], string[]];
      expect([f1, f2]).toEqual([["|p|", ""], ["|p|", ""]]);
      expect(((await redis.xpending(k.stream, GROUP)) as unknown[])[0]).toBe(0);
      await queue.resume();
      // short of jobs: the head ends with the newest entry id, after which a wait reads
      const [r] = (await twice(scripts.finish, finishKeys, finishArgv("c1", 5))) as [string[]];
      expect(rowsOf(r)).toHaveLength(2);
      expect(r[0]).toBe(`||${second.id}`); // (its entry holds it: its id is the entry's)
    } finally {
      await close();
    }
  });

  test("grouped ENQUEUE, FINISH and GROUP_CONCURRENCY: a repeat counts and releases nothing twice", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    try {
      await queue.setGroupConcurrency(1);
      const p = packJob("t", "1", "", 3, Date.now());
      const argv = [k.base, GROUP, Date.now(), 100, 0, "call-g", 5, "g1", p, 0, "", "team", "g2", p, 0, "", "team"];
      const [e1, e2] = (await twice(scripts.enqueue, [k.stream, k.delayed, k.events], argv)) as [string[], string[]];
      // both jobs new and waiting (one held by its group): the batch's one answer, both times
      expect([e1, e2]).toEqual([["*", "+waiting"], ["*", "+waiting"]]);
      expect(await redis.hget(k.base + "gactive", "team")).toBe("1");
      expect(await redis.llen(k.base + "g:team")).toBe(1);
      const [f] = (await twice(scripts.finish, finishKeys, finishArgv("c1", 1))) as [string[]];
      const { id, token } = rowsOf(f)[0]!;
      expect(id).toBe("g1");
      expect(rowsOf(f)[0]!.group).toBe("team"); // the row carries the job's group
      await twice(scripts.finish, finishKeys, finishArgv("c1", 0, [[id, token, "c", "1", 0, "team"]]));
      // g1 left and let g2 in, once
      expect(await redis.hget(k.base + "gactive", "team")).toBe("1");
      expect([await redis.llen(k.base + "g:team"), await redis.xlen(k.stream)]).toEqual([0, 1]);
      await queue.enqueue("t", 3, { group: "team", jobId: "g3" });
      const gc = new Script(GROUP_CONCURRENCY);
      await twice(gc, [k.stream], [k.base, 2]);
      expect([await redis.hget(k.base + "gactive", "team"), await redis.xlen(k.stream)]).toEqual(["2", 2]);
      void send;
    } finally {
      await close();
    }
  });

  test("SCHEDULE_DUE and SCHEDULE_ADVANCE: a repeated pass sees the same gap and claims nothing twice; a repeated advance moves nothing", async () => {
    const { redis, send, k, queue, close } = setup();
    try {
      await queue.upsertSchedule("s", { every: "1s", task: "t" });
      await redis.zadd(k.scheduleNext, 1000, "s");
      const due = new Script(SCHEDULE_DUE);
      const adv = new Script(SCHEDULE_ADVANCE);
      await due.run(send, [k.scheduleNext], [k.base, 5000, 10, 10_000]);
      await redis.zadd(k.scheduleNext, 1000, "s");
      const argv = [k.base, 9000, 10, 10_000];
      const first = (await due.run(send, [k.scheduleNext], argv)) as string[];
      const second = (await due.run(send, [k.scheduleNext], argv)) as string[];
      expect(first.slice(0, 3)).toEqual(["5000", "s", "1000"]);
      expect(second).toEqual(["5000"]); // the same gap; the schedule is leased to the first
      // a claim whose lease ran out (its claimer never advanced it) is taken again from its real tick
      const again = (await due.run(send, [k.scheduleNext], [k.base, 30_000, 10, 10_000])) as string[];
      expect(again.slice(1, 3)).toEqual(["s", "1000"]);
      const a0 = await adv.run(send, [k.scheduleNext], [k.base, "s", 19_000, 20_000, 9000]);
      expect(a0).toBe(0); // the first claim's lease is gone
      await redis.zadd(k.scheduleNext, 19_000, "s");
      const a1 = await adv.run(send, [k.scheduleNext], [k.base, "s", 19_000, 20_000, 9000]);
      const a2 = await adv.run(send, [k.scheduleNext], [k.base, "s", 19_000, 20_000, 9000]);
      expect([a1, a2, await redis.zscore(k.scheduleNext, "s")]).toEqual([1, 0, "20000"]);
    } finally {
      await close();
    }
  });
});

describe("bulk and grouped cancel run twice", () => {
  test("BULK: a re-sent chunk touches no job twice (retry, promote, cancel)", async () => {
    const { k, queue, twice, close } = setup();
    try {
      const bulk = new Script(BULK);
      const keys = [k.stream, k.delayed, k.completed, k.failed, k.cancelled, k.aborted, k.events];
      await queue.enqueueMany([1, 2, 3].map((i) => ({ task: "t", data: i, options: { delay: "1h" } })));
      const [p1, p2] = (await twice(bulk, keys, [k.base, GROUP, "promote", Date.now(), 500, 100, "", ""])) as [number[], number[]];
      expect([p1[0], p2[0]]).toEqual([3, 0]);
      expect((await queue.counts()).waiting).toBe(3);
      const [c1, c2] = (await twice(bulk, keys, [k.base, GROUP, "cancel", Date.now(), 500, 100, "", ""])) as [number[], number[]];
      expect([c1[0], c2[0]]).toEqual([3, 0]);
      expect(await queue.counts()).toMatchObject({ waiting: 0, cancelled: 3 });
    } finally {
      await close();
    }
  });

  test("BULK clean of completed jobs: a re-sent chunk removes no more, and the jobs' records in done go with them once", async () => {
    const { redis, k, twice, close } = setup();
    try {
      const bulk = new Script(BULK);
      const keys = [k.stream, k.delayed, k.completed, k.failed, k.cancelled, k.aborted, k.events];
      // two finished long ago (one with a record, one with a hash), one just now
      await redis.zadd(k.completed, "1", "1-0", "2", "h", String(Date.now()), "1-1");
      await redis.hset(k.done, "1-0", "r0", "1-1", "r1");
      await redis.hset(k.job("h"), "state", "completed");
      const [r1, r2] = (await twice(bulk, keys, [k.base, GROUP, "clean", Date.now(), 500, 100, 60_000, "completed"])) as [number[], number[]];
      expect([r1[0], r2[0]]).toEqual([2, 0]);
      expect(await redis.zrange(k.completed, "0", "-1")).toEqual(["1-1"]);
      expect(await redis.hgetall(k.done)).toEqual({ "1-1": "r1" });
      expect(await redis.exists(k.job("h"))).toBe(0);
    } finally {
      await close();
    }
  });

  test("CANCEL of a released grouped job: a repeat lets the group's next job in once", async () => {
    const { redis, k, queue, twice, close } = setup();
    try {
      await queue.setGroupConcurrency(1);
      const a = await queue.enqueue("t", 1, { group: "g" });
      const b = await queue.enqueue("t", 2, { group: "g" });
      const [r1, r2] = await twice(scripts.cancel, [k.stream, k.delayed, k.cancelled, k.events], [k.base, GROUP, a.id, Date.now(), 0, 0, 100, k.abortChannel, "call-gc"]);
      expect([r1, r2]).toEqual([["cancelled", "waiting"], ["cancelled", "waiting"]]);
      expect([await redis.hget(k.base + "gactive", "g"), await redis.llen(k.base + "g:g"), await redis.xlen(k.stream)]).toEqual(["1", 0, 1]);
      expect((await redis.hget(k.job(b.id), "sid")) !== "").toBe(true);
    } finally {
      await close();
    }
  });
});

describe("a job its stream entry holds (no hash until it ends or moves on), scripts run twice", () => {
  test("FINISH_AND_FETCH: the first run writes its record (in done, no hash) with its data and result, the repeat reports the same and writes nothing; once retention removed it, a repeat writes nothing and reports it fenced", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const [a, b] = await queue.enqueueMany([{ task: "t", data: "a" }, { task: "t", data: "b" }]);
    const rows = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 2)));
    expect(rows.map((r) => [r.id, r.token])).toEqual([[a!.id, a!.id], [b!.id, b!.id]]);
    const outcomes = rows.map((r) => [r.id, r.token, "c", '"ok"', 0]);
    const [first, second] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 0, outcomes))) as [string[], string[]];
    expect([first[0], second[0]]).toEqual(["11||", "11||"]);
    // no hash: one record each in done, written once, read back as the hash would be
    expect(await redis.exists(k.job(a!.id), k.job(b!.id))).toBe(0);
    expect(await redis.hlen(k.done)).toBe(2);
    expect(await queue.getJob(a!.id)).toMatchObject({ id: a!.id, state: "completed", name: "t", data: "a", result: "ok", attempt: 1 });
    expect(await queue.getJob(b!.id)).toMatchObject({ id: b!.id, state: "completed", name: "t", data: "b", result: "ok", attempt: 1 });
    expect(await redis.hget(k.base + "stats", "completed")).toBe("2");
    expect(await redis.zcard(k.completed)).toBe(2);
    expect(await redis.xlen(k.stream)).toBe(0);
    // retention removed both before another re-send arrived: nothing is written again
    await redis.hdel(k.done, a!.id, b!.id);
    expect(((await scripts.finish.run(send, finishKeys, finishArgv("w1", 0, outcomes))) as string[])[0]).toBe("00||");
    expect(await redis.exists(k.job(a!.id), k.job(b!.id), k.done)).toBe(0);
    expect(await redis.hget(k.base + "stats", "completed")).toBe("2");
    await close();
  });

  test("finishAndFetch: outcomes of jobs with and without a hash, in any order, each get their own result (the script takes them grouped); a failed job's record keeps multibyte data whole; run twice as once", async () => {
    const { send, k, queue, close } = setup();
    // a and c: their entries hold them; b: a caller's id, so a hash
    const a = await queue.enqueue("t", "a");
    const b = await queue.enqueue("t", "b", { jobId: "with-a-hash" });
    const c = await queue.enqueue("t", { s: "é😀\u0000x\n" });
    const d = await queue.enqueue("t", "d");
    const keep = { completed: { count: 1000, age: -1 }, failed: { count: 1000, age: -1 }, cancelled: { count: 1000, age: -1 } };
    const fetched = await finishAndFetch(send, k, { consumer: "w1", now: Date.now(), fetch: 4, keep, eventsMax: 1000, outcomes: [] });
    expect(fetched.jobs.map((j) => [j.id, j.token === j.id])).toEqual([[a.id, true], [b.id, false], [c.id, true], [d.id, true]]);
    const [ja, jb, jc, jd] = fetched.jobs as [FetchedJob, FetchedJob, FetchedJob, FetchedJob];
    const started = Date.now() - 500, retryAt = Date.now() + 3_600_000;
    const outcome = (j: FetchedJob, kind: OutcomeKind, payload: string, token = j.token): OutcomeWrite =>
      ({ id: j.id, token, started, attempt: j.attempt, group: j.group, kind, payload, retryAt: kind === "retry" ? retryAt : 0, packed: j.packed });
    // b's outcome names a token that is not its entry: fenced, between applied ones; d retries in an hour
    const outcomes = [outcome(ja, "completed", '"A"'), outcome(jb, "completed", '"B"', "1-1"), outcome(jc, "failed", '{"name":"Error","message":"é😀"}'), outcome(jd, "retry", '{"name":"Error","message":"later"}')];
    const call = { consumer: "w1", now: Date.now(), fetch: 0, keep, eventsMax: 1000, outcomes };
    const first = await finishAndFetch(send, k, call);
    const second = await finishAndFetch(send, k, call);
    expect([first.results, second.results]).toEqual([["applied", "fenced", "applied", "applied"], ["applied", "fenced", "applied", "applied"]]);
    expect(await queue.getJob(a.id)).toMatchObject({ state: "completed", result: "A", data: "a", attempt: 1, startedAt: started });
    expect((await queue.getJob(b.id))?.state).toBe("active");
    expect(await queue.getJob(c.id)).toMatchObject({ state: "failed", data: { s: "é😀\u0000x\n" }, error: { message: "é😀" }, attempt: 1, startedAt: started });
    expect(await queue.getJob(d.id)).toMatchObject({ state: "delayed", data: "d", attempt: 1, runAt: retryAt, error: { message: "later" } });
    expect(await queue.counts()).toMatchObject({ completed: 1, failed: 1, active: 1, delayed: 1 });
    await close();
  });

  test("finishAndFetch: a batch of 4,500 outcomes (more values than Lua's stack takes at once) is applied whole, and run twice as once", async () => {
    const { redis, send, k, queue, close } = setup();
    const n = 4500;
    await queue.enqueueMany(Array.from({ length: n }, (_, i) => ({ task: "t", data: i })));
    const keep = { completed: { count: 10_000, age: -1 }, failed: { count: 1000, age: -1 }, cancelled: { count: 1000, age: -1 } };
    const fetched = await finishAndFetch(send, k, { consumer: "w1", now: Date.now(), fetch: n, keep, eventsMax: 1000, outcomes: [] });
    expect(fetched.jobs.length).toBe(n);
    const started = Date.now() - 10;
    const outcomes: OutcomeWrite[] = fetched.jobs.map((j) => ({ id: j.id, token: j.token, started, attempt: j.attempt, group: j.group, kind: "completed", payload: "1", retryAt: 0, packed: j.packed }));
    const call = { consumer: "w1", now: Date.now(), fetch: 0, keep, eventsMax: 1000, outcomes };
    const first = await finishAndFetch(send, k, call);
    const second = await finishAndFetch(send, k, call);
    expect([first.results.filter((r) => r === "applied").length, second.results.filter((r) => r === "applied").length]).toEqual([n, n]);
    expect(await redis.hget(k.base + "stats", "completed")).toBe(String(n));
    expect([await redis.zcard(k.completed), await redis.hlen(k.base + "done"), await redis.xlen(k.stream)]).toEqual([n, n, 0]);
    expect(await queue.getJob(fetched.jobs[n - 1]!.id)).toMatchObject({ state: "completed", result: 1, data: n - 1 });
    await close();
  });

  test("FINISH_AND_FETCH: the outcome of a job its entry holds names only its kind (its start and attempt come in its record), run twice as once", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const [a, b] = await queue.enqueueMany([{ task: "t", data: "a" }, { task: "t", data: "b" }]);
    rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 2)));
    const started = Date.now() - 1234;
    // a completes, b fails: both in the short form
    const argv = finishArgv("w1", 0);
    argv[11] = 2;
    argv[12] = entryIdBefore(a!.id, b!.id) ? b!.id : a!.id;
    // (jobs their entries hold: id, meta and the record the worker builds)
    const record = (p: string, payload: string) => `${argv[3]} ${started} 1 ${Buffer.byteLength(p)}\0${p}${payload}`;
    argv.push(a!.id, "c", record(packedOf.get(a!.id)!, '"ok"'), b!.id, "f", record(packedOf.get(b!.id)!, '{"name":"Error","message":"no"}'));
    const [first, second] = (await twice(scripts.finish, finishKeys, argv)) as [string[], string[]];
    expect([first[0], second[0]]).toEqual(["11||", "11||"]);
    expect(await queue.getJob(a!.id)).toMatchObject({ state: "completed", result: "ok", attempt: 1, startedAt: started });
    expect(await queue.getJob(b!.id)).toMatchObject({ state: "failed", attempt: 1, startedAt: started, error: { message: "no" } });
    expect(await redis.hget(k.job(b!.id), "g")).toBeNull();
    expect(await redis.hget(k.base + "stats", "completed")).toBe("1");
    expect(await redis.hget(k.base + "stats", "failed")).toBe("1");
    await close();
  });

  test("FINISH_AND_FETCH: a retry moves it to a hash and an entry naming it, once; it runs again with its data and the attempt counted", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const job = await queue.enqueue("t", { n: 7 });
    const [row] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 1)));
    const [r1, r2] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 0, [[job.id, row!.token, "r", '{"name":"Error"}', 0]]))) as [string[], string[]];
    expect([r1[0], r2[0]]).toEqual(["1||", "1||"]);
    const entries = await redis.xrange(k.stream, "-", "+");
    expect(entries.map(([, f]) => f)).toEqual([["j", job.id]]);
    expect(await redis.hmget(k.job(job.id), "state", "attempt", "p")).toEqual(["waiting", "1", packedOf.get(job.id)!]);
    const again = (await scripts.finish.run(send, finishKeys, finishArgv("w2", 1))) as string[];
    expect(again).toHaveLength(2);
    const [id, token, before, , , name, data] = again[1]!.split("\0");
    expect([id, token === job.id, before, name, data]).toEqual([job.id, false, "1", "t", '{"n":7}']);
    await close();
  });

  test("an attempt whose job recovery took is fenced; CHECK says ours while its entry is pending here and lost after; RECOVER run twice counts one stall and writes the hash once", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const job = await queue.enqueue("t", 1);
    const [row] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("slow", 1)));
    const now = Date.now();
    const checkArgv = (claim: number) => [k.base, GROUP, "slow", claim, now, job.id, row!.token, now];
    expect(await twice(scripts.check, [k.stream], checkArgv(1))).toEqual([[0], [0]]);
    expect(await scripts.check.run(send, [k.stream], checkArgv(0))).toEqual([0]);
    expect(await redis.exists(k.job(job.id))).toBe(0);
    // the owner looks dead: recovery takes the job, writes its hash and re-queues it under a new entry
    await redis.zadd(k.base + "alive", now - 60_000, "slow");
    const recoverArgv = [k.base, GROUP, "rescuer", now, 0, "0-0", 100, 1, 100];
    const [t1, t2] = (await twice(scripts.recover, [k.stream, k.failed, k.events], recoverArgv)) as unknown[][];
    expect([t1![1], t2![1]]).toEqual([[job.id], []]);
    expect(await redis.hmget(k.job(job.id), "state", "stalls", "p")).toEqual(["waiting", "1", packedOf.get(job.id)!]);
    expect((await redis.xrange(k.stream, "-", "+")).map(([, f]) => f)).toEqual([["j", job.id]]);
    // the old attempt: lost to its heartbeat and its abort poll, fenced when it reports
    expect(await scripts.check.run(send, [k.stream], checkArgv(1))).toEqual([1]);
    expect(await scripts.check.run(send, [k.stream], checkArgv(0))).toEqual([1]);
    const [flags] = (await scripts.finish.run(send, finishKeys, finishArgv("slow", 0, [[job.id, row!.token, "c", '"late"', 0]]))) as string[];
    expect(flags).toBe("0||");
    expect(await redis.hget(k.job(job.id), "state")).toBe("waiting");
    await close();
  });

  test("RECONCILE and RELEASE_CONSUMER hand such a job back once, with its data, no attempt and no stall counted", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const [a, b] = await queue.enqueueMany([{ task: "t", data: "a" }, { task: "t", data: "b" }]);
    rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 2)));
    const [r1, r2] = (await twice(scripts.reconcile, [k.stream, k.events], [k.base, GROUP, "w1", Date.now(), 100, `${b!.id} ${b!.id}`])) as [string[], string[]];
    expect([r1, r2]).toEqual([[a!.id], []]);
    expect(await redis.hmget(k.job(a!.id), "state", "attempt", "stalls", "p")).toEqual(["waiting", null, null, packedOf.get(a!.id)!]);
    expect(await twice(scripts.release, [k.stream], [k.base, GROUP, "w1"])).toEqual([0, 0]);
    expect(await redis.hmget(k.job(b!.id), "state", "p")).toEqual(["waiting", packedOf.get(b!.id)!]);
    expect((await redis.xrange(k.stream, "-", "+")).map(([, f]) => f)).toEqual([["j", a!.id], ["j", b!.id]]);
    expect(await queue.counts()).toMatchObject({ waiting: 2, active: 0 });
    await close();
  });

  test("CANCEL and the bulk cancel: the repeat answers the same, and the cancelled job keeps its data", async () => {
    const { k, queue, twice, close } = setup();
    const [a, b, c] = await queue.enqueueMany([1, 2, 3].map((i) => ({ task: "t", data: i })));
    const cancelArgv = [k.base, GROUP, a!.id, Date.now(), 0, 0, 100, k.abortChannel, "call-1"];
    expect(await twice(scripts.cancel, [k.stream, k.delayed, k.cancelled, k.events], cancelArgv)).toEqual([["cancelled", "waiting"], ["cancelled", "waiting"]]);
    expect((await queue.getJob(a!.id))?.data).toBe(1);
    const bulk = new Script(BULK);
    const bulkKeys = [k.stream, k.delayed, k.completed, k.failed, k.cancelled, k.aborted, k.events];
    const bulkArgv = [k.base, GROUP, "cancel", Date.now(), 100, 100, ""];
    expect(await twice(bulk, bulkKeys, bulkArgv)).toEqual([[2, 2], [0, 0]]);
    expect([(await queue.getJob(b!.id))?.state, (await queue.getJob(c!.id))?.data]).toEqual(["cancelled", 3]);
    expect(await queue.counts()).toMatchObject({ waiting: 0, cancelled: 3 });
    await close();
  });
});

describe("the finish removes acknowledged entries by trimming the stream's head", () => {
  test("entries an older running job keeps in are deleted one by one; the stream always holds exactly the running and the waiting jobs; a repeat removes nothing more", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const [a, b, c, d] = await queue.enqueueMany([1, 2, 3, 4].map((i) => ({ task: "t", data: i })));
    const ids = async () => (await redis.xrange(k.stream, "-", "+")).map(([sid]) => sid);
    // w1 runs a (the oldest); w2 runs b and c, and finishes them while a still runs
    rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 1)));
    rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w2", 2)));
    const [f1, f2] = (await twice(scripts.finish, finishKeys, finishArgv("w2", 0, [[b!.id, b!.id, "c", "1", 0], [c!.id, c!.id, "c", "1", 0]]))) as [string[], string[]];
    expect([f1[0], f2[0]]).toEqual(["11||", "11||"]);
    expect(await ids()).toEqual([a!.id, d!.id]);
    expect(await queue.counts()).toMatchObject({ waiting: 1, active: 1, completed: 2 });
    // w1 finishes a and fetches d: everything before d goes from the head
    const [g1] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 1, [[a!.id, a!.id, "c", "1", 0]]))) as [string[]];
    expect(rowsOf(g1).map((r) => r.id)).toEqual([d!.id]);
    expect(await ids()).toEqual([d!.id]);
    // d finishes and the fetch finds nothing more: nothing pending, nothing waiting, the stream is empty
    const e = await queue.enqueue("t", 5);
    const [h1] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 5, [[d!.id, d!.id, "c", "1", 0]]))) as [string[]];
    expect(rowsOf(h1).map((r) => r.id)).toEqual([e.id]);
    expect(await ids()).toEqual([e.id]);
    const [last] = (await twice(scripts.finish, finishKeys, finishArgv("w1", 5, [[e.id, e.id, "c", "1", 0]]))) as [string[]];
    expect(last[0]).toBe(`1||${e.id}`);
    expect(await ids()).toEqual([]);
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 0, completed: 5 });
    // a job enqueued after that is still there for the next fetch
    const f = await queue.enqueue("t", 6);
    expect(rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 5))).map((r) => r.id)).toEqual([f.id]);
    await close();
  });
  test("a batch whose own jobs' entries are all older than the oldest pending one still deletes the entry of a job with a hash that is newer", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const ids = async () => (await redis.xrange(k.stream, "-", "+")).map(([sid]) => sid);
    // b (its entry holds it), then a (the same), then h (a caller's id: a hash, and an entry naming it)
    const [b, a] = await queue.enqueueMany([1, 2].map((i) => ({ task: "t", data: i })));
    await queue.enqueue("t", 3, { jobId: "h" });
    const [rb] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w2", 1)));
    rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 1)));
    const [rh] = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w2", 1)));
    expect([rb!.id, rh!.id]).toEqual([b!.id, "h"]);
    // w2 finishes b and h while a (between them) runs on: b goes with the head, h's entry by itself
    const [f1, f2] = (await twice(scripts.finish, finishKeys, finishArgv("w2", 0, [[b!.id, rb!.token, "c", "1", 0], ["h", rh!.token, "c", "1", 0]]))) as [string[], string[]];
    expect([f1[0], f2[0]]).toEqual(["11||", "11||"]);
    expect(await ids()).toEqual([a!.id]);
    expect(await queue.counts()).toMatchObject({ waiting: 0, active: 1, completed: 2 });
    await close();
  });
  test("the per-minute counts expire: the write that creates a field sets the key's expiry, and later writes and repeats leave it set", async () => {
    const { redis, send, k, queue, twice, finishKeys, finishArgv, close } = setup();
    const [a, b, c] = await queue.enqueueMany([1, 2, 3].map((i) => ({ task: "t", data: i })));
    const rows = rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 3)));
    const now = Date.now();
    const minute = `${k.base}m:${Math.floor(now / 60_000)}`;
    await twice(scripts.finish, finishKeys, finishArgv("w1", 0, [[a!.id, rows[0]!.token, "c", "1", 0]], now));
    expect(await redis.hgetall(minute)).toEqual({ c: "1" });
    const first = await redis.pttl(minute);
    expect(first).toBeGreaterThan(7_000_000);
    // a later write in the same minute that creates no field sets no expiry; one that creates 'f' does
    await redis.persist(minute);
    await scripts.finish.run(send, finishKeys, finishArgv("w1", 0, [[b!.id, rows[1]!.token, "c", "1", 0]], now));
    expect(await redis.pttl(minute)).toBe(-1);
    await twice(scripts.finish, finishKeys, finishArgv("w1", 0, [[c!.id, rows[2]!.token, "f", '"no"', 0]], now));
    expect(await redis.hgetall(minute)).toEqual({ c: "2", f: "1" });
    expect(await redis.pttl(minute)).toBeGreaterThan(7_000_000);
    await close();
  });
});

describe("edges of the entry-held jobs", () => {
  test("ENQUEUE: a call with no mark that reaches Redis more than 45 s after it was sent is refused unwritten; a repeat within the mark's life answers the first run", async () => {
    const { redis, k, twice, send, close } = setup();
    const p = packJob("t", "{}", "", 3, Date.now());
    const late = [k.base, GROUP, Date.now() - 60_000, 100, 0, "call-late", 1, p];
    const e = await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], late).then(() => undefined, (err: Error) => err);
    expect(e?.message).toContain("refused unwritten");
    expect(await redis.exists(k.stream)).toBe(0);
    const lateMixed = [k.base, GROUP, Date.now() - 60_000, 100, 0, "call-late-2", 5, "mine", p, 0, "n1", ""];
    expect((await scripts.enqueue.run(send, [k.stream, k.delayed, k.events], lateMixed).then(() => undefined, (err: Error) => err))?.message).toContain("refused unwritten");
    expect(await redis.exists(k.job("mine"))).toBe(0);
    // sent 30 s ago: written; its re-send answers the same ids, whenever the mark still holds them
    const recent = [k.base, GROUP, Date.now() - 30_000, 100, 0, "call-recent", 1, p, p];
    const [a, b] = (await twice(scripts.enqueue, [k.stream, k.delayed, k.events], recent)) as [string[], string[]];
    expect(b).toEqual(a);
    expect(await redis.xlen(k.stream)).toBe(2);
    await close();
  });

  test("an id Redis would read as another entry's ('0123-4' as 123-4), or refuses as out of range, names no job", async () => {
    const { redis, queue, close, k } = setup();
    const job = await queue.enqueue("t", 1);
    const padded = "0" + job.id;
    expect(await queue.getJob(padded)).toBeNull();
    expect(await queue.cancel(padded)).toEqual({ id: padded, outcome: "missing" });
    expect(await queue.deleteJob(padded)).toMatchObject({ outcome: "missing" });
    const huge = "1-99999999999999999999";
    expect(await queue.getJob(huge)).toBeNull();
    expect(await queue.cancel(huge)).toEqual({ id: huge, outcome: "missing" });
    expect(await queue.deleteJob(huge)).toMatchObject({ outcome: "missing" });
    // the real job is untouched
    expect((await queue.getJob(job.id))?.state).toBe("waiting");
    expect(await redis.exists(k.job(padded))).toBe(0);
    await close();
  });

  test("RELEASE_CONSUMER looks at every pending entry, past a thousand: it hands all back and only then leaves the group", async () => {
    const { redis, send, k, queue, finishKeys, finishArgv, close } = setup();
    await queue.enqueueMany(Array.from({ length: 1100 }, (_, i) => ({ task: "t", data: i })));
    expect(rowsOf(await scripts.finish.run(send, finishKeys, finishArgv("w1", 1100)))).toHaveLength(1100);
    // the worker holds the newest one still (an outcome it could not write)
    const [[newest]] = await redis.xrevrange(k.stream, "+", "-", "COUNT", 1);
    expect(await scripts.release.run(send, [k.stream], [k.base, GROUP, "w1", `${newest} ${newest}`])).toBe(1);
    expect(await queue.counts()).toMatchObject({ waiting: 1099, active: 1 });
    const consumers = ((await redis.xinfo("CONSUMERS", k.stream, GROUP)) as string[][]).map((c) => c[1]);
    expect(consumers).toContain("w1");
    await close();
  });
});

describe("the scripts' shared helpers", () => {
  test("each script defines every helper it calls (each gets only the helpers it names), and none defines one twice", async () => {
    const lua = await import("../src/lua.ts");
    const helpers = [...lua.EMIT.matchAll(/^local function (\w+)\(/gm)].map((m) => m[1]!);
    expect(helpers.length).toBeGreaterThan(20);
    const scripts = Object.entries(lua).filter(([name, v]) => typeof v === "string" && name !== "EMIT") as [string, string][];
    expect(scripts.length).toBeGreaterThan(15);
    for (const [name, text] of scripts) {
      const defined = [...text.matchAll(/^local function (\w+)\(/gm)].map((m) => m[1]!);
      expect([name, defined.length]).toEqual([name, new Set(defined).size]);
      const code = text.split("\n").filter((line) => !/^\s*--/.test(line)).join("\n");
      for (const h of helpers) {
        const called = new RegExp(`(?<![\\w.:])${h}\\s*\\(`).test(code.replace(new RegExp(`local function ${h}\\(`), ""));
        if (called) expect([name, h, defined.includes(h)]).toEqual([name, h, true]);
      }
    }
    // FINISH_AND_FETCH, the hot path, carries none of the helpers it does not call
    expect(lua.FINISH_AND_FETCH).not.toContain("local function lastDelivered(");
    expect(lua.FINISH_AND_FETCH).not.toContain("local function ownEntry(");
  });

  test("idge orders entry ids as numbers: as text when they have the same shape, by their parts when not", async () => {
    const { withHelpers } = await import("../src/lua.ts");
    const redis = client();
    const pairs: [string, string][] = [
      ["5-10", "5-9"], ["5-9", "5-10"], ["10-0", "9-9"], ["9-9", "10-0"], ["1700000000001-0", "1700000000000-5"],
      ["1700000000000-5", "1700000000001-0"], ["123-45", "123-45"], ["12-345", "123-45"], ["123-45", "12-345"], ["0-1", "0-0"],
    ];
    const got = (await redis.eval(withHelpers("local r = {} for i = 1, #ARGV, 2 do r[#r + 1] = idge(ARGV[i], ARGV[i + 1]) and 1 or 0 end return r"), 0, ...pairs.flat())) as number[];
    const num = (id: string) => id.split("-").map(BigInt) as [bigint, bigint];
    const want = pairs.map(([a, b]) => {
      const [am, as] = num(a), [bm, bs] = num(b);
      return am > bm || (am === bm && as >= bs) ? 1 : 0;
    });
    expect(want).toEqual([1, 0, 1, 0, 1, 0, 1, 0, 1, 1]);
    expect(got).toEqual(want);
    redis.disconnect();
  });

  test("every script that acknowledges a stream entry deletes entries too (the finish's one-XACK check relies on it: an entry acknowledged is an entry gone)", async () => {
    const lua = await import("../src/lua.ts");
    const scripts = Object.entries(lua).filter(([name, v]) => typeof v === "string" && name !== "EMIT") as [string, string][];
    const code = (text: string) => text.split("\n").filter((line) => !/^\s*--/.test(line)).join("\n");
    const acking = scripts.filter(([, text]) => code(text).includes("'XACK'"));
    // the finish, recovery, hand-backs, cancel and the consumer's release, at least
    expect(acking.map(([name]) => name)).toEqual(expect.arrayContaining(["FINISH_AND_FETCH", "RECOVER", "RECONCILE", "CANCEL", "RELEASE_CONSUMER"]));
    for (const [name, text] of acking) expect([name, /'XDEL'|'XTRIM'/.test(code(text))]).toEqual([name, true]);
    // the only script that claims an entry for a consumer other than its owner acknowledges it in the same step
    const claiming = scripts.filter(([, text]) => code(text).includes("'XCLAIM'")).map(([name]) => name).sort();
    expect(claiming).toEqual(["CHECK", "RECOVER"]);
    expect(code(lua.RECOVER)).toMatch(/'XCLAIM'[\s\S]*'XACK'/);
  });
});
