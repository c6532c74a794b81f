-- Region step of a batch of pings: atomic cell moves inside one region (one hash slot).
-- ARGV[1] key prefix with the region hash tag, e.g. "rh:{83283afffffffff}".
-- Then groups of 8: id, cell, product, ts_ms, lat, lng, heading, status_if_new.
-- A place applies only when newer than what the region holds and than its tombstone.
local p = ARGV[1]
local at, gone = p .. ':at', p .. ':gone'
local applied = 0
for i = 2, #ARGV, 8 do
  local id, cell, product = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local ts = tonumber(ARGV[i + 3])
  local cur = redis.call('HGET', at, id)
  local g = redis.call('HGET', gone, id)
  local ok = not (g and ts <= tonumber(g))
  local status = tonumber(ARGV[i + 7])
  local newkey = p .. ':c:' .. cell .. ':' .. product
  if ok and cur then
    local cts, ccell, cprod = string.match(cur, '^([^|]*)|([^|]*)|(.*)$')
    if ts <= tonumber(cts) then
      ok = false
    else
      local oldkey = p .. ':c:' .. ccell .. ':' .. cprod
      local e = redis.call('HGET', oldkey, id)
      if e then
        local _, _, _, st = struct.unpack('<dddBh', e)
        status = st
        if oldkey ~= newkey then redis.call('HDEL', oldkey, id) end
      end
    end
  end
  if ok then
    redis.call('HSET', newkey, id, struct.pack('<dddBh', tonumber(ARGV[i + 4]),
      tonumber(ARGV[i + 5]), ts, status, tonumber(ARGV[i + 6])))
    redis.call('HSET', at, id, ARGV[i + 3] .. '|' .. cell .. '|' .. product)
    if g then redis.call('HDEL', gone, id) end
    applied = applied + 1
  end
end
return applied
