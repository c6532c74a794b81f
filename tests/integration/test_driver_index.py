"""The live driver index on real Redis: atomic moves, ping rules, freshness and sweeps."""

from __future__ import annotations

import asyncio
import math
import random
import uuid

import h3
import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from core.products import Product
from core.settings import Settings
from geo.cells import LatLng, cell_of, haversine_m
from geo.index import RedisDriverIndex
from geo.records import PLACE_IN, DriverStatus, Outcome, PositionUpdate
from simulations.rides import offset
from tests.integration.index_helpers import (
    AT_SIZE,
    CENTRE,
    T0,
    across_a_boundary,
    assert_only_at,
    drive_shuffled,
    filed_under,
    live_in,
    region_steps,
    run_writers,
    url_of,
)
from tests.services import ON_BOTH

pytestmark = ON_BOTH   # the index on its Lua scripts, and on its Redis module


def test_a_driver_crossing_50_cells_under_8_writers_ends_in_exactly_one(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    # A straight drive east that crosses at least 50 res-9 cells, one ping a second at 20 m/s.
    track = [offset(CENTRE, 0, 20 * i) for i in range(900)]
    assert len({cell_of(p, 9) for p in track}) >= 50
    updates = [PositionUpdate(driver, p, T0 + 1000 * i) for i, p in enumerate(track)]
    shuffled = updates[:]
    random.Random(1).shuffle(shuffled)
    run_writers(index, [shuffled[i::8] for i in range(8)])
    state = index.get(driver)
    assert state is not None and state.ts_ms == updates[-1].ts_ms
    assert_only_at(redis_client, index, driver, track[-1])


def test_a_move_across_a_region_boundary_leaves_no_ghost(
        redis_client: redis.Redis, settings: Settings) -> None:
    # Region resolution 7 makes region boundaries a few km apart, so the drive crosses several.
    index = RedisDriverIndex(redis_client, resolution=9, levels=(10, 8), region_resolution=7,
                             prefix="rx")
    track = [offset(CENTRE, 0, 30 * i) for i in range(400)]
    regions = {h3.cell_to_parent(cell_of(p, 9), 7) for p in track}
    assert len(regions) >= 3
    for round_ in range(5):  # the race is timing-dependent: several drivers, several chances
        driver = drive_shuffled(index, track, seed=round_)
        assert_only_at(redis_client, index, driver, track[-1])
        assert sum(live_in(redis_client, f"rx:{{{r}}}", driver) for r in regions) == 1


def test_out_of_order_and_impossible_pings_do_not_move_the_driver(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    assert index.ingest([PositionUpdate(driver, CENTRE, T0)])[0].outcome is Outcome.APPLIED
    older = index.ingest([PositionUpdate(driver, offset(CENTRE, 100, 0), T0 - 1000)])[0]
    assert older.outcome is Outcome.OUT_OF_ORDER
    teleport = index.ingest([PositionUpdate(driver, offset(CENTRE, 50_000, 0), T0 + 1000)])[0]
    assert teleport.outcome is Outcome.IMPOSSIBLE
    # Flagged drivers are kept out of matching until their pings are plausible again.
    assert index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=10_000, now_ms=T0 + 1000) == []
    state = index.get(driver)
    assert state is not None and state.flagged


@pytest.mark.parametrize(("start", "bearing_deg", "gap_s"), [
    (CENTRE, 0.0, 5.0),                       # a ping every 5 s: the limit is ~347 m
    (CENTRE, 90.0, 3600.0),                   # an hour's silence: ~250 km
    (LatLng(-16.5, 179.999), 90.0, 60.0),     # across the antimeridian
])
def test_the_speed_limit_is_the_great_circle_speed(
        index: RedisDriverIndex, start: LatLng, bearing_deg: float, gap_s: float) -> None:
    """Just under the max speed is applied, just over it is impossible (great-circle metres
    over the time between the pings)."""
    limit_m = index.max_speed_mps * gap_s
    for factor, expected in ((0.99, Outcome.APPLIED), (1.01, Outcome.IMPOSSIBLE)):
        driver = uuid.uuid4()
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        assert index.ingest([PositionUpdate(driver, start, T0)])[0].outcome is Outcome.APPLIED
        north = math.cos(math.radians(bearing_deg)) * limit_m * factor
        east = math.sin(math.radians(bearing_deg)) * limit_m * factor
        lat = start.lat + north / 111_195.0
        lng = start.lng + east / (111_195.0 * math.cos(math.radians(start.lat)))
        there = LatLng(lat, lng - 360.0 if lng > 180.0 else lng)
        moved_m = haversine_m(start, there)
        assert (moved_m < limit_m) is (expected is Outcome.APPLIED)
        assert abs(moved_m / limit_m - factor) < 0.005
        ping = PositionUpdate(driver, there, T0 + int(gap_s * 1000))
        assert index.ingest([ping])[0].outcome is expected


def test_a_backlog_of_pings_places_the_driver_once(
        index: RedisDriverIndex, redis_client: redis.Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A phone posting ten pings at once, each in another cell: every ping is checked and
    applied, but only the last is placed (one record to the place script, not ten)."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    track = [offset(CENTRE, 150.0 * i, 0) for i in range(10)]
    assert len({cell_of(p, index.levels[0]) for p in track}) == 10
    sent: list[tuple[str, list]] = []
    run_calls = index._scripts.run_calls

    def spy(client: object, calls: list) -> list:
        sent.extend((name, args) for name, _, args in calls)
        return run_calls(client, calls)  # type: ignore[arg-type]

    monkeypatch.setattr(index._scripts, "run_calls", spy)
    results = index.ingest([PositionUpdate(driver, p, T0 + 5000 * (i + 1))   # 108 km/h
                            for i, p in enumerate(track)])
    assert [r.outcome for r in results] == [Outcome.APPLIED] * 10
    placed = b"".join(args[1] for name, args in sent if name == "place")
    assert len(placed) == PLACE_IN.size
    assert_only_at(redis_client, index, driver, track[-1])
    state = index.get(driver)
    assert state is not None and state.ts_ms == T0 + 50_000


def test_pings_of_one_driver_in_one_batch_are_judged_against_each_other(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """Several pings of a driver in one batch, among other drivers' (a backlog posted out of
    order): each is judged against the one before it in the batch, not against what the index
    held before the batch, so an older one after a newer one is out of order, and a jump too
    fast from the ping before it is flagged."""
    driver, other = uuid.uuid4(), uuid.uuid4()
    for d in (driver, other):
        index.go_online(d, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])
    near, far = offset(CENTRE, 100, 0), offset(CENTRE, 5000, 0)
    results = index.ingest([PositionUpdate(driver, near, T0 + 10_000),
                            PositionUpdate(other, CENTRE, T0 + 10_000),
                            PositionUpdate(driver, offset(CENTRE, 50, 0), T0 + 5_000),
                            PositionUpdate(driver, far, T0 + 11_000)])
    assert [r.outcome for r in results] == [Outcome.APPLIED, Outcome.APPLIED,
                                            Outcome.OUT_OF_ORDER, Outcome.IMPOSSIBLE]
    state = index.get(driver)
    assert state is not None and state.ts_ms == T0 + 11_000 and state.flagged
    assert filed_under(redis_client, index, driver) == []


def test_pings_of_an_offline_driver_are_refused(index: RedisDriverIndex) -> None:
    result = index.ingest([PositionUpdate(uuid.uuid4(), CENTRE, T0)])[0]
    assert result.outcome is Outcome.OFFLINE


def test_silent_drivers_vanish_from_search_after_the_ttl_and_are_swept(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])

    def search(now_ms: int) -> list[uuid.UUID]:
        found = index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000, now_ms=now_ms)
        return [d.driver_id for d in found]

    ttl_ms = index.ttl_ms
    assert search(T0 + ttl_ms) == [driver]
    assert search(T0 + ttl_ms + 1) == []         # gone from search at once after the TTL
    assert index.sweep(now_ms=T0 + ttl_ms - 1) == 0
    assert index.sweep(now_ms=T0 + ttl_ms + 1000) == 1
    assert filed_under(redis_client, index, driver) == []


