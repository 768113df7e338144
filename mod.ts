/**
 * sluice: a job queue on Redis Streams for Bun, Deno and Node.
 *
 * @example
 * ```ts
 * import { Queue, Worker } from "sluice";
 * const queue = new Queue("default", { redis: "redis://localhost:6379" });
 * await queue.enqueue("hello", { name: "world" });
 * const worker = new Worker({ tasks: { hello: (data) => `hello ${data.name}` } });
 * await worker.run({ signal: AbortSignal.timeout(5000) });
 * ```
 * @module
 */
export { Queue, type QueueOptions, type QueueStats, type RateLimit, type FinishedState, type JobSpec } from "./src/queue.ts";
export {
  Worker,
  type WorkerOptions,
  type RunOptions,
  type RunSummary,
  type Handler,
  type Tasks,
  type TaskDefinition,
  type PooledTaskDefinition,
  type PoolOptions,
  type PoolStats,
  type PoolSpawner,
  type RetentionPolicy,
  type LogEntry,
  type JobEventDetail,
} from "./src/worker.ts";
export type { JobContext, JobDescriptor } from "./src/context.ts";
export { ShutdownController, type Phase, type ShutdownRequest, type PhaseChange } from "./src/shutdown.ts";
export { sendShutdown, type SendShutdownOptions } from "./src/control.ts";
export { EnqueueManyError, JobAborted, PoolChildError, UnknownTaskError, UnrecoverableError, ValidationError, type AbortReason, type ValidationIssue } from "./src/errors.ts";
export { checkName, isValidName } from "./src/names.ts";
export type { JobInfo, JobState, JobCounts, EnqueuedJob, CancelResult, StoredError } from "./src/job.ts";
export { listWorkers, type JobSummary, type JobPage, type ListJobsOptions, type DeleteResult, type WorkerInfo } from "./src/inspect.ts";
export { JOB_STATES } from "./src/job.ts";
export type { EnqueueOptions, Backoff } from "./src/options.ts";
export { parseDuration, type Duration } from "./src/duration.ts";
export { between, type EndCondition } from "./src/end-condition.ts";
export { abortable, deadline, delay } from "./src/async.ts";
export type { RedisInput, CommandSender } from "./src/redis.ts";
export type { ScheduleSpec, ScheduleInfo } from "./src/schedule.ts";
