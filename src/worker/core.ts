/**
 * What the parts of a worker share: its id, settings, queues, connection, summary, and how it
 * tells the world (events and logs). The public `Worker` builds it once and hands it to each part.
 * @module
 */
import type { Context } from "../context.ts";
import type { AbortReason } from "../errors.ts";
import type { QueueKeys } from "../keys.ts";
import type { Send } from "../redis.ts";
import type { ShutdownController } from "../shutdown.ts";
import type { LogEntry, Settings } from "../worker-options.ts";

/** Options of `Worker.run`. */
export interface RunOptions {
  /** Aborting it starts a graceful stop. */
  signal?: AbortSignal;
  /** Aborting it starts (or escalates to) a hard stop. */
  hardSignal?: AbortSignal;
}

/** What `run()` resolves with. */
export interface RunSummary {
  /** Jobs this worker completed. */
  completed: number;
  /** Jobs that failed for good (attempts exhausted or unrecoverable). */
  failed: number;
  /** Failed attempts that were scheduled for a retry. */
  retried: number;
  /** Jobs aborted at a user's request. */
  aborted: number;
  /** Jobs stopped by a hard shutdown and re-queued, their attempt not counted. */
  interrupted: number;
  /** Jobs that ignored their abort and were re-queued when the worker was told to stop without them. */
  abandoned: number;
  /** Jobs found reclaimed by another worker; nothing was written for them. */
  lost: number;
  /** Stalled jobs of other workers this worker recovered. */
  recovered: number;
  /** Milliseconds from run() to stopped. */
  durationMs: number;
}

/** Detail of a worker's job events. */
export interface JobEventDetail {
  job: Context["job"];
  result?: unknown;
  error?: unknown;
  abortReason?: AbortReason;
}

/** One queue a worker serves. */
export interface QueueState {
  name: string;
  keys: QueueKeys;
  /** Paused, as the last fetch or a control message said: no fetch from it until resumed. */
  paused?: boolean;
  /** Paused, and due for a look at its flag (a resume message may have been missed). */
  recheck?: boolean;
  /** Rate limited: no fetch from it before this time (ms). */
  holdUntil?: number;
  /** The newest entry id its last short fetch saw: a wait for new jobs reads after it. */
  last?: string;
}

/** The worker's shared state and voice, handed to each of its parts. */
export interface WorkerCore {
  readonly id: string;
  readonly settings: Settings;
  /** In priority order. */
  readonly queues: readonly QueueState[];
  readonly shutdown: ShutdownController;
  readonly summary: RunSummary;
  /** The command connection (set once the worker connects). */
  send: Send;
  emit(type: string, detail: unknown): void;
  /** `@opentelemetry/api` when the app has it (loaded at start): attempts get spans. */
  otel?: Awaited<ReturnType<typeof import("../tracing.ts").loadOtel>>;
  /** A pause or resume message for one of its queues (set by the worker). */
  onPause?: (q: QueueState, paused: boolean) => void;
  log(level: LogEntry["level"], event: string, message: string, fields?: Record<string, unknown>): void;
}

export function emptySummary(): RunSummary {
  return { completed: 0, failed: 0, retried: 0, aborted: 0, interrupted: 0, abandoned: 0, lost: 0, recovered: 0, durationMs: 0 };
}