def test_freshness_follows_when_pings_arrive_not_the_phones_clock(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """A phone whose clock runs 20 s fast stays in search for the TTL after its last ping
    arrives, not 20 s longer; one running 40 s slow is in search at all (before, its pings were
    accepted and it never was). The location age stays the phone's own; a status change keeps
    the arrival time."""
    fast, slow = uuid.uuid4(), uuid.uuid4()
    for driver in (fast, slow):
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(fast, CENTRE, T0 + 20_000),
                  PositionUpdate(slow, offset(CENTRE, 40, 0), T0 - 40_000)], now_ms=T0)

    def search(now_ms: int) -> dict[uuid.UUID, float]:
        found = index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000, now_ms=now_ms)
        return {d.driver_id: d.age_s(now_ms) for d in found}

    assert search(T0) == {fast: 0.0, slow: 40.0}
    assert index.set_status(fast, DriverStatus.OFFERED, version=1)
    assert index.set_status(fast, DriverStatus.AVAILABLE, version=2)
    ttl_ms = index.ttl_ms
    assert set(search(T0 + ttl_ms)) == {fast, slow}
    assert search(T0 + ttl_ms + 1) == {}
    assert index.sweep(now_ms=T0 + ttl_ms - 1) == 0
    assert index.sweep(now_ms=T0 + ttl_ms + 1000) == 2
    assert filed_under(redis_client, index, fast) == filed_under(redis_client, index, slow) == []


