/**
 * Reading and removing jobs for people rather than workers: the job lists of the admin app
 * (cursor-paginated per state), deleting a job from wherever it is, and the worker registry.
 * `Queue.listJobs` and `Queue.deleteJob` are thin wrappers over this file.
 */
import { ValidationError } from "./errors.ts";
import { type JobState, markRunning, type StoredError } from "./job.ts";
import { globalKeys, GROUP, type QueueKeys } from "./keys.ts";
import { withHelpers } from "./lua.ts";
import { Script, type Send } from "./send.ts";

/** One job in a list: what a table row shows, without data or result. */
export interface JobSummary {
  id: string;
  queue: string;
  name: string;
  /** The job's state (`active` while a worker runs it: its entry is in the pending list). */
  state: JobState;
  attempt: number;
  maxAttempts: number;
  createdAt: number;
  runAt?: number;
  startedAt?: number;
  finishedAt?: number;
  /** Worker (consumer) that holds it, for active jobs. */
  owner?: string;
  /** Milliseconds since its worker last heartbeated (since the job started, before its first heartbeat), for active jobs. */
  idleMs?: number;
  /** The stored error's name and message, for failed, aborted and retried jobs. */
  error?: Pick<StoredError, "name" | "message" | "abortReason">;
  /** Set when an abort was requested. */
  abortRequested?: string;
  progress?: unknown;
  /** The first 120 characters of the job's data as JSON. */
  dataPreview?: string;
}

/** One page of `Queue.listJobs`. */
export interface JobPage {
  jobs: JobSummary[];
  /** Pass it back as `cursor` for the next page; absent on the last page. */
  nextCursor?: string;
}

/** Options of `Queue.listJobs`. */
export interface ListJobsOptions {
  /** From a previous page's `nextCursor`. @default the start */
  cursor?: string;
  /** Jobs per page, 1–500. @default 50 */
  limit?: number;
  /** Only jobs of this task. */
  task?: string;
  /**
   * Only jobs whose id, task name, data or error contains this text (case-insensitive, ASCII). A filtered page looks
   * through up to 20 times its size: it may hold fewer jobs than `limit` and still have a next page.
   */
  search?: string;
}

/** What `Queue.deleteJob` did: `deleted`, or why not (`active`: abort it first; `missing`). */
export interface DeleteResult {
  id: string;
  outcome: "deleted" | "active" | "missing";
  previousState?: JobState;
}

const FIELDS = `'state', 'p', 'attempt', 'runAt', 'started', 'finished', 'sid', 'error', 'abort', 'progress'`;

/**
 * One page of jobs. KEYS: the stream (waiting, active) or the state's zset.
 * ARGV: base group mode cursor limit. mode: waiting | active | asc (delayed: next due first) |
 * desc (finished: newest first). Returns {nextCursor or '', {id, extra, fields...}...}.
 *
 * waiting: stream entries after the group's last-delivered id (never delivered), oldest first.
 * active: the group's pending entries (delivered, being run), oldest first; extra =
 * entry,consumer,ms since delivery (the attempt's start),the consumer's last heartbeat.
 * zsets: the cursor is `score:id`; a page starts after the cursor's member (by ZRANK/ZREVRANK),
 * or, when that member has gone meanwhile, after where it would be.
 */
