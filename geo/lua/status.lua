-- Region step of a status change: rewrite the status byte of the driver's cell entry.
-- ARGV: prefix with region tag, id, status.
local p, id = ARGV[1], ARGV[2]
local cur = redis.call('HGET', p .. ':at', id)
if not cur then return 0 end
local _, ccell, cprod = string.match(cur, '^([^|]*)|([^|]*)|(.*)$')
local key = p .. ':c:' .. ccell .. ':' .. cprod
local e = redis.call('HGET', key, id)
if not e then return 0 end
local lat, lng, ts, _, hdg = struct.unpack('<dddBh', e)
redis.call('HSET', key, id, struct.pack('<dddBh', lat, lng, ts, tonumber(ARGV[3]), hdg))
return 1
