-- Sweep one region: drop drivers silent since before cutoff_ms (by their seen time), and
-- tombstones older than tombstone_cutoff_ms.  KEYS[1] the region's `at` key.  ARGV: bucket
-- divisor, cursor, count, cutoff_ms, tombstone_cutoff_ms.  Returns {next_cursor, removed}.
-- Most entries are fresh: each is judged by one time read where it lies (a live record's seen
-- time; a tombstone's ts, or a live record's of the layout before seen); a record no longer
-- than a tombstone with a pending status (`PENDING_SIZE`) is told by its status byte first.
-- Only a record to drop is read whole.
local div = tonumber(ARGV[1])
local cutoff, tomb_cutoff = tonumber(ARGV[4]), tonumber(ARGV[5])
local res = redis.call('HSCAN', at, ARGV[2], 'COUNT', ARGV[3])
local kv, removed = res[2], 0
local unpack_at, byte = struct.unpack, string.byte
for j = 2, #kv, 2 do
  local record = kv[j]
  local size, live, old = #record, true, nil
  if size > PENDING_SIZE then         -- the current layout: a live driver
    old = unpack_at('<d', record, HEAD_SIZE + 1) < cutoff
  else
    live = byte(record, 26) ~= GONE
    if live and size > HEAD_SIZE then
      old = unpack_at('<d', record, HEAD_SIZE + 1) < cutoff
    else
      old = unpack_at('<d', record, 17) < (live and cutoff or tomb_cutoff)
    end
  end
  if old then
    if live then
      local _, _, _, cprod, _, _, cscore = unpack_at(HEAD, record)
      redis.call('ZREM', bucket_key(p, cprod, cscore, div), kv[j - 1])
      removed = removed + 1
    end
    redis.call('HDEL', at, kv[j - 1])
  end
end
return {res[1], removed}
