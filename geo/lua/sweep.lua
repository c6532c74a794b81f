-- Sweep one region: drop entries silent since before cutoff_ms, and old tombstones.
-- ARGV: prefix, cursor, count, cutoff_ms, tombstone_cutoff_ms.  Returns {next_cursor, removed}.
local p = ARGV[1]
local at, gone = p .. ':at', p .. ':gone'
local cutoff, tomb_cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local res = redis.call('HSCAN', at, ARGV[2], 'COUNT', ARGV[3])
local kv, removed = res[2], 0
for j = 1, #kv, 2 do
  local cts, ccell, cprod = string.match(kv[j + 1], '^([^|]*)|([^|]*)|(.*)$')
  if tonumber(cts) < cutoff then
    redis.call('HDEL', p .. ':c:' .. ccell .. ':' .. cprod, kv[j])
    redis.call('HDEL', at, kv[j])
    removed = removed + 1
  end
end
if res[1] == '0' then
  local g = redis.call('HGETALL', gone)
  for j = 1, #g, 2 do
    if tonumber(g[j + 1]) < tomb_cutoff then redis.call('HDEL', gone, g[j]) end
  end
end
return {res[1], removed}
