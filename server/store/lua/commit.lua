-- Apply the transactions of one group (route.lua comes before this), each if every record it read is
-- still at the version it read: each is atomic on its own, and the group costs one round trip. The
-- events of the whole group go out at the end, one message per channel.
--
-- Every key is under the contact center's hash tag, the same slot as the two declared ones, so the
-- plans name keys rather than pass them as one argument each: records in full, and the keys of an
-- agent, a topic or a transcript as the prefix the header gives (server/redis_layout.py makes every
-- name) and an id. The plans are flat runs of arguments (no table to build per item: that was most of
-- the script's time), and each blob (a record, a frame) is an argument of its own, named by index.
--
-- KEYS[1]  timers (zset: timer key -> due time)
-- KEYS[2]  in-flight timers (zset: timer key -> lease expiry)
-- ARGV[1]  MessagePack {names, log size, retention ms, blob count, plan count}, names being {reports
--          stream, channel prefix, seq prefix, log prefix, where prefix, transcript prefix, agent topic
--          prefix, ranking prefix, ranked prefix, ranking version prefix}
-- ARGV[2..] the blobs, then the plans, each a run of arguments:
--   length (the arguments that follow in this plan)
--   n, then n × (key, version)                 checks: version 0 means "did not exist"
--   n, then n × (key, new version, blob)       writes
--   n, then n × (queue, agent, entry or "")    the agent's new place in the queue's ranking (none for
--                                              ""): the sorted set, the agent's entry in the hash
--                                              beside it, and the ranking's version bumped
--   n, then n × (timer key, due)               arm (due as a string, to keep every digit)
--   n, then n × timer key                      disarm
--   n, then n × (agent, blob)                  events, in commit order: each gets the agent's next
--                                              seq, goes into its log (trimmed to about log size,
--                                              never below, id `<seq>-1`) and to the nodes in its
--                                              topic's `where` set
--   n, then n × (engagement, place, blob)      transcript lines kept: at the end for place -1, else in
--                                              the place of the one they replace
--   n, then n × (topic, blob)                  notices, sent as they are (seq 0) to the nodes that want
--                                              them
--   n, then n × (key, seconds)                 time to live (what ended, idempotency receipts)
--   n, then n × blob                           ended engagements, for the reporting stream, which
--                                              keeps the last retention's worth
-- A blob above is the index of its argument.
--
-- Returns one entry per plan: {1, {seq, ...}} (a seq per event), or {0, {key, version, data, ...}}
-- with the records that changed as they are now (nothing of that plan applied; the node decides
-- again on them without reading them again).
local header = cmsgpack.unpack(ARGV[1])
local names, log_size, retention_ms, blob_count, plan_count = header[1], header[2], header[3], header[4], header[5]
local reports_key, prefix, seq_of, log_of, where_of, transcript_of, agent_topic =
  names[1], names[2], names[3], names[4], names[5], names[6], names[7]
local ranking_of, ranked_of, ranking_version_of = names[8], names[9], names[10]
local results = {}
local at = 2 + blob_count

local function take()
  local value = ARGV[at]
  at = at + 1
  return value
end

local function count()
  local value = tonumber(ARGV[at])
  at = at + 1
  return value
end

local function blob()
  return ARGV[count()]
end

for p = 1, plan_count do
  local length = count()
  local next_plan = at + length
  local stale = {}
  for _ = 1, count() do
    local key, version = take(), tonumber(take())
    local now = redis.call('HMGET', key, 'v', 'd')
    if (tonumber(now[1]) or 0) ~= version then
      stale[#stale + 1] = key
      stale[#stale + 1] = now[1]
      stale[#stale + 1] = now[2]
    end
  end
  if #stale > 0 then
    results[p] = {0, stale}
    at = next_plan
  else
    for _ = 1, count() do
      local key, version = take(), take()
      redis.call('HSET', key, 'v', version, 'd', blob())
    end
    for _ = 1, count() do
      local queue, agent, entry = take(), take(), take()
      local order, index = ranking_of .. queue, ranked_of .. queue
      local old = redis.call('HGET', index, agent)
      if (old or '') ~= entry then
        if old then
          redis.call('ZREM', order, old)
        end
        if entry ~= '' then
          redis.call('ZADD', order, 0, entry)
          redis.call('HSET', index, agent, entry)
        else
          redis.call('HDEL', index, agent)
        end
        redis.call('HINCRBY', ranking_version_of .. queue, 'v', 1)
      end
    end
    local armed = {}
    for _ = 1, count() do
      local timer, due = take(), take()
      armed[#armed + 1] = {timer, due}
    end
    for _ = 1, count() do
      local timer = take()
      redis.call('ZREM', KEYS[1], timer)
      redis.call('ZREM', KEYS[2], timer)
    end
    for _, timer in ipairs(armed) do
      redis.call('ZADD', KEYS[1], timer[2], timer[1])
    end
    local seqs = {}
    for _ = 1, count() do
      local agent, data = take(), blob()
      local topic = agent_topic .. agent
      local seq = redis.call('INCR', seq_of .. agent)
      redis.call('XADD', log_of .. agent, 'MAXLEN', '~', log_size, seq .. '-1', 'e', data)
      route_event(prefix, topic, where_of .. topic, seq, data)
      seqs[#seqs + 1] = seq
    end
    for _ = 1, count() do
      local engagement, place, data = take(), tonumber(take()), blob()
      if place < 0 then
        redis.call('RPUSH', transcript_of .. engagement, data)
      else
        redis.call('LSET', transcript_of .. engagement, place, data)
      end
    end
    for _ = 1, count() do
      local topic, data = take(), blob()
      route_event(prefix, topic, where_of .. topic, 0, data)
    end
    for _ = 1, count() do
      local key, ttl = take(), take()
      redis.call('EXPIRE', key, ttl)
    end
    local reports = count()
    if reports > 0 then
      local now = redis.call('TIME')
      local oldest = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)) - retention_ms
      for _ = 1, reports do
        redis.call('XADD', reports_key, 'MINID', '~', oldest, '*', 'e', blob())
      end
    end
    results[p] = {1, seqs}
  end
end
route_flush()
return results
