/**
 * Schedules: a job enqueued on every tick of a cron expression (with seconds and a time zone,
 * through `croner`) or of a fixed interval. Kept in the queue's Redis (`schedules` hash of specs,
 * `schedules:next` zset of next ticks); any worker of the queue runs them, no leader to configure.
 * Exactly one job per tick however many workers look: the tick's job id is its dedup key
 * (`sched:<id>:<tick ms>`), and only one of them moves the schedule on.
 * @module
 */
import { Cron } from "croner";
import { type Duration, parseDuration } from "./duration.ts";
import { ValidationError } from "./errors.ts";
import type { EnqueueOptions } from "./options.ts";

/** What `queue.upsertSchedule(id, spec)` takes: `cron` or `every`, and the job to enqueue. */
export interface ScheduleSpec {
  /** A cron expression, seconds optional: `"0 9 * * 1-5"`, `"*\/10 * * * * *"`. */
  cron?: string;
  /** A fixed interval (at least 1 s), counted from when the schedule was set. */
  every?: Duration;
  /** The time zone of `cron` (IANA, e.g. "Europe/Berlin"): ticks follow its daylight saving time. @default UTC */
  tz?: string;
  /** The task of the jobs. */
  task: string;
  /** Their data. */
  data?: unknown;
  /** Their options (not `jobId`, `delay` or `runAt`: the tick decides those). */
  options?: Omit<EnqueueOptions, "jobId" | "delay" | "runAt">;
  /**
   * Ticks missed while no worker of the queue ran (a gap in the schedulers' heartbeat): `run-once`
   * enqueues one job for them, `skip` none. Ticks only late (a busy worker) all run. @default "run-once"
   */
  misfire?: "run-once" | "skip";
}

/** A schedule as stored and listed. */
export interface ScheduleInfo {
  id: string;
  cron?: string;
  /** The interval in ms. */
  every?: number;
  tz?: string;
  task: string;
  data?: unknown;
  options?: ScheduleSpec["options"];
  misfire: "run-once" | "skip";
  /** Epoch ms the interval counts from. */
  anchor: number;
  /** The next tick (epoch ms), or undefined when the cron expression has no more. */
  next?: number;
  /** The last tick a job was enqueued for. */
  last?: number;
}

/** Validates a spec; returns it as stored (without `id`, `next`, `last`). */
export function checkSchedule(id: unknown, spec: unknown, now: number): Omit<ScheduleInfo, "id" | "next" | "last"> {
  const bad = (field: string, value: unknown, message: string) => new ValidationError("Invalid schedule", [{ field, value, message }]);
  if (typeof id !== "string" || !/^[^\s{}\x00-\x1f]{1,200}$/.test(id)) throw bad("id", id, "must be 1-200 characters without whitespace, braces or control characters");
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) throw bad("(spec)", spec, "must be { cron | every, task, data?, options?, tz?, misfire? }");
  const s = spec as ScheduleSpec;
  for (const key of Object.keys(s)) {
    if (!["cron", "every", "tz", "task", "data", "options", "misfire"].includes(key)) throw bad(key, (s as unknown as Record<string, unknown>)[key], "is not a known schedule field");
  }
  if ((s.cron === undefined) === (s.every === undefined)) throw bad("cron", s.cron, "give exactly one of 'cron' and 'every'");
  if (typeof s.task !== "string" || s.task === "") throw bad("task", s.task, "must be a task name");
  if (s.misfire !== undefined && s.misfire !== "run-once" && s.misfire !== "skip") throw bad("misfire", s.misfire, 'must be "run-once" or "skip"');
  if (s.options !== undefined) {
    if (typeof s.options !== "object" || s.options === null) throw bad("options", s.options, "must be an object of enqueue options");
    for (const key of ["jobId", "delay", "runAt"]) {
      if (Object.hasOwn(s.options, key)) throw bad(`options.${key}`, (s.options as Record<string, unknown>)[key], "is set by each tick, not by the schedule");
    }
  }
  const out: Omit<ScheduleInfo, "id" | "next" | "last"> = { task: s.task, misfire: s.misfire ?? "run-once", anchor: now };
  if (s.cron !== undefined) {
    if (typeof s.cron !== "string") throw bad("cron", s.cron, "must be a cron expression");
    if (s.tz !== undefined) {
      try {
        if (typeof s.tz !== "string") throw new Error("not a string");
        new Intl.DateTimeFormat("en-US", { timeZone: s.tz });
      } catch {
        throw bad("tz", s.tz, "is not valid: it must be an IANA time zone such as \"Europe/Berlin\"");
      }
    }
    try {
      new Cron(s.cron, { timezone: s.tz, paused: true }).nextRun(new Date(now));
    } catch (e) {
      throw bad("cron", s.cron, `is not valid: ${(e as Error)?.message ?? e}`);
    }
    out.cron = s.cron;
    if (s.tz !== undefined) out.tz = s.tz;
  } else {
    let every: number;
    try {
      every = parseDuration(s.every, "every");
    } catch {
      throw bad("every", s.every, 'must be a duration such as "30s" or "1 hour"');
    }
    if (every < 1000) throw bad("every", s.every, "must be at least 1 s");
    if (s.tz !== undefined) throw bad("tz", s.tz, "applies to 'cron' only");
    out.every = every;
  }
  if (s.data !== undefined) out.data = s.data;
  if (s.options !== undefined) out.options = s.options;
  return out;
}

/** The first tick strictly after `after` (epoch ms), or undefined when there is none. */
export function nextTick(s: Pick<ScheduleInfo, "cron" | "every" | "tz" | "anchor">, after: number): number | undefined {
  if (s.every !== undefined) {
    const k = Math.floor((after - s.anchor) / s.every) + 1;
    return s.anchor + Math.max(1, k) * s.every;
  }
  const next = new Cron(s.cron!, { timezone: s.tz, paused: true }).nextRun(new Date(after));
  return next ? next.getTime() : undefined;
}

/** Ticks in [from, to], at most `limit` of them (the earliest). */
export function ticksBetween(s: Pick<ScheduleInfo, "cron" | "every" | "tz" | "anchor">, from: number, to: number, limit = 1000): number[] {
  const out: number[] = [];
  let t: number | undefined = from;
  while (t !== undefined && t <= to && out.length < limit) {
    out.push(t);
    t = nextTick(s, t);
  }
  return out;
}

/** The job id of a schedule's tick: its dedup key. */
export function tickJobId(id: string, tick: number): string {
  return `sched:${id}:${tick}`;
}
