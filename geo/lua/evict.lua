-- Region step of moves out of a region, impossible jumps and going offline.
-- ARGV[1] prefix with the region tag; ARGV[2] records, 24 bytes each: '<c16d' id, ts_ms.
-- Removes each driver's cell entry if older than ts_ms and leaves a tombstone at ts_ms, so
-- that a late, older place cannot resurrect it.
local p, blob = ARGV[1], ARGV[2]
local at = p .. ':at'
local n = #blob / 24
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * 24 + 1, (i - 1) * 24 + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local removed = 0
for i = 1, n do
  local id, ts = struct.unpack('<c16d', blob, (i - 1) * 24 + 1)
  local cur = latest[id] or current[i]
  local cts, ccell, cprod = -1, NONE, 0
  if cur then cts, ccell, cprod = struct.unpack('<dc15BB', cur) end
  if cts < ts then
    if ccell ~= NONE then
      redis.call('HDEL', p .. ':c:' .. ccell .. ':' .. cprod, id)
      removed = removed + 1
    end
    local tomb = struct.pack('<dc15BB', ts, NONE, 0, 0)
    latest[id] = tomb
    ats[#ats + 1] = id
    ats[#ats + 1] = tomb
  end
end
hset_pairs(at, ats)
return removed
