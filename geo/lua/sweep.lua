-- Sweep one region: drop drivers silent since before cutoff_ms, and tombstones older than
-- tombstone_cutoff_ms.  ARGV: prefix, cursor, count, cutoff_ms, tombstone_cutoff_ms.
-- Returns {next_cursor, removed drivers}.
local p = ARGV[1]
local at = p .. ':at'
local cutoff, tomb_cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local res = redis.call('HSCAN', at, ARGV[2], 'COUNT', ARGV[3])
local kv, removed = res[2], 0
for j = 1, #kv, 2 do
  local _, _, cts, cprod, cst = struct.unpack('<dddBB', kv[j + 1])
  if cst ~= GONE and cts < cutoff then
    redis.call('ZREM', p .. ':z:' .. cprod, kv[j])
    redis.call('HDEL', at, kv[j])
    removed = removed + 1
  elseif cst == GONE and cts < tomb_cutoff then
    redis.call('HDEL', at, kv[j])
  end
end
return {res[1], removed}
