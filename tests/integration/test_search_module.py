"""The index's Redis module (RH.SEARCH, `geo/module`): on a real Redis that loads it, it gives
the search script's answers, bit for bit, and brute force's; bad calls get error replies; a
server without it is searched with the script, also when it loses the module mid-run."""

from __future__ import annotations

import random
import uuid

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.products import Product
from geo.cells import LatLng, haversine_m
from geo.index import RedisDriverIndex
from geo.records import FLOOR, FOUND, QUERY, DriverStatus, PositionUpdate, as_bytes
from geo.scripts import NATIVE
from simulations.rides import offset
from tests.integration.index_helpers import CENTRE, T0, TROMSO, USHUAIA, this_dbs_clients


def indexes(client: redis.Redis) -> tuple[RedisDriverIndex, RedisDriverIndex]:
    """The same index read with the module and with the script: three levels, regions a few
    km wide so that searches span several (one call per region)."""
    return (RedisDriverIndex(client, levels=(11, 10, 9), region_resolution=6),
            RedisDriverIndex(client, levels=(11, 10, 9), region_resolution=6,
                             module=False))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), count=st.integers(0, 250), k=st.integers(1, 12),
       radius_m=st.floats(100, 6000), spread_m=st.floats(200, 8000),
       centre=st.sampled_from([CENTRE, TROMSO, USHUAIA]))
def test_the_module_answers_as_the_script_and_as_brute_force(
        module_redis: redis.Redis, seed: int, count: int, k: int, radius_m: float,
        spread_m: float, centre: LatLng) -> None:
    """Drivers of every product and status, fresh and stale, some gone offline or moved into
    another region (tombstones where they were): every level's answer is the script's (same
    drivers, same distances to the bit) and brute force's."""
    module_redis.flushdb()
    native, script = indexes(module_redis)
    rng = random.Random(seed)
    expected = []
    query = offset(centre, rng.uniform(-500, 500), rng.uniform(-500, 500))
    for _ in range(count):
        driver = uuid.uuid4()
        product = rng.choice(list(Product))
        point = offset(centre, rng.uniform(-spread_m, spread_m), rng.uniform(-spread_m, spread_m))
        age_ms = rng.choice([0, 5_000, 29_000, 31_000, 60_000])
        native.go_online(driver, product, now_ms=T0 - 1_000_000)
        if rng.random() < 0.15:      # 20 km away 15 min before: a tombstone where it left
            native.ingest([PositionUpdate(driver, offset(point, rng.uniform(-20_000, 20_000),
                                                         0), T0 - 900_000)])
        native.ingest([PositionUpdate(driver, point, T0 - age_ms)])
        status = rng.choice([DriverStatus.AVAILABLE] * 3 + [DriverStatus.OFFERED,
                                                            DriverStatus.ON_TRIP])
        if status is not DriverStatus.AVAILABLE:
            assert native.set_status(driver, status, version=1)
        if rng.random() < 0.1:
            native.go_offline(driver)
        elif (product is Product.ECONOMY and status is DriverStatus.AVAILABLE
              and age_ms <= 30_000 and haversine_m(query, point) <= radius_m):
            expected.append((haversine_m(query, point), driver.hex))
    expected = sorted(expected)[:k]
    for level in (None, 0, 1, 2):
        found = native.nearby(query, Product.ECONOMY, k=k, radius_m=radius_m, now_ms=T0,
                              level=level)
        assert found == script.nearby(query, Product.ECONOMY, k=k, radius_m=radius_m,
                                      now_ms=T0, level=level), level
        assert [d.driver_id.hex for d in found] == [h for _, h in expected], level
        for got, (dist, _) in zip(found, expected, strict=True):
            assert got.distance_m == pytest.approx(dist, abs=0.01)
    assert native._scripts.native == set(NATIVE) and script._scripts.native == frozenset()


