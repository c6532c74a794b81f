"""The live driver index on real Redis: atomic moves, freshness, and exact nearest-K search."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import uuid
from collections.abc import Callable

import h3
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis as AsyncRedis

import geo.search_geometry
from core.products import Product
from core.settings import Settings
from geo.cells import LatLng, cell_of, coarse_reach, haversine_m
from geo.index import RedisDriverIndex
from geo.records import EVICT_IN, PLACE_IN, DriverStatus, IngestResult, Outcome, PositionUpdate
from geo.scripts import AnyRedis
from geo.search_geometry import WALKS_PER_DISK
from simulations.rides import offset

CENTRE = LatLng(40.7580, -73.9855)
TROMSO, USHUAIA = LatLng(69.6496, 18.9560), LatLng(-54.8019, -68.3030)
T0 = 1_800_000_000_000


def run_writers(index: RedisDriverIndex, parts: list[list[PositionUpdate]]) -> None:
    """One thread per part, started together, each sending its pings one by one; any error
    in a writer fails the test."""
    barrier = threading.Barrier(len(parts))
    errors: list[BaseException] = []

    def writer(part: list[PositionUpdate]) -> None:
        barrier.wait()
        try:
            for update in part:
                index.ingest([update])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def drive_shuffled(index: RedisDriverIndex, track: list[LatLng], seed: int) -> uuid.UUID:
    """A new driver pings along `track` once a second, the pings shuffled over 8 concurrent
    writers; returns the driver."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    order = [PositionUpdate(driver, p, T0 + 1000 * i) for i, p in enumerate(track)]
    random.Random(seed).shuffle(order)
    run_writers(index, [order[i::8] for i in range(8)])
    return driver


def filed_under(client: AnyRedis, index: RedisDriverIndex, driver: uuid.UUID) -> list[str]:
    """Every finest cell under which some region's sorted sets list the driver, as hex (a full
    scan: test-only). Keys are `<prefix>:{<region>}:z:<product>:<bucket>`, scored by the digits
    of the driver's finest cell below the region."""
    below = (1 << 3 * (15 - index.region_resolution)) - 1
    found = []
    for key in client.scan_iter(match=b"*}:z:*"):
        score = client.zscore(key, driver.bytes)
        if score is not None:
            region = int(key[key.index(b"{") + 1:key.index(b"}")], 16)
            resolution = 0xF << 52
            cell = (region & ~below & ~resolution) | (index.levels[0] << 52) | int(score)
            found.append(f"{cell:x}")
    return found


def assert_only_at(client: AnyRedis, index: RedisDriverIndex, driver: uuid.UUID,
                   point: LatLng) -> None:
    """The driver is filed exactly once, under the finest cell of `point` (every coarser
    search cell is a score range of that one entry)."""
    assert filed_under(client, index, driver) == [cell_of(point, index.levels[0])]


def live_in(client: AnyRedis, region_prefix: str, driver: uuid.UUID) -> bool:
    """Whether the region's `at` hash holds the driver as present (not as a tombstone)."""
    record = client.hget(f"{region_prefix}:at", driver.bytes)
    return record is not None and record[25] != 0


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
    assert index.set_status(fast, DriverStatus.OFFERED)
    assert index.set_status(fast, DriverStatus.AVAILABLE)
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
    assert record is not None and len(record) == 52
    redis_client.hset(at, old.bytes, record[:36])

    def search(now_ms: int) -> list[uuid.UUID]:
        found = index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000, now_ms=now_ms)
        return [d.driver_id for d in found]

    assert index.set_status(old, DriverStatus.OFFERED)
    assert index.set_status(old, DriverStatus.AVAILABLE)
    assert len(redis_client.hget(at, old.bytes) or b"") == 36
    ttl_ms = index.ttl_ms
    assert search(T0 + ttl_ms) == [old, new]
    assert search(T0 + ttl_ms + 1) == [new]             # the old record: its ping time
    assert index.sweep(now_ms=T0 + ttl_ms + 1) == 1
    assert filed_under(redis_client, index, old) == []
    later = T0 + ttl_ms + 2000
    index.ingest([PositionUpdate(old, CENTRE, later)], now_ms=later)
    assert len(redis_client.hget(at, old.bytes) or b"") == 52
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
    assert record is not None and len(record) == 52
    redis_client.hset(f"{region}:at", driver.bytes, record[:44])
    place(region, cell, 90, since=2)            # ordered by ts: loses
    assert (redis_client.hget(f"{region}:at", driver.bytes) or b"") == record[:44]
    place(region, cell, 110, since=1)
    assert len(redis_client.hget(f"{region}:at", driver.bytes) or b"") == 52
    place(region, cell, 90, since=2)            # a later session: wins, though older
    stored = redis_client.hget(f"{region}:at", driver.bytes)
    assert isinstance(stored, bytes) and PLACE_IN.unpack(driver.bytes + stored)[3] == 90


