-- Directory step of a status change.  KEYS[1] shard hash.  ARGV: id (16 bytes), status.
-- Returns the driver's region (15 NUL bytes when unplaced), or false when offline.
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local lat, lng, ts, _, product, hdg, flag, lastpub, since, region =
  struct.unpack('<dddBBhBddc15', v)
redis.call('HSET', KEYS[1], ARGV[1], struct.pack('<dddBBhBddc15', lat, lng, ts,
  tonumber(ARGV[2]), product, hdg, flag, lastpub, since, region))
return region
