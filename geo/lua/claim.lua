-- Directory step of a batch of pings, for the drivers of one directory shard (one hash slot).
-- KEYS[2] the shard's stream of location samples (same hash tag), capped by ARGV[8] entries:
--   one entry per call that sampled, its samples in field 's' ('<c16dddBBh' records).
-- KEYS[1] shard hash: driver id (16 bytes) -> directory record
--   '<dddBBhBddc15': lat, lng, ts, status, product, heading, flag, last_sample, since,
--   region (15 NUL bytes when unknown); then the status version ('<I4', see dir_status.lua;
--   absent from records written before versions existed), which a ping keeps as it is.
--   flag: 1 the last accepted ping was an impossible jump, + 2 (`CROSSED`) it crossed into
--   another region, whose name the field id..'mv' keeps until the driver's next accepted
--   ping (`left_region`).
--   64 bytes in all: no more than a hash keeps in its compact listpack encoding
--   (hash-max-listpack-value), which a shard of a small city uses.
-- ARGV[1] records, 57 bytes each: '<c16dddhc15' id, lat, lng, ts_ms, heading, region.
-- ARGV[2] max speed (m/s), ARGV[3] sample interval (ms).
-- ARGV[4..7] optional rate limit: per second, burst, now_ms, ids to charge (16 bytes each).
--   Each charged driver takes a token from its bucket (field id..'rl' of the same hash);
--   a driver without a token is denied and its pings are skipped.
-- ARGV[9] '1' when a driver may have several pings in ARGV[1] (each then reads the record its
--   predecessor wrote), else '0' (the usual batch: one ping per driver, nothing to track).
-- Returns {one 31-byte record per ping: '<BBBBc15dI4' outcome, status, product, publish, old
--   region (the one to evict: the region the ping left, or the one the driver's last
--   crossing left while that is kept), the driver's online-since time (0 when offline or
--   denied: it orders the driver's sessions, as ts orders the pings of one) and the status
--   version the status came with (the place keeps a newer one's status, written meanwhile);
--   the denied ids}.
--   outcome: 0 offline, 1 out_of_order, 2 impossible (flagged), 3 applied, 4 rate limited;
--   the driver's last accepted ping sent again (same time and position) has its first
--   outcome again (2 or 3), and the old region is then its own.
local dir, blob = KEYS[1], ARGV[1]
local max_speed, sample = tonumber(ARGV[2]), tonumber(ARGV[3])
local NONE = string.rep('\0', 15)
local NO_SESSION = string.rep('\0', 12)   -- no online-since time, no status version
local CROSSED = 2   -- flag bit: the driver's last accepted ping crossed into another region

-- The region a driver left at its last crossing (field id..'mv': '<dc15' the crossing ping's
-- time, the region), or NONE when it is gone.
local function left_region(id)
  local kept = redis.call('HGET', dir, id .. 'mv')
  if not kept then return NONE end
  local _, region = struct.unpack('<dc15', kept)
  return region
end
local CHUNK = 500
local rad = math.pi / 180
local HALF_PI = math.pi / 2
local sin, cos, char = math.sin, math.cos, string.char
local denied, denied_ids = {}, {}
local charge = ARGV[7] or ''
if #charge > 0 then
  local rate, burst, now = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  for i = 1, #charge / 16 do
    local id = string.sub(charge, (i - 1) * 16 + 1, i * 16)
    local field = id .. 'rl'
    local tokens, ts = burst, now
    local b = redis.call('HGET', dir, field)
    if b then tokens, ts = struct.unpack('<dd', b) end
    tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
    if tokens >= 1 then
      tokens = tokens - 1
    elseif not denied[id] then
      denied[id] = true
      denied_ids[#denied_ids + 1] = id
    end
    redis.call('HSET', dir, field, struct.pack('<dd', tokens, now))
  end
end
local n = #blob / 57
local ids, sub = {}, string.sub
for i = 1, n do ids[i] = sub(blob, (i - 1) * 57 + 1, (i - 1) * 57 + 16) end
local current = {}
if n > 0 and n <= CHUNK then   -- the common case: the reply is the list
  current = redis.call('HMGET', dir, unpack(ids))
elseif n > CHUNK then
  for first = 1, n, CHUNK do
    local last = math.min(n, first + CHUNK - 1)
    local got = redis.call('HMGET', dir, unpack(ids, first, last))
    for j = 1, last - first + 1 do current[first + j - 1] = got[j] end
  end
end
local out, writes, samples = {}, {}, {}
local latest = ARGV[9] == '1' and {}   -- id -> its record as this call last wrote it
for i = 1, n do
  local id = ids[i]
  local lat, lng, ts, hdg, region = struct.unpack('<dddhc15', blob, (i - 1) * 57 + 17)
  local v = latest and latest[id] or current[i]
  if denied[id] then
    out[i] = char(4, 0, 0, 0) .. NONE .. NO_SESSION
  elseif not v then
    out[i] = char(0, 0, 0, 0) .. NONE .. NO_SESSION
  else
    local old = #v < 64       -- written before status versions: none to keep
    local lat0, lng0, ts0, status, product, _, flag0, lastpub, since, region0, version =
      struct.unpack(old and '<dddBBhBddc15' or '<dddBBhBddc15I4', v)
    if old then version = 0 end
    local crossed = flag0 >= CROSSED   -- the region before an unconfirmed crossing, kept
    if ts == ts0 and lat == lat0 and lng == lng0 then
      -- The last accepted ping, sent again (a retry of a request whose reply was lost):
      -- answered as the first time, and its region steps run again (they are idempotent; they
      -- complete a place the first request never made, and evict the region it left). The
      -- directory keeps its record.
      out[i] = struct.pack('<BBBBc15dI4', flag0 % 2 == 1 and 2 or 3, status, product, 0,
        crossed and left_region(id) or region0, since, version)
    elseif ts <= ts0 then
      out[i] = struct.pack('<BBBBc15dI4', 1, status, product, 0, region0, since, version)
    else
      local outcome, flag, publish = 3, 0, 0
      if ts0 > 0 then
        -- Faster than max_speed: the great-circle distance d exceeds max_speed * dt. With h
        -- the haversine of d (d = 2R asin(sqrt h)) and half = max_speed * dt / 2R, that is
        -- h > sin(half)^2 while half < pi/2 (no distance on the sphere exceeds pi R).
        local half = max_speed * (ts - ts0) / 1000 / (2 * 6371008.8)
        if half < HALF_PI then
          local s1, s2 = sin((lat - lat0) * rad / 2), sin((lng - lng0) * rad / 2)
          local bound = sin(half)
          if s1 * s1 + cos(lat0 * rad) * cos(lat * rad) * s2 * s2 > bound * bound then
            outcome, flag = 2, 1
          end
        end
      end
      if outcome == 3 and ts - lastpub >= sample then
        publish, lastpub = 1, ts
        samples[#samples + 1] = struct.pack('<c16dddBBh', id, lat, lng, ts, status, product, hdg)
      end
      local evict = region0
      if region ~= region0 and region0 ~= NONE then
        -- A crossing: the region left is kept until the driver's next accepted ping, in case
        -- this batch's region steps never run (their process dies, their connection drops).
        -- One kept from the ping before is replaced (were the region steps of both lost,
        -- the region that one left would list the driver until the TTL).
        flag = flag + CROSSED
        redis.call('HSET', dir, id .. 'mv', struct.pack('<dc15', ts, region0))
      elseif crossed then
        -- The ping after a crossing evicts the region left once more (a no-op when the
        -- crossing's region steps ran), and forgets it.
        evict = left_region(id)
        redis.call('HDEL', dir, id .. 'mv')
      end
      local record = struct.pack('<dddBBhBddc15I4', lat, lng, ts, status, product, hdg, flag,
        lastpub, since, region, version)
      if latest then latest[id] = record end
      writes[#writes + 1] = id
      writes[#writes + 1] = record
      out[i] = struct.pack('<BBBBc15dI4', outcome, status, product, publish, evict, since,
        version)
    end
  end
end
for first = 1, #writes, CHUNK * 2 do
  redis.call('HSET', dir, unpack(writes, first, math.min(#writes, first + CHUNK * 2 - 1)))
end
if #samples > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 's', table.concat(samples))
end
return {table.concat(out), table.concat(denied_ids)}
