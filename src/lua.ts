/**
 * The Lua scripts behind every job transition (DESIGN section 2). Each transition is one script, so
 * it is atomic; every key a script touches shares the queue's hash tag, so each runs on one slot.
 * Job keys are derived from the base key passed in ARGV[1] (same tag as KEYS).
 *
 * Job hash fields: p (name NUL data NUL opts NUL max NUL created, fixed for the job's life) state
 * attempt stalls sid owner token runAt started finished result error progress abort.
 */

/** Shared helpers, prepended to scripts that need them. */
const EMIT = `
local function emit(events, maxlen, kind, id, now, extra)
  if maxlen > 0 then
    if extra then
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'e', kind, 'id', id, 't', now, 'x', extra)
    else
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'e', kind, 'id', id, 't', now)
    end
  end
end
-- A stream entry carries what running the job needs, so a fetch reads no hash:
--   j <id>  a <attempts so far>  s <stalls>  p <name NUL data NUL opts NUL max NUL created>
-- p never changes in a job's life; the job hash holds the same string in its field p.
local function requeue(stream, job, id)
  local f = redis.call('HMGET', job, 'p', 'attempt', 'stalls')
  local sid = redis.call('XADD', stream, '*', 'j', id, 'a', f[2] or '0', 's', f[3] or '0', 'p', f[1])
  redis.call('HSET', job, 'state', 'waiting', 'sid', sid, 'owner', '', 'token', '')
  return sid
end
local function delmany(keys)
  for i = 1, #keys, 500 do
    redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys)))
  end
end
-- f: the entry's fields. Returns the row the worker reads, NUL-joined:
--   id sid token attempt stalls name data opts max created
local function activate(consumer, base, sid, f, token, now)
  local attempt = tonumber(f[4]) + 1
  redis.call('HSET', base .. 'job:' .. f[2], 'state', 'active', 'owner', consumer, 'token', token, 'started', now, 'attempt', attempt)
  return f[2] .. '\0' .. sid .. '\0' .. token .. '\0' .. attempt .. '\0' .. f[6] .. '\0' .. f[8]
end
local function trim(zkey, base, keep, age, now)
  if keep >= 0 then
    local n = redis.call('ZCARD', zkey) - keep
    while n > 0 do
      local batch = math.min(n, 500)
      local ids = redis.call('ZRANGE', zkey, 0, batch - 1)
      for i = 1, #ids do ids[i] = base .. 'job:' .. ids[i] end
      delmany(ids)
      redis.call('ZREMRANGEBYRANK', zkey, 0, batch - 1)
      n = n - batch
    end
  end
  if age >= 0 then
    local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - age, 'LIMIT', 0, 500)
    if #ids > 0 then
      redis.call('ZREM', zkey, unpack(ids))
      for i = 1, #ids do ids[i] = base .. 'job:' .. ids[i] end
      delmany(ids)
    end
  end
end
`;

/**
 * enqueue one job or a batch. KEYS: stream delayed events.
 * ARGV: base group now eventsMax, then per job: id p runAt dedup, where p is the packed
 * `name NUL data NUL opts NUL max NUL created` and dedup is 1 for a caller's jobId.
 * Returns one string per job: '+waiting' or '+delayed' for a new job, '=' .. state when a job with
 * that id exists already (deduplicated: nothing written for it). One event per batch and state.
 * `attempt` and `stalls` are absent until they change: every reader takes a missing one as 0.
 */
export const ENQUEUE = EMIT + `
local stream, base, group = KEYS[1], ARGV[1], ARGV[2]
local now, eventsMax = tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
local out, waiting, delayed = {}, {}, {}
local i = 5
while ARGV[i] do
  local id, p, runAt = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local job = base .. 'job:' .. id
  -- only a caller-chosen id can exist already; a generated one (dedup flag 0) is a fresh UUID
  local state = ARGV[i + 3] == '1' and redis.call('HGET', job, 'state')
  if state then
    out[#out + 1] = '=' .. state
  elseif runAt > now then
    redis.call('HSET', job, 'p', p, 'state', 'delayed', 'runAt', runAt)
    redis.call('ZADD', KEYS[2], runAt, id)
    delayed[#delayed + 1] = id
    out[#out + 1] = '+delayed'
  else
    local sid = redis.call('XADD', stream, '*', 'j', id, 'a', '0', 's', '0', 'p', p)
    redis.call('HSET', job, 'p', p, 'state', 'waiting', 'sid', sid)
    waiting[#waiting + 1] = id
    out[#out + 1] = '+waiting'
  end
  i = i + 4
end
if #waiting > 0 then emit(KEYS[3], eventsMax, 'waiting', table.concat(waiting, ' '), now) end
if #delayed > 0 then emit(KEYS[3], eventsMax, 'delayed', table.concat(delayed, ' '), now) end
return out
`;

