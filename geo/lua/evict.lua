-- Region step of moves out of a region, impossible jumps and going offline.
-- ARGV[1] prefix with the region tag; ARGV[2] number of levels L;
-- ARGV[3] records, 24 bytes each: '<c16d' id, ts_ms.
-- Removes each driver from its cells if its record is older than ts_ms and leaves a
-- tombstone at ts_ms, so that a late, older place cannot resurrect it.
local p, levels, blob = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local at = p .. ':at'
local n = #blob / 24
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * 24 + 1, (i - 1) * 24 + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local removed = 0
local tomb_cells = string.rep(NONE, levels)
for i = 1, n do
  local id, ts = struct.unpack('<c16d', blob, (i - 1) * 24 + 1)
  local cur = latest[id] or current[i]
  local cts, cprod = -1, 0
  if cur then
    local _
    _, _, cts, cprod = struct.unpack('<dddB', cur)
  end
  if cts < ts then
    if cur and at_cell(cur, 1) ~= NONE then
      for l = 1, levels do
        redis.call('HDEL', p .. ':c:' .. at_cell(cur, l) .. ':' .. cprod, id)
      end
      removed = removed + 1
    end
    local tomb = struct.pack('<dddBBh', 0, 0, ts, 0, 0, -1) .. tomb_cells
    latest[id] = tomb
    ats[#ats + 1] = id
    ats[#ats + 1] = tomb
  end
end
hset_pairs(at, ats)
return removed
