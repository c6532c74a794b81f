-- Region step of a status change: rewrite the status in the driver's `at` record (its seen
-- time, if it has one, stays as it was).
-- KEYS[1] the region's `at` key.  ARGV: id, status.
local id, status = ARGV[1], tonumber(ARGV[2])
local cur = redis.call('HGET', at, id)
if not cur then return 0 end
local lat, lng, ts, product, cst, hdg, score = struct.unpack(HEAD, cur)
if cst == GONE then return 0 end
redis.call('HSET', at, id,
  struct.pack(HEAD, lat, lng, ts, product, status, hdg, score) .. string.sub(cur, HEAD_SIZE + 1))
return 1
