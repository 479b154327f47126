-- Read records in one atomic step: what a transaction decides on belongs together.
--
-- KEYS     the records to read
-- ARGV[i]  "x" when KEYS[i] is a transcript (a list of fragments), anything else for a record
--          (a hash {v = version, d = data})
--
-- Returns one entry per key, in order: the transcript's fragments, or {version, data} (false where
-- the record does not exist).
local out = {}
for i, key in ipairs(KEYS) do
  if ARGV[i] == 'x' then
    out[i] = redis.call('LRANGE', key, 0, -1)
  else
    out[i] = redis.call('HMGET', key, 'v', 'd')
  end
end
return out