def test_the_idle_sweep_forgets_only_drivers_and_buckets_idle_past_the_bound(
        index: RedisDriverIndex, redis_client: redis.Redis, base_settings: Settings) -> None:
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
        aclient = AsyncRedis.from_url(base_settings.redis_url)
        try:
            await index.ingest_async(updates, aclient, charge=charge, now_ms=at_ms)
        finally:
            await aclient.aclose()

    asyncio.run(post([PositionUpdate(gone, CENTRE, T0 + 1000)], [gone], T0 + 1000))
    asyncio.run(post([PositionUpdate(pinging, CENTRE, T0 + 1000)], [pinging], T0 + 1000))
    asyncio.run(post([PositionUpdate(pinging, CENTRE, now - 1000)], [pinging], now - 1000))
    rl = redis_client.hexists

    assert index.sweep_idle(now_ms=now, batch=20) == 2            # gone and its bucket
    assert index.get(gone) is None and not rl(index.directory_key(gone), gone.bytes + b"rl")
    assert index.get(pinging) is not None and rl(index.directory_key(pinging),
                                                 pinging.bytes + b"rl")
    assert index.get(waiting) is not None
    assert all(index.get(d) is not None for d in crowd)
    assert index.ingest([PositionUpdate(gone, CENTRE, now)], now_ms=now)[0].outcome is \
        Outcome.OFFLINE


def test_the_sweep_of_the_cells_drops_old_tombstones_and_keeps_recent_ones(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """A driver that moved to another region leaves a tombstone there (a late, older place
    must not resurrect it); the sweep keeps it for `tombstone_keep_s`, then drops it."""
    driver = uuid.uuid4()
    far = offset(CENTRE, 0, 400_000)
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])
    index.ingest([PositionUpdate(driver, far, T0 + 4 * 3600_000)])       # 4 h later: plausible
    old = index.region_at(index.region_of(cell_of(CENTRE, index.levels[0])))
    assert len(redis_client.hget(old, driver.bytes) or b"") == 36        # the tombstone
    later = T0 + 4 * 3600_000
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


def test_status_and_product_filter_search(index: RedisDriverIndex) -> None:
    economy, comfort, busy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    index.go_online(economy, Product.ECONOMY, now_ms=T0)
    index.go_online(comfort, Product.COMFORT, now_ms=T0)
    index.go_online(busy, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(d, offset(CENTRE, 50 * i, 0), T0)
                  for i, d in enumerate((economy, comfort, busy))])
    index.set_status(busy, DriverStatus.ON_TRIP)
    found = index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000, now_ms=T0)
    assert [d.driver_id for d in found] == [economy]
    # A later ping keeps the status that was set in between.
    index.ingest([PositionUpdate(busy, offset(CENTRE, 120, 0), T0 + 1000)])
    assert [d.driver_id for d in index.nearby(CENTRE, Product.ECONOMY, k=5, radius_m=1000,
                                              now_ms=T0 + 1000)] == [economy]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), count=st.integers(0, 300), k=st.integers(1, 12),
       radius_m=st.floats(100, 6000), spread_m=st.floats(200, 8000),
       centre=st.sampled_from([CENTRE, TROMSO, USHUAIA]))