def test_dense_searches_stop_where_the_script_and_brute_force_do(
        module_redis: redis.Redis) -> None:
    """A dense city (3,000 drivers within ~2 km): the search stops reading cells early, the
    step whose bound a sparse example rarely tests."""
    native, script = indexes(module_redis)
    rng = random.Random(9)
    drivers = {uuid.uuid4(): offset(CENTRE, rng.gauss(0, 700), rng.gauss(0, 700))
               for _ in range(3000)}
    native.go_online_many([(d, Product.ECONOMY) for d in drivers], now_ms=T0)
    native.ingest([PositionUpdate(d, p, T0) for d, p in drivers.items()])
    for i in range(60):
        query = offset(CENTRE, rng.gauss(0, 900), rng.gauss(0, 900))
        k = (1, 10, 40)[i % 3]
        expected = sorted((haversine_m(query, p), d) for d, p in drivers.items()
                          if haversine_m(query, p) <= 3000)[:k]
        found = native.nearby(query, Product.ECONOMY, k=k, radius_m=3000, now_ms=T0)
        assert found == script.nearby(query, Product.ECONOMY, k=k, radius_m=3000, now_ms=T0)
        assert [d.driver_id for d in found] == [d for _, d in expected], i
    assert native._scripts.native == set(NATIVE)


def test_the_module_serves_the_searches(module_redis: redis.Redis) -> None:
    native, _ = indexes(module_redis)
    driver = uuid.uuid4()
    native.go_online(driver, Product.ECONOMY, now_ms=T0)
    native.ingest([PositionUpdate(driver, CENTRE, T0)])
    module_redis.config_resetstat()
    found = native.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500, now_ms=T0)
    assert [d.driver_id for d in found] == [driver]
    stats = module_redis.info("commandstats")
    assert stats["cmdstat_rh.search"]["calls"] >= 1
    assert "cmdstat_evalsha" not in stats


def test_bad_calls_get_error_replies_and_the_server_keeps_serving(
        module_redis: redis.Redis) -> None:
    at = "rh:{x}:at"
    query = QUERY.pack(CENTRE.lat, CENTRE.lng, 1000.0, 0.0, 5, DriverStatus.AVAILABLE)
    cell = FLOOR.pack(1.0) + b"\x011\x011\x012"
    bad = [
        ((at, "1", query), "wrong number of arguments"),
        ((at, "1", query[:-1], cell), "query must be 35 bytes"),
        (("rh:{x}:z:1:1", "1", query, cell), "not an index region's at key"),
        ((at, "1", query, cell[:5]), "bad cells"),
        ((at, "1", query, cell[:-1]), "bad cells"),
        ((at, "1", query, FLOOR.pack(1.0) + b"\x011\x01x\x012"), "bad cells"),
        ((at, "1", query, FLOOR.pack(1.0) + b"\x011\x011\x11" + b"1" * 17), "bad cells"),
        ((at, "1" * 300, query, cell), "not an index region's at key"),
    ]
    for args, message in bad:
        with pytest.raises(redis.ResponseError, match=message):
            module_redis.execute_command("RH.SEARCH", *args)
    module_redis.set("rh:{x}:z:1:1", "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        module_redis.execute_command("RH.SEARCH", at, "1", query, cell)
    module_redis.set(at, "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        module_redis.execute_command("RH.SEARCH", at, "1", query, cell)
    assert module_redis.ping()
    no_k = QUERY.pack(CENTRE.lat, CENTRE.lng, 1000.0, 0.0, 0, DriverStatus.AVAILABLE)
    assert module_redis.execute_command("RH.SEARCH", "rh:{y}:at", "1", no_k, cell) == b""
    assert module_redis.execute_command("RH.SEARCH", "rh:{y}:at", "1", query, b"") == b""


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(product=st.binary(max_size=70), query=st.binary(max_size=40),
       cells=st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                                st.binary(max_size=20), st.binary(max_size=20),
                                st.binary(max_size=20)), max_size=6),
       tail=st.binary(max_size=12), use_cells=st.booleans())
