"""The index's ping steps in its Redis module (RH.CLAIM and RH.PLACE, `geo/module/ingest.c`)
on a real Redis that loads it: the same replies and the same keys, byte for byte, as the Lua
scripts over random runs of pings of every kind; a replica without the module ends holding
what the primary holds; bad calls get error replies; a server that loses the module has its
pings stepped by the scripts, each call run once."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis as AsyncRedis

from core.products import Product
from geo.cells import cell_of
from geo.index import RedisDriverIndex
from geo.records import (
    CLAIM_IN,
    CLAIM_OUT,
    DIRECTORY_HEAD,
    PLACE_IN,
    DriverStatus,
    Ingested,
    IngestResult,
    Outcome,
    PositionUpdate,
    as_bytes,
)
from geo.scripts import NATIVE
from simulations.rides import offset
from tests.integration.index_helpers import (
    CENTRE,
    T0,
    across_a_boundary,
    live_in,
    ping_racing,
    url_of,
)

Dump = dict[str, tuple[bytes, Any]]


def dump(client: redis.Redis, prefix: str, *, stream_ids: bool = False) -> Dump:
    """Every key of an index (its prefix left out of the name) with its contents; streams'
    entries by their fields (the ids are the server's clock), or with their ids."""
    out: Dump = {}
    for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = as_bytes(raw)
        kind = as_bytes(client.type(key))
        value: Any
        if kind == b"hash":
            value = client.hgetall(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"stream":
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(key)  # type: ignore[assignment]
            value = [(i if stream_ids else None, f) for i, f in entries]
        elif kind == b"set":
            value = sorted(client.smembers(key))
        else:
            value = None
        out[key.decode()[len(prefix):]] = (kind, value)
    return out


def small_index(client: redis.Redis, prefix: str, *, module: bool) -> RedisDriverIndex:
    """Regions ~6 km wide, so that drives cross them; a small rate-limit bucket, so that
    charged batches are refused at times."""
    return RedisDriverIndex(client, levels=(11, 10, 9), region_resolution=6, prefix=prefix,
                            rate_per_s=1.0, rate_burst=3, module=module)


class Scenario:
    """Random runs of what an index meets, played on several indexes alike (the same
    drivers, times and pings): drivers going online (again) and offline, status changes
    (some stale), pings (plausible moves, long drives across regions, impossible jumps, out
    of order, sent again, several of one driver in one batch, of drivers offline), batches
    sent by the sync path or charged on the asyncio one, the sweeper, and records left in
    the layouts older versions wrote."""

    def __init__(self, seed: int, indexes: list[RedisDriverIndex], url: str) -> None:
        self.rng = random.Random(seed)
        self.indexes, self.url = indexes, url
        self.drivers = [uuid.uuid4() for _ in range(24)]
        self.points = {d: offset(CENTRE, self.rng.uniform(-6000, 6000),
                                 self.rng.uniform(-6000, 6000)) for d in self.drivers}
        self.sent: dict[uuid.UUID, PositionUpdate] = {}
        self.versions = dict.fromkeys(self.drivers, 0)
        self.now = T0

    def step(self) -> list[Any]:
        """One random step on every index; what each answered."""
        rng = self.rng
        self.now += rng.choice([200, 1000, 3000, 20_000])
        roll = rng.random()
        driver = rng.choice(self.drivers)
        if roll < 0.08:
            product = rng.choice(list(Product))
            return self.each(lambda ix: ix.go_online(driver, product, now_ms=self.now))
        if roll < 0.11:
            return self.each(lambda ix: ix.go_offline(driver))
        if roll < 0.19:
            version = max(0, self.versions[driver] + rng.choice([1, 1, 2, 0, -1]))
            self.versions[driver] = max(self.versions[driver], version)
            status = rng.choice(list(DriverStatus))
            return self.each(lambda ix: ix.set_status(driver, status, version=version,
                                                      now_ms=self.now))
        if roll < 0.21:
            return self.each(lambda ix: ix.sweep(now_ms=self.now, batch=7))
        if roll < 0.24:
            return self.each(lambda ix: legacy(ix, driver))
        batch = [self.ping(rng.choice(self.drivers)) for _ in range(rng.randint(1, 14))]
        how = rng.random()
        if how < 0.12:
            # A status change landing between a ping's claim and its place (when the ping is
            # its first in a region, the change waits there in a tombstone for the place).
            first, status = batch[0], rng.choice(list(DriverStatus))
            self.versions[first.driver_id] += 1
            version = self.versions[first.driver_id]
            return self.each(lambda ix: ping_racing(ix, first, lambda: ix.set_status(
                first.driver_id, status, version=version, now_ms=self.now), now_ms=self.now))
        if how < 0.55:
            return self.each(lambda ix: ix.ingest(batch, now_ms=self.now))
        # Charged: a driver may be charged more than once (several requests), draining its
        # bucket of 3 tokens.
        senders = sorted({u.driver_id for u in batch}, key=str)
        charge = rng.choices(senders, k=rng.randint(0, 3 * len(senders)))
        return [asyncio.run(self.post(ix, batch, charge)) for ix in self.indexes]

    def each(self, step: Any) -> list[Any]:
        return [step(ix) for ix in self.indexes]

    async def post(self, index: RedisDriverIndex, batch: list[PositionUpdate],
                   charge: list[uuid.UUID]) -> Ingested:
        aclient = AsyncRedis.from_url(self.url)
        try:
            return await index.ingest_async(batch, aclient, charge=charge, now_ms=self.now)
        finally:
            await index.aclose(aclient)
            await aclient.aclose()

    def ping(self, driver: uuid.UUID) -> PositionUpdate:
        rng, last = self.rng, self.sent.get(driver)
        ts = (last.ts_ms if last else self.now) + rng.randint(500, 6000)
        kind = rng.random()
        point = self.points[driver]
        if last is not None and kind < 0.1:
            return last                                               # sent again
        if last is not None and kind < 0.14:
            ts = last.ts_ms                         # its last time, another position: a bug
            point = offset(point, rng.uniform(-50, 50), 10)
        elif last is not None and kind < 0.2:
            ts = last.ts_ms - rng.randint(1, 4000)                    # out of order
        elif kind < 0.3:
            point = offset(point, rng.uniform(-15_000, 15_000), 9000)  # too fast
        elif kind < 0.45:
            point = offset(point, rng.uniform(-60, 60), rng.uniform(-60, 60))
            ts += 120_000                                             # a long drive
            point = offset(point, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
        else:
            point = offset(point, rng.uniform(-150, 150), rng.uniform(-150, 150))
        update = PositionUpdate(driver, point, ts, rng.choice([-1, 0, 90, 359]))
        self.points[driver] = point
        self.sent[driver] = update
        return update


def legacy(index: RedisDriverIndex, driver: uuid.UUID) -> None:
    """The driver's records as older versions wrote them: its directory record without a
    status version, its region record without a version, or without a session too."""
    client = index.client
    key = index.directory_key(driver)
    record = client.hget(key, driver.bytes)
    if record is None:
        return
    record = as_bytes(record)
    client.hset(key, driver.bytes, record[:DIRECTORY_HEAD.size])
    state = index.get(driver)
    if state is None or state.region is None:
        return
    at = index.region_at(state.region)
    entry = client.hget(at, driver.bytes)
    if entry is not None and len(as_bytes(entry)) == PLACE_IN.size - 16:
        size = 52 if int(driver.hex[-1], 16) % 2 else 44
        client.hset(at, driver.bytes, as_bytes(entry)[:size])


def normalised(answer: Any) -> Any:
    """An index's answer to a step, comparable across indexes (an asyncio batch's, a value
    holding its results and the drivers refused)."""
    if isinstance(answer, Ingested):
        return answer.results, answer.denied
    return answer


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_module_steps_pings_as_the_scripts_do(module_redis: redis.Redis, seed: int) -> None:
    """After every step the module's index and the scripts' (same drivers and pings, other
    key prefixes, one server) answered alike and hold the same keys, byte for byte."""
    native = small_index(module_redis, "mod", module=True)
    script = small_index(module_redis, "lua", module=False)
    scenario = Scenario(seed, [native, script], url_of(module_redis))
    module_redis.config_resetstat()
    outcomes: set[Outcome] = set()
    for i in range(160):
        got, expected = (normalised(a) for a in scenario.step())
        assert got == expected, i
        assert dump(module_redis, "mod") == dump(module_redis, "lua"), i
        if isinstance(got, list) and got and isinstance(got[0], IngestResult):
            outcomes.update(r.outcome for r in got)
    assert native._scripts.native == set(NATIVE) and script._scripts.native == frozenset()
    stats = module_redis.info("commandstats")
    assert stats["cmdstat_rh.claim"]["calls"] > 50 and stats["cmdstat_rh.place"]["calls"] > 20
    assert outcomes >= {Outcome.APPLIED, Outcome.OUT_OF_ORDER, Outcome.IMPOSSIBLE}
    assert any(module_redis.xlen(k) for k in native.layout.stream_keys)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def replica(module_redis: redis.Redis, tmp_path: Path) -> Iterator[redis.Redis]:
    """A Redis without the module, replicating the module's test Redis."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not on PATH (the test services need it)")
    kwargs = module_redis.connection_pool.connection_kwargs
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path), "--replicaof", kwargs["host"], str(kwargs["port"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, db=kwargs.get("db", 0))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the replica did not sync within 20 s")
            time.sleep(0.05)
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


def test_a_replica_without_the_module_holds_what_the_primary_holds(
        module_redis: redis.Redis, replica: redis.Redis) -> None:
    """The module's writes reach a replica as the commands a script would send (HSET, HDEL,
    ZADD, ZREM, XADD with the entry's id), which a server without the module applies."""
    assert not any(m[b"name"] == b"ridehail" for m in replica.module_list())
    native = small_index(module_redis, "mod", module=True)
    scenario = Scenario(7, [native], url_of(module_redis))
    for _ in range(120):
        scenario.step()
    assert native._scripts.native == set(NATIVE)
    assert module_redis.execute_command("WAIT", 1, 10_000) == 1
    primary = dump(module_redis, "mod", stream_ids=True)
    assert len(primary) > 20
    assert dump(replica, "mod", stream_ids=True) == primary


def test_bad_calls_get_error_replies_and_write_nothing(module_redis: redis.Redis) -> None:
    dir_key, stream, at = "rh:dir:{s01}", "rh:locs:{s01}", "rh:{x}:at"
    ping = CLAIM_IN.pack(b"d" * 16, 1.0, 2.0, 3.0, 0, b"\0" * 15)
    place = PLACE_IN.pack(b"d" * 16, 1.0, 2.0, 3.0, 1, 1, 0, 5.0, 3.0, 1.0, 0)

    def claim(*args: Any) -> Any:
        return module_redis.execute_command("RH.CLAIM", dir_key, stream, *args)

    good: list[Any] = [ping, 69.4, 10_000, 5, 20, T0, b"", 100, 0]
    claims: list[tuple[list[Any], str]] = [
        (good[:-1], "wrong number of arguments"),
        ([ping[:-1], *good[1:]], "wrong size"),
        ([ping, *good[1:6], b"x" * 15, *good[7:]], "wrong size"),
        ([ping, "fast", *good[2:]], "not a number"),
        ([ping, 69.4, 10_000, "x", 20, T0, b"d" * 16, 100, 0], "not a number"),  # charged
    ]
    for args, message in claims:
        with pytest.raises(redis.ResponseError, match=message):
            claim(*args)
    places: list[tuple[tuple[Any, ...], str]] = [
        ((at, 8), "wrong number of arguments"),
        ((at, 8, place[:-1]), "wrong size"),
        ((at, "eight", place), "not a number"),
        ((at, 0, place), "not a number"),
        (("rh:{x}:z:1:1", 8, place), "not an index region's at key"),
    ]
    for place_args, message in places:
        with pytest.raises(redis.ResponseError, match=message):
            module_redis.execute_command("RH.PLACE", *place_args)
    assert module_redis.dbsize() == 0
    module_redis.set(dir_key, "not a hash")
    module_redis.set(at, "not a hash")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        claim(*good)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        module_redis.execute_command("RH.PLACE", at, 8, place)
    module_redis.delete(at)
    module_redis.set("rh:{x}:z:1:0", "not a sorted set")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        module_redis.execute_command("RH.PLACE", at, 8, place)
    assert module_redis.hlen(at) == 0
    assert module_redis.ping()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pings=st.lists(st.tuples(st.integers(0, 5), st.binary(min_size=41, max_size=41)),
                      max_size=8),
       places=st.lists(st.tuples(st.integers(0, 5), st.binary(min_size=56, max_size=56)),
                       max_size=8),
       div=st.sampled_from(["1", "8", "64", "1e300", "3.5"]), tail=st.binary(max_size=3),
       several=st.sampled_from([b"0", b"1", b""]))
def test_arbitrary_records_get_a_reply_and_never_take_the_server_down(
        module_redis: redis.Redis, pings: list[tuple[int, bytes]],
        places: list[tuple[int, bytes]], div: str, tail: bytes, several: bytes) -> None:
    """C reading untrusted bytes: records with any contents, for drivers the index holds and
    others, over their real keys (records of every layout: some drivers' were cut to older
    ones), get an error reply or a reply of the script's shape; the server keeps answering."""
    index = small_index(module_redis, "fz", module=True)
    drivers = [uuid.UUID(int=i + 1) for i in range(6)]
    if not module_redis.exists(index.directory_key(drivers[0])):
        for i, driver in enumerate(drivers):
            index.go_online(driver, Product.ECONOMY, now_ms=T0)
            index.ingest([PositionUpdate(driver, offset(CENTRE, 40 * i, 0), T0)])
            if i % 3:
                legacy(index, driver)
    dir_key = index.directory_key(drivers[0])
    at = index.region_at(index.region_of(cell_of(CENTRE, index.levels[0])))   # drivers[0]'s
    claims = b"".join(drivers[i].bytes + body for i, body in pings) + tail
    try:
        reply = module_redis.execute_command("RH.CLAIM", dir_key, index.layout.stream_keys[0],
                                             claims, 69.4, 10_000, 1, 3, T0,
                                             drivers[1].bytes, 100, several)
    except redis.ResponseError:
        pass
    else:
        assert len(reply) == 2 and len(reply[0]) == len(pings) * CLAIM_OUT.size
    records = b"".join(drivers[i].bytes + body for i, body in places) + tail
    try:
        applied = module_redis.execute_command("RH.PLACE", at, div, records)
    except redis.ResponseError:
        pass
    else:
        assert 0 <= applied <= len(places)
    assert module_redis.ping()


def module_lost(index: RedisDriverIndex, client: redis.Redis, scripts_too: bool) -> None:
    """As if the server restarted without the module (its connections dropped): the index
    still calls the commands it found when it started."""
    index._scripts._native = {"claim": "RH.CLAIM", "place": "RH.PLACE"}
    if scripts_too:
        client.script_flush()


@pytest.mark.parametrize("path", ["sync", "asyncio"])
@pytest.mark.parametrize("scripts_too", [False, True])
def test_a_server_without_the_module_steps_the_pings_with_the_scripts(
        redis_client: redis.Redis, path: str, scripts_too: bool) -> None:
    """The plain test Redis has no module. An index that still calls its commands there
    (found when it started) has them refused as unknown: those calls, and only those, run
    again as the scripts (loaded again when the server lost them too), and the scripts serve
    from then on. A batch of drivers crossing into another region: its claims and its place
    are refused and run again; the eviction from the region left, a script in the same round
    trip as the place, runs once."""
    index = RedisDriverIndex(redis_client)
    movers = [uuid.uuid4() for _ in range(30)]
    index.go_online_many([(d, Product.ECONOMY) for d in movers], now_ms=T0)
    before, after = across_a_boundary(index)
    first = [PositionUpdate(d, offset(before, 0, -10 * i), T0 + 1000)
             for i, d in enumerate(movers)]
    index.ingest(first)
    module_lost(index, redis_client, scripts_too)
    redis_client.config_resetstat()
    second = [PositionUpdate(d, offset(after, 0, 10 * i), T0 + 60_000)
              for i, d in enumerate(movers)]
    if path == "sync":
        results = index.ingest(second)
    else:
        async def post() -> list[IngestResult]:
            aclient = AsyncRedis.from_url(url_of(redis_client))
            try:
                return (await index.ingest_async(second, aclient)).results
            finally:
                await index.aclose(aclient)
                await aclient.aclose()
        results = asyncio.run(post())
    calls = redis_client.info("commandstats")["cmdstat_evalsha"]["calls"]
    assert [r.outcome for r in results] == [Outcome.APPLIED] * len(movers)
    assert index._scripts.native == frozenset()

    def region(update: PositionUpdate) -> str:
        return index.region_prefix(index.region_of(cell_of(update.point, index.levels[0])))

    for was, now in zip(first, second, strict=True):
        state = index.get(now.driver_id)
        assert state is not None and state.point == now.point
        assert live_in(redis_client, region(now), now.driver_id)
        assert not live_in(redis_client, region(was), now.driver_id)
    found = index.nearby(after, Product.ECONOMY, k=40, radius_m=2000, now_ms=T0 + 60_000)
    assert {d.driver_id for d in found} == set(movers)
    shards = len({index.directory_key(d) for d in movers})
    assert len({region(u) for u in first}) == len({region(u) for u in second}) == 1
    assert calls == shards + 2   # the claims, the evict, the place