/**
 * finish a batch of outcomes, then fetch and activate up to N ready jobs (one round trip).
 * KEYS: stream delayed completed failed aborted events
 * ARGV: base group consumer now fetchCount tokenBase keepCompleted ageCompleted keepFailed ageFailed
 *       eventsMax nOutcomes, then per outcome: id token kind payload retryAt
 *   kind: c completed, f failed, a aborted (by user), r retry, i interrupted (re-queue, attempt not counted)
 * Returns { flags, row, row... }: flags is a string with '1' per outcome applied, '2' per retry or
 * interruption applied as `aborted` instead (an abort was requested for the job), and '0' per
 * outcome fenced out (the job is no longer this attempt's); each row is a job started, its fields joined by
 * NUL: id sid token attempt stalls name data opts max created.
 */
export const FINISH_AND_FETCH = EMIT + `
local stream, delayed, events = KEYS[1], KEYS[2], KEYS[6]
local base, group, consumer = ARGV[1], ARGV[2], ARGV[3]
local now, fetchCount, tokenBase = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local eventsMax = tonumber(ARGV[11])
local n = tonumber(ARGV[12])
local flags, acks, done, doneIds, bad = {}, {}, {}, {}, false
for i = 0, n - 1 do
  local o = 13 + i * 5
  local id, token, kind, payload = ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
  local job = base .. 'job:' .. id
  local st = redis.call('HMGET', job, 'state', 'owner', 'token', 'sid', 'abort')
  if st[1] == 'active' and st[2] == consumer and st[3] == token then
    acks[#acks + 1] = st[4]
    local flag = '1'
    if (kind == 'r' or kind == 'i') and st[5] and st[5] ~= '' then
      -- a user asked to abort it: an aborted job is never retried, whatever ended this attempt
      kind, flag = 'a', '2'
    end
    if kind == 'c' then
      redis.call('HSET', job, 'state', 'completed', 'result', payload, 'finished', now)
      done[#done + 1] = now
      done[#done + 1] = id
      doneIds[#doneIds + 1] = id
    elseif kind == 'f' or kind == 'a' then
      local state = kind == 'f' and 'failed' or 'aborted'
      redis.call('HSET', job, 'state', state, 'error', payload, 'finished', now)
      redis.call('ZADD', kind == 'f' and KEYS[4] or KEYS[5], now, id)
      bad = true
      emit(events, eventsMax, state, id, now)
    elseif kind == 'r' then
      local retryAt = tonumber(ARGV[o + 4])
      redis.call('HSET', job, 'error', payload, 'owner', '', 'token', '')
      if retryAt > now then
        redis.call('HSET', job, 'state', 'delayed', 'runAt', retryAt)
        redis.call('ZADD', delayed, retryAt, id)
      else
        requeue(stream, job, id)
      end
      emit(events, eventsMax, 'retrying', id, now)
    else
      redis.call('HINCRBY', job, 'attempt', -1)
      requeue(stream, job, id)
      emit(events, eventsMax, 'interrupted', id, now)
    end
    flags[i + 1] = flag
  else
    flags[i + 1] = '0'
  end
end
if #acks > 0 then
  redis.call('XACK', stream, group, unpack(acks))
  redis.call('XDEL', stream, unpack(acks))
end
if #done > 0 then
  redis.call('ZADD', KEYS[3], unpack(done))
  -- one event for the batch: ids are space-separated (job ids contain no whitespace)
  emit(events, eventsMax, 'completed', table.concat(doneIds, ' '), now)
  trim(KEYS[3], base, tonumber(ARGV[7]), tonumber(ARGV[8]), now)
end
if bad then
  trim(KEYS[4], base, tonumber(ARGV[9]), tonumber(ARGV[10]), now)
  trim(KEYS[5], base, tonumber(ARGV[9]), tonumber(ARGV[10]), now)
end
local out = {table.concat(flags)}
if fetchCount > 0 then
  -- entries read here were added by enqueue or requeue and are removed whenever their job leaves
  -- the waiting state, so an undelivered entry always belongs to a waiting job
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', fetchCount, 'STREAMS', stream, '>')
  if r then
    local entries = r[1][2]
    for i = 1, #entries do
      out[#out + 1] = activate(consumer, base, entries[i][1], entries[i][2], tokenBase .. i, now)
    end
  end
end
return out
`;

/**
 * activate entries a blocking XREADGROUP delivered. KEYS: stream.
 * ARGV: base group consumer now tokenBase n, then sid id pairs. Entries beyond the first `n`
 * activatable ones go back to the tail of the stream (the worker had no free slot for them).
 * Returns the same job rows as FINISH_AND_FETCH (without the flags).
 */
