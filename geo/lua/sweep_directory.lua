-- Sweep one directory shard: forget drivers idle since before cutoff_ms (last ping, or going
-- online when they never pinged), and rate-limit buckets untouched since then.
-- ARGV: cursor, count, cutoff_ms.  Returns {cursor, removed}.
-- A record is '<dddBBhBddc15' (see claim.lua): its ping time at byte 17, its online-since time
-- at byte 38, read only when the ping time is old. A bucket ('<dd' tokens, time) sits under
-- the driver's id followed by 'rl' (18 bytes); the region a crossing left ('<dc15' time,
-- region) under the id followed by 'mv'.
local res = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local kv, removed, cutoff = res[2], 0, tonumber(ARGV[3])
local unpack, byte = struct.unpack, string.byte
local M = byte('m')
for j = 1, #kv, 2 do
  local value, idle
  value = kv[j + 1]
  if #kv[j] == 18 then
    idle = unpack('<d', value, byte(kv[j], 17) == M and 1 or 9) < cutoff
  else
    idle = unpack('<d', value, 17) < cutoff and unpack('<d', value, 38) < cutoff
  end
  if idle then
    redis.call('HDEL', KEYS[1], kv[j])
    removed = removed + 1
  end
end
return {res[1], removed}
