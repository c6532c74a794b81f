-- Shared by the region scripts (prepended to each): the `at` record and batched reads/writes.
-- `at` maps driver -> '<dddBBhdddI4' lat, lng, ts, product, status, heading, score, seen,
-- since, version: where and how the driver is in this region; the position lives once, here.
-- ts is the ping's recorded time (the phone's clock: it orders a driver's pings), seen the
-- server's time when the ping arrived (freshness: a driver silent for the TTL leaves search,
-- whatever its phone's clock says), since the online-since time of the driver's session.
-- Ping times order one session's steps only (a new phone's clock may run behind the old
-- one's): steps are ordered by session first, then by ts (`after`). version is the status
-- version (`dir_status.lua`) of the change the status came with, 0 before any: a status
-- change's region write and a ping's place each keep the newer change's status, so neither
-- undoes a newer change by landing late. Records written before `version` was kept end after
-- since (52 bytes: version 0); before `since`, after seen (44 bytes: ordered by ts alone);
-- before `seen`, after score (36 bytes: their seen is ts). Status 0 marks a tombstone
-- (36 bytes): the driver left the region at ts, and nothing older may place it again. A
-- tombstone keeps its session's since where a live record keeps its score (0 for tombstones
-- written before it was kept). A tombstone may carry a pending status (44 bytes: `PENDING`
-- after the head): a status change that found no live record here while a ping's place was
-- on its way (`status.lua`); the place takes it when its version is above the claim's.
-- `z:<product>:<bucket>` is a sorted set of drivers scored by the digits of their finest H3
-- cell below the region; a bucket is a cell of the coarsest search level (score / div), so
-- every search cell is a contiguous score range of one small set.
-- KEYS[1] is the region's `at` key: declaring it routes the call to the region's slot (on
-- Redis Cluster); the region's other keys share its hash tag, so they live in that slot too.
local at = KEYS[1]
local p = string.sub(at, 1, -4)
local CHUNK = 500
local format = string.format
local GONE = 0
local AT = '<dddBBhdddI4' -- a live record
local HEAD = '<dddBBhd'   -- a record without `seen`: a tombstone, or one written before it
local HEAD_SIZE = 36
local SEEN_SIZE = 44      -- a live record written before `since` was kept
local SINCE_SIZE = 52     -- a live record written before `version` was kept
local PENDING = '<BxxxI4' -- a tombstone's pending status: status, version (after the head)
local PENDING_SIZE = 44

-- A tombstone: the driver left the region at ts, in the session that went online at since.
local function tombstone(ts, since)
  return struct.pack(HEAD, 0, 0, ts, 0, GONE, -1, since)
end

-- A tombstone's pending status and its version, or nil.
local function pending_of(tomb)
  if #tomb < PENDING_SIZE then return nil end
  local status, version = struct.unpack(PENDING, tomb, HEAD_SIZE + 1)
  return status, version
end

-- Whether a step of session `since` at `ts` comes after a record's (`tsince`, `tts`):
-- sessions first, then ping times within one session.
local function after(since, ts, tsince, tts)
  return since > tsince or (since == tsince and ts > tts)
end

-- A live record's session (nil when written before it was kept) and status version (0 when
-- written before it was kept).
local function session_and_version(cur)
  local size = #cur
  if size > SINCE_SIZE then
    local since, version = struct.unpack('<dI4', cur, SEEN_SIZE + 1)
    return since, version
  elseif size > SEEN_SIZE then
    return (struct.unpack('<d', cur, SEEN_SIZE + 1)), 0
  end
  return nil, 0
end

-- Whether a step of session `since` at `ts` comes after the live record `cur` (at `cts`);
-- a record written before sessions were kept is ordered by ping time alone.
local function after_live(since, ts, cur, cts)
  local csince = session_and_version(cur)
  if csince then return after(since, ts, csince, cts) end
  return ts > cts
end

local key_cache = {}   -- product -> bucket -> key, for this call

local function bucket_key(p, product, score, div)
  local bucket = (score - score % div) / div
  local keys = key_cache[product]
  if not keys then
    keys = {}
    key_cache[product] = keys
  end
  local key = keys[bucket]
  if not key then
    key = p .. ':z:' .. product .. ':' .. string.format('%.0f', bucket)
    keys[bucket] = key
  end
  return key
end

local function hmget(key, ids)
  if #ids > 0 and #ids <= CHUNK then return redis.call('HMGET', key, unpack(ids)) end
  local values = {}
  for first = 1, #ids, CHUNK do
    local last = math.min(#ids, first + CHUNK - 1)
    local got = redis.call('HMGET', key, unpack(ids, first, last))
    for j = 1, last - first + 1 do values[first + j - 1] = got[j] end
  end
  return values
end

local function hset_pairs(key, flat)
  for first = 1, #flat, CHUNK * 2 do
    redis.call('HSET', key, unpack(flat, first, math.min(#flat, first + CHUNK * 2 - 1)))
  end
end
