-- Apply one transaction's changes if every record it read is still at the version it read.
--
-- KEYS[1]  timers (zset: timer key -> due time)
-- KEYS[2]  in-flight timers (zset: timer key -> lease expiry)
-- KEYS[3..] the record, seq and log keys the plan refers to by index
-- ARGV[1]  the plan, MessagePack: {checks, writes, arm, disarm, events, log_size, fragments, publish}
--   checks  {{key index, version}, ...}   version 0 means "did not exist"
--   writes  {{key index, blob index}, ...}  each write bumps the record's version
--   arm     {{timer key, due}, ...}       due as a string, to keep every digit
--   disarm  {timer key, ...}
--   events  {{seq key index, log key index, blob index, channel?}, ...}  in commit order; with a
--            channel, the event is also published there as "<seq>|<blob>"
--   fragments {{list key index, index key index, fragment id, blob index}, ...}  transcript upserts:
--            a new id is appended to the list, a known one replaced where it stands
--   publish {{channel, blob index}, ...}  unnumbered notices, published as "0|<blob>"
--   expire  {{key index, seconds}, ...}   time to live (engagements that ended, idempotency receipts)
--   reports {stream key index, retention ms, {blob index, ...}} or {}: ended engagements (JSON) added
--            to the reporting stream, which keeps the last retention's worth
-- ARGV[2..] the blobs (encoded records and events), passed apart because cmsgpack has no binary type
--
-- Returns {1, {seq, ...}} (one seq per event, in order), or {0, key} naming a record that changed.
local plan = cmsgpack.unpack(ARGV[1])
local checks, writes, arm, disarm, events, log_size, fragments, publish, expire, reports =
  plan[1], plan[2], plan[3], plan[4], plan[5], plan[6], plan[7], plan[8], plan[9], plan[10]

for _, check in ipairs(checks) do
  local have = redis.call('HGET', KEYS[check[1]], 'v')
  if (tonumber(have) or 0) ~= check[2] then
    return {0, KEYS[check[1]]}
  end
end

for _, write in ipairs(writes) do
  redis.call('HINCRBY', KEYS[write[1]], 'v', 1)
  redis.call('HSET', KEYS[write[1]], 'd', ARGV[write[2]])
end

for _, timer in ipairs(disarm) do
  redis.call('ZREM', KEYS[1], timer)
  redis.call('ZREM', KEYS[2], timer)
end
for _, timer in ipairs(arm) do
  redis.call('ZADD', KEYS[1], timer[2], timer[1])
end

for _, fragment in ipairs(fragments) do
  local list, index, id, blob = KEYS[fragment[1]], KEYS[fragment[2]], fragment[3], ARGV[fragment[4]]
  local at = redis.call('HGET', index, id)
  if at then
    redis.call('LSET', list, at, blob)
  else
    local length = redis.call('RPUSH', list, blob)
    redis.call('HSET', index, id, length - 1)
  end
end

local seqs = {}
for _, event in ipairs(events) do
  local seq = redis.call('INCR', KEYS[event[1]])
  redis.call('XADD', KEYS[event[2]], 'MAXLEN', log_size, seq .. '-1', 'e', ARGV[event[3]])
  if event[4] then
    redis.call('PUBLISH', event[4], seq .. '|' .. ARGV[event[3]])
  end
  seqs[#seqs + 1] = seq
end
for _, notice in ipairs(publish or {}) do
  redis.call('PUBLISH', notice[1], '0|' .. ARGV[notice[2]])
end
for _, ttl in ipairs(expire) do
  redis.call('EXPIRE', KEYS[ttl[1]], ttl[2])
end
if reports[1] then
  local now = redis.call('TIME')
  local oldest = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - reports[2]
  for _, report in ipairs(reports[3]) do
    redis.call('XADD', KEYS[reports[1]], 'MINID', '~', oldest, '*', 'e', ARGV[report])
  end
end
return {1, seqs}
