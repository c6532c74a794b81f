-- Region step of a batch of pings: atomic cell moves inside one region (one hash slot).
-- KEYS[1] the region's `at` key, e.g. "rh:{83283afffffffff}:at".
-- ARGV[1] bucket divisor: 8^(15 - coarsest search resolution).
-- ARGV[2] records of 72 bytes: the driver's id (16 bytes), then its `at` record as it will be
--   written ('<dddBBhdddI4' lat, lng, ts_ms, product, status, heading, score of its finest
--   cell, seen_ms, the online-since time of the driver's session, status version).
-- The status is the directory's, as the claim read it, with its version. A status change
-- landing between the claim and this place rewrote the region's record with a newer version,
-- or, finding none live (the ping is the driver's first in this region), left it pending in a
-- tombstone (`status.lua`): the place keeps that status and version.
-- A place applies only when newer than the driver's `at` record, entry or tombstone: by
-- session (online-since time), then by ts within the same session (`after`): it
-- rewrites the record and re-scores the driver, one ZADD (a move between cells is a new
-- score, so the driver is never in two cells; a ping in the same cell needs none); a move to
-- another bucket or product first removes it from the old set.
local div, blob = tonumber(ARGV[1]), ARGV[2]
local size = 72
local sub = string.sub
local n = #blob / size
local ids = {}
for i = 1, n do ids[i] = string.sub(blob, (i - 1) * size + 1, (i - 1) * size + 16) end
local current = hmget(at, ids)
local latest, ats = {}, {}
local applied = 0
for i = 1, n do
  local base = (i - 1) * size
  local id = ids[i]
  local _, _, ts, product, _, _, score, _, since, version =
    struct.unpack(AT, blob, base + 17)
  local cur = latest[id] or current[i]
  local ok, filed = true, false
  -- A status change newer than the claim's, landed since: its status byte and version
  local nstatus, nversion
  if cur then
    local _, cts, cprod, cst, cscore, csince, cversion
    if #cur > SINCE_SIZE then      -- the current layout, read in one step
      _, _, cts, cprod, cst, _, cscore, _, csince, cversion = struct.unpack(AT, cur)
    else
      _, _, cts, cprod, cst, _, cscore = struct.unpack(HEAD, cur)
      csince, cversion = session_and_version(cur)
    end
    if cst == GONE then            -- a tombstone keeps its session where score is
      ok = after(since, ts, cscore, cts)
      local pstatus, pversion = pending_of(cur)
      if ok and pversion and pversion > version then
        nstatus, nversion = string.char(pstatus), sub(cur, PENDING_SIZE - 3, PENDING_SIZE)
      end
    else
      if csince then ok = after(since, ts, csince, cts) else ok = ts > cts end  -- after_live
      if ok then
        if cversion > version then nstatus, nversion = sub(cur, 26, 26), sub(cur, 53, 56) end
        -- Scores are integers below 2^53 and div a power of 8: x - x % div is exact.
        if cprod ~= product or cscore - cscore % div ~= score - score % div then
          redis.call('ZREM', bucket_key(p, cprod, cscore, div), id)
        elseif cscore == score then
          filed = true      -- same cell: its set already holds the driver with this score
        end
      end
    end
  end
  if ok then
    if not filed then redis.call('ZADD', bucket_key(p, product, score, div), format('%d', score), id) end
    local record = sub(blob, base + 17, base + size)  -- the record as sent
    if nstatus then   -- with the newer change's status (byte 26) and version (bytes 53-56)
      record = sub(record, 1, 25) .. nstatus .. sub(record, 27, 52) .. nversion
    end
    latest[id] = record
    ats[#ats + 1] = id
    ats[#ats + 1] = record
    applied = applied + 1
  end
end
hset_pairs(at, ats)
return applied
