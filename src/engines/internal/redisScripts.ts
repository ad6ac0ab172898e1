/**
 * The Lua scripts of the Redis event log: each change of a stream (create, append,
 * end, delete, trim) is one script, so Redis runs it whole with nothing in between
 * (fencing, the seq allocation, the XADDs and the end check cannot interleave with
 * another writer), and a refused write has written nothing.
 *
 * Layout per stream (keys in `redisLog.ts`): a hash `meta` (escaped name, generation, last
 * seq, newest epoch, end, retention, last append time) and a stream `events` whose
 * entry ids are the log's own ids, `<generation>-<seq>`: never the clock, so events
 * appended in one millisecond never reorder, and `XTRIM MINID` by id is retention by
 * count. The end is an entry after the last event (`<generation>-<lastSeq + 1>`,
 * fields `end`, `reason`), so a reader that reads on finds it; a deleted stream
 * leaves a short-lived tombstone entry (`deleted`) so the live tails of other
 * processes wake and see it gone. Event entries are `e` (type), `d` (data), `t`
 * (append time, epoch ms, never decreasing within a stream), always in that order.
 */
import { createHash } from "node:crypto"
import type { Redis } from "ioredis"

export class Script {
  readonly sha: string
  constructor(readonly lua: string) {
    this.sha = createHash("sha1").update(lua).digest("hex")
  }

  /** EVALSHA, loading the script with EVAL when the server does not have it (restart, SCRIPT FLUSH, failover). */
  run(client: Redis, keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>): Promise<unknown> {
    return client.evalsha(this.sha, keys.length, ...keys, ...args).catch((error: unknown) =>
      error instanceof Error && error.message.startsWith("NOSCRIPT")
        ? client.eval(this.lua, keys.length, ...keys, ...args)
        : Promise.reject(error)
    )
  }
}

// Numbers are written with %d: Lua's default conversion turns large integers into 1e+15 forms.
const prelude = `
local function id(generation, seq) return string.format('%d-%d', generation, seq) end
local function seqOf(entryId) return tonumber(string.match(entryId, '%-(%d+)$')) end
local function int(n) return string.format('%d', n) end

-- generation, last seq, last seq removed by retention, end, reason, maxEvents, maxAgeMillis
local function head(meta, events)
  local m = redis.call('HMGET', meta, 'generation', 'seq', 'end', 'reason', 'maxEvents', 'maxAgeMillis')
  if not m[1] then return false end
  local seq = tonumber(m[2])
  local trimmedThrough = seq
  local first = redis.call('XRANGE', events, '-', '+', 'COUNT', 1)[1]
  if first and first[2][1] == 'e' then trimmedThrough = seqOf(first[1]) - 1 end
  return {tonumber(m[1]), seq, trimmedThrough, m[3], m[4], m[5], m[6]}
end

-- Creates the stream unless it exists, with a generation from the log's counter that is
-- at least the server's time in ms: a Redis that lost its data (restarted without
-- persistence, or failed over to a lagging replica) restarts its counter, and a plain
-- INCR would then reissue generation 1 and the ids readers hold.
local function create(meta, events, counter, name, maxEvents, maxAge)
  if redis.call('EXISTS', meta) == 1 then return end
  redis.call('DEL', events)
  local generation = redis.call('INCR', counter)
  local time = redis.call('TIME')
  local millis = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  if generation < millis then
    generation = millis
    redis.call('SET', counter, int(generation))
  end
  redis.call('HSET', meta, 'name', name, 'generation', int(generation), 'seq', 0, 'time', 0)
  if maxEvents ~= '' then redis.call('HSET', meta, 'maxEvents', maxEvents) end
  if maxAge ~= '' then redis.call('HSET', meta, 'maxAgeMillis', maxAge) end
end

-- 'fenced' when epoch is below the newest; otherwise the epoch to record (false: none).
local function fence(epoch, current)
  if epoch == '' then return false end
  epoch = tonumber(epoch)
  current = tonumber(current)
  if current and epoch < current then return 'fenced' end
  if not current or epoch > current then return epoch end
  return false
end
`

/** Head of a stream, or nil. KEYS: meta, events. */
export const head = new Script(`${prelude}
return head(KEYS[1], KEYS[2])`)

/** Creates unless it exists; its head. KEYS: meta, events, counter. ARGV: escaped name, maxEvents, maxAgeMillis ('' for none). */
export const create = new Script(`${prelude}
create(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
return head(KEYS[1], KEYS[2])`)

/**
 * Appends all events or none. KEYS: meta, events, counter, retained. ARGV: escaped name, epoch ('' for
 * none), now, then type and data of each event. Returns {'ok', generation, first seq, time},
 * {'fenced', current epoch} or {'ended', end, reason}.
 */