export const ACTIVATE = EMIT + `
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now, tokenBase, n = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local out = {}
local i = 7
while ARGV[i] do
  local sid, id = ARGV[i], ARGV[i + 1]
  local job = base .. 'job:' .. id
  local st = redis.call('HMGET', job, 'state', 'sid')
  if st[1] == 'waiting' and st[2] == sid and #out < n then
    local e = redis.call('XRANGE', stream, sid, sid)
    out[#out + 1] = activate(consumer, base, sid, e[1][2], tokenBase .. i, now)
  else
    -- cancelled meanwhile, or no free slot for it: drop the entry (and re-queue a waiting job)
    redis.call('XACK', stream, group, sid)
    redis.call('XDEL', stream, sid)
    if st[1] == 'waiting' and st[2] == sid then requeue(stream, job, id) end
  end
  i = i + 2
end
return out
`;

/**
 * heartbeat / abort poll for a worker's active jobs of one queue. KEYS: stream.
 * ARGV: base group consumer claim(1|0), then id token pairs.
 * For each job: 0 still ours, 1 lost (reclaimed or finished elsewhere), 2 still ours and an abort
 * was requested. With claim=1, entries still ours get their idle time reset (XCLAIM … JUSTID).
 */
export const CHECK = `
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local claim = ARGV[4] == '1'
local out = {}
local i = 5
while ARGV[i] do
  local st = redis.call('HMGET', base .. 'job:' .. ARGV[i], 'state', 'owner', 'token', 'sid', 'abort')
  local r = 1
  if st[1] == 'active' and st[2] == consumer and st[3] == ARGV[i + 1] then
    r = 0
    if claim then
      local c = redis.call('XCLAIM', stream, group, consumer, 0, st[4], 'JUSTID')
      if #c == 0 then r = 1 end
    end
    if r == 0 and st[5] and st[5] ~= '' then r = 2 end
  end
  out[#out + 1] = r
  i = i + 2
end
return out
`;

/**
 * stalled recovery: one XAUTOCLAIM step. KEYS: stream failed events.
 * ARGV: base group consumer now minIdle cursor count maxStalled eventsMax.
 * A claimed active job whose owner stopped heartbeating counts a stall: it goes back to the stream
 * (its attempt not counted) or, past maxStalled, fails. A delivered-but-never-activated entry goes
 * back to the stream; one whose abort was requested ends aborted. Returns {nextCursor, {recovered
 * ids}, {failed ids}}.
 */
export const RECOVER = EMIT + `
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now, maxStalled, eventsMax = tonumber(ARGV[4]), tonumber(ARGV[8]), tonumber(ARGV[9])
local r = redis.call('XAUTOCLAIM', stream, group, consumer, ARGV[5], ARGV[6], 'COUNT', ARGV[7])
local recovered, failed = {}, {}
for _, e in ipairs(r[2]) do
  local sid, fields = e[1], e[2]
  redis.call('XACK', stream, group, sid)
  redis.call('XDEL', stream, sid)
  if fields and fields[2] then
    local id = fields[2]
    local job = base .. 'job:' .. id
    local st = redis.call('HMGET', job, 'state', 'sid', 'stalls', 'abort')
    if st[2] == sid and st[1] == 'active' then
      local stalls = tonumber(st[3] or '0') + 1
      if st[4] and st[4] ~= '' then
        -- its abort was requested: it ends aborted instead of running again elsewhere
        redis.call('HSET', job, 'state', 'aborted', 'finished', now, 'error',
          cjson.encode({name = 'JobAborted', message = 'Job aborted: user (its worker stopped heartbeating)', abortReason = 'user'}))
        redis.call('ZADD', base .. 'aborted', now, id)
        emit(KEYS[3], eventsMax, 'aborted', id, now)
      elseif stalls > maxStalled then
        redis.call('HSET', job, 'state', 'failed', 'stalls', stalls, 'finished', now,
          'error', cjson.encode({name = 'StalledError', message = 'job stalled more than maxStalled (' .. maxStalled .. ') times'}))
        redis.call('ZADD', KEYS[2], now, id)
        failed[#failed + 1] = id
        emit(KEYS[3], eventsMax, 'failed', id, now, 'stalled')
      else
        redis.call('HSET', job, 'stalls', stalls)
        redis.call('HINCRBY', job, 'attempt', -1)
        requeue(stream, job, id)
        recovered[#recovered + 1] = id
        emit(KEYS[3], eventsMax, 'stalled', id, now)
      end
    elseif st[2] == sid and st[1] == 'waiting' then
      requeue(stream, job, id)
    end
  end
end
return {r[1], recovered, failed}
`;