def test_nearby_matches_brute_force(redis_client: redis.Redis, seed: int, count: int, k: int,
                                    radius_m: float, spread_m: float, centre: LatLng) -> None:
    """Around New York, and in cities far from the equator (where a degree of longitude is
    short: the client's flat floors and the script's flat screen must still never skip a
    driver)."""
    redis_client.flushdb()
    # Three levels; region boundaries within reach of the queries.
    index = RedisDriverIndex(redis_client, levels=(11, 10, 9), region_resolution=6)
    rng = random.Random(seed)
    drivers = {}
    for _ in range(count):
        driver = uuid.uuid4()
        product = rng.choice(list(Product))
        point = offset(centre, rng.uniform(-spread_m, spread_m), rng.uniform(-spread_m, spread_m))
        age_ms = rng.choice([0, 5_000, 29_000, 31_000, 60_000])
        index.go_online(driver, product, now_ms=T0)
        index.ingest([PositionUpdate(driver, point, T0 - age_ms)])
        drivers[driver] = (product, point, age_ms)
    query = offset(centre, rng.uniform(-500, 500), rng.uniform(-500, 500))
    expected = sorted(
        (haversine_m(query, point), d.hex) for d, (product, point, age_ms) in drivers.items()
        if product is Product.ECONOMY and age_ms <= 30_000 and haversine_m(query, point) <= radius_m
    )[:k]
    # Every level answers exactly; the adaptive choice of level changes only the cost.
    for level in (None, *range(len(index.levels))):
        found = index.nearby(query, Product.ECONOMY, k=k, radius_m=radius_m, now_ms=T0,
                             level=level)
        assert [d.driver_id.hex for d in found] == [h for _, h in expected], level
        for got, (dist, _) in zip(found, expected, strict=True):
            assert got.distance_m == pytest.approx(dist, abs=0.01)


def count_round_trips(index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one for each round trip of the index's searches from now on."""
    trips: list[int] = []
    search = index._search._search_cells

    def counted(*args: object) -> object:
        trips.append(1)
        return search(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(index._search, "_search_cells", counted)
    return trips


def place_sparse_line(index: RedisDriverIndex, origin: LatLng) -> None:
    """12 drivers 60 m apart from 700 m east of `origin`: too sparse for the fine levels."""
    for i in range(12):
        driver = uuid.uuid4()
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, offset(origin, 700 + 60 * i, 300), T0)])


def round_trips_of_two_searches(index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch,
                                first_at: LatLng, then_at: LatLng) -> tuple[int, int]:
    """Round trips of a search at `first_at`, then of one at `then_at` (each finds 10)."""
    trips = count_round_trips(index, monkeypatch)
    first = index.nearby(first_at, Product.ECONOMY, k=10, radius_m=3000, now_ms=T0)
    first_trips, trips[:] = len(trips), []
    then = index.nearby(then_at, Product.ECONOMY, k=10, radius_m=3000, now_ms=T0)
    assert len(first) == len(then) == 10
    return first_trips, len(trips)


def test_a_repeat_search_starts_at_the_level_that_suits_the_area(
        index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse drivers: the first search fails at the fine levels and climbs (several round
    trips); the area's hint sends the next search there at once (one round trip)."""
    place_sparse_line(index, CENTRE)
    first, then = round_trips_of_two_searches(index, monkeypatch, CENTRE,
                                              offset(CENTRE, 30, 30))
    assert first >= 2 and then == 1


def test_a_new_area_starts_where_the_last_search_had_to_look(
        index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse city: the first search climbs from the finest level; a search in an area no
    search has seen yet (another coarse cell, 20 km away) starts from the last search's reach
    instead of the finest level, in one round trip."""
    there = offset(CENTRE, 20_000, 0)
    wider = index.levels[-1] - 1            # an area's hint also serves its parent area
    assert cell_of(there, wider) != cell_of(CENTRE, wider)
    place_sparse_line(index, CENTRE)
    place_sparse_line(index, there)
    first, then = round_trips_of_two_searches(index, monkeypatch, CENTRE, there)
    assert first >= 2 and then == 1


def test_a_query_a_little_sparser_than_its_area_takes_one_round_trip(
        index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense spot sets its area's hint (its 10th driver ~150 m away, which the finest
    level's rings 0-2 certify); a query 350 m away in the same area finds its 10th ~300 m
    away, past what those rings can certify: the hint's margin starts it one level coarser, in
    one round trip, where starting at the finest level would climb (two)."""
    dense = LatLng(*h3.cell_to_latlng(h3.latlng_to_cell(CENTRE.lat, CENTRE.lng,
                                                        index.levels[-1])))
    sparse = offset(dense, 0, 350)
    spots = [offset(dense, 150 * math.cos(a), 150 * math.sin(a)) for a in range(10)]
    spots += [offset(sparse, 300 * math.cos(a), 300 * math.sin(a)) for a in range(10)]
    for spot in spots:
        driver = uuid.uuid4()
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, spot, T0)])
    index.nearby(dense, Product.ECONOMY, k=10, radius_m=3000, now_ms=T0)   # sets the hint
    trips = count_round_trips(index, monkeypatch)
    found = index.nearby(sparse, Product.ECONOMY, k=10, radius_m=3000, now_ms=T0)
    assert len(found) == 10 and found[-1].distance_m > 250
    assert len(trips) == 1


