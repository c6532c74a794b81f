-- Region step of a status change: rewrite the status in the driver's `at` record.
-- ARGV: prefix with region tag, id, status.
local p, id, status = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cur = redis.call('HGET', p .. ':at', id)
if not cur then return 0 end
local lat, lng, ts, product, cst, hdg, score = struct.unpack(RECORD, cur)
if cst == GONE then return 0 end
redis.call('HSET', p .. ':at', id,
  struct.pack(RECORD, lat, lng, ts, product, status, hdg, score))
return 1
