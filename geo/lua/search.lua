-- K nearest fresh drivers with a wanted status inside one region, best cell first.
-- KEYS[1] the region's `at` key (its other keys share the hash tag).
-- ARGV: product, query, cells
--   query: '<ddddHB' lat, lng, limit_m, the oldest fresh seen time (ms), k and the wanted
--   status. Freshness is by the `at` record's seen time, the server's when the ping arrived
--   (by ts, the ping's recorded time, for records written before seen existed: 36 bytes).
--   cells: one record per cell, sorted by its first field: '<d' a lower bound on the distance
--   from the query to any point of the cell, then three length-prefixed decimal texts
--   ('Bc0'): the cell's bucket (its coarsest-level ancestor, whose sorted set holds it) and
--   the lowest and highest score of its drivers (their finest cells).
-- Reads cells in order and stops once it holds k drivers all nearer than the next cell's
-- bound: no driver of that cell or any later one can enter the k nearest. A cell's members
-- wait for their records (one HMGET for several cells) while fewer than k are held or
-- waiting: until then the stop test cannot pass, so reading them later changes nothing.
-- Returns the results as records '<dc16dddh' of distance (m), id, lat, lng, ts_ms and
-- heading, nearest first.
-- A flat-earth distance (longitudes scaled for the highest latitude the radius reaches)
-- screens each entry; only entries that may enter the top k pay for the exact haversine.
local sin, cos, asin, sqrt, min = math.sin, math.cos, math.asin, math.sqrt, math.min
local unpack_entry, pack, call = struct.unpack, struct.pack, redis.call
local at = KEYS[1]
local drivers = string.sub(at, 1, -4) .. ':z:' .. ARGV[1] .. ':'
local CHUNK = 1000
local rad = math.pi / 180
local M_PER_DEG = 6371008.8 * rad
local lat0d, lng0d, radius, fresh_after, k, want = unpack_entry('<ddddHB', ARGV[2])
local lat0 = lat0d * rad
local coslat0 = cos(lat0)
-- The screen's longitude scale: the cosine at the farthest latitude from the equator an entry
-- within the radius can have (no nearer entry can fail the screen; a farther one fails on
-- its latitude alone).
local screen_cos = cos(min(89.9, math.abs(lat0d) + radius / M_PER_DEG) * rad)
local sets = {}   -- bucket -> its sorted set's key
local cells = ARGV[3]
local best = {}
local function limit2()
  local limit = radius
  if #best >= k and best[#best][1] < limit then limit = best[#best][1] end
  local deg = limit / M_PER_DEG * 1.01
  return deg * deg
end
local screen = limit2()

-- A fresh driver with the wanted status inside the screen: keep it if it is among the k
-- nearest so far.
local function keep(id, lat, lng, ts, hdg)
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

local waiting, nwaiting = {}, 0
local function read_waiting()
  for first = 1, nwaiting, CHUNK do
    local last = min(nwaiting, first + CHUNK - 1)
    local records = call('HMGET', at, unpack(waiting, first, last))
    for j = 1, last - first + 1 do
      -- Inside the screen, fresh and with the wanted status: then the exact distance.
      local record = records[j]
      if record then
        local lat, lng = unpack_entry('<dd', record)
        local dl = lng - lng0d
        if dl > 180 then dl = dl - 360 elseif dl < -180 then dl = dl + 360 end
        local dy, dx = lat - lat0d, dl * screen_cos
        if dx * dx + dy * dy <= screen then
          local ts, st, hdg, seen, _
          if #record > 36 then
            ts, _, st, hdg, _, seen = unpack_entry('<dBBhdd', record, 17)
          else
            ts, _, st, hdg = unpack_entry('<dBBh', record, 17)
            seen = ts
          end
          if st == want and seen >= fresh_after then
            keep(waiting[first + j - 1], lat, lng, ts, hdg)
          end
        end
      end
    end
  end
  waiting, nwaiting = {}, 0
end

local offset, size = 1, #cells
while offset <= size do
  local floor, bucket, lo, hi, after = unpack_entry('<dBc0Bc0Bc0', cells, offset)
  offset = after
  if floor > radius or (#best >= k and best[#best][1] <= floor) then break end
  local set = sets[bucket]
  if not set then
    set = drivers .. bucket
    sets[bucket] = set
  end
  local members = call('ZRANGE', set, lo, hi, 'BYSCORE')
  if nwaiting == 0 then
    waiting = members
  else
    for i = 1, #members do waiting[nwaiting + i] = members[i] end
  end
  nwaiting = nwaiting + #members
  if #best + nwaiting >= k then read_waiting() end
end
read_waiting()
local out = {}
for i, row in ipairs(best) do
  out[i] = pack('<dc16dddh', unpack(row))
end
return table.concat(out)