@pytest.mark.parametrize("centre", [CENTRE, TROMSO, USHUAIA])
def test_a_sparse_search_covers_its_radius_in_its_second_round_trip(
        index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch, centre: LatLng) -> None:
    """At the coarsest level, after rings 0-2, the next chunk reaches the ring that certifies
    the radius (estimated from the level's edge length, tested here far from the equator where
    cells are smallest): 7 km takes two round trips, not three, and finds every driver."""
    drivers = {uuid.uuid4(): offset(centre, east, north)
               for east, north in ((2_000, 0), (0, -4_500), (-6_500, 1_000))}
    for driver, point in drivers.items():
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, point, T0)])
    trips = count_round_trips(index, monkeypatch)
    found = index.nearby(centre, Product.ECONOMY, k=5, radius_m=7_000, now_ms=T0,
                         level=len(index.levels) - 1)
    assert [d.driver_id for d in found] == list(drivers)
    assert len(trips) == 2


def test_nearby_finds_drivers_across_the_antimeridian(index: RedisDriverIndex) -> None:
    """Longitudes wrap: a driver 200 m east of a query at 179.999 sits near -179.999."""
    query = LatLng(-17.0, 179.999)
    step = 200 / (111_320 * math.cos(math.radians(query.lat)))         # 200 m of longitude
    east = LatLng(query.lat, query.lng + step - 360)                  # -179.99912
    near, far = uuid.uuid4(), uuid.uuid4()
    for driver, point in ((near, east), (far, offset(query, 0, -900))):
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, point, T0)])
    found = index.nearby(query, Product.ECONOMY, k=2, radius_m=1000, now_ms=T0)
    assert [d.driver_id for d in found] == [near, far]
    assert found[0].distance_m == pytest.approx(200, abs=1)


RegionStep = Callable[..., None]


def region_steps(index: RedisDriverIndex, driver: uuid.UUID) -> tuple[RegionStep, RegionStep]:
    """The region scripts' place and evict of one driver, called directly (to replay an
    interleaving): place(region prefix, finest cell, ts, since=1), evict(prefix, ts, since=1)."""

    def place(prefix: str, cell: str, ts: int, since: float = 1) -> None:
        score = int(cell, 16) & ((1 << 3 * (15 - index.region_resolution)) - 1)
        record = PLACE_IN.pack(driver.bytes, CENTRE.lat, CENTRE.lng, ts, 0, 1, -1, score, ts,
                               since)
        index._run("place", keys=[f"{prefix}:at"], args=[index.layout.bucket_div, record])

    def evict(prefix: str, ts: int, since: float = 1) -> None:
        index._run("evict", keys=[f"{prefix}:at"],
                   args=[index.layout.bucket_div, EVICT_IN.pack(driver.bytes, ts, since)])

    return place, evict


