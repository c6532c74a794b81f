-- Region step of a status change: rewrite the status in the `at` record and in the driver's
-- entry at every level.  ARGV: prefix with region tag, number of levels, id, status.
local p, levels, id, status = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local cur = redis.call('HGET', p .. ':at', id)
if not cur or at_cell(cur, 1) == NONE then return 0 end
local cts, cprod = struct.unpack('<dB', cur)
redis.call('HSET', p .. ':at', id, struct.pack('<dBB', cts, cprod, status) .. string.sub(cur, 11))
for l = 1, levels do
  local key = p .. ':c:' .. at_cell(cur, l) .. ':' .. cprod
  local e = redis.call('HGET', key, id)
  if e then
    local lat, lng, ts, _, hdg = struct.unpack('<dddBh', e)
    redis.call('HSET', key, id, struct.pack('<dddBh', lat, lng, ts, status, hdg))
  end
end
return 1