const LIST = withHelpers(`
local key, base, group, mode, cursor, limit = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ftask, fsearch = ARGV[6] or '', ARGV[7] or ''
local filtering = ftask ~= '' or fsearch ~= ''
-- with a filter, a page looks through up to 20 times its size before it stops (its cursor then
-- points at where it stopped looking)
local scan = filtering and math.min(limit * 20, 5000) or limit
-- a job's row, or nil when the filter (task name; text in the id, data or error) leaves it out
local function row(id, extra, own)
  local f = redis.call('HMGET', base .. 'job:' .. id, ${FIELDS})
  -- a job its entry holds (own: its packed p) with no hash reads as waiting on that entry
  if own and not f[1] then f = {'waiting', own, false, false, false, false, id, false, false, false} end
  -- one that completed with no hash: its record in \`done\`
  local d = not f[1] and doneRecord(base .. 'done', id)
  if d then f = {'completed', d.p, d.attempt, false, d.started, d.finished, id, false, false, false} end
  -- name, data preview, max and created out of the packed p (name NUL data NUL opts NUL max NUL created)
  local name, max, created, preview, dataText = false, false, false, false, false
  if f[2] then
    local cut = string.find(f[2], '\\0', 1, true) or (#f[2] + 1)
    name = string.sub(f[2], 1, cut - 1)
    local dataEnd = string.find(f[2], '\\0', cut + 1, true) or (#f[2] + 1)
    dataText = string.sub(f[2], cut + 1, dataEnd - 1)
    preview = string.sub(dataText, 1, 120)
    max, created = string.match(f[2], '%z([^%z]*)%z([^%z]*)$')
  end
  if ftask ~= '' and name ~= ftask then return nil end
  if fsearch ~= '' and not string.find(string.lower(id), fsearch, 1, true)
    and not (name and string.find(string.lower(name), fsearch, 1, true))
    and not (dataText and string.find(string.lower(dataText), fsearch, 1, true))
    and not (f[8] and string.find(string.lower(f[8]), fsearch, 1, true)) then
    return nil
  end
  local r = {id, extra, f[1] or false, name, f[3] or false, max or false, created or false}
  for i = 4, 10 do r[i + 4] = f[i] or false end
  r[15] = preview
  return r
end
local out = {''}
if mode == 'waiting' or mode == 'active' then
  if redis.call('EXISTS', key) == 0 then return out end
  if cursor ~= '' and not string.match(cursor, '^%d+%-%d+$') and not (mode == 'waiting' and string.match(cursor, '^h:%d+:')) then return redis.error_reply('ERR bad cursor') end
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  local last
  if ok then
    for _, g in ipairs(groups) do
      local name, lid
      for i = 1, #g, 2 do
        if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then lid = g[i + 1] end
      end
      if name == group then last = lid end
    end
  end
  if mode == 'waiting' then
    -- the stream's undelivered entries first, then the jobs their groups hold back (zset held,
    -- oldest first; their cursor is h:<score>:<id>)
    -- held scores come from a sequence: unique, so a page resumes after its cursor's score even
    -- when that job has left the set since
    local heldFrom = '-inf'
    if string.sub(cursor, 1, 2) == 'h:' then
      heldFrom = '(' .. (string.match(cursor, '^h:([^:]+):') or '-inf')
    else
      local start = last or '0-0'
      if cursor ~= '' and idcmp(cursor, start) > 0 then start = cursor end
      local entries = redis.call('XRANGE', key, '(' .. start, '+', 'COUNT', scan)
      for _, e in ipairs(entries) do
        local id, own = entryJob(e)
        local r = id and row(id, e[1], own)
        if r then out[#out + 1] = r end
        if #out - 1 == limit then
          out[1] = e[1]
          return out
        end
      end
      if #entries == scan then
        out[1] = entries[#entries][1]
        return out
      end
    end
    local held = redis.call('ZRANGEBYSCORE', base .. 'held', heldFrom, '+inf', 'WITHSCORES', 'LIMIT', 0, scan)
    for i = 1, #held, 2 do
      local r = row(held[i], '')
      if r then out[#out + 1] = r end
      if #out - 1 == limit or (i + 1 == #held and #held / 2 == scan) then
        out[1] = 'h:' .. held[i + 1] .. ':' .. held[i]
        return out
      end
    end
  else
    if not last then return out end
    local start = cursor == '' and '-' or '(' .. cursor
    local pending = redis.call('XPENDING', key, group, start, '+', scan)
    for _, p in ipairs(pending) do
      local e = redis.call('XRANGE', key, p[1], p[1])
      local id, own
      if e[1] then id, own = entryJob(e[1]) end
      local r = id and row(id, p[1] .. ',' .. p[2] .. ',' .. p[3] .. ',' .. (redis.call('ZSCORE', base .. 'alive', p[2]) or ''), own)
      if r then out[#out + 1] = r end
      if #out - 1 == limit then
        out[1] = p[1]
        return out
      end
    end
    if #pending == scan then out[1] = pending[#pending][1] end
  end
  return out
end
local desc = mode == 'desc'
local start = 0
if cursor ~= '' then
  local score, member = string.match(cursor, '^([^:]+):(.+)$')
  if not score or not tonumber(score) then return redis.error_reply('ERR bad cursor') end
  local rank
  if redis.call('ZSCORE', key, member) == score then
    rank = desc and redis.call('ZREVRANK', key, member) or redis.call('ZRANK', key, member)
  end
  if rank then
    start = rank + 1
  else
    -- the cursor's job left the set: count what sorts before where it was
    local eq = redis.call('ZRANGEBYSCORE', key, score, score)
    if desc then
      start = redis.call('ZCOUNT', key, '(' .. score, '+inf')
      for _, m in ipairs(eq) do if m > member then start = start + 1 end end
    else
      start = redis.call('ZCOUNT', key, '-inf', '(' .. score)
      for _, m in ipairs(eq) do if m < member then start = start + 1 end end
    end
  end
end
local items = desc and redis.call('ZREVRANGE', key, start, start + scan - 1, 'WITHSCORES')
  or redis.call('ZRANGE', key, start, start + scan - 1, 'WITHSCORES')
for i = 1, #items, 2 do
  local r = row(items[i], items[i + 1])
  if r then out[#out + 1] = r end
  if #out - 1 == limit then
    out[1] = items[i + 1] .. ':' .. items[i]
    return out
  end
end
if #items == scan * 2 then out[1] = items[#items] .. ':' .. items[#items - 1] end
return out
`);

