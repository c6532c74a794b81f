"""Interleavings of the index's steps replayed on real Redis: late places and evictions,
phone switches, and status changes racing a ping."""

from __future__ import annotations

import uuid

import pytest
import redis

from core.products import Product
from geo.cells import cell_of, haversine_m
from geo.index import RedisDriverIndex
from geo.records import DriverStatus, Outcome, PositionUpdate, as_bytes
from simulations.rides import offset
from tests.integration.index_helpers import (
    AT_SIZE,
    CENTRE,
    T0,
    across_a_boundary,
    filed_under,
    live_in,
    ping_racing,
    region_steps,
)
from tests.services import ON_BOTH

pytestmark = ON_BOTH   # the index on its Lua scripts, and on its Redis module


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


@pytest.mark.parametrize("case", ["same cell", "another cell", "first ping",
                                  "into another region"])
def test_a_status_change_racing_a_ping_holds(index: RedisDriverIndex, case: str) -> None:
    """A trip starts (status on_trip) between a ping's claim, which read the old status, and
    its place: the driver is never shown available again. When the ping stays in the driver's
    region, the status change rewrote the driver's entry there, with its status version; when
    the driver has no entry there yet (a session's first ping, a move into another region), it
    left the change pending in a tombstone. Either way the place keeps the newer status."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    far = offset(CENTRE, 0, 400_000)
    assert index.region_of(cell_of(far, index.levels[0])) != \
        index.region_of(cell_of(CENTRE, index.levels[0]))
    start = {"first ping": None, "same cell": CENTRE, "another cell": offset(CENTRE, 300, 0),
             "into another region": far}[case]
    t = T0
    if start is not None:
        index.ingest([PositionUpdate(driver, start, t)], now_ms=t)
        t += 3 * 3_600_000      # hours later: the 400 km move is plausible
    racing = ping_racing(index, PositionUpdate(driver, CENTRE, t),
                         lambda: index.set_status(driver, DriverStatus.ON_TRIP, version=1),
                         now_ms=t)
    assert racing.outcome is Outcome.APPLIED

    def found(status: DriverStatus, now_ms: int) -> list[uuid.UUID]:
        return [d.driver_id for d in index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500,
                                                  now_ms=now_ms, status=status)]

    assert found(DriverStatus.ON_TRIP, t) == [driver]
    assert found(DriverStatus.AVAILABLE, t) == []
    t += 4000
    index.ingest([PositionUpdate(driver, offset(CENTRE, 1, 0), t)], now_ms=t)
    assert found(DriverStatus.ON_TRIP, t) == [driver]
    assert found(DriverStatus.AVAILABLE, t) == []


def test_a_status_change_waiting_for_its_place_keeps_the_order_of_changes(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """Changes that find no entry in the region (the driver's place is on its way) wait in a
    tombstone: of two whose writes cross there, the newer stands and the place takes it; a
    waiting change older than what a later claim read yields to the claim's."""
    driver = uuid.uuid4()
    cell = cell_of(CENTRE, index.levels[0])
    region = index.region_prefix(index.region_of(cell))
    at = f"{region}:at"
    place, _ = region_steps(index, driver)

    def waiting(status: DriverStatus, version: int) -> int:
        return int(index._run("status", keys=[at], args=[driver.bytes, int(status), version, T0]))

    def record_of(who: uuid.UUID) -> bytes:
        return as_bytes(redis_client.hget(at, who.bytes) or b"")

    assert waiting(DriverStatus.ON_TRIP, 2) == 2
    assert waiting(DriverStatus.OFFERED, 1) == 0        # older: refused
    place(region, cell, 100, version=0)                 # its claim read the status before both
    record = record_of(driver)
    assert len(record) == AT_SIZE and record[25] == DriverStatus.ON_TRIP
    assert int.from_bytes(record[-4:], "little") == 2
    assert not waiting(DriverStatus.OFFERED, 1)         # the entry holds the newer change too

    other = uuid.uuid4()
    place, evict = region_steps(index, other)
    evict(region, 100)                                  # it left the region
    assert int(index._run("status", keys=[at], args=[other.bytes, int(DriverStatus.ON_TRIP), 1,
                                                     T0])) == 2
    place(region, cell, 200, version=2)                 # its claim read a newer change
    record = record_of(other)
    assert record[25] == DriverStatus.AVAILABLE and int.from_bytes(record[-4:], "little") == 2


def test_a_status_change_waiting_in_a_tombstone_lets_no_older_place_in(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """A change that waits in the tombstone a driver left keeps the tombstone's time and
    session: a late place older than the tombstone still cannot bring the driver back, and the
    next newer one is placed with the waiting status."""
    driver = uuid.uuid4()
    cell = cell_of(CENTRE, index.levels[0])
    region = index.region_prefix(index.region_of(cell))
    place, evict = region_steps(index, driver)
    place(region, cell, 100)
    evict(region, 101)
    assert int(index._run("status", keys=[f"{region}:at"],
                          args=[driver.bytes, int(DriverStatus.ON_TRIP), 1, T0])) == 2
    place(region, cell, 50)                             # late, older than the tombstone
    assert not live_in(redis_client, region, driver)
    assert filed_under(redis_client, index, driver) == []
    place(region, cell, 150)
    record = redis_client.hget(f"{region}:at", driver.bytes) or b""
    assert record[25] == DriverStatus.ON_TRIP
    assert filed_under(redis_client, index, driver) == [cell]


def test_a_status_change_whose_place_never_comes_is_swept(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """The process dies between a first ping's claim and its place: the change waiting in the
    region is not a driver to the sweep, the sweep knows the region, and drops the tombstone
    after `tombstone_keep_s`, as any other."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    plan = index._planner.plan([PositionUpdate(driver, CENTRE, T0)], (), T0)
    index._scripts.run_calls(index.client, next(plan))  # the claim alone
    assert index.set_status(driver, DriverStatus.ON_TRIP, version=1, now_ms=T0)
    region = index.region_of(cell_of(CENTRE, index.levels[0]))
    at = index.region_at(region)
    assert at in index.region_keys()
    assert len(redis_client.hget(at, driver.bytes) or b"") == 44
    assert index.sweep_cells(now_ms=T0 + 600_000, tombstone_keep_s=600) == 0
    assert redis_client.hexists(at, driver.bytes)
    assert index.sweep_cells(now_ms=T0 + 600_001, tombstone_keep_s=600) == 0
    assert not redis_client.hexists(at, driver.bytes)


def claim_only(index: RedisDriverIndex, update: PositionUpdate, now_ms: int) -> None:
    """A ping's directory claim, and no more: its process died before the region steps (or
    the connection dropped, and the client never saw the reply)."""
    plan = index._planner.plan([update], (), now_ms)
    index._scripts.run_calls(index.client, next(plan))


@pytest.mark.parametrize("case", ["first ping", "a move"])
def test_a_ping_sent_again_completes_the_place_its_first_request_never_made(
        index: RedisDriverIndex, redis_client: redis.Redis, case: str) -> None:
    """The phone re-sends a ping whose first request was claimed but never placed: it is
    answered as applied again, and placed, so the driver does not wait for its next ping to
    show (or, on a session's first ping, to be found at all). The directory and the sample
    stream take it once; the same time at another position is still out of order."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    t = T0
    if case == "a move":
        index.ingest([PositionUpdate(driver, CENTRE, t)], now_ms=t)
        t += 5_000
    there = offset(CENTRE, 300, 0)
    update = PositionUpdate(driver, there, t)
    claim_only(index, update, now_ms=t)
    before = index.get(driver)
    samples = sum(redis_client.xlen(key) for key in index.layout.stream_keys)

    def found(now_ms: int) -> list[float]:
        return [round(d.distance_m) for d in index.nearby(
            CENTRE, Product.ECONOMY, k=1, radius_m=1000, now_ms=now_ms)]

    assert found(t) == ([] if case == "first ping" else [0])
    [again] = index.ingest([update], now_ms=t + 1_000)
    assert again.outcome is Outcome.APPLIED
    assert found(t + 1_000) == [300]
    assert index.get(driver) == before
    assert sum(redis_client.xlen(key) for key in index.layout.stream_keys) == samples
    [moved] = index.ingest([PositionUpdate(driver, offset(there, 10, 0), t)], now_ms=t + 1_000)
    assert moved.outcome is Outcome.OUT_OF_ORDER
    assert found(t + 1_000) == [300]


@pytest.mark.parametrize("then", ["sent again", "next ping", "offline"])
def test_a_crossing_whose_region_steps_were_lost_leaves_no_ghost(
        index: RedisDriverIndex, redis_client: redis.Redis, then: str) -> None:
    """A ping carries the driver into another region, and its region steps never run (the
    process died after the claim): the old region still lists it. The directory keeps the
    region the crossing left, so the ping sent again, or the driver's next ping, evicts it
    there while placing it in the new one (never listed in both), and going offline evicts
    both."""
    driver = uuid.uuid4()
    before, after = across_a_boundary(index)
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, before, T0)], now_ms=T0)
    claim_only(index, PositionUpdate(driver, after, T0 + 4_000), now_ms=T0 + 4_000)
    assert filed_under(redis_client, index, driver) == [cell_of(before, index.levels[0])]
    if then == "offline":
        assert index.go_offline(driver)
        assert filed_under(redis_client, index, driver) == []
        assert not redis_client.hexists(index.directory_key(driver), driver.bytes + b"mv")
        return
    update = (PositionUpdate(driver, after, T0 + 4_000) if then == "sent again"
              else PositionUpdate(driver, offset(after, 5, 0), T0 + 8_000))
    [result] = index.ingest([update], now_ms=T0 + 8_000)
    assert result.outcome is Outcome.APPLIED
    assert filed_under(redis_client, index, driver) == [cell_of(update.point, index.levels[0])]
    found = index.nearby(before, Product.ECONOMY, k=5, radius_m=1000, now_ms=T0 + 8_000)
    assert [d.driver_id for d in found] == [driver]
    kept = redis_client.hexists(index.directory_key(driver), driver.bytes + b"mv")
    assert kept == (then == "sent again")     # forgotten by the next accepted ping


