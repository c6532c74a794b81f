-- Sweep one region: drop drivers silent since before cutoff_ms, and tombstones older than
-- tombstone_cutoff_ms.  ARGV: prefix, levels, cursor, count, cutoff_ms, tombstone_cutoff_ms.
-- Returns {next_cursor, removed drivers}.
local p, levels = ARGV[1], tonumber(ARGV[2])
local at = p .. ':at'
local cutoff, tomb_cutoff = tonumber(ARGV[5]), tonumber(ARGV[6])
local res = redis.call('HSCAN', at, ARGV[3], 'COUNT', ARGV[4])
local kv, removed = res[2], 0
for j = 1, #kv, 2 do
  local record = kv[j + 1]
  local _, _, cts, cprod = struct.unpack('<dddB', record)
  local live = at_cell(record, 1) ~= NONE
  if live and cts < cutoff then
    for l = 1, levels do
      redis.call('HDEL', p .. ':c:' .. at_cell(record, l) .. ':' .. cprod, kv[j])
    end
    redis.call('HDEL', at, kv[j])
    removed = removed + 1
  elseif not live and cts < tomb_cutoff then
    redis.call('HDEL', at, kv[j])
  end
end
return {res[1], removed}
