-- Directory step of a status change.  KEYS[1] directory.  ARGV: status.
-- Returns {found, region, ts_ms}.
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local lat, lng, ts, _, product, hdg, flag, lastpub = struct.unpack('<dddBBhBd', v)
local rest = string.sub(v, 38)
local ttl = redis.call('PTTL', KEYS[1])
local packed = struct.pack('<dddBBhBd', lat, lng, ts, tonumber(ARGV[1]), product, hdg, flag, lastpub)
if ttl > 0 then
  redis.call('SET', KEYS[1], packed .. rest, 'PX', ttl)
else
  redis.call('SET', KEYS[1], packed .. rest)
end
local _, region = string.match(rest, '^([^|]*)|(.*)$')
return {1, region, string.format('%d', ts)}
