-- Region step of a batch of pings: atomic cell moves inside one region (one hash slot).
-- ARGV[1] key prefix with the region hash tag, e.g. "rh:{83283afffffffff}".
-- ARGV[2] number of search levels L.
-- ARGV[3] records of 44 + 8 L bytes: '<c16BdddhB' id, product, ts_ms, lat, lng, heading,
--   status to use when the region does not hold the driver yet; then L 8-byte cells.
-- A place applies only when newer than the driver's `at` record (entry or tombstone). It
-- rewrites the record and moves the driver between cells only where its cell changed.
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
  local ok, old, oldprod = true, nil, nil
  if cur then
    local _, _, cts, cprod, cst = struct.unpack('<dddBB', cur)
    if ts <= cts then
      ok = false
    elseif at_cell(cur, 1) ~= NONE then
      status, old, oldprod = cst, cur, cprod
    end
  end
  if ok then
    for l = 1, levels do
      local cell = string.sub(cells, (l - 1) * 8 + 1, l * 8)
      if not old or oldprod ~= product or at_cell(old, l) ~= cell then
        if old then redis.call('HDEL', p .. ':c:' .. at_cell(old, l) .. ':' .. oldprod, id) end
        redis.call('HSET', p .. ':c:' .. cell .. ':' .. product, id, '')
      end
    end
    local record = struct.pack('<dddBBh', lat, lng, ts, product, status, hdg) .. cells
    latest[id] = record
    ats[#ats + 1] = id
    ats[#ats + 1] = record
    applied = applied + 1
  end
end
hset_pairs(at, ats)
return applied
