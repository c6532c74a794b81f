-- Sweep one directory shard: forget drivers idle since before cutoff_ms (last ping, or going
-- online when they never pinged), and rate-limit buckets untouched since then.
-- ARGV: cursor, count, cutoff_ms.  Returns {cursor, removed}.
local res = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local kv, removed, cutoff = res[2], 0, tonumber(ARGV[3])
for j = 1, #kv, 2 do
  local last
  if #kv[j] == 18 then
    local _, ts = struct.unpack('<dd', kv[j + 1])
    last = ts
  else
    local _, _, ts, _, _, _, _, _, since = struct.unpack('<dddBBhBddc15', kv[j + 1])
    last = math.max(ts, since)
  end
  if last < cutoff then
    redis.call('HDEL', KEYS[1], kv[j])
    removed = removed + 1
  end
end
return {res[1], removed}