def test_records_written_before_arrival_times_are_read_by_their_ping_time(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """An `at` record of the layout before `seen` (36 bytes, as a running index holds during
    a rolling deploy) is searched, re-statused and swept by its ping time, and the driver's
    next ping rewrites it in the new layout."""
    old, new = uuid.uuid4(), uuid.uuid4()
    for driver in (old, new):
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(old, CENTRE, T0), PositionUpdate(new, offset(CENTRE, 30, 0), T0)],
                 now_ms=T0 + 10_000)
    at = index.region_at(index.region_of(cell_of(CENTRE, index.levels[0])))
    record = redis_client.hget(at, old.bytes)
    assert record is not None and len(record) == AT_SIZE
    redis_client.hset(at, old.bytes, record[:36])

    def search(now_ms: int) -> list[uuid.UUID]:
        found = index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000, now_ms=now_ms)
        return [d.driver_id for d in found]

    assert index.set_status(old, DriverStatus.OFFERED, version=1)
    assert index.set_status(old, DriverStatus.AVAILABLE, version=2)
    assert len(redis_client.hget(at, old.bytes) or b"") == 36
    ttl_ms = index.ttl_ms
    assert search(T0 + ttl_ms) == [old, new]
    assert search(T0 + ttl_ms + 1) == [new]             # the old record: its ping time
    assert index.sweep(now_ms=T0 + ttl_ms + 1) == 1
    assert filed_under(redis_client, index, old) == []
    later = T0 + ttl_ms + 2000
    index.ingest([PositionUpdate(old, CENTRE, later)], now_ms=later)
    assert len(redis_client.hget(at, old.bytes) or b"") == AT_SIZE
    assert search(later) == [old, new]


