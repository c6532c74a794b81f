-- Shared by the region scripts (prepended to each): the `at` record and batched reads/writes.
-- `at` maps driver -> '<dddBBh' lat, lng, ts, product, status, heading, then one 8-byte H3 id
-- per search level (finest first). Cell keys are hashes of drivers (empty values: listpack-encoded while small) named by those raw ids: the
-- position lives once, in this record. A record whose first cell is 8 NUL bytes is a
-- tombstone: the driver left the region at ts, and nothing older may place it again.
local NONE = string.rep('\0', 8)
local HEAD = 28
local CHUNK = 500

local function hmget(key, ids)
  local values = {}
  for first = 1, #ids, CHUNK do
    local last = math.min(#ids, first + CHUNK - 1)
    local got = redis.call('HMGET', key, unpack(ids, first, last))
    for j = 1, last - first + 1 do values[first + j - 1] = got[j] end
  end
  return values
end

local function hset_pairs(key, flat)
  for first = 1, #flat, CHUNK * 2 do
    redis.call('HSET', key, unpack(flat, first, math.min(#flat, first + CHUNK * 2 - 1)))
  end
end

-- The cell of level `l` (1 = finest) inside an `at` record.
local function at_cell(record, l)
  return string.sub(record, HEAD + 1 + (l - 1) * 8, HEAD + l * 8)
end
