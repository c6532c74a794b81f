-- Per-driver directory step of a ping: serialises a driver's pings by time.
-- KEYS[1] directory key.  ARGV: ts_ms, lat, lng, cell, region, heading, max_speed_mps,
-- sample_ms, ttl_ms(key expiry).
-- Directory value: struct '<dddBBhBd' (lat, lng, ts, status, product, heading, flag, last_pub)
-- followed by "cell|region".
-- Returns {outcome, status, product, old_region, old_cell, publish, flagged_before}
--   outcome: 0 offline, 1 out_of_order, 2 impossible (flagged), 3 applied
local v = redis.call('GET', KEYS[1])
if not v then return {0} end
local lat0, lng0, ts0, status, product, hdg0, flag, lastpub = struct.unpack('<dddBBhBd', v)
local rest = string.sub(v, 38)
local cell0, region0 = string.match(rest, '^([^|]*)|(.*)$')
local ts = tonumber(ARGV[1])
local lat, lng = tonumber(ARGV[2]), tonumber(ARGV[3])
if ts <= ts0 then return {1} end
local outcome = 3
if ts0 > 0 then
  local rad = math.pi / 180
  local dp, dl = (lat - lat0) * rad, (lng - lng0) * rad
  local h = math.sin(dp / 2) ^ 2 + math.cos(lat0 * rad) * math.cos(lat * rad) * math.sin(dl / 2) ^ 2
  local d = 2 * 6371008.8 * math.asin(math.min(1, math.sqrt(h)))
  if d / ((ts - ts0) / 1000) > tonumber(ARGV[7]) then outcome = 2 end
end
local newflag = 0
if outcome == 2 then newflag = 1 end
local publish = 0
if outcome == 3 and ts - lastpub >= tonumber(ARGV[8]) then publish = 1; lastpub = ts end
local packed = struct.pack('<dddBBhBd', lat, lng, ts, status, product, tonumber(ARGV[6]), newflag, lastpub)
redis.call('SET', KEYS[1], packed .. ARGV[4] .. '|' .. ARGV[5], 'PX', ARGV[9])
return {outcome, status, product, region0, cell0, publish, flag}