def test_records_written_before_sessions_were_kept_are_ordered_by_ping_time(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """An `at` entry of the layout before it kept its session (44 bytes, during a rolling
    deploy) is ordered by ping time alone: a late, older place of its own session loses, a
    newer one rewrites it in the new layout, after which sessions order it."""
    driver = uuid.uuid4()
    cell = cell_of(CENTRE, index.levels[0])
    region = index.region_prefix(index.region_of(cell))
    place, _ = region_steps(index, driver)
    place(region, cell, 100, since=1)
    record = redis_client.hget(f"{region}:at", driver.bytes)
    assert record is not None and len(record) == AT_SIZE
    redis_client.hset(f"{region}:at", driver.bytes, record[:44])
    place(region, cell, 90, since=2)            # ordered by ts: loses
    assert (redis_client.hget(f"{region}:at", driver.bytes) or b"") == record[:44]
    place(region, cell, 110, since=1)
    assert len(redis_client.hget(f"{region}:at", driver.bytes) or b"") == AT_SIZE
    place(region, cell, 90, since=2)            # a later session: wins, though older
    stored = redis_client.hget(f"{region}:at", driver.bytes)
    assert isinstance(stored, bytes) and PLACE_IN.unpack(driver.bytes + stored)[3] == 90


def test_the_idle_sweep_forgets_only_drivers_and_buckets_idle_past_the_bound(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """Over several sweep calls per shard: a driver whose last ping is older than
    `idle_offline_s` is forgotten (its next ping is refused as offline), and so is its rate
    bucket; a driver that pinged since, or went online since without pinging, stays."""
    idle_ms = index.idle_offline_ms
    now = T0 + idle_ms + 60_000
    gone, pinging, waiting = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for driver in (gone, pinging):
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.go_online(waiting, Product.ECONOMY, now_ms=now - idle_ms + 1000)
    # Company: ~47 drivers per shard, so that a sweep with batches of 20 takes several calls.
    crowd = [uuid.uuid4() for _ in range(3000)]
    index.go_online_many([(d, Product.ECONOMY) for d in crowd], now_ms=now)

    async def post(updates: list[PositionUpdate], charge: list[uuid.UUID], at_ms: int) -> None:
        aclient = AsyncRedis.from_url(url_of(redis_client))
        try:
            await index.ingest_async(updates, aclient, charge=charge, now_ms=at_ms)
        finally:
            await index.aclose(aclient)
            await aclient.aclose()

    before, after = across_a_boundary(index)
    asyncio.run(post([PositionUpdate(gone, before, T0 + 1000)], [gone], T0 + 1000))
    asyncio.run(post([PositionUpdate(gone, after, T0 + 5000)], [gone], T0 + 5000))
    asyncio.run(post([PositionUpdate(pinging, CENTRE, T0 + 1000)], [pinging], T0 + 1000))
    asyncio.run(post([PositionUpdate(pinging, CENTRE, now - 1000)], [pinging], now - 1000))
    rl = redis_client.hexists
    assert rl(index.directory_key(gone), gone.bytes + b"mv")     # the region its crossing left

    assert index.sweep_idle(now_ms=now, batch=20) == 3            # gone, its bucket and that
    assert index.get(gone) is None and not rl(index.directory_key(gone), gone.bytes + b"rl")
    assert not rl(index.directory_key(gone), gone.bytes + b"mv")
    assert index.get(pinging) is not None and rl(index.directory_key(pinging),
                                                 pinging.bytes + b"rl")
    assert index.get(waiting) is not None
    assert all(index.get(d) is not None for d in crowd)
    assert index.ingest([PositionUpdate(gone, CENTRE, now)], now_ms=now)[0].outcome is \
        Outcome.OFFLINE


def test_the_sweep_of_the_cells_drops_old_tombstones_and_keeps_recent_ones(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """A driver that moved to another region leaves a tombstone there (a late, older place
    must not resurrect it), dated by its next ping, which evicts the region left once more;
    the sweep keeps it for `tombstone_keep_s`, then drops it."""
    driver = uuid.uuid4()
    far = offset(CENTRE, 0, 400_000)
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])
    index.ingest([PositionUpdate(driver, far, T0 + 4 * 3600_000)])       # 4 h later: plausible
    old = index.region_at(index.region_of(cell_of(CENTRE, index.levels[0])))
    assert len(redis_client.hget(old, driver.bytes) or b"") == 36        # the tombstone
    later = T0 + 4 * 3600_000 + 4_000
    index.ingest([PositionUpdate(driver, offset(far, 10, 0), later)])     # the next ping
    index.ingest([PositionUpdate(driver, far, later + 599_000)])           # still there
    assert index.sweep_cells(now_ms=later + 600_000, tombstone_keep_s=600, batch=20) == 0
    assert redis_client.hexists(old, driver.bytes)
    assert index.sweep_cells(now_ms=later + 600_001, tombstone_keep_s=600, batch=20) == 0
    assert not redis_client.hexists(old, driver.bytes)
    found = index.nearby(far, Product.ECONOMY, k=1, radius_m=100, now_ms=later + 600_001)
    assert [d.driver_id for d in found] == [driver]


def test_going_offline_removes_the_driver_immediately(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])
    assert index.go_offline(driver)
    assert index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000, now_ms=T0) == []
    assert filed_under(redis_client, index, driver) == []
    assert index.get(driver) is None


def test_a_finer_finest_level_refiles_each_driver_at_its_next_ping(
        redis_client: redis.Redis) -> None:
    """Search levels 10,9,8 -> 11,10,9,8 (the same coarsest level, so the same sets): a
    driver filed under the old layout is re-filed by its next ping, once, and found exactly."""
    old = RedisDriverIndex(redis_client, levels=(10, 9, 8), prefix="lv")
    new = RedisDriverIndex(redis_client, levels=(11, 10, 9, 8), prefix="lv")
    driver = uuid.uuid4()
    old.go_online(driver, Product.ECONOMY, now_ms=T0)
    old.ingest([PositionUpdate(driver, CENTRE, T0)])
    assert_only_at(redis_client, old, driver, CENTRE)
    moved = offset(CENTRE, 5, 5)
    assert new.ingest([PositionUpdate(driver, moved, T0 + 1000)])[0].outcome is Outcome.APPLIED
    assert_only_at(redis_client, new, driver, moved)
    for level in range(len(new.levels)):
        [found] = new.nearby(offset(CENTRE, 40, 0), Product.ECONOMY, k=3, radius_m=500,
                             now_ms=T0 + 1000, level=level)
        assert found.driver_id == driver and found.point == moved


