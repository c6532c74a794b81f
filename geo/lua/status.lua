-- Region step of a status change: rewrite the status in the `at` record and the cell entry.
-- ARGV: prefix with region tag, id (16 bytes), status.
local p, id, status = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cur = redis.call('HGET', p .. ':at', id)
if not cur then return 0 end
local cts, ccell, cprod = struct.unpack('<dc15BB', cur)
if ccell == NONE then return 0 end
redis.call('HSET', p .. ':at', id, struct.pack('<dc15BB', cts, ccell, cprod, status))
local key = p .. ':c:' .. ccell .. ':' .. cprod
local e = redis.call('HGET', key, id)
if not e then return 0 end
local lat, lng, ts, _, hdg = struct.unpack('<dddBh', e)
redis.call('HSET', key, id, struct.pack('<dddBh', lat, lng, ts, status, hdg))
return 1
