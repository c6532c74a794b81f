-- Region step of a status change: rewrite the status and status version in the driver's `at`
-- record (its seen time, if it has one, stays as it was), unless the record holds a newer
-- change's (two changes' region writes crossed: the later write is the older change).
-- KEYS[1] the region's `at` key.  ARGV: id, status, version.
-- Returns 1 when written, 0 when there is no live record or it holds a newer change.
local id, status, version = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = redis.call('HGET', at, id)
if not cur then return 0 end
local lat, lng, ts, product, cst, hdg, score = struct.unpack(HEAD, cur)
if cst == GONE then return 0 end
local _, cversion = session_and_version(cur)
if cversion > version then return 0 end
local tail = string.sub(cur, HEAD_SIZE + 1, SINCE_SIZE)  -- seen and since, where kept
if #cur >= SINCE_SIZE then tail = tail .. struct.pack('<I4', version) end
redis.call('HSET', at, id, struct.pack(HEAD, lat, lng, ts, product, status, hdg, score) .. tail)
return 1