def test_a_flagged_ping_sent_again_stays_flagged(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)
    jump = PositionUpdate(driver, offset(CENTRE, 5_000, 0), T0 + 10_000)   # 1,800 km/h
    assert [r.outcome for r in index.ingest([jump], now_ms=T0 + 10_000)] == [Outcome.IMPOSSIBLE]
    assert [r.outcome for r in index.ingest([jump], now_ms=T0 + 11_000)] == [Outcome.IMPOSSIBLE]
    assert filed_under(redis_client, index, driver) == []
    state = index.get(driver)
    assert state is not None and state.flagged


def test_two_status_changes_whose_region_writes_cross_keep_the_newer(
        index: RedisDriverIndex) -> None:
    """An offer (version 1) and its decline (version 2) reach the directory in order, but
    their region writes cross (the offer's process stalled between its two steps): the late
    region write is refused, and search keeps showing the driver available."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)
    directory = [index.directory_key(driver)]
    region = index._run("dir_status", keys=directory,
                        args=[driver.bytes, int(DriverStatus.OFFERED), 1])
    assert index._run("dir_status", keys=directory,
                      args=[driver.bytes, int(DriverStatus.AVAILABLE), 2]) == region
    at = [index.region_at(region.decode())]
    assert index._run("status", keys=at, args=[driver.bytes, int(DriverStatus.AVAILABLE), 2])
    assert not index._run("status", keys=at, args=[driver.bytes, int(DriverStatus.OFFERED), 1])
    found = index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500, now_ms=T0)
    assert [d.driver_id for d in found] == [driver]
    state = index.get(driver)
    assert state is not None and state.status is DriverStatus.AVAILABLE


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


def test_a_status_change_written_late_cannot_undo_a_newer_one(index: RedisDriverIndex) -> None:
    """Two status changes of one driver reach Redis in the wrong order (the first one's
    process stalled between its commit and its write): the older one, by version, is refused,
    and stays refused after the driver goes offline and comes back, its new session seeded with
    the database's version."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)

    def found(now_ms: int) -> list[uuid.UUID]:
        return [d.driver_id for d in index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500,
                                                  now_ms=now_ms)]

    assert index.set_status(driver, DriverStatus.AVAILABLE, version=2)      # the trip ended
    assert not index.set_status(driver, DriverStatus.ON_TRIP, version=1)    # its start, late
    assert found(T0) == [driver]
    index.ingest([PositionUpdate(driver, offset(CENTRE, 5, 0), T0 + 4000)], now_ms=T0 + 4000)
    state = index.get(driver)
    assert state is not None and state.status is DriverStatus.AVAILABLE
    assert found(T0 + 4000) == [driver]
    assert index.go_offline(driver)
    index.go_online(driver, Product.ECONOMY, now_ms=T0 + 5000, status_version=2)
    index.ingest([PositionUpdate(driver, CENTRE, T0 + 6000)], now_ms=T0 + 6000)
    assert not index.set_status(driver, DriverStatus.OFFERED, version=2)
    assert found(T0 + 6000) == [driver]
    assert index.set_status(driver, DriverStatus.OFFERED, version=3)
    assert found(T0 + 6000) == []


