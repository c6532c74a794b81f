-- Directory step of a status change.  KEYS[1] shard hash.  ARGV: id (16 bytes), status,
-- version.
-- The version orders a driver's status changes (the database hands them out, one per change,
-- in commit order: `accounts.service.next_status_version`). A change applies only when its
-- version is above the one the record holds, so a change whose write reaches Redis late, after
-- a newer one, is refused instead of overwriting it. The version sits after the record's
-- 60-byte head ('<I4', see claim.lua); a record written before versions existed holds 0.
-- Returns the driver's region (15 NUL bytes when unplaced), '' when the change is older than
-- the record's, or false when offline.
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local version = tonumber(ARGV[3])
if #v >= 64 and version <= struct.unpack('<I4', v, 61) then return '' end
local lat, lng, ts, _, product, hdg, flag, lastpub, since, region =
  struct.unpack('<dddBBhBddc15', v)
redis.call('HSET', KEYS[1], ARGV[1], struct.pack('<dddBBhBddc15I4', lat, lng, ts,
  tonumber(ARGV[2]), product, hdg, flag, lastpub, since, region, version))
return region
