-- Read records in one atomic step: what a transaction decides on belongs together.
--
-- KEYS     what to read
-- ARGV[i]  what KEYS[i] is: "x" a transcript (a list of fragments);
--          "r\n<version key>\n<start>\n<limit>\n<agent key prefix>\n<id offset>\n<records>" a queue's
--          ranking (a sorted set read in order from the entry `start` on, inclusive, `limit` entries
--          at most, all for -1), with the records of its first `records` agents (an entry's agent id
--          starts at `id offset`); anything else a record (a hash {v = version, d = data})
--
-- Returns one entry per key, in order: the transcript's fragments; for a ranking {how many entries
-- it has, its version, {entries}, {{version, data} of each agent read}}; or {version, data} (false
-- where the record does not exist).
local out = {}
for i, key in ipairs(KEYS) do
  local kind = ARGV[i]
  if kind == 'x' then
    out[i] = redis.call('LRANGE', key, 0, -1)
  elseif string.sub(kind, 1, 1) == 'r' then
    local _, _, version_key, start, limit, agents, offset, records =
      string.find(kind, '^r\n(.-)\n(.-)\n(.-)\n(.-)\n(.-)\n(.-)$')
    local low = start == '' and '-' or '[' .. start
    local entries = {}
    if tonumber(limit) ~= 0 then
      entries = redis.call('ZRANGE', key, low, '+', 'BYLEX', 'LIMIT', 0, limit)
    end
    local rows = {}
    for j = 1, math.min(tonumber(records), #entries) do
      rows[j] = redis.call('HMGET', agents .. string.sub(entries[j], tonumber(offset)), 'v', 'd')
    end
    local version = redis.call('HGET', version_key, 'v')
    out[i] = {redis.call('ZCARD', key), tonumber(version) or 0, entries, rows}
  else
    out[i] = redis.call('HMGET', key, 'v', 'd')
  end
end
return out
