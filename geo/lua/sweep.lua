-- Sweep one region: drop drivers silent since before cutoff_ms (by their seen time), and
-- tombstones older than tombstone_cutoff_ms.  KEYS[1] the region's `at` key.  ARGV: bucket divisor, cursor,
-- count, cutoff_ms, tombstone_cutoff_ms.  Returns {next_cursor, removed drivers}.
local div = tonumber(ARGV[1])
local cutoff, tomb_cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local res = redis.call('HSCAN', at, ARGV[2], 'COUNT', ARGV[3])
local kv, removed = res[2], 0
for j = 1, #kv, 2 do
  local _, _, cts, cprod, cst, _, cscore = struct.unpack(HEAD, kv[j + 1])
  if cst ~= GONE and seen_of(kv[j + 1], cts) < cutoff then
    redis.call('ZREM', bucket_key(p, cprod, cscore, div), kv[j])
    redis.call('HDEL', at, kv[j])
    removed = removed + 1
  elseif cst == GONE and cts < tomb_cutoff then
    redis.call('HDEL', at, kv[j])
  end
end
return {res[1], removed}
