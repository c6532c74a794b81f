-- Region step of moves out of a region, impossible jumps and going offline.
-- KEYS[1] the region's `at` key; ARGV[1] bucket divisor;
-- ARGV[2] records, 32 bytes each: '<c16dd' id, ts_ms, the session's online-since time.
-- Removes each driver from the region if its record is older (by session, then ts_ms:
-- `after`) and leaves a tombstone at ts_ms, so that a late, older place cannot resurrect it.
-- A record of an earlier session is replaced whatever its ts; one of a later session is kept.
local div, blob = tonumber(ARGV[1]), ARGV[2]
local n = #blob / 32
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * 32 + 1, (i - 1) * 32 + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local removed = 0
for i = 1, n do
  local id, ts, since = struct.unpack('<c16dd', blob, (i - 1) * 32 + 1)
  local cur = latest[id] or current[i]
  local cts, cprod, cst, cscore = -1, 0, GONE, 0
  if cur then
    local _
    _, _, cts, cprod, cst, _, cscore = struct.unpack(HEAD, cur)
  end
  local newer
  if cst == GONE then   -- a tombstone (or none: after any step) keeps its session where score is
    newer = after(since, ts, cscore, cts)
  else
    newer = after_live(since, ts, cur, cts)
  end
  if newer then
    if cst ~= GONE then
      redis.call('ZREM', bucket_key(p, cprod, cscore, div), id)
      removed = removed + 1
    end
    local tomb = tombstone(ts, since)
    latest[id] = tomb
    ats[#ats + 1] = id
    ats[#ats + 1] = tomb
  end
end
hset_pairs(at, ats)
return removed
