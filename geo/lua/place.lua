-- Region step of a batch of pings: atomic cell moves inside one region (one hash slot).
-- ARGV[1] key prefix with the region hash tag, e.g. "rh:{83283afffffffff}".
-- ARGV[2] records, 59 bytes each: '<c16c15BdddhB' id, cell, product, ts_ms, lat, lng, heading,
--   status to use when the region does not hold the driver yet.
-- A place applies only when newer than the driver's `at` record (entry or tombstone).
local p, blob = ARGV[1], ARGV[2]
local at = p .. ':at'
local n = #blob / 59
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * 59 + 1, (i - 1) * 59 + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local applied = 0
for i = 1, n do
  local id, cell, product, ts, lat, lng, hdg, status =
    struct.unpack('<c16c15BdddhB', blob, (i - 1) * 59 + 1)
  local cur = latest[id] or current[i]
  local ok, oldkey = true, nil
  if cur then
    local cts, ccell, cprod, cst = struct.unpack('<dc15BB', cur)
    if ts <= cts then
      ok = false
    elseif ccell ~= NONE then
      status = cst
      oldkey = p .. ':c:' .. ccell .. ':' .. cprod
    end
  end
  if ok then
    local newkey = p .. ':c:' .. cell .. ':' .. product
    if oldkey and oldkey ~= newkey then redis.call('HDEL', oldkey, id) end
    redis.call('HSET', newkey, id, struct.pack('<dddBh', lat, lng, ts, status, hdg))
    local record = struct.pack('<dc15BB', ts, cell, product, status)
    latest[id] = record
    ats[#ats + 1] = id
    ats[#ats + 1] = record
    applied = applied + 1
  end
end
hset_pairs(at, ats)
return applied
