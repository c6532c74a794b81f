-- Sweep one region: drop entries silent since before cutoff_ms, and tombstones older than
-- tombstone_cutoff_ms.  ARGV: prefix, cursor, count, cutoff_ms, tombstone_cutoff_ms.
-- Returns {next_cursor, removed entries}.
local p = ARGV[1]
local at = p .. ':at'
local cutoff, tomb_cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local res = redis.call('HSCAN', at, ARGV[2], 'COUNT', ARGV[3])
local kv, removed = res[2], 0
for j = 1, #kv, 2 do
  local cts, ccell, cprod = struct.unpack('<dc15BB', kv[j + 1])
  if ccell ~= NONE and cts < cutoff then
    redis.call('HDEL', p .. ':c:' .. ccell .. ':' .. cprod, kv[j])
    redis.call('HDEL', at, kv[j])
    removed = removed + 1
  elseif ccell == NONE and cts < tomb_cutoff then
    redis.call('HDEL', at, kv[j])
  end
end
return {res[1], removed}