def test_pings_inside_one_cell_rewrite_the_position_but_no_sorted_set(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """A driver waiting at a corner pings the same cell over and over: its sorted set already
    holds it with that score, so only its position record is rewritten."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    corner = LatLng(*h3.cell_to_latlng(cell_of(CENTRE, index.levels[0])))   # mid-cell
    track = [offset(corner, 2 * i, 0) for i in range(6)]
    assert len({cell_of(p, index.levels[0]) for p in track}) == 1
    index.ingest([PositionUpdate(driver, track[0], T0)])
    redis_client.config_resetstat()
    for i, p in enumerate(track[1:], start=1):
        assert index.ingest([PositionUpdate(driver, p, T0 + 1000 * i)])[0].outcome is \
            Outcome.APPLIED
    assert "cmdstat_zadd" not in redis_client.info("commandstats")
    assert_only_at(redis_client, index, driver, track[-1])
    [found] = index.nearby(corner, Product.ECONOMY, k=1, radius_m=100, now_ms=T0 + 5000)
    assert (found.driver_id, found.ts_ms) == (driver, T0 + 5000)
    assert found.point == track[-1]


def ids_with_distinct_ties(count: int) -> list[uuid.UUID]:
    """Random ids whose last 16 bits (the tie-break's source) differ: two random ids share
    the 12 bits a level-11 score keeps one time in 4,096."""
    return [uuid.UUID(int=uuid.uuid4().int & ~0xFFFF | i) for i in range(count)]


def test_drivers_in_one_cell_have_different_scores_and_are_all_found(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """Tied scores would make Redis order the cell's drivers by comparing their ids."""
    corner = LatLng(*h3.cell_to_latlng(cell_of(CENTRE, index.levels[0])))   # mid-cell
    drivers = ids_with_distinct_ties(30)
    for i, driver in enumerate(drivers):
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, offset(corner, i % 5, i // 5), T0)])
    keys = list(redis_client.scan_iter(match=b"*}:z:*"))
    assert len(keys) == 1
    scores = {d: redis_client.zscore(keys[0], d.bytes) for d in drivers}
    assert len(set(scores.values())) == len(drivers)
    for driver in drivers:
        assert_only_at(redis_client, index, driver, corner)
    for level in range(len(index.levels)):
        found = index.nearby(corner, Product.ECONOMY, k=40, radius_m=100, now_ms=T0,
                             level=level)
        assert sorted(f.driver_id for f in found) == sorted(drivers)


def test_drivers_scored_before_tie_breaks_are_found_and_rescored_by_their_next_ping(
        redis_client: redis.Redis, settings: Settings) -> None:
    """An index of an earlier version (or `DRIVER_SCORE_TIEBREAK=false`) scores drivers by
    their cell alone: this version's searches find them, and their next ping re-scores them,
    leaving one entry."""
    old = RedisDriverIndex(redis_client, prefix="tb", score_tiebreak=False)
    new = RedisDriverIndex(redis_client, prefix="tb")
    corner = LatLng(*h3.cell_to_latlng(cell_of(CENTRE, new.levels[0])))
    drivers = ids_with_distinct_ties(5)
    for driver in drivers:
        old.go_online(driver, Product.ECONOMY, now_ms=T0)
        old.ingest([PositionUpdate(driver, corner, T0)])
    [key] = redis_client.scan_iter(match=b"tb:*}:z:*")
    assert len({redis_client.zscore(key, d.bytes) for d in drivers}) == 1
    for level in range(len(new.levels)):
        found = new.nearby(corner, Product.ECONOMY, k=10, radius_m=100, now_ms=T0, level=level)
        assert sorted(f.driver_id for f in found) == sorted(drivers)
    for driver in drivers:
        new.ingest([PositionUpdate(driver, offset(corner, 1, 1), T0 + 1000)])
        assert_only_at(redis_client, new, driver, corner)
    assert len({redis_client.zscore(key, d.bytes) for d in drivers}) == len(drivers)
    assert redis_client.zcard(key) == len(drivers)
