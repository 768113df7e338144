/**
 * The worker's side of the Lua boundary: each script of src/lua.ts behind a typed function. The
 * wire format (argument order, outcome letters, NUL-joined rows, numeric flags) lives here and in
 * src/lua.ts only; the rest of the worker speaks in objects.
 * @module
 */
import { Buffer } from "node:buffer";
import { GROUP, type QueueKeys } from "../keys.ts";
import { CHECK, FINISH_AND_FETCH, PROGRESS, PROMOTE, RECONCILE, RECOVER, RELEASE_CONSUMER, SWEEP, TRIM, SCHEDULE_ADVANCE, SCHEDULE_DUE } from "../lua.ts";
import { Script, type Send } from "../redis.ts";
import { unpackJob } from "../job.ts";

const scripts = {
  finish: new Script(FINISH_AND_FETCH),
  check: new Script(CHECK),
  recover: new Script(RECOVER),
  promote: new Script(PROMOTE),
  release: new Script(RELEASE_CONSUMER),
  reconcile: new Script(RECONCILE),
  progress: new Script(PROGRESS),
  trim: new Script(TRIM),
  sweep: new Script(SWEEP),
  scheduleDue: new Script(SCHEDULE_DUE),
  scheduleAdvance: new Script(SCHEDULE_ADVANCE),
};

/** A job a fetch activated for this worker. */
export interface FetchedJob {
  id: string;
  /** Its stream entry. */
  sid: string;
  /**
   * The fencing token of this attempt: its outcome is written only while the job holds it. It is
   * the entry id: a job that leaves a worker is always re-queued under a new entry.
   */
  token: string;
  attempt: number;
  /** The job's group, or "". */
  group: string;
  stalls: number;
  name: string;
  /** The job's data, as JSON. */
  data: string;
  /** The options stored at enqueue, as JSON ("" for every default). */
  opts: string;
  maxAttempts: number;
  createdAt: number;
  /**
   * For a job its stream entry holds (its id is the entry's; no hash is written until it ends or
   * moves on): the packed p as fetched, sent back with its outcome for the hash it gets then.
   */
  packed?: string;
}

/** How an attempt ended, as the finish script applies it. */
export type OutcomeKind = "completed" | "failed" | "aborted" | "retry" | "interrupted";

/** One attempt's outcome to write. */
export interface OutcomeWrite {
  id: string;
  token: string;
  /** When the attempt started (epoch ms), its number and the job's group, as fetched. */
  started: number;
  attempt: number;
  group: string;
  kind: OutcomeKind;
  /** The result or the stored error, as JSON. */
  payload: string;
  /** For a retry: when it is due (epoch ms). */
  retryAt: number;
  /** The packed p of a job its entry held (id = token), as fetched. */
  packed?: string;
}

/**
 * What became of an outcome: `applied`; `aborted` (a retry or interruption applied as aborted,
 * since a user asked to abort the job); `fenced` (the job is no longer this attempt's: nothing written).
 */
export type OutcomeResult = "applied" | "aborted" | "fenced";

/** Retention limits in the form the scripts take: -1 is no limit. */
export interface Keep {
  completed: { count: number; age: number };
  failed: { count: number; age: number };
  cancelled: { count: number; age: number };
}

const LETTER: Record<OutcomeKind, string> = { completed: "c", failed: "f", aborted: "a", retry: "r", interrupted: "i" };
const RESULT: Record<string, OutcomeResult> = { "1": "applied", "2": "aborted", "0": "fenced" };

/**
 * The record in `done` of a job its entry held that completes with no hash (see FINISH_AND_FETCH):
 * `<now> <started> <attempt> <bytes of p> NUL <p><payload>`. Built here, not in the script, where
 * every byte of a string it builds costs the server a hash step.
 */
