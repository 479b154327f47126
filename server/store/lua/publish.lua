-- Publish events that no commit published (route.lua comes before this).
--
-- KEYS     the `where` sets of the agents among the deliveries
-- ARGV[1]  the channel prefix
-- ARGV[2]  MessagePack {{topic, where key index or 0, blob index}, ...}
-- ARGV[3..] the frames (MessagePack)
local prefix = ARGV[1]
for _, d in ipairs(cmsgpack.unpack(ARGV[2])) do
  if d[2] > 0 then
    route_to_agent(prefix, d[1], KEYS[d[2]], 0, ARGV[d[3]])
  else
    route_to_topic(prefix, d[1], ARGV[d[3]])
  end
end
route_flush()
return 1
