-- Apply the transactions of one group (route.lua comes before this), each if every record it read is
-- still at the version it read: each is atomic on its own, and the group costs one round trip. The
-- events of the whole group go out at the end, one message per channel.
--
-- KEYS[1]  timers (zset: timer key -> due time)
-- KEYS[2]  in-flight timers (zset: timer key -> lease expiry)
-- KEYS[3..] the records, seqs, logs, transcripts and `where` sets the plans refer to by index
-- ARGV[1]  MessagePack {channel prefix, log size, retention ms, {plan, ...}}, a plan being
--   1 checks    {{key index, version}, ...}   version 0 means "did not exist"
--   2 writes    {{key index, blob index}, ...}  each write bumps the record's version
--   3 arm       {{timer key, due}, ...}       due as a string, to keep every digit
--   4 disarm    {timer key, ...}
--   5 events    {{topic, where index, seq index, log index, blob index}, ...} in commit order: each
--               gets the agent's next seq, goes into its log (capped, id `<seq>-1`) and to its nodes
--   6 fragments {{list index, index index, fragment id, blob index}, ...}  transcript upserts: a
--               new id is appended, a known one replaced where it stands
--   7 notices   {{topic, blob index}, ...}   published as they are (seq 0)
--   8 expire    {{key index, seconds}, ...}  time to live (what ended, idempotency receipts)
--   9 reports   {stream key index, {blob index, ...}} or {}: ended engagements for reporting, the
--               stream keeping the last retention's worth
-- ARGV[2..] the blobs (records and frames), apart because cmsgpack has no binary type
--
-- Returns one entry per plan: {1, {seq, ...}} (a seq per event), or {0, key} naming a record that
-- changed (nothing of that plan applied).
local group = cmsgpack.unpack(ARGV[1])
local prefix, log_size, retention_ms, plans = group[1], group[2], group[3], group[4]
local results = {}

for p, plan in ipairs(plans) do
  local stale = nil
  for _, check in ipairs(plan[1]) do
    local have = redis.call('HGET', KEYS[check[1]], 'v')
    if (tonumber(have) or 0) ~= check[2] then
      stale = KEYS[check[1]]
      break
    end
  end
  if stale then
    results[p] = {0, stale}
  else
    for _, write in ipairs(plan[2]) do
      redis.call('HINCRBY', KEYS[write[1]], 'v', 1)
      redis.call('HSET', KEYS[write[1]], 'd', ARGV[write[2]])
    end
    for _, timer in ipairs(plan[4]) do
      redis.call('ZREM', KEYS[1], timer)
      redis.call('ZREM', KEYS[2], timer)
    end
    for _, timer in ipairs(plan[3]) do
      redis.call('ZADD', KEYS[1], timer[2], timer[1])
    end
    for _, fragment in ipairs(plan[6]) do
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
    for _, event in ipairs(plan[5]) do
      local seq = redis.call('INCR', KEYS[event[3]])
      redis.call('XADD', KEYS[event[4]], 'MAXLEN', log_size, seq .. '-1', 'e', ARGV[event[5]])
      route_to_agent(prefix, event[1], KEYS[event[2]], seq, ARGV[event[5]])
      seqs[#seqs + 1] = seq
    end
    for _, notice in ipairs(plan[7]) do
      route_to_topic(prefix, notice[1], ARGV[notice[2]])
    end
    for _, ttl in ipairs(plan[8]) do
      redis.call('EXPIRE', KEYS[ttl[1]], ttl[2])
    end
    local reports = plan[9]
    if reports[1] then
      local now = redis.call('TIME')
      local oldest = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - retention_ms
      for _, report in ipairs(reports[2]) do
        redis.call('XADD', KEYS[reports[1]], 'MINID', '~', oldest, '*', 'e', ARGV[report])
      end
    end
    results[p] = {1, seqs}
  end
end
route_flush()
return results