export const append = new Script(`${prelude}
local meta, events = KEYS[1], KEYS[2]
create(meta, events, KEYS[3], ARGV[1], '', '')
local m = redis.call('HMGET', meta, 'generation', 'seq', 'epoch', 'end', 'reason', 'maxEvents', 'maxAgeMillis', 'time')
local epoch = fence(ARGV[2], m[3])
if epoch == 'fenced' then return {'fenced', m[3]} end
if m[4] then return {'ended', m[4], m[5]} end
if epoch then redis.call('HSET', meta, 'epoch', int(epoch)) end
local generation, seq = tonumber(m[1]), tonumber(m[2])
local time = math.max(tonumber(ARGV[3]), tonumber(m[8]))
local first = seq + 1
for i = 4, #ARGV, 2 do
  seq = seq + 1
  redis.call('XADD', events, id(generation, seq), 'e', ARGV[i], 'd', ARGV[i + 1], 't', int(time))
end
redis.call('HSET', meta, 'seq', int(seq), 'time', int(time))
-- When the next trim is due: now if over the count, else when these events expire (LT
-- keeps an earlier due time, that of older events).
local maxEvents, maxAge = tonumber(m[6]), tonumber(m[7])
local due = false
if maxEvents and redis.call('XLEN', events) > maxEvents then due = time
elseif maxAge then due = time + maxAge end
if due then redis.call('ZADD', KEYS[4], 'LT', int(due), ARGV[1]) end
return {'ok', generation, first, time}`)

/**
 * Records the end. KEYS: meta, events. ARGV: epoch ('' for none), now, end ('Completed' or
 * 'Failed'), reason. Returns {'ok'} (also for the same end again), {'missing'},
 * {'fenced', current epoch} or {'ended', end, reason}.
 */
export const end = new Script(`${prelude}
local meta, events = KEYS[1], KEYS[2]
local m = redis.call('HMGET', meta, 'generation', 'seq', 'epoch', 'end', 'reason', 'time')
if not m[1] then return {'missing'} end
local epoch = fence(ARGV[1], m[3])
if epoch == 'fenced' then return {'fenced', m[3]} end
if m[4] then
  if m[4] == ARGV[3] and m[5] == ARGV[4] then return {'ok'} end
  return {'ended', m[4], m[5]}
end
if epoch then redis.call('HSET', meta, 'epoch', int(epoch)) end
local time = math.max(tonumber(ARGV[2]), tonumber(m[6]))
redis.call('XADD', events, id(tonumber(m[1]), tonumber(m[2]) + 1), 'end', ARGV[3], 'reason', ARGV[4], 't', int(time))
redis.call('HSET', meta, 'end', ARGV[3], 'reason', ARGV[4], 'time', int(time))
return {'ok'}`)

/**
 * Deletes the stream, leaving a tombstone entry for `ttl` ms. KEYS: meta, events, retained.
 * ARGV: escaped name, ttl. Returns 1 if it existed.
 */
export const remove = new Script(`${prelude}
local meta, events = KEYS[1], KEYS[2]
local m = redis.call('HMGET', meta, 'generation', 'seq')
if not m[1] then return 0 end
redis.call('DEL', meta, events)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('XADD', events, id(tonumber(m[1]), tonumber(m[2]) + 2), 'deleted', '1')
redis.call('PEXPIRE', events, ARGV[2])
return 1`)

/**
 * Applies retention, scanning at most `batch` entries for age. KEYS: meta, events,
 * retained. ARGV: escaped name, now, batch. Returns {removed, 1 if more may be due now else 0}.
 *
 * By count, one `XTRIM MINID` (ids are seqs). By age it cannot be one MINID, ids not
 * being times: the scan from the oldest entry stops at the first one young enough
 * (times never decrease within a stream), so it costs the entries it removes plus one,
 * each entry is removed once, and no time index has to be kept in step with the
 * stream. The stream's score in \`retained\` is when its next trim is due (its oldest
 * kept event expires), so the background pass visits only streams with work.
 */
export const trim = new Script(`${prelude}
local meta, events, retained, name = KEYS[1], KEYS[2], KEYS[3], ARGV[1]
local m = redis.call('HMGET', meta, 'generation', 'seq', 'maxEvents', 'maxAgeMillis')
if not m[1] then
  redis.call('ZREM', retained, name)
  return {0, 0}
end
local generation, seq = tonumber(m[1]), tonumber(m[2])
local removed = 0
local maxEvents = tonumber(m[3])
if maxEvents and seq > maxEvents then
  removed = redis.call('XTRIM', events, 'MINID', id(generation, seq - maxEvents + 1))
end
local maxAge = tonumber(m[4])
if not maxAge then
  redis.call('ZREM', retained, name)
  return {removed, 0}
end
local cutoff = tonumber(ARGV[2]) - maxAge
local entries = redis.call('XRANGE', events, '-', '+', 'COUNT', tonumber(ARGV[3]))
local kept, last = false, false
for _, entry in ipairs(entries) do
  if entry[2][1] ~= 'e' or tonumber(entry[2][6]) >= cutoff then
    kept = entry
    break
  end
  last = entry[1]
end
if last then removed = removed + redis.call('XTRIM', events, 'MINID', id(generation, seqOf(last) + 1)) end
if kept and kept[2][1] == 'e' then
  redis.call('ZADD', retained, int(tonumber(kept[2][6]) + maxAge), name)
elseif not kept and #entries == tonumber(ARGV[3]) then
  return {removed, 1}
else
  redis.call('ZREM', retained, name)
end
return {removed, 0}`)