def test_directory_records_written_before_status_versions_take_any_version(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """A directory record of the layout before status versions (60 bytes, as a running index
    holds during a rolling deploy) takes the next change, and pings keep the version after."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)
    key = index.directory_key(driver)
    record = redis_client.hget(key, driver.bytes)
    assert record is not None and len(record) == 64
    redis_client.hset(key, driver.bytes, record[:60])
    assert index.set_status(driver, DriverStatus.ON_TRIP, version=1)
    index.ingest([PositionUpdate(driver, CENTRE, T0 + 4000)], now_ms=T0 + 4000)
    assert len(redis_client.hget(key, driver.bytes) or b"") == 64
    assert not index.set_status(driver, DriverStatus.AVAILABLE, version=1)
    state = index.get(driver)
    assert state is not None and state.status is DriverStatus.ON_TRIP


def test_region_entries_written_before_status_versions_take_the_next_change(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """An `at` entry of the layout before status versions (52 bytes, as a running index holds
    during a rolling deploy) takes the next status change, with its version, and a ping racing
    a later change keeps the later one."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)], now_ms=T0)
    at = index.region_at(index.region_of(cell_of(CENTRE, index.levels[0])))
    record = redis_client.hget(at, driver.bytes) or b""
    redis_client.hset(at, driver.bytes, record[:52])
    assert index.set_status(driver, DriverStatus.OFFERED, version=1)
    rewritten = redis_client.hget(at, driver.bytes) or b""
    assert len(rewritten) == AT_SIZE and rewritten[25] == DriverStatus.OFFERED
    ping_racing(index, PositionUpdate(driver, CENTRE, T0 + 4000),
                lambda: index.set_status(driver, DriverStatus.ON_TRIP, version=2), now_ms=T0 + 4000)
    found = index.nearby(CENTRE, Product.ECONOMY, k=3, radius_m=500, now_ms=T0 + 4000,
                         status=DriverStatus.ON_TRIP)
    assert [d.driver_id for d in found] == [driver]


def test_a_region_first_entered_by_a_batch_whose_region_steps_were_lost_is_still_swept(
        index: RedisDriverIndex, redis_client: redis.Redis) -> None:
    """The sweeper visits the regions in a set that a batch's region steps add to (once per
    region and process). A batch entering a region whose region steps never ran did not add
    it: the next batch there must, or the drivers it places are never swept from their
    cells (found by the model test, `test_driver_index_model`)."""
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    plan = index._planner.plan([PositionUpdate(driver, CENTRE, T0)], (), T0)
    region_steps = plan.send(index._scripts.run_calls(index.client, next(plan)))
    assert any(name == "place" for name, _, _ in region_steps)
    plan.close()        # their round trip failed (a dropped connection): never run
    index.ingest([PositionUpdate(driver, offset(CENTRE, 5, 0), T0 + 1_000)], now_ms=T0 + 1_000)
    assert filed_under(redis_client, index, driver) == [cell_of(offset(CENTRE, 5, 0),
                                                                index.levels[0])]
    assert index.sweep(now_ms=T0 + 1_000 + index.ttl_ms + 1) == 1
    assert filed_under(redis_client, index, driver) == []
