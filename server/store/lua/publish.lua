-- Publish events that no commit published (route.lua comes before this).
--
-- KEYS[1]  a key of the contact center's slot (every `where` set shares it)
-- ARGV[1]  the channel prefix
-- ARGV[2]  MessagePack {{topic, where key, offset, length}, ...}
-- ARGV[3]  the frames (MessagePack) end to end; each is {offset, length} in it
local prefix, frames = ARGV[1], ARGV[3]
for _, d in ipairs(cmsgpack.unpack(ARGV[2])) do
  route_event(prefix, d[1], d[2], 0, string.sub(frames, d[3] + 1, d[3] + d[4]))
end
route_flush()
return 1