/**
 * delete one job from wherever it is. KEYS: stream delayed completed failed cancelled aborted events.
 * ARGV: base group id now eventsMax. An active job is refused (abort it first): its worker still
 * runs it and would write its outcome. Returns {outcome, previous state}.
 */
const DELETE = withHelpers(`
local base, group, id, now, eventsMax = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local job = base .. 'job:' .. id
local st = redis.call('HMGET', job, 'state', 'sid', 'g')
if not st[1] then
  -- a job its entry holds has no hash: it waits on that entry, or completed (its record in \`done\`)
  if ownEntry(KEYS[1], id) then
    st = {'waiting', id, false}
  elseif doneRecord(base .. 'done', id) then
    st = {'completed', '', false}
  else
    return {'missing', ''}
  end
end
if st[1] == 'active' then return {'active', 'active'} end
-- a job waiting on an entry that was delivered is running (the pending list holds its attempt)
if st[1] == 'waiting' and st[2] and st[2] ~= '' and delivered(KEYS[1], group, st[2]) then return {'active', 'active'} end
-- free first (at maxmemory a script's first write may not grow memory);
-- stream ids are never reused, so an old entry id of a finished job can only miss
if st[2] and st[2] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then
  pcall(redis.call, 'XACK', KEYS[1], group, st[2])
  redis.call('XDEL', KEYS[1], st[2])
end
if st[1] == 'waiting' and st[3] and st[3] ~= '' then
  if st[2] == '' then
    -- held by its group
    redis.call('LREM', base .. 'g:' .. st[3], 0, id)
    redis.call('ZREM', base .. 'held', id)
  else
    gleave(KEYS[1], base, st[3])
  end
end
for i = 2, 6 do redis.call('ZREM', KEYS[i], id) end
redis.call('DEL', job, base .. 'dedup:' .. id, base .. 'log:' .. id)
redis.call('HDEL', base .. 'done', id)
if eventsMax > 0 then
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', eventsMax, '*', 'e', 'deleted', 'id', id, 't', now)
end
return {'deleted', st[1]}
`);

