"""The Lua scripts of the Redis outbox (:mod:`gateway.outbox.redis`): each is one atomic step
over the stream and the per-subscriber keys (:mod:`fsm.keys`) that Python passes in KEYS."""

from __future__ import annotations

#: A Lua function the scripts that report on the stream begin with.
READING = """
-- What the stream held, and when (Redis's clock): {sec, usec, length}; length -1 when the
-- group is missing (Redis lost its data: nothing to say about the stream the group read).
local function reading(stream)
  local groups = redis.pcall('XINFO', 'GROUPS', stream)
  if type(groups) ~= 'table' or groups.err or #groups == 0 then return {0, 0, -1} end
  local t = redis.call('TIME')
  return {tonumber(t[1]), tonumber(t[2]), redis.call('XLEN', stream)}
end
"""

#: Several items, in order: KEYS = stream, then per item its subscriber's sequence and
#: done-mark keys; ARGV = TTL, then per item msisdn, text, meta, ref. Returns the entry ids
#: and a reading of the stream.
PUT = (
    READING
    + """
local ids = {}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local seq_key, done_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local a = 2 + 4 * i
  local seq = redis.call('INCR', seq_key)
  if seq == 1 then redis.call('DEL', done_key) end
  redis.call('EXPIRE', seq_key, ARGV[1])
  if redis.call('EXISTS', done_key) == 1 then redis.call('EXPIRE', done_key, ARGV[1]) end
  ids[i + 1] = redis.call('XADD', KEYS[1], '*', 'm', ARGV[a], 's', seq, 't', ARGV[a + 1],
                          'meta', ARGV[a + 2], 'r', ARGV[a + 3])
end
return {ids, reading(KEYS[1])}
"""
)

#: Several items leave: KEYS = stream, failed list, then per item its done-mark and state
#: keys; ARGV = group, TTL, then per item entry id, seq, failure record ('' when sent).
FINISH = (
    READING
    + """
local gone = {}
for i = 0, (#KEYS - 2) / 2 - 1 do
  local done_key, acc_key = KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local a = 3 + 3 * i
  -- An entry no longer in the stream was finished already, or lost with Redis's data: then
  -- its seq belongs to a numbering that restarted, and must not move the new done-mark.
  if #redis.call('XRANGE', KEYS[1], ARGV[a], ARGV[a]) > 0 then
    local done = tonumber(redis.call('GET', done_key) or '0')
    if done < tonumber(ARGV[a + 1]) then
      redis.call('SET', done_key, ARGV[a + 1], 'EX', ARGV[2])
    end
  end
  gone[#gone + 1] = ARGV[a]
  redis.call('DEL', acc_key)
  if ARGV[a + 2] ~= '' then
    redis.call('LPUSH', KEYS[2], ARGV[a + 2])
    redis.call('LTRIM', KEYS[2], 0, 9999)
  end
end
redis.call('XACK', KEYS[1], ARGV[1], unpack(gone))
redis.call('XDEL', KEYS[1], unpack(gone))
return reading(KEYS[1])
"""
)

#: Lease the entries of one take that may go now: KEYS = stream, then per candidate its
#: subscriber's done-mark and its state key; ARGV = group, consumer, now (the caller's clock,
#: epoch seconds), limit, TTL, then per candidate entry id, msisdn, seq. An entry goes when its
#: subscriber's done-mark is seq - 1 (at most one per subscriber, even if listed twice) and its
#: ``nb`` has passed; entries whose done-mark reached their seq were finished elsewhere and are
#: XACKed. Returns {{id, attempts, acc JSON or ''}...} for the chosen ones, the stale ids, and
#: a reading of the stream (time, length).
CLAIM = """
local group, consumer, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
-- A Redis that lost its data since the entries were read: say NOGROUP before anything else
-- (the length returned below must be that of the stream the group reads).
local g = redis.pcall('XGROUP', 'CREATECONSUMER', KEYS[1], group, consumer)
if type(g) == 'table' and g.err then return redis.error_reply(g.err) end
local marks, heads, chosen, stale = {}, {}, {}, {}
local claim = {'XCLAIM', KEYS[1], group, consumer, 0}
for i = 0, (#KEYS - 1) / 2 - 1 do
  local done_key, acc_key = KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local a = 6 + 3 * i
  local entry, msisdn, seq = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  local mark = marks[msisdn]
  if mark == nil then
    mark = tonumber(redis.call('GET', done_key) or '0')
    marks[msisdn] = mark
  end
  if mark >= seq then
    stale[#stale + 1] = entry
  elseif mark == seq - 1 and not heads[msisdn] then
    heads[msisdn] = true
    if #chosen < limit then
      local state = redis.call('HMGET', acc_key, 'nb', 'acc')
      if tonumber(state[1] or '0') <= now then
        local n = redis.call('HINCRBY', acc_key, 'n', 1)
        redis.call('EXPIRE', acc_key, ARGV[5])
        chosen[#chosen + 1] = {entry, n, state[2] or ''}
        claim[#claim + 1] = entry
      end
    end
  end
end
if #stale > 0 then redis.call('XACK', KEYS[1], group, unpack(stale)) end
if #chosen > 0 then
  claim[#claim + 1] = 'JUSTID'
  redis.call(unpack(claim))
end
local t = redis.call('TIME')
return {chosen, stale, {tonumber(t[1]), tonumber(t[2]), redis.call('XLEN', KEYS[1])}}
"""