function doneRecord(now: number, o: OutcomeWrite): string {
  const p = o.packed ?? "";
  // (joined, the string is flat: the command's writer measures it again, which costs less than on
  // the chain of pieces a template makes — 0.4 against 1.3 µs a 1 KB record on Node)
  return [now, " ", Math.round(o.started), " ", o.attempt, " ", Buffer.byteLength(p), "\0", p, o.payload].join("");
}

/** Whether stream entry id `a` (`<ms>-<seq>`, decimal, no leading zeros) comes before `b`. */
export function entryIdBefore(a: string, b: string): boolean {
  const da = a.indexOf("-"), db = b.indexOf("-");
  if (da !== db) return da < db;
  // (compared as digit strings, no substring made: a sequence number may exceed 2^53)
  // the same length: the digits line up, and text order is number order
  if (a.length === b.length) return a < b;
  // the times decide, else the shorter sequence is the smaller
  for (let i = 0; i < da; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return x < y;
  }
  return a.length < b.length;
}

/**
 * The job rows of a fetch, from its reply `{ head, rows }` (LF-separated parts) or
 * `{ head, '', part… }` (the parts as elements, when long). A part with a NUL is a job with a hash: id,
 * entry id, attempts before, stalls, group and the packed p, NUL-joined. A part without one is the
 * entry id of a job its entry holds (its id too; a new job: no attempt, stall or group), and the
 * next part its packed p.
 */
function parseRows(reply: string[]): FetchedJob[] {
  const jobs: FetchedJob[] = [];
  const parts = reply.length > 2 ? reply.slice(2) : reply[1] ? reply[1].split("\n") : [];
  for (let i = 0; i < parts.length; i++) {
    const row = parts[i]!;
    if (!row.includes("\0")) {
      // its packed p goes back with its outcome, for the record it gets then
      const packed = parts[++i] ?? "";
      const { name, data, opts, max, created } = unpackJob(packed);
      jobs.push({
        id: row, sid: row, token: row, attempt: 1, stalls: 0, group: "",
        name, data, opts, maxAttempts: Number(max), createdAt: Number(created), packed,
      });
      continue;
    }
    // id NUL sid NUL attempts NUL stalls NUL group NUL name NUL data NUL opts NUL max NUL created
    // (data is JSON and holds no NUL)
    const f = row.split("\0");
    jobs.push({
      id: f[0]!, sid: f[1]!, token: f[1]!, attempt: Number(f[2]) + 1, stalls: Number(f[3] || 0), group: f[4]!,
      name: f[5]!, data: f[6]!, opts: f[7]!, maxAttempts: Number(f[8]), createdAt: Number(f[9]),
    });
  }
  return jobs;
}

/**
 * Writes a batch of outcomes, then fetches and activates up to `fetch` ready jobs, in one script.
 * Safe to re-send: a repeat reports what it applied; jobs a lost reply fetched are handed back by
 * `reconcile`. `last`: when it found fewer jobs than asked, the newest entry id of the stream
 * (a wait for new jobs reads after it).
 */