const scripts = { list: new Script(LIST), del: new Script(DELETE) };

/** Job states whose jobs can be listed. */
export const LISTABLE_STATES: readonly JobState[] = ["waiting", "active", "delayed", "completed", "failed", "cancelled", "aborted"];

function num(v: unknown): number | undefined {
  return v === null || v === undefined || v === false || v === "" ? undefined : Number(v);
}
function str(v: unknown): string | undefined {
  return v === null || v === undefined || v === false || v === "" ? undefined : String(v);
}
function parseJson(v: unknown): unknown {
  const s = str(v);
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

const U64_MAX = 18446744073709551615n;

/** A stream id `<ms>-<seq>` whose parts fit in 64 bits, as Redis requires. */
function isStreamId(s: string): boolean {
  const m = /^(\d{1,20})-(\d{1,20})$/.exec(s);
  return m !== null && BigInt(m[1]!) <= U64_MAX && BigInt(m[2]!) <= U64_MAX;
}

/** Reads one page of a queue's jobs in `state`. See `Queue.listJobs`. */
export async function listJobs(send: Send, queue: string, keys: QueueKeys, state: JobState, options: ListJobsOptions = {}): Promise<JobPage> {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new ValidationError("Invalid listJobs arguments", [{ field: "options", value: options, message: "must be { cursor?, limit? }" }]);
  }
  if (!LISTABLE_STATES.includes(state)) {
    throw new ValidationError("Invalid listJobs arguments", [{ field: "state", value: state, message: `must be one of ${LISTABLE_STATES.join(", ")}` }]);
  }
  const limit = options.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
    throw new ValidationError("Invalid listJobs arguments", [{ field: "limit", value: limit, message: "must be an integer from 1 to 500" }]);
  }
  const cursor = options.cursor ?? "";
  const zset = state === "waiting" || state === "active" ? null : state;
  if (typeof cursor !== "string" || cursor.length > 600 || (cursor !== "" && (zset ? !/^-?[\d.e+-]+:\S+$/.test(cursor) && !/^-?inf:/.test(cursor) : !isStreamId(cursor) && !(state === "waiting" && /^h:\d+:\S+$/.test(cursor))))) {
    throw new ValidationError("Invalid listJobs arguments", [{ field: "cursor", value: cursor, message: "must be a nextCursor from a previous page of this state" }]);
  }
  const key = zset ? keys[zset] : keys.stream;
  const mode = zset === null ? state : zset === "delayed" ? "asc" : "desc";
  for (const field of ["task", "search"] as const) {
    const v = options[field];
    if (v !== undefined && (typeof v !== "string" || v.length > 200)) {
      throw new ValidationError("Invalid listJobs arguments", [{ field, value: v, message: "must be a string of at most 200 characters" }]);
    }
  }
  const reply = (await scripts.list.run(send, [key], [keys.base, GROUP, mode, cursor, limit, options.task ?? "", (options.search ?? "").toLowerCase()])) as unknown[];
  const jobs: JobSummary[] = [];
  for (let i = 1; i < reply.length; i++) {
    const r = reply[i] as unknown[];
    const [id, extra, st, name, attempt, max, created, runAt, started, finished, sid, error, abort, progress, preview] = r;
    if (str(st) === undefined) continue; // the entry outlived its job (deleted meanwhile)
    const job: JobSummary = {
      id: String(id),
      queue,
      name: str(name) ?? "",
      state: String(st) as JobState,
      attempt: num(attempt) ?? 0,
      maxAttempts: num(max) ?? 1,
      createdAt: num(created) ?? 0,
    };
    if (num(runAt) !== undefined) job.runAt = num(runAt);
    if (num(started) !== undefined) job.startedAt = num(started);
    if (num(finished) !== undefined) job.finishedAt = num(finished);
    if (state === "active" && typeof extra === "string") {
      const [entry, consumer, idle, beat] = extra.split(",");
      // the job waits on this delivered entry: its attempt runs
      if (job.state === "waiting" && str(sid) === entry) markRunning(job, consumer!, Number(idle));
      job.owner = consumer;
      job.idleMs = beat ? Math.max(0, Math.min(Number(idle), Date.now() - Number(beat))) : Number(idle);
    }
    const err = parseJson(error) as StoredError | string | undefined;
    if (err !== undefined) {
      job.error = typeof err === "object" && err !== null
        ? { name: String(err.name ?? "Error"), message: String(err.message ?? ""), ...(err.abortReason ? { abortReason: err.abortReason } : {}) }
        : { name: "Error", message: String(err) };
    }
    if (str(abort)) job.abortRequested = str(abort);
    const p = parseJson(progress);
    if (p !== undefined) job.progress = p;
    if (typeof preview === "string") job.dataPreview = preview;
    jobs.push(job);
  }
  const next = String(reply[0] ?? "");
  return next ? { jobs, nextCursor: next } : { jobs };
}

