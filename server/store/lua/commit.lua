-- Apply the transactions of one group (route.lua comes before this), each if every record it read is
-- still at the version it read: each is atomic on its own, and the group costs one round trip. The
-- events of the whole group go out at the end, one message per channel.
--
-- Every key is under the contact center's hash tag, the same slot as the two declared ones, so the
-- plans name keys in full (server/redis_layout.py makes every name) rather than as one argument each.
--
-- KEYS[1]  timers (zset: timer key -> due time)
-- KEYS[2]  in-flight timers (zset: timer key -> lease expiry)
-- ARGV[1]  MessagePack {reports stream, channel prefix, log size, retention ms, {plan, ...}}, a plan being
--   1 checks    {{key, version}, ...}         version 0 means "did not exist"
--   2 writes    {{key, blob, version}, ...}   the new version: one more than the one checked
--   3 arm       {{timer key, due}, ...}       due as a string, to keep every digit
--   4 disarm    {timer key, ...}
--   5 events    {{topic, seq key, log key, where key, blob}, ...}  in commit order: each gets the
--               agent's next seq, goes into its log (trimmed to about log size, never below, id
--               `<seq>-1`) and to the nodes in its topic's `where` set
--   6 fragments {{list key, place, blob}, ...}  transcript lines kept: at the end of the list for
--               place -1, else in the place of the one they replace
--   7 notices   {{topic, where key, blob}, ...}  sent as they are (seq 0), to the nodes that want them
--   8 expire    {{key, seconds}, ...}         time to live (what ended, idempotency receipts)
--   9 reports   {blob, ...}                   ended engagements, added to the reporting stream, which
--               keeps the last retention's worth
-- ARGV[2]  every blob (records, frames) end to end; a blob above is {offset, length} in it (cmsgpack
--          has no binary type, and one argument costs less than one per blob)
--
-- Returns one entry per plan: {1, {seq, ...}} (a seq per event), or {0, key} naming a record that
-- changed (nothing of that plan applied).
local group = cmsgpack.unpack(ARGV[1])
local reports_key, prefix, log_size, retention_ms, plans = group[1], group[2], group[3], group[4], group[5]
local blobs = ARGV[2]
local results = {}

local function blob(at)
  return string.sub(blobs, at[1] + 1, at[1] + at[2])
end

for p, plan in ipairs(plans) do
  local stale = nil
  for _, check in ipairs(plan[1]) do
    local have = redis.call('HGET', check[1], 'v')
    if (tonumber(have) or 0) ~= check[2] then
      stale = check[1]
      break
    end
  end
  if stale then
    results[p] = {0, stale}
  else
    for _, write in ipairs(plan[2]) do
      redis.call('HSET', write[1], 'v', write[3], 'd', blob(write[2]))
    end
    for _, timer in ipairs(plan[4]) do
      redis.call('ZREM', KEYS[1], timer)
      redis.call('ZREM', KEYS[2], timer)
    end
    for _, timer in ipairs(plan[3]) do
      redis.call('ZADD', KEYS[1], timer[2], timer[1])
    end
    for _, fragment in ipairs(plan[6]) do
      if fragment[2] < 0 then
        redis.call('RPUSH', fragment[1], blob(fragment[3]))
      else
        redis.call('LSET', fragment[1], fragment[2], blob(fragment[3]))
      end
    end
    local seqs = {}
    for _, event in ipairs(plan[5]) do
      local data = blob(event[5])
      local seq = redis.call('INCR', event[2])
      redis.call('XADD', event[3], 'MAXLEN', '~', log_size, seq .. '-1', 'e', data)
      route_event(prefix, event[1], event[4], seq, data)
      seqs[#seqs + 1] = seq
    end
    for _, notice in ipairs(plan[7]) do
      route_event(prefix, notice[1], notice[2], 0, blob(notice[3]))
    end
    for _, ttl in ipairs(plan[8]) do
      redis.call('EXPIRE', ttl[1], ttl[2])
    end
    if #plan[9] > 0 then
      local now = redis.call('TIME')
      local oldest = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - retention_ms
      for _, report in ipairs(plan[9]) do
        redis.call('XADD', reports_key, 'MINID', '~', oldest, '*', 'e', blob(report))
      end
    end
    results[p] = {1, seqs}
  end
end
route_flush()
return results
