-- Region step of a status change: rewrite the status in the driver's `at` record.
-- ARGV: prefix with region tag, number of levels (unused here), id, status.
local p, id, status = ARGV[1], ARGV[3], tonumber(ARGV[4])
local cur = redis.call('HGET', p .. ':at', id)
if not cur or at_cell(cur, 1) == NONE then return 0 end
local lat, lng, ts, product, _, hdg = struct.unpack('<dddBBh', cur)
redis.call('HSET', p .. ':at', id,
  struct.pack('<dddBBh', lat, lng, ts, product, status, hdg) .. string.sub(cur, HEAD + 1))
return 1
