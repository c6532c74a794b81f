"""The driver index on a real three-node Redis Cluster: regions spread over nodes, and moves,
searches, the ping path and the sweeper stay correct across them."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator

import h3
import pytest
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from core.products import Product
from geo.cells import LatLng, cell_of, coarse_reach, haversine_m
from geo.index import RedisDriverIndex
from geo.records import DriverStatus, Outcome, PositionUpdate
from geo.scripts import NATIVE
from simulations.rides import offset
from tests.integration.index_helpers import (
    CENTRE,
    T0,
    assert_only_at,
    drive_shuffled,
    filed_under,
    geometry_cached,
    place_scattered,
)
from tests.services import cluster_url


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(cluster_url())
    client.flushdb(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()


def small_regions(client: RedisCluster, *, module: bool = True) -> RedisDriverIndex:
    """Regions a few km wide (resolution 6), so a city's regions land on several nodes."""
    return RedisDriverIndex(client, levels=(11, 10, 9, 8), region_resolution=6, prefix="rc",
                            module=module)


def nodes_holding(client: RedisCluster, index: RedisDriverIndex, points: list[LatLng]) -> set[str]:
    regions = {index.region_of(cell_of(p, index.levels[0])) for p in points}
    return {client.get_node_from_key(index.region_at(r)).name for r in regions}


def test_drives_across_regions_on_every_node_end_in_exactly_one_cell(
        cluster: RedisCluster) -> None:
    index = small_regions(cluster)
    track = [offset(CENTRE, 0, 40 * i) for i in range(700)]          # 28 km east
    assert len(nodes_holding(cluster, index, track)) >= 2
    for round_ in range(3):
        driver = drive_shuffled(index, track, seed=round_)
        assert_only_at(cluster, index, driver, track[-1])
        found = index.nearby(track[-1], Product.ECONOMY, k=3, radius_m=500, now_ms=T0 + 700_000)
        assert driver in [d.driver_id for d in found]


@pytest.mark.parametrize("module", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nearby_across_regions_and_nodes_matches_brute_force(cluster: RedisCluster, seed: int,
                                                             module: bool) -> None:
    """With the search module on every node (`make services-test` loads it), and without."""
    index = small_regions(cluster, module=module)
    rng = random.Random(seed)
    query = offset(CENTRE, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
    drivers: dict[uuid.UUID, LatLng] = {}
    updates = []
    for _ in range(400):
        driver = uuid.uuid4()
        drivers[driver] = offset(query, rng.uniform(-6000, 6000), rng.uniform(-6000, 6000))
        index.go_online(driver, Product.ECONOMY, now_ms=T0)
        updates.append(PositionUpdate(driver, drivers[driver], T0))
    assert all(r.outcome is Outcome.APPLIED for r in index.ingest(updates))
    assert len(nodes_holding(cluster, index, list(drivers.values()))) >= 2
    for k, radius in ((10, 3000.0), (40, 6000.0)):
        expected = sorted((haversine_m(query, p), d.hex) for d, p in drivers.items()
                          if haversine_m(query, p) <= radius)[:k]
        for level in (None, 0, 1, 2):
            found = index.nearby(query, Product.ECONOMY, k=k, radius_m=radius, now_ms=T0,
                                 level=level)
            assert [d.driver_id.hex for d in found] == [h for _, h in expected]
    assert index._scripts.native == (set(NATIVE) if module else frozenset())


def migrate_slot(cluster: RedisCluster, slot: int, source: ClusterNode,
                 target: ClusterNode) -> None:
    """Move one slot and its keys between primaries, as `redis-cli --cluster reshard` does."""
    src, dst = cluster.get_redis_connection(source), cluster.get_redis_connection(target)
    src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
    while keys := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
        src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
    for node in cluster.get_primaries():
        cluster.get_redis_connection(node).execute_command("CLUSTER SETSLOT", slot, "NODE",
                                                           dst_id)


def test_a_batch_follows_its_region_when_the_slot_moves_to_another_node(
        cluster: RedisCluster) -> None:
    """The client still maps the region to its old node: the place answers MOVED there, and
    the batch is rerun on the new node once the client has relearned the slot map."""
    index = small_regions(cluster)
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])
    at_key = index.region_at(index.region_of(cell_of(CENTRE, index.levels[0])))
    source = cluster.get_node_from_key(at_key)
    target = next(n for n in cluster.get_primaries() if n.name != source.name)
    migrate_slot(cluster, cluster.keyslot(at_key), source, target)
    assert cluster.get_node_from_key(at_key).name == source.name     # the map is stale
    moved = offset(CENTRE, 60, 0)
    assert index.ingest([PositionUpdate(driver, moved, T0 + 1000)])[0].outcome is Outcome.APPLIED
    assert cluster.get_node_from_key(at_key).name == target.name     # relearned
    assert_only_at(cluster, index, driver, moved)
    found = index.nearby(moved, Product.ECONOMY, k=1, radius_m=200, now_ms=T0 + 1000)
    assert [d.driver_id for d in found] == [driver]


def test_the_async_ping_path_and_the_sweeper_on_a_cluster(cluster: RedisCluster) -> None:
    index = small_regions(cluster)
    drivers = [uuid.uuid4() for _ in range(30)]
    points = [offset(CENTRE, 0, 900 * i) for i in range(30)]        # across regions and nodes
    assert len(nodes_holding(cluster, index, points)) >= 2
    for driver in drivers:
        index.go_online(driver, Product.COMFORT, now_ms=T0)

    async def post_all() -> list[bool]:
        aclient = AsyncRedisCluster.from_url(cluster_url())
        try:
            done = await index.ingest_async(
                [PositionUpdate(d, p, T0) for d, p in zip(drivers, points, strict=True)],
                aclient, charge=drivers, now_ms=T0)
            return [r.outcome is Outcome.APPLIED for r in done.results]
        finally:
            await aclient.aclose()

    assert all(asyncio.run(post_all()))
    assert index.set_status(drivers[0], DriverStatus.ON_TRIP, version=1)
    near = index.nearby(points[0], Product.COMFORT, k=1, radius_m=1000, now_ms=T0)
    assert [d.driver_id for d in near] == [drivers[1]]               # on-trip driver skipped
    assert index.go_offline(drivers[1])
    assert filed_under(cluster, index, drivers[1]) == []
    assert index.sweep(now_ms=T0 + index.ttl_ms + 1000) == len(drivers) - 1
    assert all(filed_under(cluster, index, d) == [] for d in drivers)
    assert h3.is_valid_cell(cell_of(points[-1], 10))


def test_warm_up_finds_the_cells_holding_drivers_on_every_node(cluster: RedisCluster) -> None:
    index = small_regions(cluster)
    points = place_scattered(index, 60, seed=4)
    assert len(nodes_holding(cluster, index, points)) >= 2
    coarse_reach.cache_clear()
    index.warm_up()
    assert geometry_cached(index, points)
