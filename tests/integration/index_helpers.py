"""What the driver index's integration tests share: places, drivers driven by concurrent
writers, and a look at where Redis files a driver."""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable

import h3
import pytest
import redis

from core.products import Product
from geo.cells import LatLng, cell_of
from geo.index import RedisDriverIndex
from geo.records import EVICT_IN, PLACE_IN, IngestResult, PositionUpdate
from geo.scripts import AnyRedis
from simulations.rides import offset

CENTRE = LatLng(40.7580, -73.9855)
TROMSO, USHUAIA = LatLng(69.6496, 18.9560), LatLng(-54.8019, -68.3030)
T0 = 1_800_000_000_000
AT_SIZE = PLACE_IN.size - 16   # an `at` record of the current layout (place.lua)


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
    of the driver's finest cell below the region, then its tie-break."""
    below = (1 << 3 * (15 - index.region_resolution)) - 1
    found = []
    for key in client.scan_iter(match=b"*}:z:*"):
        score = client.zscore(key, driver.bytes)
        if score is not None:
            region = int(key[key.index(b"{") + 1:key.index(b"}")], 16)
            resolution = 0xF << 52
            digits = int(score) | ((1 << 3 * (15 - index.levels[0])) - 1)   # tie-break: 7s
            cell = (region & ~below & ~resolution) | (index.levels[0] << 52) | digits
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


RegionStep = Callable[..., None]


def region_steps(index: RedisDriverIndex, driver: uuid.UUID) -> tuple[RegionStep, RegionStep]:
    """The region scripts' place and evict of one driver, called directly (to replay an
    interleaving): place(region prefix, finest cell, ts, since=1, status version=0),
    evict(prefix, ts, since=1)."""

    def place(prefix: str, cell: str, ts: int, since: float = 1, version: int = 0) -> None:
        score = int(cell, 16) & ((1 << 3 * (15 - index.region_resolution)) - 1)
        record = PLACE_IN.pack(driver.bytes, CENTRE.lat, CENTRE.lng, ts, 0, 1, -1, score, ts,
                               since, version)
        index._run("place", keys=[f"{prefix}:at"], args=[index.layout.bucket_div, record])

    def evict(prefix: str, ts: int, since: float = 1) -> None:
        index._run("evict", keys=[f"{prefix}:at"],
                   args=[index.layout.bucket_div, EVICT_IN.pack(driver.bytes, ts, since)])

    return place, evict


def geometry_cached(index: RedisDriverIndex, points: list[LatLng]) -> bool:
    """Whether the search geometry of every point's cell, at every search level coarser than
    the finest (a finest cell's costs one boundary, a coarse one's walks its descendants), is
    cached."""
    geometry = index._search._geometry
    return all(geometry.known(h3.str_to_int(cell_of(p, level)))
               for p in points for level in index.levels[1:])


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


def across_a_boundary(index: RedisDriverIndex, start: LatLng = CENTRE) -> tuple[LatLng, LatLng]:
    """Two points 40 m apart, east of `start`, on either side of a region boundary."""
    region = index.region_of(cell_of(start, index.levels[0]))
    for east in range(10, 200_000, 10):
        there = offset(start, 0, east)
        if index.region_of(cell_of(there, index.levels[0])) != region:
            return offset(start, 0, east - 30), offset(start, 0, east + 10)
    raise AssertionError("no region boundary within 200 km")


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


def this_dbs_clients(client: redis.Redis) -> list[int]:
    """Ids of the connections to this test's database, but `client`'s own (a benchmark may
    share the server)."""
    db = str(client.connection_pool.connection_kwargs.get("db", 0))
    me = client.client_id()
    return [int(c["id"]) for c in client.client_list(_type="normal")
            if str(c["db"]) == db and int(c["id"]) != me]


def url_of(client: redis.Redis) -> str:
    """The URL of a client's server and database (for an asyncio client of the same)."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
