/**
 * The Lua scripts behind every job transition (DESIGN section 2). Each transition is one script, so
 * it is atomic; every key a script touches shares the queue's hash tag, so each runs on one slot.
 * Job keys are derived from the base key passed in ARGV[1] (same tag as KEYS).
 *
 * Every script is correct when run twice with the same arguments: a client re-sends a command
 * whose reply a cut connection lost, and the server may have run it already (DESIGN section 6).
 * Each script says how its repeat is recognised.
 *
 * Every script that frees memory (XACK, XDEL) does so before its first write: at `maxmemory`
 * with `noeviction`, Redis refuses a script's first write command when nothing was written before
 * it, and a full queue must still be able to drain.
 *
 * Job hash fields: state sid p (name NUL data NUL opts NUL max NUL created, fixed for the job's
 * life) n g attempt stalls runAt started finished result error progress abort fin op.
 * `fin` is `<entry id>|<flag>` of the last retry or interruption applied; `op` is `<call id> <state>`
 * of the last cancel or retry. Per-queue counters live in the hash `stats`; live consumers with
 * their last heartbeat in the zset `alive`; reserved job ids in `dedup:<id>`.
 *
 * A job enqueued due now with a generated id and no group lives in its stream entry alone
 * (`p <packed>`), and its id is that entry's id: no hash is written until something changes it
 * (it finishes, moves on, is cancelled, reports progress or is asked to abort). Such a job with no
 * hash reads as `state waiting, sid <its id>, p <the entry's p>`; a script that writes to it writes
 * those fields with its first write. Every other entry names its job (`j <id>`), whose hash holds
 * its data. A caller's job id may never look like an entry id, so the two never meet.
 * Such a job that completes with still no hash gets none: its record goes to the hash `done`
 * (field: its id), written for a whole batch at once rather than a key per job:
 * `<finished> <started> <attempt> <length of p> NUL <p><result>`. It reads as the hash it would
 * have had (state completed, sid = its id, p, result, finished, started, attempt), and retention
 * and deletion remove it with the job.
 *
 * Active is not written: a job is active while its hash says `waiting` for an entry (`sid`) that
 * the consumer group's pending list holds. The pending list already records the owner (its
 * consumer) and when the attempt started (its delivery time, which no heartbeat moves), so a
 * fetch writes nothing. The entry id is the attempt's fencing token: every path that takes a job
 * from a worker (recovery, hand-back, retry) re-queues it under a new entry, and every path that
 * drops a job (cancel, delete) deletes its entry, so an attempt holds its job exactly while the
 * hash still names its entry. `attempt` counts the attempts before the running one.
 */

/**
 * Shared helpers. A script is built with {@link withHelpers}, which prepends only the helpers its
 * body names (and those they name): a script's chunk re-creates each of its local functions on
 * every call, which cost the finish call ~15,000 instructions for the ones it never used.
 */
export const EMIT = `
-- maxlen counts job ids, not entries: an event of a batch names many ids, so the stream is capped
-- shorter while it carries them (its memory follows the ids it holds)
-- (A number given to redis.call is formatted as a float, %.17g, which costs more than the call's own work
-- for the small commands here: integers go as strings made with %d. \`now\` may be either.)
local function emit(events, maxlen, kind, id, now, extra, nids)
  if maxlen > 0 then
    if nids and nids > 1 then maxlen = math.max(1, math.floor(maxlen / nids)) end
    local m = string.format('%d', maxlen)
    if extra then
      redis.call('XADD', events, 'MAXLEN', '~', m, '*', 'e', kind, 'id', id, 't', now, 'x', extra)
    else
      redis.call('XADD', events, 'MAXLEN', '~', m, '*', 'e', kind, 'id', id, 't', now)
    end
  end
end
-- (text: n as text, when the caller has it)
local function stat(base, field, n, text)
  if n > 0 then redis.call('HINCRBY', base .. 'stats', field, text or string.format('%d', n)) end
end
-- An entry holds either a job of its own (p <packed>: the job's id is the entry id, and it has no
-- hash until a script writes one) or names a job with a hash (j <id>), whose data the hash holds.
-- Returns the job id and, for a job of its own, its packed p.
local function entryJob(e)
  local f = e[2]
  if not f then return nil end
  if f[1] == 'p' then return e[1], f[2] end
  return f[2], nil
end
-- The two numbers of an entry id (ms, seq).
local function idparts(id)
  local m, q = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(m), tonumber(q)
end
-- Orders two entry ids: -1, 0 or 1.
local function idcmp(a, b)
  local am, as = idparts(a)
  local bm, bs = idparts(b)
  if am ~= bm then return am < bm and -1 or 1 end
  if as ~= bs then return as < bs and -1 or 1 end
  return 0
end
-- Whether entry id \`a\` comes at or after \`b\`. Ids of the same shape (as Redis writes them, with
-- no leading zeros) compare as text, digit by digit, with no number parsed (a parse costs ~1,000
-- instructions).
local function idge(a, b)
  if #a == #b and string.find(a, '-', 1, true) == string.find(b, '-', 1, true) then return a >= b end
  return idcmp(a, b) >= 0
end
-- Whether \`id\` has the form of a stream entry id (only an entry's own job has such an id).
local function entryLike(id)
  return string.match(id, '^%d+%-%d+$') ~= nil
end
-- The packed p of the job entry \`id\` holds (the job reads as waiting on it, sid = id), or nil
-- when no entry of that id holds a job of its own.
-- (Redis reads '0123-4' as entry 123-4, and refuses an id out of range: only the entry of exactly
-- this id counts, and an id it refuses names no entry.)
local function ownEntry(stream, id)
  if not entryLike(id) or redis.call('EXISTS', stream) == 0 then return nil end
  local ok, r = pcall(redis.call, 'XRANGE', stream, id, id)
  local e = ok and r[1]
  if e and e[1] == id and e[2][1] == 'p' then return e[2][2] end
  return nil
end
-- The record in \`done\` (its key) of a job its entry held that completed with no hash, as a
-- table (finished, started, attempt, p, result), or nil.
local function doneRecord(done, id)
  local r = entryLike(id) and redis.call('HGET', done, id)
  if not r then return nil end
  local fin, started, attempt, plen, at = string.match(r, '^(%d+) (%d+) (%d+) (%d+)%z()')
  if not at then return nil end
  local pend = at + tonumber(plen)
  return {finished = fin, started = started, attempt = attempt, p = string.sub(r, at, pend - 1), result = string.sub(r, pend)}
end
-- The entry names the job (j <id>): the fetch reads the job from its hash, in the same
-- read that checks the job still waits on the entry (the data is stored once).
local function requeue(stream, job, id)
  local sid = redis.call('XADD', stream, '*', 'j', id)
  redis.call('HSET', job, 'state', 'waiting', 'sid', sid)
  return sid
end
-- The job of pending entry \`sid\`: whether the entry is still in the stream, then the job's id,
-- key, packed p (when the entry holds it) and {state, sid} (a job its entry holds with no hash
-- waits on that entry).
local function pendingJob(stream, base, sid)
  local e = redis.call('XRANGE', stream, sid, sid)[1]
  if not e then return false end
  local id, own = entryJob(e)
  if not id then return true end
  local job = base .. 'job:' .. id
  local st = redis.call('HMGET', job, 'state', 'sid')
  if own and not st[1] then st = {'waiting', sid} end
  return true, id, job, own, st
end
-- Calls fn(sid) for each entry pending under \`consumer\`, oldest first, a page at a time.
local function eachPending(stream, group, consumer, fn)
  local start = '-'
  while true do
    local pend = redis.call('XPENDING', stream, group, start, '+', 500, consumer)
    for _, p in ipairs(pend) do fn(p[1]) end
    if #pend < 500 then return end
    start = '(' .. pend[#pend][1]
  end
end
-- Puts a job that waits on pending entry \`sid\` back in the stream under a new entry, no attempt
-- and no stall counted (a job the entry held gets its hash, with its p, first).
local function handBack(stream, group, job, id, sid, own)
  redis.call('XACK', stream, group, sid)
  redis.call('XDEL', stream, sid)
  if own then redis.call('HSET', job, 'p', own) end
  requeue(stream, job, id)
end
-- Whether entry \`sid\` was delivered and not acknowledged: the attempt it started is running.
local function delivered(stream, group, sid)
  local ok, p = pcall(redis.call, 'XPENDING', stream, group, sid, sid, 1)
  return ok and #p > 0
end
-- Groups. A job with a group (hash field g) is "released" while it is in the stream or running;
-- hash \`gactive\` counts the released jobs of each group, at most the queue's group concurrency
-- (config field gc). The others wait in the group's list \`g:<group>\` (FIFO) and in the zset
-- \`held\` (for counts and listings), their hash \`waiting\` with no entry (sid '').
local function gcap(base)
  local gc = redis.call('HGET', base .. 'config', 'gc')
  return gc and tonumber(gc) or nil
end
-- A grouped job becomes ready: true when it may go to the stream now (counted), false when held.
local function genter(base, job, id, group, now)
  local gc = gcap(base)
  if gc and tonumber(redis.call('HGET', base .. 'gactive', group) or '0') >= gc then
    redis.call('RPUSH', base .. 'g:' .. group, id)
    -- scored by a sequence: listed in the order they were held
    redis.call('ZADD', base .. 'held', redis.call('INCR', base .. 'heldseq'), id)
    redis.call('HSET', job, 'state', 'waiting', 'sid', '')
    return false
  end
  redis.call('HINCRBY', base .. 'gactive', group, 1)
  return true
end
-- A released job of \`group\` left (finished, cancelled, delayed): the group's next held jobs go to
-- the stream while it has room.
local function grelease(stream, base, group, n)
  local gc = gcap(base)
  local list = base .. 'g:' .. group
  while not gc or n < gc do
    local nid = redis.call('LPOP', list)
    if not nid then break end
    redis.call('ZREM', base .. 'held', nid)
    local njob = base .. 'job:' .. nid
    local st = redis.call('HMGET', njob, 'state', 'sid')
    if st[1] == 'waiting' and st[2] == '' then
      requeue(stream, njob, nid)
      redis.call('HINCRBY', base .. 'gactive', group, 1)
      n = n + 1
    end
  end
end
-- A job becomes ready again (promoted, retried): to the stream, unless its group holds it back.
local function ready(stream, base, job, id, grp, now)
  if not grp or grp == '' or genter(base, job, id, grp, now) then requeue(stream, job, id) end
end
-- The consumer group's last-delivered id ('0-0' without the group): entries after it were never delivered.
local function lastDelivered(stream, group)
  local last = '0-0'
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return last end
  for _, g in ipairs(groups) do
    local name, lid
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then lid = g[i + 1] end
    end
    if name == group and lid then last = lid end
  end
  return last
end
local function gleave(stream, base, group)
  local n = redis.call('HINCRBY', base .. 'gactive', group, -1)
  if n <= 0 then
    redis.call('HDEL', base .. 'gactive', group)
    n = 0
  end
  grelease(stream, base, group, n)
end
-- redis.call(cmd, key, list[1..len]) a slice of 4,000 at a time (even: pairs stay whole): unpack
-- puts its values on Lua's stack, which holds 8,000
local function callmany(cmd, key, list, len)
  for i = 1, len, 4000 do redis.call(cmd, key, unpack(list, i, math.min(i + 3999, len))) end
end
local function delmany(keys)
  for i = 1, #keys, 500 do
    redis.call('DEL', unpack(keys, i, math.min(i + 499, #keys)))
  end
end
-- The activation rule of the fetch. A job runs only when its hash says it waits for
-- exactly this entry; nothing is written (the pending list holds the attempt). Any other entry is
-- dropped: its job's hash is gone (an event 'missing' says so) or names another entry (a path
-- that moved the job on left this one behind).
-- Appends to \`out\` the row the worker reads: id sid attempts-so-far stalls p group (a missing
-- attempt or stall count is 0 to every reader). Returns whether it did.
local function activate(stream, group, base, sid, id, now, events, eventsMax, out)
  local st = redis.call('HMGET', base .. 'job:' .. id, 'state', 'sid', 'p', 'attempt', 'stalls', 'g')
  if st[1] == 'waiting' and st[2] == sid then
    out[#out + 1] = id .. '\\0' .. sid .. '\\0' .. (st[4] or '0') .. '\\0' .. (st[5] or '0') .. '\\0' .. (st[6] or '') .. '\\0' .. st[3]
    return true
  end
  redis.call('XACK', stream, group, sid)
  redis.call('XDEL', stream, sid)
  if not st[1] then
    stat(base, 'missing', 1)
    emit(events, eventsMax, 'missing', id, now)
  end
  return false
end
-- The queue's flow gate, from its hash \`config\` (cfg: its fields paused rlMax rlDur, read once per
-- fetch by the caller): paused (field paused = 1), or
-- rate limited (rlMax jobs per rlDur ms, across all workers). The limit counts attempts that
-- finished in the last rlDur ms (zset \`rl\`, written as they finish) plus those running now (the
-- group's pending entries): a job may start only while that sum is below rlMax, so no window of
-- rlDur ms ever holds more than rlMax finished attempts. Returns how many may start (up to want)
-- and, when none may, a wait hint: 'p' (paused) or 'w<ms>'.
local function gate(stream, group, base, now, want, cfg)
  if cfg[1] == '1' then return 0, 'p' end
  if not cfg[2] then return want, '' end
  local max, dur = tonumber(cfg[2]), tonumber(cfg[3])
  local rl = base .. 'rl'
  redis.call('ZREMRANGEBYSCORE', rl, '-inf', now - dur)
  local allowed = max - redis.call('ZCARD', rl) - redis.call('XPENDING', stream, group)[1]
  if allowed >= want then return want, '' end
  if allowed > 0 then return allowed, '' end
  local oldest = redis.call('ZRANGE', rl, 0, 0, 'WITHSCORES')
  -- the next slot frees when the oldest finish leaves the window; with none, when a running job
  -- finishes (looked at again shortly)
  local wait = oldest[2] and math.max(1, math.ceil(tonumber(oldest[2]) + dur - now)) or 50
  return 0, 'w' .. wait
end
-- Removes finished jobs \`ids\`: their hashes, and (done: completed ones) their records in \`done\`.
-- (a job with a record has no hash: when every one of them had a record, no key is left to delete)
local function forget(base, ids, done)
  if done and redis.call('HDEL', base .. 'done', unpack(ids)) == #ids then return end
  for i = 1, #ids do ids[i] = base .. 'job:' .. ids[i] end
  delmany(ids)
end
-- Retention of one finished state's zset (done: it is \`completed\`, whose jobs may have records).
local function trim(zkey, base, keep, age, now, done)
  if keep >= 0 then
    local n = redis.call('ZCARD', zkey) - keep
    while n > 0 do
      local last = string.format('%d', math.min(n, 500) - 1)
      local ids = redis.call('ZRANGE', zkey, '0', last)
      redis.call('ZREMRANGEBYRANK', zkey, '0', last)
      forget(base, ids, done)
      n = n - 500
    end
  end
  if age >= 0 then
    local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', string.format('%d', now - age), 'LIMIT', '0', '500')
    if #ids > 0 then
      redis.call('ZREM', zkey, unpack(ids))
      forget(base, ids, done)
    end
  end
end
`;