def test_arbitrary_calls_get_a_reply_and_never_take_the_server_down(
        module_redis: redis.Redis, product: bytes, query: bytes,
        cells: list[tuple[float, bytes, bytes, bytes]], tail: bytes, use_cells: bool) -> None:
    """C reading untrusted bytes: any product, query and cell list (well-formed records with
    any contents, then any trailing bytes) over a region holding drivers gets an error reply
    or a whole number of result records, and the server keeps answering."""
    if not module_redis.exists("rh:{fz}:at"):
        native, _ = indexes(module_redis)
        for i in range(20):
            driver = uuid.uuid4()
            native.go_online(driver, Product.ECONOMY, now_ms=T0)
            native.ingest([PositionUpdate(driver, offset(CENTRE, 40 * i, 0), T0)])
        at = min(as_bytes(k).decode() for k in module_redis.keys("rh:*:at"))
        module_redis.copy(at, "rh:{fz}:at")
        for key in (as_bytes(k).decode() for k in module_redis.keys("rh:*:z:*")):
            module_redis.copy(key, "rh:{fz}:z:" + key.split(":z:", 1)[1])
    blob = b"".join(FLOOR.pack(floor) + b"".join(bytes([len(t)]) + t for t in texts)
                    for floor, *texts in cells) + tail
    if use_cells:       # a well-formed query, so the cells are read
        query = QUERY.pack(CENTRE.lat, CENTRE.lng, 5000.0, 0.0, 5, DriverStatus.AVAILABLE)
    try:
        reply = module_redis.execute_command("RH.SEARCH", "rh:{fz}:at", product, query, blob)
    except redis.ResponseError:
        pass
    else:
        assert isinstance(reply, bytes) and len(reply) % FOUND.size == 0
    assert module_redis.ping()


@pytest.mark.parametrize(("region_resolution", "k", "radius_m"), [(3, 3, 300.0),
                                                                  (6, 40, 6000.0)])
def test_a_server_without_the_module_is_searched_with_the_script(
        redis_client: redis.Redis, region_resolution: int, k: int, radius_m: float) -> None:
    """The plain test Redis has no module: the script searches. A server that loses the
    module while the index runs (restarted without it: its connections dropped and its
    scripts lost too) refuses the command as unknown: the scripts are loaded again and the
    call runs again as the script, once, and the script serves from then on. One region's
    search goes over the thread's held connection; one over several regions (resolution-6
    regions, 6 km) is pipelined."""
    index = RedisDriverIndex(redis_client, levels=(11, 10, 9),
                             region_resolution=region_resolution)
    rng = random.Random(5)
    drivers = {}
    for _ in range(300):
        driver = uuid.uuid4()
        drivers[driver] = offset(CENTRE, rng.uniform(-8000, 8000), rng.uniform(-8000, 8000))
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        index.ingest([PositionUpdate(driver, drivers[driver], T0)])

    def nearest() -> list[uuid.UUID]:
        return [d.driver_id for d in index.nearby(CENTRE, Product.ECONOMY, k=k,
                                                  radius_m=radius_m, now_ms=T0, level=2)]

    expected = [d for _, d in sorted((haversine_m(CENTRE, p), d) for d, p in drivers.items()
                                     if haversine_m(CENTRE, p) <= radius_m)][:k]
    assert nearest() == expected
    assert index._scripts.native == frozenset()
    held = getattr(index._scripts._held, "conn", None)
    assert (held is not None) == (region_resolution == 3)
    index._scripts._native = {"search": "RH.SEARCH"}     # as found when it started
    redis_client.script_flush()                          # and lost with the restart,
    dropped = this_dbs_clients(redis_client)             # which dropped the connections
    assert dropped or held is None
    for conn in dropped:
        assert redis_client.client_kill_filter(_id=str(conn)) == 1
    assert nearest() == expected
    assert index._scripts.native == frozenset()
