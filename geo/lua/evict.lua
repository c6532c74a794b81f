-- Region step of a move out of a region, an impossible jump or going offline.
-- ARGV: prefix with region tag, id, ts_ms.  Removes the driver's entry if it is older than
-- ts_ms and leaves a tombstone so that a late, older place cannot resurrect it.
local p, id, ts = ARGV[1], ARGV[2], tonumber(ARGV[3])
local at, gone = p .. ':at', p .. ':gone'
local cur = redis.call('HGET', at, id)
local removed = 0
if cur then
  local cts, ccell, cprod = string.match(cur, '^([^|]*)|([^|]*)|(.*)$')
  if tonumber(cts) < ts then
    redis.call('HDEL', p .. ':c:' .. ccell .. ':' .. cprod, id)
    redis.call('HDEL', at, id)
    removed = 1
  end
end
local g = redis.call('HGET', gone, id)
if not g or tonumber(g) < ts then redis.call('HSET', gone, id, ts) end
return removed
