-- Region step of moves out of a region, impossible jumps and going offline.
-- KEYS[1] the region's `at` key; ARGV[1] bucket divisor;
-- ARGV[2] records, 24 bytes each: '<c16d' id, ts_ms.
-- Removes each driver from the region if its record is older than ts_ms and leaves a
-- tombstone at ts_ms, so that a late, older place cannot resurrect it.
local div, blob = tonumber(ARGV[1]), ARGV[2]
local n = #blob / 24
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * 24 + 1, (i - 1) * 24 + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local removed = 0
for i = 1, n do
  local id, ts = struct.unpack('<c16d', blob, (i - 1) * 24 + 1)
  local cur = latest[id] or current[i]
  local cts, cprod, cst, cscore = -1, 0, GONE, 0
  if cur then
    local _
    _, _, cts, cprod, cst, _, cscore = struct.unpack(HEAD, cur)
  end
  if cts < ts then
    if cst ~= GONE then
      redis.call('ZREM', bucket_key(p, cprod, cscore, div), id)
      removed = removed + 1
    end
    local tomb = struct.pack(HEAD, 0, 0, ts, 0, GONE, -1, 0)
    latest[id] = tomb
    ats[#ats + 1] = id
    ats[#ats + 1] = tomb
  end
end
hset_pairs(at, ats)
return removed