/** One helper of {@link EMIT}: its name, its text (with the comments before it), the helpers it names. */
interface Helper { name: string; text: string; uses: string[] }

const HELPERS: Helper[] = (() => {
  const out: { name: string; text: string }[] = [];
  let pending: string[] = [];
  let current: { name: string; lines: string[] } | null = null;
  for (const line of EMIT.split("\n")) {
    if (current) {
      current.lines.push(line);
      if (line === "end") {
        out.push({ name: current.name, text: current.lines.join("\n") + "\n" });
        current = null;
      }
      continue;
    }
    const head = /^local function (\w+)\(/.exec(line);
    if (head) {
      current = { name: head[1]!, lines: [...pending, line] };
      pending = [];
    } else if (line !== "") pending.push(line);
  }
  if (current || pending.length) throw new Error("lua: EMIT ends inside a helper or with a stray comment");
  return out.map((h) => ({ ...h, uses: out.filter((o) => o !== h && mentions(h.text, o.name)).map((o) => o.name) }));
})();

/**
 * Whether Lua text names `name` as a word outside its whole-line comments (a superset of its real
 * uses: a trailing comment or a string that names it counts too).
 */
function mentions(text: string, name: string): boolean {
  const code = text.split("\n").filter((line) => !/^\s*--/.test(line)).join("\n");
  return new RegExp(`(?<!\\w)${name}(?!\\w)`).test(code);
}

/**
 * A script: `body` after the helpers of {@link EMIT} it names, directly or through another helper,
 * in EMIT's order (each after those it calls).
 */
export function withHelpers(body: string): string {
  const need = new Set<string>();
  const add = (name: string) => {
    if (need.has(name)) return;
    need.add(name);
    for (const u of HELPERS.find((h) => h.name === name)!.uses) add(u);
  };
  for (const h of HELPERS) if (mentions(body, h.name)) add(h.name);
  return HELPERS.filter((h) => need.has(h.name)).map((h) => h.text).join("") + body;
}

/**
 * enqueue one job or a batch. KEYS: stream delayed events.
 * ARGV: base group now eventsMax dedupTtl callId stride, then per job: id p runAt nonce group
 * (stride 5), or only p (stride 1: a batch of jobs that are due now, with generated ids and no
 * group; each lives in its stream entry alone and its id is the entry's, and the reply is
 * {'#', the ids space-separated}, all '+waiting'), where p is the packed
 * `name NUL data NUL opts NUL max NUL created`, nonce is
 * '' for a generated id, or a value unique to this call for a caller's jobId (stored in the job's
 * field n), and group '' for none (a grouped job beyond its group's concurrency is held: see genter).
 * Returns one string per job: '+waiting' or '+delayed' for a new job, '=' .. state when a job with
 * that id exists already (deduplicated: nothing written for it), '=removed' when it ran and
 * retention removed it but its id is still reserved (`dedup:<id>`, for dedupTtl ms from its
 * enqueue). When every job of a batch of more than one gets the same answer (the common case:
 * all '+waiting'), the reply is {'*', answer} instead. One event per batch and state.
 * Repeat: a call that wrote jobs leaves `call:<callId>` for 90 s (holding the ids, for stride 1); a repeat finds it and writes no job again,
 * also one that ran and was trimmed meanwhile (reported '+removed'). Later, a generated id (a
 * UUID) that exists is this call's own job, and a caller's id whose job holds this call's nonce
 * too: either is reported '+' with its state now, not as a duplicate, and written once.
 * `attempt` and `stalls` are absent until they change: every reader takes a missing one as 0.
 */
export const ENQUEUE = withHelpers(`
local stream, base, group = KEYS[1], ARGV[1], ARGV[2]
local now, eventsMax, dedupTtl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local marker = base .. 'call:' .. ARGV[6]
local stride = tonumber(ARGV[7])
-- A call's mark lasts 90 s. A call with no mark that the client sent more than 45 s ago (by its
-- clock) may be a re-send whose first run's mark has expired: it is refused, unwritten, rather
-- than written a second time. (A client clock up to 45 s behind or ahead of Redis's is tolerated.)
local function stale()
  -- (a server that refuses TIME in a script skips the check)
  local ok, t = pcall(redis.call, 'TIME')
  if not ok then return nil end
  local late = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - now
  if late > 45000 then
    return redis.error_reply('ERR sluice: this enqueue was sent ' .. math.floor(late / 1000) ..
      ' s ago (by the client clock) and not answered; it is refused unwritten, since a re-send this late cannot tell whether it ran (enqueue again)')
  end
  return nil
end
if stride == 1 then
  -- jobs due now, with generated ids and no group: each lives in its entry alone, and its id is
  -- the entry's. The mark holds the ids, so a repeat answers them and writes nothing.
  local prev = redis.call('GET', marker)
  if prev then return {'#', prev} end
  local refused = stale()
  if refused then return refused end
  if redis.call('EXISTS', stream) == 0 then
    redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
  end
  local n = #ARGV - 7
  -- (made at its final size, from the arguments the ids replace: a table filled a key at a time
  -- is rebuilt each time it outgrows its size; unpack puts its values on Lua's stack, which holds
  -- 8,000, so a longer batch's list grows as it goes)
  local ids = n <= 4000 and {unpack(ARGV, 8)} or {}
  for i = 1, n do ids[i] = redis.call('XADD', stream, '*', 'p', ARGV[i + 7]) end
  local all = table.concat(ids, ' ', 1, n)
  if n > 0 then
    redis.call('SET', marker, all, 'PX', 90000)
    emit(KEYS[3], eventsMax, 'waiting', all, now, nil, n)
  end
  return {'#', all}
end
local repeated = redis.call('EXISTS', marker) == 1
if not repeated then
  local refused = stale()
  if refused then return refused end
end
if redis.call('EXISTS', stream) == 0 then
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
local out, waiting, delayed = {}, {}, {}
-- one EXISTS for the whole batch: when none of its jobs exists (the common case) no job needs a
-- look of its own, except a caller's id for its dedup reservation
local jobs = {}
for j = 8, #ARGV, stride do jobs[#jobs + 1] = base .. 'job:' .. ARGV[j] end
local anyExists = repeated or (#jobs > 0 and redis.call('EXISTS', unpack(jobs)) > 0)
local created = {}
local i = 8
while ARGV[i] do
  local id, p = ARGV[i], ARGV[i + 1]
  local job = base .. 'job:' .. id
  local runAt, nonce, grp = tonumber(ARGV[i + 2]), ARGV[i + 3], ARGV[i + 4]
  -- an id given twice in one batch exists by its second time
  local f = (anyExists or created[id]) and redis.call('HMGET', job, 'state', 'n', 'sid') or {}
  -- (a generated id is never given twice)
  if nonce ~= '' then created[id] = true end
  if f[1] then
    -- (a job waiting on an entry a worker was delivered is running)
    local state = (f[1] == 'waiting' and f[3] and f[3] ~= '' and delivered(stream, group, f[3])) and 'active' or f[1]
    out[#out + 1] = ((nonce == '' or f[2] == nonce) and '+' or '=') .. state
  elseif repeated then
    -- the first run wrote it; it ran and retention removed it since: not written again
    out[#out + 1] = (nonce == '' and '+' or '=') .. 'removed'
  elseif nonce ~= '' and dedupTtl > 0 and not redis.call('SET', base .. 'dedup:' .. id, '1', 'NX', 'PX', dedupTtl) then
    out[#out + 1] = '=removed'
  elseif runAt > now then
    redis.call('HSET', job, 'state', 'delayed', 'runAt', ARGV[i + 2], 'p', p)
    if nonce ~= '' then redis.call('HSET', job, 'n', nonce) end
    if grp ~= '' then redis.call('HSET', job, 'g', grp) end
    redis.call('ZADD', KEYS[2], runAt, id)
    delayed[#delayed + 1] = id
    out[#out + 1] = '+delayed'
  elseif grp ~= '' and not genter(base, job, id, grp, now) then
    -- held: its group has as many jobs released as the queue's group concurrency
    redis.call('HSET', job, 'p', p, 'g', grp)
    if nonce ~= '' then redis.call('HSET', job, 'n', nonce) end
    waiting[#waiting + 1] = id
    out[#out + 1] = '+waiting'
  elseif grp ~= '' then
    -- state and sid first: they are the fields every later script reads
    local sid = redis.call('XADD', stream, '*', 'j', id)
    redis.call('HSET', job, 'state', 'waiting', 'sid', sid, 'p', p, 'g', grp)
    if nonce ~= '' then redis.call('HSET', job, 'n', nonce) end
    waiting[#waiting + 1] = id
    out[#out + 1] = '+waiting'
  else
    local sid = redis.call('XADD', stream, '*', 'j', id)
    if nonce ~= '' then
      redis.call('HSET', job, 'state', 'waiting', 'sid', sid, 'p', p, 'n', nonce)
    else
      redis.call('HSET', job, 'state', 'waiting', 'sid', sid, 'p', p)
    end
    waiting[#waiting + 1] = id
    out[#out + 1] = '+waiting'
  end
  i = i + stride
end
-- a call that wrote jobs leaves its mark for 90 s (a call that wrote none needs none)
if #waiting + #delayed > 0 then redis.call('SET', marker, '1', 'PX', 90000) end
if #waiting > 0 then emit(KEYS[3], eventsMax, 'waiting', table.concat(waiting, ' '), now, nil, #waiting) end
if #delayed > 0 then emit(KEYS[3], eventsMax, 'delayed', table.concat(delayed, ' '), now, nil, #delayed) end
if #out > 1 then
  local first = out[1]
  for k = 2, #out do
    if out[k] ~= first then return out end
  end
  return {'*', first}
end
return out
`);

/**
 * finish a batch of outcomes, then fetch up to N ready jobs (one round trip).
 * KEYS: stream delayed completed failed aborted events
 * ARGV: base group consumer now fetchCount keepCompleted ageCompleted keepFailed ageFailed
 *       eventsMax nHash nOwn hi, then nHash outcomes of jobs with a hash, `id sid payload meta`
 *   each, then nOwn outcomes of jobs their entries hold (id = sid), `id meta record` each, where
 *   hi is the highest id of the latter ('' when there is none or it is not given: the script then
 *   compares each with the oldest pending entry when it trims, where it otherwise compares hi
 *   alone), and meta is
 *   `<kind><started> <attempt> <retryAt> <group>` (one argument rather than four: each
 *   one costs the client and the server more than the parse), or only `<kind><started>` for a
 *   first attempt with no group and no retry time (the common case: one parse the less). sid: the entry the attempt ran
 *   from (its fencing token); started: when it started (epoch ms); attempt: its number; group:
 *   the job's group ('' for none, no whitespace), as the fetch gave them. A job its entry holds
 *   is a first attempt with no group: its meta is only `<kind>`, or `r<retryAt>` for a retry
 *   with a time (its start and attempt are in its record).
 *   kind: c completed, f failed, a aborted (by user), r retry, i interrupted (re-queue, attempt not counted)
 *   record: `<now> <started> <attempt> <bytes of p> NUL <p><payload>`, p the job's packed p as
 *   fetched: the record in `done` the job gets if it completes with no hash, built by the worker
 *   (a string built here, or any argument, costs the server ~14 instructions a byte: Redis's Lua
 *   hashes every byte of each string it makes), split only when the job gets a hash instead. Such
 *   a job with no hash is held by this attempt while its entry is pending under this consumer.
 *   The flags of the reply follow this order of the outcomes.
 * Returns { head, rows } or { head, '', part, part… }: head is `flags|hint|last`. flags is a string
 * with '1' per outcome applied, '2' per retry or interruption applied as `aborted` instead (an
 * abort was requested for the job), and '0' per outcome fenced out (the job is no longer this
 * attempt's); hint says why the fetch started nothing: paused ('p') or rate limited ('w<ms>');
 * last, when the fetch found fewer ready jobs than asked, is the newest entry id in the stream
 * ('0-0' for none): every entry after it is new, so a worker waits for one with a plain
 * `XREAD BLOCK … <last>`, which delivers nothing (only this script delivers, and it activates
 * what it delivers). rows: the jobs started, as one string of LF-separated parts (no part holds a
 * control character other than NUL: ids, groups and task names may not, and data and options are
 * JSON; one string costs the server and the client less than an element a part), or, when they
 * come to more than 8,000 bytes, an element a part after an empty one. A job with
 * a hash is one part `id NUL entry id NUL attempts before this one NUL stalls NUL group NUL p`; for a
 * job its entry holds (a new job: no attempt, stall or group), two parts, its entry id (its id,
 * which holds no NUL) and its p, as the entry holds it.
 * Repeat: an outcome this attempt applied already reports the flag it got then: a finished job
 * keeps the entry id that finished it; a retry or interruption leaves `fin`.
 * The jobs the first run fetched are not fetched again: they stay pending under this consumer,
 * and the worker hands them back (RECONCILE) once every call it had in flight was answered.
 */
export const FINISH_AND_FETCH = withHelpers(`
local stream, delayed, events = KEYS[1], KEYS[2], KEYS[6]
local base, group, consumer = ARGV[1], ARGV[2], ARGV[3]
-- nowS is written as given: a Lua number would be formatted back to text for every write
-- (a number argument is read by arithmetic, which parses it once, where tonumber parses it twice)
local nowS, fetchCount = ARGV[4], ARGV[5] + 0
local now = nowS + 0
local eventsMax = ARGV[10] + 0
-- nh outcomes of jobs with a hash (four arguments each), then nown of jobs their entries hold
-- (three each: their sid is their id)
local nh, nown = ARGV[11] + 0, ARGV[12] + 0
local n = nh + nown
-- A table filled a key at a time is rebuilt each time it outgrows its size (at 1, 2, 3, 5, 9…
-- keys), which cost this script about as much as its XTRIM: the lists below are made
-- at their final size, unfilled (a table made from k values has room for k), and each keeps its
-- length in a local. (Their unused slots are nil: none is read past its length.)
local EMPTY = {}
local function slots(k)
  -- (unpack puts its values on Lua's stack, which holds 8,000; past that a list grows as it goes)
  if k > 4000 then return {} end
  return {unpack(EMPTY, 1, k)}
end
-- where outcome i's arguments start (i from 1): the jobs with a hash first, four arguments each
-- (from 10 + 4i), then the jobs their entries hold, three each (their sid is their id; from
-- ownAt + 3(i - nh - 1)), computed where needed (a call costs more than a table's read)
local ownAt = 14 + 4 * nh
local ownKeys = slots(nown)
for k = 1, nown do ownKeys[k] = base .. 'job:' .. ARGV[ownAt + 3 * (k - 1)] end
-- The start, the attempt, the p and the payload of an own job's outcome, from its record (see
-- the script's comment).
local function unrecord(rec)
  local started, attempt, plen, from = string.match(rec, '^%d+ (%d+) (%d+) (%d+)%z()')
  local pend = from + tonumber(plen)
  return started, attempt, string.sub(rec, from, pend - 1), string.sub(rec, pend)
end
-- one EXISTS for the jobs their entries hold: while none has a hash (the common case), none
-- needs a read of its own
local hashed = nown > 0 and redis.call('EXISTS', unpack(ownKeys, 1, nown)) > 0
-- (each list keeps its length in a local: \`#t\` is a search)
local flags, acks, apply, bare, nack, napp, nbare = slots(n), slots(n), slots(n), slots(nown), 0, 0, 0
local NONE = {}
-- mixed: an acknowledged entry whose job has a hash (its id is not compared with hi below)
local mixed = false
for i = 1, n do
  local own = i > nh
  local o = own and ownAt + 3 * (i - nh - 1) or 10 + 4 * i
  local id = ARGV[o]
  local sid = own and id or ARGV[o + 1]
  local job = own and ownKeys[i - nh] or base .. 'job:' .. id
  local st = (not own or hashed) and redis.call('HMGET', job, 'state', 'sid') or NONE
  if not st[1] and own then
    -- its entry holds it and nothing wrote a hash: the attempt holds it while the entry is
    -- pending here (every path that takes a job from its worker writes its hash or drops it)
    nbare = nbare + 1
    bare[nbare] = i
    flags[i] = '0'
  elseif st[1] == 'waiting' and st[2] == sid then
    -- the job still waits on the entry this attempt ran from: the attempt holds it
    nack = nack + 1
    acks[nack] = sid
    mixed = true
    napp = napp + 1
    apply[napp] = i
    flags[i] = '1'
  elseif st[2] == sid and (st[1] == 'completed' or st[1] == 'failed' or st[1] == 'aborted') then
    -- this attempt ended the job already (a finished job keeps the entry id that finished it)
    flags[i] = (st[1] == 'aborted' and string.sub(ARGV[own and o + 1 or o + 3], 1, 1) ~= 'a') and '2' or '1'
  else
    -- a retry or an interruption this attempt applied already (they move the job to a new entry)
    local fin = st[1] and redis.call('HGET', job, 'fin')
    if fin and string.sub(fin, 1, #sid + 1) == sid .. '|' then
      flags[i] = string.sub(fin, #sid + 2)
    else
      flags[i] = '0'
    end
  end
end
-- hi: the newest entry of those below (given by the client)
local fresh, hi = slots(n)
-- the acknowledgements of jobs with a hash (the jobs below are acknowledged apart)
local nhashed = nack
if nbare > 0 then
  hi = ARGV[13]
  if hi == '' then hi = nil end
  local sids = slots(nbare)
  for k = 1, nbare do sids[k] = ARGV[ownAt + 3 * (bare[k] - nh - 1)] end
  -- One XACK for them all: an entry of a job with no hash is pending in the group only under the
  -- consumer it was delivered to (recovery acknowledges what it claims, in the same script), and
  -- every path that acknowledges an entry deletes it too. So when every entry was pending (the
  -- common case) every attempt held its job; when some were not (a job lost, or this call run
  -- before), an entry still in the stream is one this XACK acknowledged. (An XPENDING read of the
  -- range costs more: its reply becomes a table of four an entry.)
  local all = redis.call('XACK', stream, group, unpack(sids, 1, nbare)) == nbare
  for k = 1, nbare do
    local i, sid = bare[k], sids[k]
    if all or redis.call('XRANGE', stream, sid, sid)[1] then
      nack = nack + 1
      acks[nack] = sid
      napp = napp + 1
      apply[napp] = i
      fresh[i] = true
      flags[i] = '1'
    elseif redis.call('HEXISTS', base .. 'done', sid) == 1 then
      -- this attempt completed it already (only the attempt of its own entry writes its record)
      flags[i] = '1'
    end
  end
end
-- free before writing: at maxmemory a script whose first write is refused does nothing at all
-- (the entries go at the end, in one trim)
if nhashed > 0 then redis.call('XACK', stream, group, unpack(acks, 1, nhashed)) end
local bad = false
local nc, nf, na, nr, ni = 0, 0, 0, 0, 0
-- the queue's flow settings, read once (see gate)
local cfg = (napp > 0 or fetchCount > 0) and redis.call('HMGET', base .. 'config', 'paused', 'rlMax', 'rlDur') or {}
-- a rate-limited queue records when each attempt finished (member: the attempt's entry)
local limited = napp > 0 and cfg[2]
local finishes = {}
-- records of the jobs their entries held that complete with no hash (one write for them all)
local records, nrec = slots(napp + napp), 0
local done, doneIds = slots(napp + napp), slots(napp)
for a = 1, napp do
  local i = apply[a]
  local own = i > nh
  local o = own and ownAt + 3 * (i - nh - 1) or 10 + 4 * i
  local id = ARGV[o]
  local sid, payload, meta, p, rec
  local kind, started, attempt, retryAt, grp
  -- a job its entry held with no hash (first): it gets a record if it completed, else its hash
  -- now, with the data the worker sent back
  local first = fresh[i]
  local job = own and ownKeys[i - nh] or base .. 'job:' .. id
  if own then
    sid, meta, rec = id, ARGV[o + 1], ARGV[o + 2]
    if meta == 'c' and first then
      -- (the common case: its record goes as it came, nothing to parse)
      kind = 'c'
    else
      -- the rest comes in its record, split only for a path that writes it to a hash
      kind, retryAt, grp = string.sub(meta, 1, 1), string.sub(meta, 2), ''
      if retryAt == '' then retryAt = '0' end
      started, attempt, p, payload = unrecord(rec)
      if not first then p = nil end
    end
  else
    sid, payload, meta = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3]
    if string.find(meta, ' ', 1, true) then
      kind, started, attempt, retryAt, grp = string.match(meta, '^(%a)(%d+) (%d+) (%d+) (.*)$')
    else
      -- the short form: a first attempt, with no group and no retry time
      kind, started, attempt, retryAt, grp = string.sub(meta, 1, 1), string.sub(meta, 2), '1', '0', ''
    end
  end
  local flag = '1'
  if (kind == 'r' or kind == 'i') and not p then
    -- a user asked to abort it: an aborted job is never retried, whatever ended this attempt
    local abort = redis.call('HGET', job, 'abort')
    if abort and abort ~= '' then kind, flag = 'a', '2' end
  end
  flags[i] = flag
  if limited and kind ~= 'i' then
    finishes[#finishes + 1] = nowS
    finishes[#finishes + 1] = id .. '|' .. sid
  end
  if kind == 'c' then
    if first then
      -- its record as the worker built it
      records[nrec + 1] = id
      nrec = nrec + 2
      records[nrec] = rec
    else
      redis.call('HSET', job, 'state', 'completed', 'result', payload, 'finished', nowS, 'started', started, 'attempt', attempt)
    end
    if grp and grp ~= '' then gleave(stream, base, grp) end
    done[nc + nc + 1] = nowS
    done[nc + nc + 2] = id
    nc = nc + 1
    doneIds[nc] = id
  elseif kind == 'f' or kind == 'a' then
    local state = kind == 'f' and 'failed' or 'aborted'
    if p then redis.call('HSET', job, 'sid', sid, 'p', p) end
    redis.call('HSET', job, 'state', state, 'error', payload, 'finished', nowS, 'started', started, 'attempt', attempt)
    redis.call('ZADD', kind == 'f' and KEYS[4] or KEYS[5], nowS, id)
    if grp ~= '' then gleave(stream, base, grp) end
    bad = true
    if kind == 'f' then nf = nf + 1 else na = na + 1 end
    emit(events, eventsMax, state, id, nowS)
  elseif kind == 'r' then
    if p then redis.call('HSET', job, 'p', p) end
    redis.call('HSET', job, 'error', payload, 'started', started, 'attempt', attempt, 'fin', sid .. '|' .. flag)
    if tonumber(retryAt) > now then
      redis.call('HSET', job, 'state', 'delayed', 'runAt', retryAt)
      redis.call('ZADD', delayed, retryAt, id)
      if grp ~= '' then gleave(stream, base, grp) end
    else
      requeue(stream, job, id)
    end
    nr = nr + 1
    emit(events, eventsMax, 'retrying', id, nowS)
  else
    if p then redis.call('HSET', job, 'p', p) end
    redis.call('HSET', job, 'fin', sid .. '|' .. flag)
    requeue(stream, job, id)
    ni = ni + 1
    emit(events, eventsMax, 'interrupted', id, nowS)
  end
end
if nrec > 0 then callmany('HSET', base .. 'done', records, nrec) end
if #finishes > 0 then callmany('ZADD', base .. 'rl', finishes, #finishes) end
-- per-minute counts of finished jobs for the admin app's charts, kept two hours
-- nc as text (formatted once, for both counts)
local ncS
if nc + nf + na > 0 then
  local minute = base .. 'm:' .. math.floor(now / 60000)
  -- its expiry is set by the write that creates a field (and so the key): once or twice a minute
  local new = false
  if nc > 0 then
    ncS = string.format('%d', nc)
    new = redis.call('HINCRBY', minute, 'c', ncS) == nc
  end
  if nf + na > 0 then new = redis.call('HINCRBY', minute, 'f', string.format('%d', nf + na)) == nf + na or new end
  if new then redis.call('PEXPIRE', minute, 7200000) end
end
stat(base, 'completed', nc, ncS)
stat(base, 'failed', nf)
stat(base, 'aborted', na)
stat(base, 'retried', nr)
stat(base, 'interrupted', ni)
if nc > 0 then
  callmany('ZADD', KEYS[3], done, nc + nc)
  -- one event for the batch: ids are space-separated (job ids contain no whitespace)
  emit(events, eventsMax, 'completed', table.concat(doneIds, ' ', 1, nc), nowS, nil, nc)
  trim(KEYS[3], base, ARGV[6] + 0, ARGV[7] + 0, now, true)
end
if bad then
  trim(KEYS[4], base, ARGV[8] + 0, ARGV[9] + 0, now)
  trim(KEYS[5], base, ARGV[8] + 0, ARGV[9] + 0, now)
end
local hint, last = '', ''
-- the count as the client wrote it, unless the gate lowered it
local countS = ARGV[5]
if fetchCount > 0 then
  local want = fetchCount
  fetchCount, hint = gate(stream, group, base, now, fetchCount, cfg)
  if fetchCount ~= want then countS = string.format('%d', fetchCount) end
end
-- the rows from out[3] on; size: their bytes
local out, nout, size = slots(2 + fetchCount + fetchCount), 2, 0
out[1], out[2] = '', ''
if fetchCount > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', countS, 'STREAMS', stream, '>')
  local entries = r and r[1][2] or {}
  for i = 1, #entries do
    local e = entries[i]
    if e[2][1] == 'p' then
      -- a job its entry holds: nothing to read (a new job: no attempt, no stall, no group), and
      -- nothing to build: its entry id and its p go out as they came
      out[nout + 1] = e[1]
      nout = nout + 2
      out[nout] = e[2][2]
      size = size + #e[1] + #e[2][2] + 2
    else
      -- (it appends one row when it activates the job)
      if activate(stream, group, base, e[1], e[2][2], now, events, eventsMax, out) then
        nout = nout + 1
        size = size + #out[nout] + 1
      end
    end
  end
  if #entries < fetchCount then
    local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', '1')
    last = newest[1] and newest[1][1] or '0-0'
  end
end
if nack > 0 then
  -- The acknowledged entries leave the stream. Every entry older than the oldest pending one was
  -- delivered (the group's last-delivered id is at least that one) and is no longer pending, so
  -- its job is done with it: XTRIM MINID drops them all from the head, node by node, where XDEL
  -- searches each entry out of its node (~100 times the cost). With nothing pending and nothing
  -- left undelivered (this fetch came up short), every entry is done with. An XDEL then takes
  -- this batch's entries that an older running job kept in.
  local oldest = redis.call('XPENDING', stream, group, '-', '+', '1')[1]
  if oldest then
    local min = oldest[1]
    redis.call('XTRIM', stream, 'MINID', min)
    local kept = {}
    -- (none when every acknowledged entry is older than the oldest pending one: the common case)
    if mixed or not hi or idge(hi, min) then
      for k = 1, nack do
        local sid = acks[k]
        if idge(sid, min) then kept[#kept + 1] = sid end
      end
    end
    if #kept > 0 then redis.call('XDEL', stream, unpack(kept)) end
  elseif last ~= '' then
    redis.call('XTRIM', stream, 'MAXLEN', 0)
  else
    redis.call('XDEL', stream, unpack(acks, 1, nack))
  end
end
local head = table.concat(flags) .. '|' .. hint .. '|' .. last
-- rows that fit Lua's string buffer (8 KB) go joined, in one string; longer ones an element a
-- part (joining them would copy them over and over, at a cost well above what it saves)
if size <= 8000 then return {head, table.concat(out, '\\n', 3, nout)} end
out[1] = head
return out
`);

/**
 * heartbeat / abort poll for a worker's active jobs of one queue. KEYS: stream.
 * ARGV: base group consumer claim(1|0) now, then id token started triples (token: the entry the
 * attempt ran from; started: when it started, epoch ms).
 * For each job: 0 still ours, 1 lost (reclaimed or finished elsewhere), 2 still ours and an abort
 * was requested. With claim=1 (a heartbeat) the consumer's time in `alive` is refreshed (what
 * recovery reads), and entries still ours are claimed again with their delivery time kept at
 * the attempt's start (XCLAIM … IDLE … JUSTID: the pending list tells when it started). A job
 * still ours whose entry was deleted from the stream stays ours: its outcome is still written
 * (and counted as `orphaned`).
 * Repeat: the same answers; refreshing twice does no harm.
 */
export const CHECK = withHelpers(`
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local claim = ARGV[4] == '1'
local now = tonumber(ARGV[5])
local out = {}
local i = 6
while ARGV[i] do
  local sid = ARGV[i + 1]
  local st = redis.call('HMGET', base .. 'job:' .. ARGV[i], 'state', 'sid', 'abort')
  local r = 1
  local idle = math.max(0, now - (tonumber(ARGV[i + 2]) or now))
  if not st[1] and ARGV[i] == sid then
    -- its entry holds it and nothing wrote a hash: ours while the entry is pending here
    if claim then
      if #redis.call('XCLAIM', stream, group, consumer, 0, sid, 'IDLE', idle, 'JUSTID') > 0 then r = 0 end
    elseif delivered(stream, group, sid) then
      r = 0
    end
  elseif st[1] == 'waiting' and st[2] == sid then
    r = 0
    if claim then
      local c = redis.call('XCLAIM', stream, group, consumer, 0, sid, 'IDLE', idle, 'JUSTID')
      if #c == 0 and redis.call('XRANGE', stream, sid, sid)[1] == nil then stat(base, 'orphaned', 1) end
    end
    if st[3] and st[3] ~= '' then r = 2 end
  end
  out[#out + 1] = r
  i = i + 3
end
-- after the claims: at maxmemory a script's first write may only be one that does not grow memory
if claim then redis.call('ZADD', base .. 'alive', ARGV[5], consumer) end
return out
`);

/**
 * stalled recovery: one step over the pending entries idle for at least minIdle. KEYS: stream
 * failed events. ARGV: base group consumer now minIdle cursor count maxStalled eventsMax.
 * An entry whose owner heartbeated within minIdle (its time in `alive`) is left alone: its worker
 * lives (after a Redis outage every entry is idle, and that proves nothing). Others are claimed.
 * A claimed active job counts a stall: it goes back to the stream (its attempt not counted) or,
 * past maxStalled, fails; one whose abort was requested ends aborted. (An entry a blocking read
 * delivered to a worker that died before it ran the job counts a stall too: nothing tells it from
 * one that ran.) An entry deleted from the stream meanwhile leaves the
 * pending list; its id is returned so the worker can find its job. When the scan wraps, consumers
 * that own nothing and stopped heartbeating are deleted from the group.
 * Returns {nextCursor, {recovered ids}, {failed ids}, {deleted entry ids}, consumers deleted}.
 * Repeat: entries it handled are gone from the pending list; a second run finds nothing to do.
 */
export const RECOVER = withHelpers(`
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now, minIdle, cursor = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local count, maxStalled, eventsMax = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local alive = base .. 'alive'
local recovered, failed, deleted = {}, {}, {}
if redis.call('EXISTS', stream) == 0 then return {'0-0', recovered, failed, deleted, 0} end
local start = cursor == '0-0' and '-' or '(' .. cursor
local pend = redis.call('XPENDING', stream, group, 'IDLE', minIdle, start, '+', count)
local nstalled = 0
for _, p in ipairs(pend) do
  local sid, owner = p[1], p[2]
  local seen = tonumber(redis.call('ZSCORE', alive, owner) or '-1')
  if seen < 0 or now - seen >= minIdle then
    local c = redis.call('XCLAIM', stream, group, consumer, minIdle, sid)
    local e = c[1]
    if e == nil or e == false then
      if redis.call('XRANGE', stream, sid, sid)[1] == nil then
        redis.call('XACK', stream, group, sid)
        deleted[#deleted + 1] = sid
      end
    else
      local id, own = entryJob(e)
      local job = id and base .. 'job:' .. id
      local st = job and redis.call('HMGET', job, 'state', 'sid', 'stalls', 'abort', 'g', 'attempt') or {}
      redis.call('XACK', stream, group, sid)
      redis.call('XDEL', stream, sid)
      if own and not st[1] then
        -- its entry held it: it gets its hash now (after the frees), as it waited on the entry
        redis.call('HSET', job, 'state', 'waiting', 'sid', sid, 'p', own)
        st = {'waiting', sid}
      end
      if st[2] == sid and st[1] == 'waiting' then
        -- the attempt this entry started (the worker's attempt counts when the job ends here)
        local stalls = tonumber(st[3] or '0') + 1
        local attempt = tonumber(st[6] or '0') + 1
        nstalled = nstalled + 1
        if st[4] and st[4] ~= '' then
          -- its abort was requested: it ends aborted instead of running again elsewhere
          -- (sid cleared: the attempt that ran from this entry did not end the job, and a late
          -- outcome of it must read as fenced, not as its own repeat)
          redis.call('HSET', job, 'state', 'aborted', 'sid', '', 'finished', now, 'started', now - p[3], 'attempt', attempt, 'error',
            cjson.encode({name = 'JobAborted', message = 'Job aborted: user (its worker stopped heartbeating)', abortReason = 'user'}))
          redis.call('ZADD', base .. 'aborted', now, id)
          if st[5] and st[5] ~= '' then gleave(stream, base, st[5]) end
          stat(base, 'aborted', 1)
          emit(KEYS[3], eventsMax, 'aborted', id, now)
        elseif stalls > maxStalled then
          redis.call('HSET', job, 'state', 'failed', 'sid', '', 'stalls', stalls, 'finished', now, 'started', now - p[3], 'attempt', attempt,
            'error', cjson.encode({name = 'StalledError', message = 'job stalled more than maxStalled (' .. maxStalled .. ') times'}))
          redis.call('ZADD', KEYS[2], now, id)
          if st[5] and st[5] ~= '' then gleave(stream, base, st[5]) end
          failed[#failed + 1] = id
          stat(base, 'failed', 1)
          emit(KEYS[3], eventsMax, 'failed', id, now, 'stalled')
        else
          redis.call('HSET', job, 'stalls', stalls)
          requeue(stream, job, id)
          recovered[#recovered + 1] = id
          emit(KEYS[3], eventsMax, 'stalled', id, now)
        end
      end
    end
  end
end
stat(base, 'stalled', nstalled)
local nextCursor = '0-0'
if #pend >= count then nextCursor = pend[#pend][1] end
local removed = 0
if nextCursor == '0-0' then
  -- the scan wrapped: forget consumers that own nothing and stopped heartbeating (one per worker
  -- that died); a consumer that still owns entries is kept, or they would become unclaimable
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', stream, group)
  if ok then
    for _, c in ipairs(consumers) do
      local name, pending, idle
      for j = 1, #c, 2 do
        if c[j] == 'name' then name = c[j + 1]
        elseif c[j] == 'pending' then pending = c[j + 1]
        elseif c[j] == 'idle' then idle = c[j + 1] end
      end
      if name and name ~= consumer and pending == 0 and idle and idle >= minIdle then
        local seen = tonumber(redis.call('ZSCORE', alive, name) or '-1')
        if seen < 0 or now - seen >= minIdle then
          redis.call('XGROUP', 'DELCONSUMER', stream, group, name)
          redis.call('ZREM', alive, name)
          removed = removed + 1
        end
      end
    end
  end
end
return {nextCursor, recovered, failed, deleted, removed}
`);

/**
 * a worker hands back what its pending list holds that it does not run: entries a call whose
 * reply was lost activated or delivered for it (DESIGN section 6). Run only while no call of this
 * consumer that fetches is in flight. KEYS: stream events.
 * ARGV: base group consumer now eventsMax, then `<job id> <token>` of each attempt the worker holds
 * (running, or whose outcome is not yet written; the token is the attempt's entry id).
 * Entries of attempts it holds stay. Any other entry its job still waits on goes back to the
 * stream at once (under a new entry), no attempt and no stall counted; entries of jobs that
 * moved on or vanished are dropped.
 * Returns the ids of the jobs handed back. Repeat: what it handed back left the pending list.
 */
export const RECONCILE = withHelpers(`
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local now, eventsMax = tonumber(ARGV[4]), tonumber(ARGV[5])
if redis.call('EXISTS', stream) == 0 then return {} end
local held = {}
for i = 6, #ARGV do held[ARGV[i]] = true end
local out = {}
eachPending(stream, group, consumer, function(sid)
  local exists, id, job, own, st = pendingJob(stream, base, sid)
  st = st or {}
  if st[1] == 'waiting' and st[2] == sid then
    if not held[id .. ' ' .. sid] then
      handBack(stream, group, job, id, sid, own)
      out[#out + 1] = id
      emit(KEYS[2], eventsMax, 'requeued', id, now)
    end
  else
    redis.call('XACK', stream, group, sid)
    if exists then redis.call('XDEL', stream, sid) end
  end
end)
stat(base, 'requeued', #out)
return out
`);

/**
 * find the jobs whose pending stream entries were deleted outside sluice (RECOVER names the entries:
 * an entry gone from the stream no longer says which job it was). One SCAN step over the queue's
 * job hashes; a job still waiting on one of those entries (it was running) goes back to the stream with a stall
 * counted, like any job of a worker that stopped heartbeating. KEYS: stream events.
 * ARGV: base cursor count now eventsMax, then the deleted entry ids.
 * Returns {next cursor ('0' when done), {ids re-queued}}. Repeat: a re-queued job has a new entry.
 */
export const SWEEP = withHelpers(`
local stream, base = KEYS[1], ARGV[1]
local now, eventsMax = tonumber(ARGV[4]), tonumber(ARGV[5])
local deleted = {}
for i = 6, #ARGV do deleted[ARGV[i]] = true end
local pattern = string.gsub(base, '[%*%?%[%]\\\\]', '\\\\%0') .. 'job:*'
local r = redis.call('SCAN', ARGV[2], 'MATCH', pattern, 'COUNT', tonumber(ARGV[3]))
local out = {}
for _, key in ipairs(r[2]) do
  local st = redis.call('HMGET', key, 'state', 'sid', 'stalls')
  if st[1] == 'waiting' and st[2] and deleted[st[2]] then
    local id = string.sub(key, #base + 5)
    redis.call('HSET', key, 'stalls', tonumber(st[3] or '0') + 1)
    requeue(stream, key, id)
    out[#out + 1] = id
    emit(KEYS[2], eventsMax, 'stalled', id, now, 'entry-deleted')
  end
end
stat(base, 'stalled', #out)
return {r[1], out}
`);

/**
 * store a running job's progress, only while the attempt still holds the job. KEYS: job stream.
 * ARGV: token payload group id (token: the attempt's entry id). Returns 1 when stored, 0 when the
 * attempt no longer holds the job (nothing written, and a hash retention deleted is not re-created).
 * A job its entry holds (id = token) with no hash is held while the entry is pending: it gets its
 * hash now. Repeat: the same write.
 */
export const PROGRESS = withHelpers(`
local st = redis.call('HMGET', KEYS[1], 'state', 'sid')
if not st[1] and ARGV[4] == ARGV[1] then
  local own = delivered(KEYS[2], ARGV[3], ARGV[1]) and ownEntry(KEYS[2], ARGV[1])
  if not own then return 0 end
  redis.call('HSET', KEYS[1], 'state', 'waiting', 'sid', ARGV[1], 'p', own, 'progress', ARGV[2])
  return 1
end
if st[1] == 'waiting' and st[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'progress', ARGV[2])
  return 1
end
return 0
`);

/**
 * promote due delayed jobs to the stream. KEYS: stream delayed events.
 * ARGV: base now limit eventsMax. Returns {promoted count, next due ms or -1}.
 * Repeat: promoted ids left the zset; a second run promotes only what came due since.
 */
export const PROMOTE = withHelpers(`
local stream, delayed, base = KEYS[1], KEYS[2], ARGV[1]
local now = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
if #ids > 0 then redis.call('ZREM', delayed, unpack(ids)) end
for _, id in ipairs(ids) do
  local job = base .. 'job:' .. id
  local st = redis.call('HMGET', job, 'state', 'g')
  if st[1] == 'delayed' then
    ready(stream, base, job, id, st[2], now)
    emit(KEYS[3], tonumber(ARGV[4]), 'waiting', id, now)
  end
end
local nxt = redis.call('ZRANGE', delayed, 0, 0, 'WITHSCORES')
if nxt[2] then return {#ids, nxt[2]} end
return {#ids, '-1'}
`);

/**
 * cancel one job. KEYS: stream delayed cancelled events.
 * ARGV: base group id now abort(1|0) delete(1|0) eventsMax channel callId.
 * Returns {outcome, previous state}: outcome is cancelled | abort-requested | active | finished | missing.
 * Repeat: a job this call cancelled carries `op` = callId and the state it left, so the repeat
 * answers the same; one this call deleted answers `missing` (it is gone either way). Deleting a
 * job also frees its id for a new enqueue.
 */
export const CANCEL = withHelpers(`
local stream, delayed, base, group, id = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local now, abort, del, callId = tonumber(ARGV[4]), ARGV[5] == '1', ARGV[6] == '1', ARGV[9]
local job = base .. 'job:' .. id
local st = redis.call('HMGET', job, 'state', 'sid', 'op', 'g')
-- a job its entry holds has no hash: it is written with the first write
local own
if not st[1] then
  own = ownEntry(stream, id)
  if not own then
    if doneRecord(base .. 'done', id) then return {'finished', 'completed'} end
    return {'missing', ''}
  end
  st = {'waiting', id, false, false}
end
local state = st[1]
if st[3] and string.sub(st[3], 1, #callId + 1) == callId .. ' ' then
  return {'cancelled', string.sub(st[3], #callId + 2)}
end
-- a job waiting on an entry that was delivered is running (the pending list holds its attempt)
if state == 'waiting' and st[2] and st[2] ~= '' and delivered(stream, group, st[2]) then state = 'active' end
if state == 'waiting' or state == 'delayed' then
  local grp = st[4]
  if state == 'waiting' and grp and grp ~= '' and st[2] == '' then
    -- held by its group: out of the group's list
    redis.call('LREM', base .. 'g:' .. grp, 0, id)
    redis.call('ZREM', base .. 'held', id)
  elseif state == 'waiting' then
    redis.call('XACK', stream, group, st[2])
    redis.call('XDEL', stream, st[2])
    if grp and grp ~= '' then gleave(stream, base, grp) end
  else
    redis.call('ZREM', delayed, id)
  end
  -- a job that never ran frees its id: it can be enqueued again once this one is gone
  redis.call('DEL', base .. 'dedup:' .. id)
  if del then
    redis.call('DEL', job)
  else
    if own then redis.call('HSET', job, 'sid', id, 'p', own) end
    redis.call('HSET', job, 'state', 'cancelled', 'finished', now, 'op', callId .. ' ' .. state)
    redis.call('ZADD', KEYS[3], now, id)
  end
  emit(KEYS[4], tonumber(ARGV[7]), 'cancelled', id, now)
  return {'cancelled', state}
end
if state == 'active' then
  if abort then
    if own then redis.call('HSET', job, 'state', 'waiting', 'sid', id, 'p', own) end
    redis.call('HSET', job, 'abort', 'user')
    redis.call('PUBLISH', ARGV[8], id)
    return {'abort-requested', state}
  end
  return {'active', state}
end
return {'finished', state}
`);

/**
 * retry a failed (or aborted) job: back to the stream with its attempts reset.
 * KEYS: stream failed aborted events. ARGV: base id now eventsMax callId.
 * Returns {1, previous state} when re-queued, {0, state} otherwise.
 * Repeat: the job carries `op` = callId and the state it left, so the repeat answers the same.
 */
export const RETRY = withHelpers(`
local base, id, now, callId = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[5]
local job = base .. 'job:' .. id
local st = redis.call('HMGET', job, 'state', 'op', 'g')
local state = st[1]
if st[2] and string.sub(st[2], 1, #callId + 1) == callId .. ' ' then return {1, string.sub(st[2], #callId + 2)} end
if state ~= 'failed' and state ~= 'aborted' then
  return {0, state or (doneRecord(base .. 'done', id) and 'completed') or ''}
end
redis.call('ZREM', KEYS[2], id)
redis.call('ZREM', KEYS[3], id)
redis.call('HSET', job, 'attempt', 0, 'stalls', 0, 'abort', '', 'op', callId .. ' ' .. state)
redis.call('HDEL', job, 'finished')
ready(KEYS[1], base, job, id, st[3], now)
emit(KEYS[4], tonumber(ARGV[4]), 'waiting', id, now, 'retry')
return {1, state}
`);

/**
 * retention on a timer: trims every finished state, also when no worker finishes jobs (a queue
 * whose jobs are only cancelled). KEYS: completed failed aborted cancelled.
 * ARGV: base now keepCompleted ageCompleted keepFailed ageFailed keepCancelled ageCancelled
 * (count -1 or age -1: no limit; aborted jobs follow the failed policy). Repeat: trims nothing more.
 */
export const TRIM = withHelpers(`
local base, now = ARGV[1], tonumber(ARGV[2])
trim(KEYS[1], base, tonumber(ARGV[3]), tonumber(ARGV[4]), now, true)
trim(KEYS[2], base, tonumber(ARGV[5]), tonumber(ARGV[6]), now)
trim(KEYS[3], base, tonumber(ARGV[5]), tonumber(ARGV[6]), now)
trim(KEYS[4], base, tonumber(ARGV[7]), tonumber(ARGV[8]), now)
return 1
`);

/**
 * a stopping consumer's clean-up. KEYS: stream. ARGV: base group consumer, then `<job id> <token>`
 * of each attempt the worker still holds (an outcome it could not write).
 * Entries delivered to it that it does not hold (never started) go back to the stream; then the
 * consumer is deleted only if it owns no pending entry (deleting one that does makes its entries
 * unclaimable). Returns the number of pending entries it still owns. Repeat: nothing left to release.
 */
export const RELEASE_CONSUMER = withHelpers(`
local stream, base, group, consumer = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', stream) == 0 then return 0 end
local held = {}
for i = 4, #ARGV do held[ARGV[i]] = true end
local left = 0
-- every pending entry (the consumer is deleted only if it holds none)
eachPending(stream, group, consumer, function(sid)
  local _, id, job, own, st = pendingJob(stream, base, sid)
  st = st or {}
  if st[1] == 'waiting' and st[2] == sid and not held[id .. ' ' .. sid] then
    handBack(stream, group, job, id, sid, own)
  elseif not id or not st[1] or st[2] ~= sid then
    redis.call('XACK', stream, group, sid)
    if id then redis.call('XDEL', stream, sid) end
  else
    left = left + 1
  end
end)
if left == 0 then
  pcall(redis.call, 'XGROUP', 'DELCONSUMER', stream, group, consumer)
  redis.call('ZREM', base .. 'alive', consumer)
end
return left
`);

/**
 * one job as stored, and whether it runs now. KEYS: job stream done. ARGV: group id.
 * Returns {HGETALL fields, pending}: pending is {consumer, ms since delivery} when the job waits
 * on an entry the consumer group delivered (its attempt runs: the pending list holds it), else {}.
 * A job its entry holds with no hash reads as its hash would: state waiting, sid and p; one
 * completed with no hash as its record in \`done\` says.
 */
export const GET_JOB = withHelpers(`
local h = redis.call('HGETALL', KEYS[1])
local pending = {}
local state, sid
if #h == 0 then
  local own = ownEntry(KEYS[2], ARGV[2])
  local d = not own and doneRecord(KEYS[3], ARGV[2])
  if own then
    h = {'state', 'waiting', 'sid', ARGV[2], 'p', own}
  elseif d then
    h = {'state', 'completed', 'sid', ARGV[2], 'p', d.p, 'result', d.result, 'finished', d.finished, 'started', d.started, 'attempt', d.attempt}
  end
end
for i = 1, #h, 2 do
  if h[i] == 'state' then state = h[i + 1] elseif h[i] == 'sid' then sid = h[i + 1] end
end
if state == 'waiting' and sid and sid ~= '' then
  local ok, p = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[1], sid, sid, 1)
  if ok and p[1] then pending = {p[1][2], p[1][3]} end
end
return {h, pending}
`);

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
return {len - pending + redis.call('ZCARD', ARGV[2] .. 'held'), pending, redis.call('ZCARD', KEYS[2]), redis.call('ZCARD', KEYS[3]),
  redis.call('ZCARD', KEYS[4]), redis.call('ZCARD', KEYS[5]), redis.call('ZCARD', KEYS[6])}
`;

/**
 * claims the schedules due now, for a worker's scheduler pass. KEYS: the queue's `schedules:next`.
 * ARGV: base now limit lease. Returns { prev, id, tick, spec, id, tick, spec… }: `prev` is when a
 * scheduler last looked at this queue before this call ('' for never) — a long gap means no worker
 * ran, and the ticks due are misfires. Each schedule returned is leased to this caller: its score
 * becomes now + lease, so no other scheduler takes it meanwhile; the caller moves it on with
 * SCHEDULE_ADVANCE (expected: now + lease). Writes nothing when the queue has no schedule.
 * Repeat: the heartbeat is stored as `prev|now`; a call with the `now` stored answers the `prev`
 * stored. The schedules the first run leased are not due for the repeat: a lost reply delays them
 * until the lease ends, when a scheduler takes them (its ticks' job ids keep them once each).
 */
export const SCHEDULE_DUE = `
local base, now, limit, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', base .. 'schedules') == 0 then return {} end
local beat = redis.call('GET', base .. 'sched:beat')
local prev = ''
if beat then
  local sep = string.find(beat, '|', 1, true)
  local p, last = string.sub(beat, 1, sep - 1), string.sub(beat, sep + 1)
  if last == now then prev = p else prev = last end
end
redis.call('SET', base .. 'sched:beat', prev .. '|' .. now, 'PX', 86400000)
local out = {prev}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #due, 2 do
  -- the tick claimed first stays the claim's tick until the schedule moves on: a lease that ran
  -- out (its claimer never advanced it) is taken again from that tick, not from the lease's end
  redis.call('HSETNX', base .. 'sched:claim', due[i], due[i + 1])
  out[#out + 1] = due[i]
  out[#out + 1] = redis.call('HGET', base .. 'sched:claim', due[i])
  out[#out + 1] = redis.call('HGET', base .. 'schedules', due[i]) or ''
  redis.call('ZADD', KEYS[1], tonumber(now) + lease, due[i])
end
return out
`;

/**
 * moves a schedule on from the tick a scheduler handled, if no other scheduler did first.
 * KEYS: `schedules:next`. ARGV: base id expected next last ('' for a schedule with no more ticks,
 * which is removed from the zset; last '' when no job was enqueued).
 * Returns 1 when this call moved it, 0 when the schedule had moved (or was removed) already.
 * Repeat: the schedule is at `next` now, not at `expected`: 0, nothing written.
 */
export const SCHEDULE_ADVANCE = `
local base, id, expected, nextTick, last = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('ZSCORE', KEYS[1], id)
if not cur or tonumber(cur) ~= tonumber(expected) then return 0 end
if nextTick == '' then redis.call('ZREM', KEYS[1], id) else redis.call('ZADD', KEYS[1], nextTick, id) end
redis.call('HDEL', base .. 'sched:claim', id)
if last ~= '' then redis.call('HSET', base .. 'schedules:last', id, last) end
return 1
`;

/**
 * sets the queue's group concurrency (ARGV[2]; '' removes the limit) and releases the held jobs
 * that now have room. KEYS: stream. ARGV: base gc.
 * Repeat: the same setting; nothing more has room.
 */
export const GROUP_CONCURRENCY = withHelpers(`
local stream, base = KEYS[1], ARGV[1]
if ARGV[2] == '' then redis.call('HDEL', base .. 'config', 'gc') else redis.call('HSET', base .. 'config', 'gc', ARGV[2]) end
local counts = redis.call('HGETALL', base .. 'gactive')
for i = 1, #counts, 2 do grelease(stream, base, counts[i], tonumber(counts[i + 1])) end
return 1
`);

/**
 * one chunk of a bulk action; the caller loops until a chunk touches nothing.
 * KEYS: stream delayed completed failed cancelled aborted events. ARGV: base group action now
 * limit eventsMax arg [state]. Actions:
 *   retry <failed|aborted>       failed (or aborted) jobs back to waiting, attempts reset
 *   clean (arg: age ms, state)   completed/failed/cancelled/aborted jobs finished before now - age deleted
 *   promote                      delayed jobs due now (their delay dropped)
 *   cancel                       waiting jobs (undelivered entries, and jobs their groups hold) cancelled
 * Returns {touched, scanned}: the jobs this chunk changed, and the entries it looked at (the
 * caller goes on while a chunk looks at any: stale entries are dropped on the way).
 * Repeat: each job is touched only from the state the action starts from; a re-sent chunk touches
 * the next jobs (or none), never one twice.
 */
export const BULK = withHelpers(`
local stream, delayed, events = KEYS[1], KEYS[2], KEYS[7]
local base, group, action, now, limit, eventsMax, arg = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local zsets = {completed = KEYS[3], failed = KEYS[4], cancelled = KEYS[5], aborted = KEYS[6]}
local n, scanned = 0, 0
if action == 'retry' then
  local z = zsets[arg]
  local ids = redis.call('ZRANGE', z, 0, limit - 1)
  scanned = #ids
  for _, id in ipairs(ids) do
    redis.call('ZREM', z, id)
    local job = base .. 'job:' .. id
    local st = redis.call('HMGET', job, 'state', 'g')
    if st[1] == arg then
      redis.call('HSET', job, 'attempt', 0, 'stalls', 0, 'abort', '')
      redis.call('HDEL', job, 'finished')
      ready(stream, base, job, id, st[2], now)
      emit(events, eventsMax, 'waiting', id, now, 'retry')
      n = n + 1
    end
  end
elseif action == 'clean' then
  local z = zsets[ARGV[8]]
  local ids = redis.call('ZRANGEBYSCORE', z, '-inf', now - tonumber(arg), 'LIMIT', 0, limit)
  if #ids > 0 then
    redis.call('ZREM', z, unpack(ids))
    if ARGV[8] == 'completed' then redis.call('HDEL', base .. 'done', unpack(ids)) end
    local keys = {}
    for i = 1, #ids do
      keys[#keys + 1] = base .. 'job:' .. ids[i]
      keys[#keys + 1] = base .. 'log:' .. ids[i]
    end
    delmany(keys)
    n = #ids
    scanned = #ids
  end
elseif action == 'promote' then
  local ids = redis.call('ZRANGE', delayed, 0, limit - 1)
  scanned = #ids
  if #ids > 0 then redis.call('ZREM', delayed, unpack(ids)) end
  for _, id in ipairs(ids) do
    local job = base .. 'job:' .. id
    local st = redis.call('HMGET', job, 'state', 'g')
    if st[1] == 'delayed' then
      ready(stream, base, job, id, st[2], now)
      emit(events, eventsMax, 'waiting', id, now, 'promoted')
      n = n + 1
    end
  end
elseif action == 'cancel' then
  -- held jobs first (their groups' lists), then the stream's undelivered entries
  local held = redis.call('ZRANGE', base .. 'held', 0, limit - 1)
  scanned = #held
  for _, id in ipairs(held) do
    local job = base .. 'job:' .. id
    local st = redis.call('HMGET', job, 'state', 'g')
    redis.call('ZREM', base .. 'held', id)
    if st[2] then redis.call('LREM', base .. 'g:' .. st[2], 0, id) end
    if st[1] == 'waiting' then
      redis.call('HSET', job, 'state', 'cancelled', 'finished', now)
      redis.call('ZADD', zsets.cancelled, now, id)
      redis.call('DEL', base .. 'dedup:' .. id)
      emit(events, eventsMax, 'cancelled', id, now)
      n = n + 1
    end
  end
  if scanned == 0 and redis.call('EXISTS', stream) == 1 then
    local entries = redis.call('XRANGE', stream, '(' .. lastDelivered(stream, group), '+', 'COUNT', limit)
    scanned = #entries
    for _, e in ipairs(entries) do
      local sid = e[1]
      local id, own = entryJob(e)
      redis.call('XDEL', stream, sid)
      if id then
        local job = base .. 'job:' .. id
        local st = redis.call('HMGET', job, 'state', 'sid', 'g')
        -- a job its entry held with no hash waited on it
        if own and not st[1] then
          st = {'waiting', sid, false}
          redis.call('HSET', job, 'sid', sid, 'p', own)
        end
        if st[1] == 'waiting' and st[2] == sid then
          redis.call('HSET', job, 'state', 'cancelled', 'finished', now)
          redis.call('ZADD', zsets.cancelled, now, id)
          redis.call('DEL', base .. 'dedup:' .. id)
          if st[3] and st[3] ~= '' then gleave(stream, base, st[3]) end
          emit(events, eventsMax, 'cancelled', id, now)
          n = n + 1
        end
      end
    end
  end
end
return {n, scanned}
`);