/**
 * promote due delayed jobs to the stream. KEYS: stream delayed events.
 * ARGV: base now limit eventsMax. Idempotent. Returns {promoted count, next due ms or -1}.
 */
export const PROMOTE = EMIT + `
local stream, delayed, base = KEYS[1], KEYS[2], ARGV[1]
local now = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  redis.call('ZREM', delayed, id)
  local job = base .. 'job:' .. id
  if redis.call('HGET', job, 'state') == 'delayed' then
    requeue(stream, job, id)
    emit(KEYS[3], tonumber(ARGV[4]), 'waiting', id, now)
  end
end
local nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if nxt[2] then return {#ids, nxt[2]} end
return {#ids, '-1'}
`;

/**
 * cancel one job. KEYS: stream delayed cancelled events.
 * ARGV: base group id now abort(1|0) delete(1|0) eventsMax channel.
 * Returns {outcome, previous state}: outcome is cancelled | abort-requested | active | finished | missing.
 */
export const CANCEL = EMIT + `
local stream, delayed, base, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local now, abort, del = tonumber(ARGV[4]), ARGV[5] == '1', ARGV[6] == '1'
local job = base .. 'job:' .. id
local st = redis.call('HMGET', job, 'state', 'sid')
local state = st[1]
if not state then return {'missing', ''} end
if state == 'waiting' or state == 'delayed' then
  if state == 'waiting' then
    redis.call('XACK', stream, group, st[2])
    redis.call('XDEL', stream, st[2])
  else
    redis.call('ZREM', delayed, id)
  end
  if del then
    redis.call('DEL', job)
  else
    redis.call('HSET', job, 'state', 'cancelled', 'finished', now)
    redis.call('ZADD', KEYS[3], now, id)
  end
  emit(KEYS[4], tonumber(ARGV[7]), 'cancelled', id, now)
  return {'cancelled', state}
end
if state == 'active' then
  if abort then
    redis.call('HSET', job, 'abort', 'user')
    redis.call('PUBLISH', ARGV[8], id)
    return {'abort-requested', state}
  end
  return {'active', state}
end
return {'finished', state}
`;

/**
 * retry a failed (or aborted) job: back to the stream with its attempts reset.
 * KEYS: stream failed aborted events. ARGV: base id now eventsMax.
 * Returns {1, 'failed'} when re-queued, {0, state} otherwise.
 */
export const RETRY = EMIT + `
local base, id, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local job = base .. 'job:' .. id
local state = redis.call('HGET', job, 'state')
if state ~= 'failed' and state ~= 'aborted' then return {0, state or ''} end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HSET', job, 'attempt', 0, 'stalls', 0, 'abort', '')
redis.call('HDEL', job, 'finished')
requeue(KEYS[1], job, id)
emit(KEYS[4], tonumber(ARGV[4]), 'waiting', id, now, 'retry')
return {1, state}
`;

/**
 * a stopping consumer's clean-up. KEYS: stream. ARGV: base group consumer.
 * Entries delivered to it but never activated go back to the stream; then the consumer is deleted
 * only if it owns no pending entry (deleting one that does makes its entries unclaimable).
 * Returns the number of pending entries it still owns.
 */
export const RELEASE_CONSUMER = EMIT + `
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', stream) == 0 then return 0 end
local pending = redis.call('XPENDING', stream, group, '-', '+', 1000, consumer)
local left = 0
for _, p in ipairs(pending) do
  local sid = p[1]
  local e = redis.call('XRANGE', stream, sid, sid)
  local id = e[1] and e[1][2][2]
  local st = id and redis.call('HMGET', base .. 'job:' .. id, 'state', 'sid') or {}
  if st[1] == 'waiting' and st[2] == sid then
    redis.call('XACK', stream, group, sid)
    redis.call('XDEL', stream, sid)
    requeue(stream, base .. 'job:' .. id, id)
  elseif not id or not st[1] then
    redis.call('XACK', stream, group, sid)
    redis.call('XDEL', stream, sid)
  else
    left = left + 1
  end
end
if left == 0 then pcall(redis.call, 'XGROUP', 'DELCONSUMER', stream, group, consumer) end
return left
`;

/**
 * counts per state in one atomic read. KEYS: stream delayed completed failed cancelled aborted.
 * ARGV: group. Every entry in the stream is either pending (active) or not yet delivered (waiting).
 */
export const COUNTS = `
local len, pending = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  len = redis.call('XLEN', KEYS[1])
  local ok, p = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
  if ok then pending = p[1] end
end
return {len - pending, pending, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), redis.call('ZCARD', KEYS[6])}
`;
