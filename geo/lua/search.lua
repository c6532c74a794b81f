-- K nearest fresh drivers with a wanted status inside one region, best cell first.
-- KEYS[1] the region's `at` key (its other keys share the hash tag).
-- ARGV: product, now_ms, ttl_ms, lat, lng, limit_m, k, status, cells
--   cells: records '<dddd' of a lower bound on the distance from the query to any point of
--   a cell, the cell's score range (its drivers' finest cells), and the cell's bucket (its
--   coarsest-level ancestor, whose sorted set holds it); sorted by the bound.
-- Reads cells in order and stops once it holds k drivers all nearer than the next cell's
-- bound: no driver of that cell or any later one can enter the k nearest.
-- Returns the results as records '<c16ddddh' of id, distance (m), lat, lng, ts_ms and
-- heading, nearest first.
-- A flat-earth distance at the pair's mean latitude (off by far less than 1% at city scale)
-- screens each entry; only entries that may enter the top k pay for the exact haversine.
local sin, cos, asin, sqrt, min = math.sin, math.cos, math.asin, math.sqrt, math.min
local unpack_entry, pack, call = struct.unpack, struct.pack, redis.call
local at = KEYS[1]
local drivers = string.sub(at, 1, -4) .. ':z:' .. ARGV[1] .. ':'
local CHUNK = 1000
local fresh_after = tonumber(ARGV[2]) - tonumber(ARGV[3])
local rad = math.pi / 180
local M_PER_DEG = 6371008.8 * rad
local lat0d, lng0d = tonumber(ARGV[4]), tonumber(ARGV[5])
local lat0 = lat0d * rad
local coslat0 = cos(lat0)
local radius, k, want = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local cells = ARGV[9]
local best = {}
local function limit2()
  local limit = radius
  if #best >= k and best[#best][1] < limit then limit = best[#best][1] end
  local deg = limit / M_PER_DEG * 1.01
  return deg * deg
end
local screen = limit2()

-- Keep the driver if it is fresh, has the wanted status and is among the k nearest so far.
local function consider(id, record)
  local lat, lng, ts, _, st, hdg = unpack_entry('<dddBBh', record)
  if st ~= want or ts < fresh_after then return end
  local dl = lng - lng0d
  if dl > 180 then dl = dl - 360 elseif dl < -180 then dl = dl + 360 end
  local dy, dx = lat - lat0d, dl * cos((lat + lat0d) * rad / 2)
  if dx * dx + dy * dy > screen then return end
  local la = lat * rad
  local s1, s2 = sin((la - lat0) / 2), sin((lng - lng0d) * rad / 2)
  local d = 2 * 6371008.8 * asin(min(1, sqrt(s1 * s1 + coslat0 * cos(la) * s2 * s2)))
  if d > radius or (#best >= k and d >= best[#best][1]) then return end
  local pos = #best + 1
  while pos > 1 and best[pos - 1][1] > d do
    best[pos] = best[pos - 1]
    pos = pos - 1
  end
  best[pos] = {d, id, lat, lng, ts, hdg}
  if #best > k then best[#best] = nil end
  screen = limit2()
end

local fmt = string.format
for offset = 1, #cells, 32 do
  local floor, lo, hi, bucket = unpack_entry('<dddd', cells, offset)
  if floor > radius or (#best >= k and best[#best][1] <= floor) then break end
  local members = call('ZRANGE', drivers .. fmt('%.0f', bucket), fmt('%.0f', lo),
    fmt('%.0f', hi), 'BYSCORE')
  for first = 1, #members, CHUNK do
    local last = min(#members, first + CHUNK - 1)
    local records = call('HMGET', at, unpack(members, first, last))
    for j = 1, last - first + 1 do
      if records[j] then consider(members[first + j - 1], records[j]) end
    end
  end
end
local out = {}
for i, row in ipairs(best) do
  out[i] = pack('<c16ddddh', row[2], row[1], row[3], row[4], row[5], row[6])
end
return table.concat(out)