export async function finishAndFetch(send: Send, k: QueueKeys, a: {
  consumer: string; now: number; fetch: number; keep: Keep; eventsMax: number; outcomes: OutcomeWrite[];
}): Promise<{ results: OutcomeResult[]; jobs: FetchedJob[]; gate: Gate; last?: string }> {
  // the outcomes of jobs with a hash, then those of jobs their entries hold (the script takes
  // them in that order, and its flags follow it)
  // (at: each one's index in a.outcomes)
  const order: OutcomeWrite[] = [], at: number[] = [];
  a.outcomes.forEach((o, i) => {
    if (o.id !== o.token) order.push(o), at.push(i);
  });
  const nHash = order.length;
  // the highest entry id of the outcomes whose entry holds their job (the script's trim compares
  // it alone with the oldest pending entry, and parses no other)
  let hi = "";
  a.outcomes.forEach((o, i) => {
    if (o.id !== o.token) return;
    order.push(o), at.push(i);
    if (hi === "" || entryIdBefore(hi, o.token)) hi = o.token;
  });
  const argv: (string | number)[] = [
    k.base, GROUP, a.consumer, a.now, a.fetch,
    a.keep.completed.count, a.keep.completed.age, a.keep.failed.count, a.keep.failed.age,
    a.eventsMax, nHash, order.length - nHash, hi,
  ];
  for (let i = 0; i < order.length; i++) {
    const o = order[i]!;
    if (i < nHash) {
      // (a first attempt with no group and no retry time: the short form, kind and start only)
      const short = o.attempt === 1 && o.group === "" && !o.retryAt;
      argv.push(o.id, o.token, o.payload, short ? `${LETTER[o.kind]}${Math.round(o.started)}` : `${LETTER[o.kind]}${Math.round(o.started)} ${o.attempt} ${Math.round(o.retryAt)} ${o.group}`);
    } else {
      // (its start and attempt are in its record; a job its entry holds has no group)
      argv.push(o.id, o.retryAt ? `${LETTER[o.kind]}${Math.round(o.retryAt)}` : LETTER[o.kind], doneRecord(a.now, o));
    }
  }
  const reply = (await scripts.finish.run(send, [k.stream, k.delayed, k.completed, k.failed, k.aborted, k.events], argv)) as string[];
  const [flags = "", hint = "", last = ""] = (reply[0] ?? "").split("|");
  const results: OutcomeResult[] = new Array(order.length);
  for (let i = 0; i < order.length; i++) results[at[i]!] = RESULT[flags[i]!] ?? "fenced";
  return {
    results,
    jobs: parseRows(reply),
    gate: hint === "p" ? { paused: true } : hint.startsWith("w") ? { waitMs: Number(hint.slice(1)) } : {},
    last: last || undefined,
  };
}

/** Why a fetch started nothing although it was asked to: the queue is paused, or rate limited for `waitMs`. */
export interface Gate {
  paused?: boolean;
  waitMs?: number;
}

/** What a heartbeat or abort poll learnt of one running attempt. */
export type CheckResult = "ours" | "lost" | "abort-requested";

/**
 * Heartbeat (`claim`: refreshes the consumer's liveness and its entries' idle time) or abort poll
 * for the attempts given.
 */
export async function check(send: Send, k: QueueKeys, a: {
  consumer: string; claim: boolean; now: number; attempts: { id: string; token: string; startedAt?: number }[];
}): Promise<CheckResult[]> {
  const argv: (string | number)[] = [k.base, GROUP, a.consumer, a.claim ? 1 : 0, a.now];
  for (const r of a.attempts) argv.push(r.id, r.token, r.startedAt ?? a.now);
  const flags = (await scripts.check.run(send, [k.stream], argv)) as number[];
  return flags.map((f) => (Number(f) === 0 ? "ours" : Number(f) === 2 ? "abort-requested" : "lost"));
}

/** One step of stalled recovery (see RECOVER). */
export async function recover(send: Send, k: QueueKeys, a: {
  consumer: string; now: number; minIdle: number; cursor: string; count: number; maxStalled: number; eventsMax: number;
}): Promise<{ cursor: string; recovered: string[]; failed: string[]; deleted: string[]; consumersRemoved: number }> {
  const [cursor, recovered, failed, deleted, removed] = (await scripts.recover.run(send, [k.stream, k.failed, k.events], [
    k.base, GROUP, a.consumer, a.now, a.minIdle, a.cursor, a.count, a.maxStalled, a.eventsMax,
  ])) as [string, string[], string[], string[], number];
  return { cursor, recovered, failed, deleted, consumersRemoved: Number(removed) };
}

/** One SCAN step looking for the jobs of deleted entries; returns the next cursor ("0": done). */
export async function sweep(send: Send, k: QueueKeys, a: {
  cursor: string; now: number; eventsMax: number; deleted: string[];
}): Promise<{ cursor: string; requeued: string[] }> {
  const [cursor, ids] = (await scripts.sweep.run(send, [k.stream, k.events], [k.base, a.cursor, 1000, a.now, a.eventsMax, ...a.deleted])) as [string, string[]];
  return { cursor: String(cursor), requeued: ids };
}