def test_a_driver_back_online_on_a_phone_whose_clock_runs_behind_is_found(
        index: RedisDriverIndex) -> None:
    """A driver goes offline on one phone and comes back on another whose clock runs a minute
    behind: the new session's pings are accepted and must place the driver, though their
    recorded times are older than the tombstone the first session left at its last ping's."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)
    assert index.go_offline(driver)
    back = T0 + 5_000
    index.go_online(driver, Product.ECONOMY, now_ms=back)
    for step, at in enumerate((offset(CENTRE, 100, 0), offset(CENTRE, 150, 0))):
        behind = back + 5_000 * step - 60_000
        [result] = index.ingest([PositionUpdate(driver, at, behind)], now_ms=back + 5_000 * step)
        assert result.outcome is Outcome.APPLIED
        found = index.nearby(CENTRE, Product.ECONOMY, k=1, radius_m=1000,
                             now_ms=back + 5_000 * step)
        assert [d.driver_id for d in found] == [driver]
        assert found[0].distance_m == pytest.approx(haversine_m(CENTRE, at), abs=0.01)


def test_sessions_order_a_regions_tombstones_before_ping_times(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """Session 2's pings run behind session 1's clock: its place beats session 1's tombstone,
    session 1's late evict and late place lose to session 2's records, and within session 2 a
    late place still cannot resurrect the driver past its own tombstone."""
    driver = uuid.uuid4()
    cell = cell_of(CENTRE, index.levels[0])
    region = index.region_prefix(index.region_of(cell))
    place, evict = region_steps(index, driver)
    place(region, cell, 100, since=1)
    evict(region, 101, since=1)                 # session 1 goes offline
    place(region, cell, 40, since=2)            # session 2, its phone's clock behind
    assert live_in(redis_client, region, driver)
    evict(region, 60, since=2)                  # session 2 leaves the region
    evict(region, 101, since=1)                 # session 1's evict, late: older session
    place(region, cell, 100, since=1)           # session 1's place, late: older session
    place(region, cell, 50, since=2)            # session 2's own, older than its tombstone
    assert not live_in(redis_client, region, driver)
    assert filed_under(redis_client, index, driver) == []
    place(region, cell, 70, since=2)
    assert filed_under(redis_client, index, driver) == [cell]


def test_a_late_place_cannot_resurrect_a_driver_that_left_the_region(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """The exact interleaving that leaves a ghost without tombstones, replayed step by step:
    ping A (ts 5) moves R1 -> R2, ping B (ts 6) moves back R2 -> R1; B's region steps run
    first, then A's late place in R2 arrives."""
    driver = uuid.uuid4()
    near = cell_of(CENTRE, index.levels[0])
    far = cell_of(offset(CENTRE, 0, 400_000), index.levels[0])
    r1, r2 = index.region_prefix(index.region_of(near)), index.region_prefix(index.region_of(far))
    assert r1 != r2

    place, evict = region_steps(index, driver)

    place(r1, near, 4)      # where the driver was
    place(r1, near, 6)      # B lands back in R1
    evict(r2, 6)            # B evicts R2 (nothing there yet)
    place(r2, far, 5)       # A's place arrives late
    evict(r1, 5)            # A's evict of R1 is older than B: no effect
    assert not live_in(redis_client, r2, driver)
    assert live_in(redis_client, r1, driver)
    assert filed_under(redis_client, index, driver) == [near]


def geometry_cached(index: RedisDriverIndex, points: list[LatLng]) -> bool:
    """Whether the search geometry of every point's cell, at every search level coarser than
    the finest (a finest cell's costs one boundary, a coarse one's walks its descendants), is
    cached."""
    before = coarse_reach.cache_info().misses
    for p in points:
        for level in index.levels[1:]:
            coarse_reach(h3.str_to_int(cell_of(p, level)), index.levels[0])
    return coarse_reach.cache_info().misses == before


def place_scattered(index: RedisDriverIndex, count: int, seed: int,
                    centre: LatLng = CENTRE) -> list[LatLng]:
    rng = random.Random(seed)
    points = [offset(centre, rng.uniform(-9000, 9000), rng.uniform(-9000, 9000))
              for _ in range(count)]
    for i, p in enumerate(points):
        driver = uuid.uuid4()
        index.go_online(driver, list(Product)[i % len(Product)], now_ms=T0)
        index.ingest([PositionUpdate(driver, p, T0)])
    return points


