-- Batching and routing of events, put before commit.lua and publish.lua (server/redis_layout.py says
-- the same in Python). An event goes to the channel of every node in its topic's `where` set (the
-- nodes with a socket that wants it); nowhere when the set is empty. Entries are collected per
-- channel while the script runs and published once at its end, one message per channel:
-- `<topic length>:<topic><seq>:<frame length>:<frame>` each.
local route_order, route_batches, route_where = {}, {}, {}

local function route_post(channel, text)
  local list = route_batches[channel]
  if not list then
    list = {}
    route_batches[channel] = list
    route_order[#route_order + 1] = channel
  end
  list[#list + 1] = text
end

local function route_event(prefix, topic, where_key, seq, blob)
  local nodes = route_where[where_key]
  if nodes == nil then
    nodes = redis.call('SMEMBERS', where_key)
    route_where[where_key] = nodes
  end
  if #nodes == 0 then
    return
  end
  local text = #topic .. ':' .. topic .. seq .. ':' .. #blob .. ':' .. blob
  for _, node in ipairs(nodes) do
    route_post(prefix .. 'node:' .. node, text)
  end
end

local function route_flush()
  for _, channel in ipairs(route_order) do
    redis.call('PUBLISH', channel, table.concat(route_batches[channel]))
  end
end
