-- Region step of a status change: rewrite the status and status version in the driver's `at`
-- record (its seen time, if it has one, stays as it was), unless the record holds a newer
-- change's (two changes' region writes crossed: the later write is the older change).
-- A region without a live record of the driver (a ping's claim filed it here and its place
-- is still on its way: a session's first ping, a move from another region) keeps the change
-- as a pending status in a tombstone (`PENDING`, region.lua): the tombstone the driver left
-- here, its time and session kept, or a new one of session 0 at now_ms, which any place
-- outranks. The place takes it when its version is above the claim's.
-- KEYS[1] the region's `at` key.  ARGV: id, status, version, now_ms.
-- Returns 1 when written to the live record, 2 when kept as pending, 0 when the record holds
-- a newer change's.
local id, status, version = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cur = redis.call('HGET', at, id)
local head
if cur then
  local lat, lng, ts, product, cst, hdg, score = struct.unpack(HEAD, cur)
  if cst ~= GONE then
    local _, cversion = session_and_version(cur)
    if cversion > version then return 0 end
    local tail = string.sub(cur, HEAD_SIZE + 1, SINCE_SIZE)  -- seen and since, where kept
    if #cur >= SINCE_SIZE then tail = tail .. struct.pack('<I4', version) end
    redis.call('HSET', at, id, struct.pack(HEAD, lat, lng, ts, product, status, hdg, score) .. tail)
    return 1
  end
  local _, pversion = pending_of(cur)
  if pversion and pversion > version then return 0 end
  head = string.sub(cur, 1, HEAD_SIZE)
else
  head = tombstone(tonumber(ARGV[4]), 0)
end
redis.call('HSET', at, id, head .. struct.pack(PENDING, status, version))
return 2