def test_warm_up_computes_the_geometry_under_every_cell_holding_drivers(
        redis_client: redis.Redis) -> None:
    """A process just started computes the geometry its searches need before the first one;
    another index's drivers (whose prefix the first one's matches as a glob) are not its own."""
    index = RedisDriverIndex(redis_client, prefix="w?")
    other = RedisDriverIndex(redis_client, prefix="wx")
    for stray in ("w?:{1}:z:1:5", "w?:{zz}:z:1:5", "w?:{8a2a1072b59ffff}:z:1:x"):
        redis_client.zadd(stray, {"x": 0})     # not the index's: skipped, never a crash
    ours = place_scattered(index, 40, seed=1)
    theirs = place_scattered(other, 5, seed=2, centre=offset(CENTRE, 0, 60_000))
    coarse_reach.cache_clear()
    coarse = {cell_of(p, index.levels[-1]) for p in ours}
    warmed = index.warm_up()
    assert warmed >= len(coarse)
    assert geometry_cached(index, ours)
    assert not geometry_cached(index, theirs)


def test_warm_up_reaches_as_far_past_the_drivers_as_searches_do(
        index: RedisDriverIndex) -> None:
    """A search's rings reach past the last driver by its radius: so does the warm-up."""
    [point] = place_scattered(index, 1, seed=5)
    coarse_reach.cache_clear()
    index.warm_up(margin_m=3000)
    assert geometry_cached(index, [offset(point, 0, 2900), offset(point, -2900, 0)])
    assert not geometry_cached(index, [offset(point, 0, 9000)])


def test_warm_up_stops_at_its_cell_budget(index: RedisDriverIndex) -> None:
    place_scattered(index, 40, seed=3)
    coarse_reach.cache_clear()
    per_cell = 1 + 7 + 49      # coarse cells cached under each (levels 11,10,9,8): 8, 9, 10
    assert index.warm_up(max_cells=3 * per_cell) == 3
    assert coarse_reach.cache_info().currsize == 3 * per_cell


