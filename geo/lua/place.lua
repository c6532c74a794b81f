-- Region step of a batch of pings: atomic cell moves inside one region (one hash slot).
-- ARGV[1] key prefix with the region hash tag, e.g. "rh:{83283afffffffff}".
-- ARGV[2] number of search levels L.
-- ARGV[3] records of 44 + 8 L bytes: '<c16BdddhB' id, product, ts_ms, lat, lng, heading,
--   status to use when the region does not hold the driver yet; then L 8-byte cells.
-- A place applies only when newer than the driver's `at` record (entry or tombstone); the
-- driver's entry moves at every level whose cell changed, all inside this one script.
local p, levels, blob = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local at = p .. ':at'
local size = 44 + 8 * levels
local n = #blob / size
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * size + 1, (i - 1) * size + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local applied = 0
for i = 1, n do
  local base = (i - 1) * size
  local id, product, ts, lat, lng, hdg, status = struct.unpack('<c16BdddhB', blob, base + 1)
  local cells = string.sub(blob, base + 45, base + size)
  local cur = latest[id] or current[i]
  local ok, old = true, nil
  if cur then
    local cts, cprod, cst = struct.unpack('<dBB', cur)
    if ts <= cts then
      ok = false
    elseif at_cell(cur, 1) ~= NONE then
      status, old = cst, {cur, cprod}
    end
  end
  if ok then
    local entry = struct.pack('<dddBh', lat, lng, ts, status, hdg)
    local suffix = ':' .. product
    for l = 1, levels do
      local cell = string.sub(cells, (l - 1) * 8 + 1, l * 8)
      local newkey = p .. ':c:' .. cell .. suffix
      if old then
        local oldkey = p .. ':c:' .. at_cell(old[1], l) .. ':' .. old[2]
        if oldkey ~= newkey then redis.call('HDEL', oldkey, id) end
      end
      redis.call('HSET', newkey, id, entry)
    end
    local record = struct.pack('<dBB', ts, product, status) .. cells
    latest[id] = record
    ats[#ats + 1] = id
    ats[#ats + 1] = record
    applied = applied + 1
  end
end
hset_pairs(at, ats)
return applied
