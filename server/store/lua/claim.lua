-- Claim due timers for one node: each is moved to the in-flight set with a lease, so that exactly one
-- node fires it; a lease that runs out (the node died while firing) makes the timer claimable again.
--
-- KEYS[1] timers (zset: timer key -> due time)
-- KEYS[2] in-flight timers (zset: timer key -> lease expiry)
-- ARGV[1] now, ARGV[2] limit, ARGV[3] lease expiry for what is claimed now
local claimed = {}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, timer in ipairs(stale) do
  redis.call('ZADD', KEYS[2], ARGV[3], timer)
  claimed[#claimed + 1] = timer
end
local room = tonumber(ARGV[2]) - #claimed
if room > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, room)
  for _, timer in ipairs(due) do
    redis.call('ZREM', KEYS[1], timer)
    redis.call('ZADD', KEYS[2], ARGV[3], timer)
    claimed[#claimed + 1] = timer
  end
end
return claimed
