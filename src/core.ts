/**
 * The producer side alone: `Queue` and what it needs, for edge and serverless handlers. Nothing
 * in this entry's graph imports a Redis client or a Node built-in: give `Queue` a command sender
 * (an HTTP Redis client, Bun's RedisClient) and bundle it for any platform. Given a URL instead,
 * it loads ioredis at the first command.
 *
 * @example
 * ```ts
 * import { Queue } from "sluice/core";
 * const queue = new Queue("emails", { redis: (command, args) => upstash(command, args) });
 * await queue.enqueue("welcome", { to: "ada@example.com" });
 * ```
 * @module
 */
export { Queue, type QueueOptions, type QueueStats, type RateLimit, type FinishedState, type JobSpec } from "./queue.ts";
export { EnqueueManyError, JobAborted, UnknownTaskError, UnrecoverableError, ValidationError, type AbortReason, type ValidationIssue } from "./errors.ts";
export { checkName, isValidName } from "./names.ts";
export type { JobInfo, JobState, JobCounts, EnqueuedJob, CancelResult, StoredError } from "./job.ts";
export { JOB_STATES } from "./job.ts";
export type { JobSummary, JobPage, ListJobsOptions, DeleteResult } from "./inspect.ts";
export type { EnqueueOptions, Backoff } from "./options.ts";
export { parseDuration, type Duration } from "./duration.ts";
export type { RedisInput, CommandSender } from "./send.ts";
export type { ScheduleSpec, ScheduleInfo } from "./schedule.ts";