/** Deletes one job from wherever it is. See `Queue.deleteJob`. */
export async function deleteJob(send: Send, keys: QueueKeys, id: string, eventsMaxLen: number): Promise<DeleteResult> {
  if (typeof id !== "string" || id === "") {
    throw new ValidationError("Invalid deleteJob arguments", [{ field: "id", value: id, message: "must be a non-empty string" }]);
  }
  const k = keys;
  const [outcome, prev] = (await scripts.del.run(
    send,
    [k.stream, k.delayed, k.completed, k.failed, k.cancelled, k.aborted, k.events],
    [k.base, GROUP, id, Date.now(), eventsMaxLen],
  )) as [DeleteResult["outcome"], string];
  return prev ? { id, outcome, previousState: prev as JobState } : { id, outcome };
}

/** A live worker as it registers itself (see `Worker`): refreshed on every heartbeat. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  runtime: string;
  queues: string[];
  concurrency: number;
  phase: "running" | "draining" | "aborting" | "stopped";
  startedAt: number;
  heartbeatAt: number;
  /** Jobs it runs now. */
  active: { queue: string; id: string }[];
  /** The largest event-loop lag measured since its previous heartbeat, in ms. */
  loopLagMs?: number;
  /** Its pool of threads and processes, when a task runs in one. */
  pool?: { threads: number; processes: number; busy: number; waiting: number; started: number };
}

/**
 * The workers registered under `prefix`, most recent heartbeat first. A worker whose registry
 * entry expired (it died without unregistering) is left out, and with `prune` also removed from
 * the index.
 *
 * @example
 * ```ts
 * const workers = await listWorkers((c, a) => redis.call(c, ...a), "sluice");
 * for (const w of workers) console.log(w.id, w.phase, w.active.length);
 * ```
 */
export async function listWorkers(send: Send, prefix: string, options: { prune?: boolean } = {}): Promise<WorkerInfo[]> {
  const g = globalKeys(prefix);
  const ids = ((await send("ZREVRANGE", [g.workers, 0, 999])) as unknown[]).map(String);
  // one GET per worker (the keys lie in different cluster slots); auto-pipelined by ioredis
  const values = await Promise.all(ids.map((id) => send("GET", [g.worker(id)])));
  const out: WorkerInfo[] = [];
  const gone: string[] = [];
  ids.forEach((id, i) => {
    const v = values[i];
    if (v === null || v === undefined) {
      gone.push(id);
      return;
    }
    try {
      out.push(JSON.parse(String(v)) as WorkerInfo);
    } catch {
      gone.push(id);
    }
  });
  if (options.prune && gone.length > 0) await send("ZREM", [g.workers, ...gone]);
  return out;
}
