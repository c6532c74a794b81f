-- K nearest fresh drivers with a wanted status inside one region, ring by ring.
-- ARGV: prefix, product, now_ms, ttl_ms, lat, lng, radius_m, k, status, nrings,
--   then per ring: ncells, gap_next_m, cell...
-- Stops after a ring once it holds k drivers all nearer than the next ring can be.
-- Returns {entries scanned, rings used, id, dist_m, lat, lng, ts_ms, heading, ...} nearest first.
-- A flat-earth distance (off by far less than 1% at city scale) screens each entry; only
-- entries that may enter the top k pay for the exact haversine.
local sin, cos, asin, sqrt, min = math.sin, math.cos, math.asin, math.sqrt, math.min
local unpack_entry, call = struct.unpack, redis.call
local p, product = ARGV[1], ARGV[2]
local at = p .. ':at'
local CHUNK = 1000
local fresh_after = tonumber(ARGV[3]) - tonumber(ARGV[4])
local rad = math.pi / 180
local M_PER_DEG = 6371008.8 * rad
local lat0d, lng0d = tonumber(ARGV[5]), tonumber(ARGV[6])
local lat0 = lat0d * rad
local coslat0 = cos(lat0)
local radius, k, want = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local nrings = tonumber(ARGV[10])
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
  local dy, dx = lat - lat0d, (lng - lng0d) * coslat0
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

local scanned, used = 0, 0
local i = 11
for _ = 1, nrings do
  used = used + 1
  local ncells, gap_next = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for c = i, i + ncells - 1 do
    local members = call('HKEYS', p .. ':c:' .. ARGV[c] .. ':' .. product)
    scanned = scanned + #members
    for first = 1, #members, CHUNK do
      local last = math.min(#members, first + CHUNK - 1)
      local records = call('HMGET', at, unpack(members, first, last))
      for j = 1, last - first + 1 do
        if records[j] then consider(members[first + j - 1], records[j]) end
      end
    end
  end
  i = i + ncells
  if #best >= k and best[#best][1] <= gap_next then break end
end
local out = {scanned, used}
for _, row in ipairs(best) do
  out[#out + 1] = row[2]
  out[#out + 1] = string.format('%.3f', row[1])
  out[#out + 1] = string.format('%.7f', row[3])
  out[#out + 1] = string.format('%.7f', row[4])
  out[#out + 1] = string.format('%d', row[5])
  out[#out + 1] = row[6]
end
return out