/**
 * Hands back what the consumer's pending list holds that none of `held` (attempts running here or
 * with an outcome not yet written) holds. Returns the ids of the jobs handed back.
 */
export async function reconcile(send: Send, k: QueueKeys, a: {
  consumer: string; now: number; eventsMax: number; held: Iterable<{ id: string; token: string }>;
}): Promise<string[]> {
  const argv: (string | number)[] = [k.base, GROUP, a.consumer, a.now, a.eventsMax];
  for (const h of a.held) argv.push(h.id + " " + h.token);
  return (await scripts.reconcile.run(send, [k.stream, k.events], argv)) as string[];
}

/** Retention of every finished state. */
export async function trim(send: Send, k: QueueKeys, a: { now: number; keep: Keep }): Promise<void> {
  const { completed: c, failed: f, cancelled: x } = a.keep;
  await scripts.trim.run(send, [k.completed, k.failed, k.aborted, k.cancelled], [k.base, a.now, c.count, c.age, f.count, f.age, x.count, x.age]);
}

/** Moves due delayed jobs to the stream. Returns when the next one is due (epoch ms), or undefined. */
export async function promote(send: Send, k: QueueKeys, a: { now: number; limit: number; eventsMax: number }): Promise<number | undefined> {
  const [, due] = (await scripts.promote.run(send, [k.stream, k.delayed, k.events], [k.base, a.now, a.limit, a.eventsMax])) as [number, string];
  const d = Number(due);
  return d >= 0 ? d : undefined;
}

/**
 * A stopping consumer's clean-up: what it was delivered and does not hold (`held`: attempts with
 * an outcome it could not write) goes back. Returns the pending entries it still owns.
 */
export async function release(send: Send, k: QueueKeys, consumer: string, held: Iterable<{ id: string; token: string }>): Promise<number> {
  const argv: (string | number)[] = [k.base, GROUP, consumer];
  for (const h of held) argv.push(h.id + " " + h.token);
  return Number(await scripts.release.run(send, [k.stream], argv));
}

/** Stores progress while the attempt holds its job. Returns false when it no longer does. */
export async function progress(send: Send, k: QueueKeys, a: { id: string; token: string; payload: string }): Promise<boolean> {
  return Number(await scripts.progress.run(send, [k.job(a.id), k.stream], [a.token, a.payload, GROUP, a.id])) === 1;
}

/** A schedule claimed by a scheduler pass (see SCHEDULE_DUE). */
export interface DueSchedule {
  id: string;
  /** Its tick that was due (the first one, when several are). */
  tick: number;
  spec: string;
}

/** Claims the queue's due schedules for `lease` ms; `prev` is the last pass before this one (any worker's). */
export async function scheduleDue(send: Send, k: QueueKeys, a: { now: number; limit: number; lease: number }): Promise<{ prev: number | undefined; due: DueSchedule[] }> {
  const reply = (await scripts.scheduleDue.run(send, [k.scheduleNext], [k.base, a.now, a.limit, a.lease])) as string[];
  if (reply.length === 0) return { prev: undefined, due: [] };
  const due: DueSchedule[] = [];
  for (let i = 1; i + 2 < reply.length; i += 3) due.push({ id: reply[i]!, tick: Number(reply[i + 1]), spec: reply[i + 2]! });
  return { prev: reply[0] ? Number(reply[0]) : undefined, due };
}

/** Moves a claimed schedule on to `next` (undefined: no more ticks); false when another pass did. */
export async function scheduleAdvance(send: Send, k: QueueKeys, a: { id: string; expected: number; next: number | undefined; last: number | undefined }): Promise<boolean> {
  return Number(await scripts.scheduleAdvance.run(send, [k.scheduleNext], [k.base, a.id, a.expected, a.next ?? "", a.last ?? ""])) === 1;
}