def test_a_wide_search_far_from_the_warm_up_walks_few_coarse_cells_and_stays_exact(
        index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 km search where no warm-up computed the geometry (its coarsest level's rings hold
    ~1,000 cells, each of whose walked reach visits 343 descendants: 1.3 s) walks at most
    `WALKS_PER_DISK` of them per disk and bounds the rest by their own hexagon; it finds the
    same drivers, again without walking; a search from elsewhere walks its own nearest."""
    coarsest = index.levels[-1]
    walked: list[int] = []
    real_reach = geo.search_geometry.reach

    def counting(cell: int, finest: int) -> object:
        if h3.get_resolution(h3.int_to_str(cell)) == coarsest:
            walked.append(cell)
        return real_reach(cell, finest)

    monkeypatch.setattr(geo.search_geometry, "reach", counting)
    there = offset(CENTRE, 40_000, 40_000)
    drivers = {uuid.uuid4(): offset(there, east, north)
               for east, north in ((9_000, 0), (-4_000, -6_000), (200, 9_700))}
    for driver, point in drivers.items():
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, point, T0)])
    coarsest_disks = 2      # rings 0-2, then the chunk out to the ring that certifies 10 km
    for attempt, query in enumerate((there, there, offset(there, 3_000, -5_000))):
        walked.clear()
        found = index.nearby(query, Product.ECONOMY, k=5, radius_m=10_000, now_ms=T0,
                             level=len(index.levels) - 1)
        expected = sorted((haversine_m(query, p), d) for d, p in drivers.items()
                          if haversine_m(query, p) <= 10_000)
        assert [d.driver_id for d in found] == [d for _, d in expected], attempt
        assert len(walked) <= WALKS_PER_DISK * coarsest_disks, attempt
        assert len(set(walked)) == len(walked)      # a cell walked once stays walked
        assert (len(walked) == 0) == (attempt == 1), attempt


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


def test_search_recovers_from_a_dropped_connection_and_lost_scripts(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """Searches go over a connection each thread holds (not the pool's): a connection the
    server dropped is reopened, scripts a restarted server lost are loaded again, and an
    error reply is raised, not retried into a wrong answer."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])

    def found() -> list[uuid.UUID]:
        return [d.driver_id for d in index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500,
                                                  now_ms=T0)]

    assert found() == [driver]
    assert redis_client.client_kill_filter(_type="normal", skipme=True) >= 1
    assert found() == [driver]
    redis_client.script_flush()
    assert found() == [driver]
    [bucket] = redis_client.keys(f"{index.prefix}:*:z:*")
    redis_client.delete(bucket)
    redis_client.set(bucket, "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        found()


def ping_racing(index: RedisDriverIndex, update: PositionUpdate, meanwhile: Callable[[], object],
                now_ms: int) -> IngestResult:
    """One ping through the real ingest steps, with `meanwhile` run after its directory claim
    and before its region steps, if it has any (another request landing in that gap)."""
    plan = index._planner.plan([update], (), now_ms)
    replies = index._scripts.run_calls(index.client, next(plan))
    meanwhile()
    with pytest.raises(StopIteration) as done:
        calls = plan.send(replies)
        plan.send(index._scripts.run_calls(index.client, calls))
    [result] = done.value.value.results
    return result


@pytest.mark.parametrize("case", ["first ping", "same cell", "into another region"])
def test_a_status_change_racing_a_ping_holds_from_the_next_ping(
        index: RedisDriverIndex, case: str) -> None:
    """A trip starts (status on_trip) between a ping's claim, which read the old status, and
    its place. The place may still write the status it carried, but the directory holds the
    new one and the next ping must carry it: whether the place found the driver in its region
    or not (a session's first ping, a move into another region, where the status change had
    no region record to rewrite)."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    far = offset(CENTRE, 0, 400_000)
    assert index.region_of(cell_of(far, index.levels[0])) != \
        index.region_of(cell_of(CENTRE, index.levels[0]))
    start = {"first ping": None, "same cell": CENTRE, "into another region": far}[case]
    t = T0
    if start is not None:
        index.ingest([PositionUpdate(driver, start, t)], now_ms=t)
        t += 3 * 3_600_000      # hours later: the 400 km move is plausible
    ping_racing(index, PositionUpdate(driver, CENTRE, t),
                lambda: index.set_status(driver, DriverStatus.ON_TRIP), now_ms=t)
    t += 4000
    index.ingest([PositionUpdate(driver, offset(CENTRE, 1, 0), t)], now_ms=t)

    def found(status: DriverStatus) -> list[uuid.UUID]:
        return [d.driver_id for d in index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500,
                                                  now_ms=t, status=status)]

    assert found(DriverStatus.ON_TRIP) == [driver]
    assert found(DriverStatus.AVAILABLE) == []


def test_a_late_place_of_an_ended_session_cannot_move_the_next_one(
        index: RedisDriverIndex) -> None:
    """A ping's region steps are delayed (its API process stalls) while the driver goes
    offline, back online on a phone whose clock runs a minute behind, and pings: the late
    place belongs to the ended session and must lose to the new session's entry, though its
    recorded time is later. Before sessions ordered live entries too, it moved the driver
    back to the old position and kept out every later ping of the new phone until its clock
    passed the old one's."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)
    old_spot, new_spot = offset(CENTRE, 200, 0), offset(CENTRE, -200, 0)
    t = T0 + 4000

    def switch_phones() -> None:
        assert index.go_offline(driver)
        index.go_online(driver, Product.ECONOMY, now_ms=t + 1)
        [first] = index.ingest([PositionUpdate(driver, new_spot, t - 60_000)], now_ms=t + 2)
        assert first.outcome is Outcome.APPLIED

    late = ping_racing(index, PositionUpdate(driver, old_spot, t), switch_phones, now_ms=t)
    assert late.outcome is Outcome.APPLIED
    for step in (1, 2):
        now = t + 4000 * step
        at = offset(new_spot, -10 * step, 0)
        [result] = index.ingest([PositionUpdate(driver, at, now - 60_000)], now_ms=now)
        assert result.outcome is Outcome.APPLIED
        found = index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=1000, now_ms=now)
        assert [(d.driver_id, d.point) for d in found] == [(driver, at)]
