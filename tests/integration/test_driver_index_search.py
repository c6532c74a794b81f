"""Nearest-K search on real Redis: exact against brute force, its level choice and round
trips, and the start-up warm-up of its geometry."""

from __future__ import annotations

import math
import random
import uuid

import h3
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.products import Product
from geo.cells import LatLng, cell_of, coarse_reach, haversine_m
from geo.index import RedisDriverIndex
from geo.records import DriverStatus, PositionUpdate
from geo.search_geometry import WALKS_PER_DISK
from simulations.rides import offset
from tests.integration.index_helpers import (
    CENTRE,
    T0,
    TROMSO,
    USHUAIA,
    geometry_cached,
    place_scattered,
    this_dbs_clients,
)


def test_status_and_product_filter_search(index: RedisDriverIndex) -> None:
    economy, comfort, busy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    index.go_online(economy, Product.ECONOMY, now_ms=T0)
    index.go_online(comfort, Product.COMFORT, now_ms=T0)
    index.go_online(busy, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(d, offset(CENTRE, 50 * i, 0), T0)
                  for i, d in enumerate((economy, comfort, busy))])
    assert index.set_status(busy, DriverStatus.ON_TRIP, version=1)
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
       centre=st.sampled_from([CENTRE, TROMSO, USHUAIA]), native=st.booleans())
def test_nearby_matches_brute_force(redis_client: redis.Redis, seed: int, count: int, k: int,
                                    radius_m: float, spread_m: float, centre: LatLng,
                                    native: bool) -> None:
    """Around New York, and in cities far from the equator (where a degree of longitude is
    short: the client's flat floors and the script's flat screen must still never skip a
    driver); with the ring geometry in C (`geo._native`) and in Python."""
    redis_client.flushdb()
    # Three levels; region boundaries within reach of the queries.
    index = RedisDriverIndex(redis_client, levels=(11, 10, 9), region_resolution=6,
                             native_geometry=native)
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
    assert index._search._geometry.cached_cells() == 3 * per_cell


def test_a_wide_search_far_from_the_warm_up_walks_few_coarse_cells_and_stays_exact(
        index: RedisDriverIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 10 km search where no warm-up computed the geometry (its coarsest level's rings hold
    ~1,000 cells, each of whose walked reach visits 343 descendants: 1.3 s) walks at most
    `WALKS_PER_DISK` of them per disk and bounds the rest by their own hexagon; it finds the
    same drivers, again without walking; a search from elsewhere walks its own nearest."""
    coarsest = index.levels[-1]
    walked: list[int] = []
    geometry = index._search._geometry
    real_walk = geometry._walk

    def counting(cell: int) -> object:
        if h3.get_resolution(h3.int_to_str(cell)) == coarsest:
            walked.append(cell)
        return real_walk(cell)

    monkeypatch.setattr(geometry, "_walk", counting)
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
    others = this_dbs_clients(redis_client)
    assert others and all(redis_client.client_kill_filter(_id=str(c)) == 1 for c in others)
    assert found() == [driver]
    redis_client.script_flush()
    assert found() == [driver]
    [bucket] = redis_client.keys(f"{index.prefix}:*:z:*")
    redis_client.delete(bucket)
    redis_client.set(bucket, "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        found()
