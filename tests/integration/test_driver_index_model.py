"""The driver index against a model of what it should hold, on real Redis and on a real Redis
Cluster: random sequences of drivers going online and offline (a new session may come from a
phone whose clock runs behind), pings (plausible, too fast, out of order; across region
boundaries), status changes, requests landing while a ping is between its claim and its
region steps (a status change, going offline, the driver's next ping, a phone switch), time
passing and the sweeper, with every search compared to a brute-force answer over the model and
the Redis keys checked after every step: each driver the model files sits in exactly one cell,
the one of its last ping, and in one region; no other cell or region lists it (hypothesis,
stateful)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.cluster import RedisCluster

from core.products import Product
from geo.cells import LatLng, cell_of, haversine_m
from geo.index import RedisDriverIndex
from geo.records import DriverStatus, IngestResult, Outcome, PositionUpdate
from geo.scripts import AnyRedis
from simulations.rides import offset
from tests.integration.index_helpers import filed_under, live_in, ping_racing
from tests.services import ON_BOTH, cluster_url

CENTRE = LatLng(40.7580, -73.9855)
T0 = 1_800_000_000_000
DRIVERS = 4
# The claim flags a ping implying over 250 km/h; between these the test accepts either answer.
SURELY_PLAUSIBLE_MPS, SURELY_IMPOSSIBLE_MPS = 200 / 3.6, 300 / 3.6


@dataclass
class Driver:
    """What the index should hold of one driver."""
    product: Product
    online: bool = False
    since: int = 0                      # when its session went online
    ping_ts: int = 0                    # its last accepted ping's time (0: none this session)
    ping_at: LatLng | None = None       # and position (kept when flagged)
    seen: int = 0                       # when that ping arrived
    status: DriverStatus = DriverStatus.AVAILABLE   # the directory's
    shown: DriverStatus = DriverStatus.AVAILABLE    # the status its cell entry holds
    filed: bool = False                 # in a cell: placed, not flagged, evicted nor swept
    flagged: bool = False               # its last accepted ping was an impossible jump
    version: int = 0                    # its last status change's (the database's counter)


class IndexModel(RuleBasedStateMachine):
    client: AnyRedis      # set by the test, per run

    def __init__(self) -> None:
        super().__init__()
        if isinstance(self.client, RedisCluster):
            self.client.flushdb(target_nodes=RedisCluster.PRIMARIES)
        else:
            self.client.flushdb()
        # Small regions (resolution 6): drivers moving a few km cross region boundaries.
        self.index = RedisDriverIndex(self.client, levels=(11, 10, 9), region_resolution=6)
        self.now = T0
        self.ids = [uuid.UUID(int=i + 1, version=4) for i in range(DRIVERS)]
        self.model = {d: Driver(list(Product)[i % 2]) for i, d in enumerate(self.ids)}

    @rule(i=st.integers(0, DRIVERS - 1))
    def go_online(self, i: int) -> None:
        driver, d = self.ids[i], self.model[self.ids[i]]
        if not d.online:
            self.begin_session(d)
        self.index.go_online(driver, d.product, now_ms=d.since, status_version=d.version)

    def begin_session(self, d: Driver) -> None:
        d.online, d.since, d.ping_ts, d.filed, d.flagged = True, self.next_since(d), 0, False, False
        d.status = d.shown = DriverStatus.AVAILABLE

    def next_since(self, d: Driver) -> int:
        return max(self.now, d.since + 1)   # sessions are told apart by their first ms

    @rule(i=st.integers(0, DRIVERS - 1))
    def go_offline(self, i: int) -> None:
        d = self.model[self.ids[i]]
        assert self.index.go_offline(self.ids[i]) == d.online
        d.online = d.filed = False

    @rule(i=st.integers(0, DRIVERS - 1), status=st.sampled_from(DriverStatus),
          late=st.sampled_from([None, 0, 1, 2]))
    def set_status(self, i: int, status: DriverStatus, late: int | None) -> None:
        """A status change; `late`: the write of the change `late` before the driver's last
        one (0: the last one's again, a retry), reaching Redis after it, in this session or
        before the driver went offline: refused."""
        d = self.model[self.ids[i]]
        if late is not None:
            version = max(0, d.version - late)
            assert self.index.set_status(self.ids[i], status, version=version) is False
            return
        d.version += 1
        assert self.index.set_status(self.ids[i], status, version=d.version) == d.online
        if d.online:
            d.status = d.shown = status

    @rule(i=st.integers(0, DRIVERS - 1), north=st.floats(-3000, 3000),
          east=st.floats(-3000, 3000), dt_ms=st.integers(-3000, 60_000),
          behind_ms=st.sampled_from([0, 0, 60_000]))
    def ping(self, i: int, north: float, east: float, dt_ms: int, behind_ms: int) -> None:
        """A ping `dt_ms` after the driver's last one (negative: out of order); a session's
        first ping may come from a phone whose clock runs `behind_ms` behind."""
        driver, d = self.ids[i], self.model[self.ids[i]]
        update = self.next_ping(d, driver, north, east, dt_ms, behind_ms)
        [result] = self.index.ingest([update], now_ms=self.now)
        self.region_step(d, self.claim(d, update, result), d.status)

    @rule(i=st.integers(0, DRIVERS - 1))
    def send_again(self, i: int) -> None:
        """The phone re-sends the driver's last accepted ping (it never saw the reply)."""
        driver, d = self.ids[i], self.model[self.ids[i]]
        if d.ping_ts and d.ping_at is not None:
            update = PositionUpdate(driver, d.ping_at, d.ping_ts)
            [result] = self.index.ingest([update], now_ms=self.now)
            self.region_step(d, self.claim(d, update, result), d.status)

    @rule(i=st.integers(0, DRIVERS - 1), north=st.floats(-3000, 3000),
          east=st.floats(-3000, 3000), dt_ms=st.integers(1000, 60_000),
          then=st.sampled_from(["sent again", "next ping", "offline"]),
          north2=st.floats(-3000, 3000), east2=st.floats(-3000, 3000),
          dt2_ms=st.integers(1000, 60_000))
    def region_steps_lost(self, i: int, north: float, east: float, dt_ms: int, then: str,
                          north2: float, east2: float, dt2_ms: int) -> None:
        """A ping's claim lands and its region steps never run (its process died, or its
        connection dropped): the index still files the driver where it was. What comes next
        repairs it, as if the steps had run: the phone sending the ping again, the driver's
        next ping, or going offline. Not modelled: two crossings in a row whose region steps
        are both lost (the region the first left keeps the driver until the TTL)."""
        driver, d = self.ids[i], self.model[self.ids[i]]
        update = self.next_ping(d, driver, north, east, dt_ms, 0)
        later = PositionUpdate(driver, offset(update.point, north2, east2), update.ts_ms + dt2_ms)
        crosses = d.ping_at is not None and self.region(d.ping_at) != self.region(update.point)
        if then == "next ping" and crosses and \
                self.region(later.point) != self.region(update.point):
            then = "sent again"
        plan = self.index._planner.plan([update], (), self.now)
        replies = self.index._scripts.run_calls(self.client, next(plan))
        try:            # the claim alone: the region steps it plans are never run
            plan.send(replies)
            plan.send([])
        except StopIteration as done:
            [result] = done.value.results
        outcome = self.claim(d, update, result)
        if then == "sent again":
            [again] = self.index.ingest([update], now_ms=self.now)
            assert again.outcome is result.outcome
            self.region_step(d, outcome, d.status)
        elif then == "next ping":
            [after] = self.index.ingest([later], now_ms=self.now)
            self.region_step(d, self.claim(d, later, after), d.status)
        else:
            assert self.index.go_offline(driver) == d.online
            d.online = d.filed = False

    def region(self, point: LatLng) -> str:
        return self.index.region_of(cell_of(point, self.index.levels[0]))

    @rule(i=st.integers(0, DRIVERS - 1), north=st.floats(-3000, 3000),
          east=st.floats(-3000, 3000), dt_ms=st.integers(1000, 60_000),
          meanwhile=st.sampled_from(["status", "offline", "newer ping", "switch phones"]),
          status=st.sampled_from(DriverStatus), north2=st.floats(-500, 500),
          east2=st.floats(-500, 500), dt2_ms=st.integers(1000, 30_000))
    def something_lands_during_a_ping(self, i: int, north: float, east: float, dt_ms: int,
                                      meanwhile: str, status: DriverStatus, north2: float,
                                      east2: float, dt2_ms: int) -> None:
        """Another request lands between a ping's claim and its region steps: a status
        change (it rewrites the driver's entry in the region the claim filed it under, or,
        with none there yet, leaves the change pending in a tombstone; either way the place
        keeps that newer status), going
        offline (the place must not bring the driver back), the driver's next ping, whole
        (the late place must not move it back), or the driver switching phones: offline, then
        online on a phone whose clock runs a minute behind, and its first ping (the late place
        of the ended session must lose to it, though its recorded time is later)."""
        driver, d = self.ids[i], self.model[self.ids[i]]
        update = self.next_ping(d, driver, north, east, dt_ms, 0)
        later = PositionUpdate(driver, offset(update.point, north2, east2), update.ts_ms + dt2_ms)
        if meanwhile == "switch phones":
            later = PositionUpdate(driver, later.point, self.now - 60_000)
        done: list[object] = []

        def land() -> None:
            if meanwhile == "status":
                d.version += 1
                done.append(self.index.set_status(driver, status, version=d.version))
            elif meanwhile == "offline":
                done.append(self.index.go_offline(driver))
            elif meanwhile == "switch phones":
                done.append(self.index.go_offline(driver))
                self.index.go_online(driver, d.product, now_ms=self.next_since(d),
                                     status_version=d.version)
                done.extend(self.index.ingest([later], now_ms=self.now))
            else:
                done.extend(self.index.ingest([later], now_ms=self.now))

        result = ping_racing(self.index, update, land, now_ms=self.now)
        outcome = self.claim(d, update, result)       # the claim came first
        if meanwhile == "status":
            assert done == [d.online]
            if d.online:
                d.status = d.shown = status
            self.region_step(d, outcome, d.status)
        elif meanwhile == "offline":
            assert done == [d.online]
            d.online = d.filed = False                # its tombstone outranks the late place
        elif meanwhile == "switch phones":
            went_offline, first = done
            assert went_offline == d.online
            self.begin_session(d)
            assert isinstance(first, IngestResult)
            self.region_step(d, self.claim(d, later, first), d.status)
        else:
            [after] = done
            assert isinstance(after, IngestResult)
            self.region_step(d, self.claim(d, later, after), d.status)   # newer: it stands

    def next_ping(self, d: Driver, driver: uuid.UUID, north: float, east: float, dt_ms: int,
                  behind_ms: int) -> PositionUpdate:
        point = offset(d.ping_at or CENTRE, north, east)
        ts = d.ping_ts + dt_ms if d.ping_ts else self.now - behind_ms
        return PositionUpdate(driver, point, ts)

    def claim(self, d: Driver, update: PositionUpdate, result: IngestResult) -> Outcome:
        """Check a ping's outcome against the model, and record it where the directory does."""
        point, ts = update.point, update.ts_ms
        if not d.online:
            assert result.outcome is Outcome.OFFLINE
            return result.outcome
        if d.ping_ts and ts == d.ping_ts and point == d.ping_at:
            # Its last accepted ping sent again: the first outcome again, and placed again,
            # which changes nothing unless its entry is gone (swept).
            assert result.outcome is (Outcome.IMPOSSIBLE if d.flagged else Outcome.APPLIED)
            if not d.filed:
                d.seen = self.now
            return result.outcome
        if d.ping_ts and ts <= d.ping_ts:
            assert result.outcome is Outcome.OUT_OF_ORDER
            return result.outcome
        if d.ping_ts and d.ping_at is not None:
            speed = haversine_m(d.ping_at, point) / ((ts - d.ping_ts) / 1000)
            if speed < SURELY_PLAUSIBLE_MPS:
                assert result.outcome is Outcome.APPLIED
            elif speed > SURELY_IMPOSSIBLE_MPS:
                assert result.outcome is Outcome.IMPOSSIBLE
        else:
            assert result.outcome is Outcome.APPLIED    # a session's first ping
        assert result.outcome in (Outcome.APPLIED, Outcome.IMPOSSIBLE)
        d.ping_ts, d.ping_at, d.seen = ts, point, self.now
        d.flagged = result.outcome is Outcome.IMPOSSIBLE
        return result.outcome

    @staticmethod
    def region_step(d: Driver, outcome: Outcome, claimed: DriverStatus) -> None:
        """What a claim's region step does: placed with the status the claim read, or
        evicted (an impossible jump)."""
        if outcome is Outcome.APPLIED:
            d.filed, d.shown = True, claimed
        elif outcome is Outcome.IMPOSSIBLE:
            d.filed = False

    @rule(i=st.integers(0, DRIVERS - 1), north=st.floats(-500, 500), east=st.floats(-500, 500),
          behind_ms=st.sampled_from([0, 60_000]))
    def switch_phones(self, i: int, north: float, east: float, behind_ms: int) -> None:
        """Offline on one phone, online on another whose clock may run a minute behind, and
        that phone's first ping (the last one's time, or a minute before it)."""
        self.go_offline(i)
        self.go_online(i)
        self.ping(i, north, east, 0, behind_ms)

    @rule(seconds=st.sampled_from([1, 5, 29, 31]))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds * 1000

    @rule()
    def sweep(self) -> None:
        """The worker's sweep: drivers silent past the TTL leave their cells."""
        self.index.sweep(now_ms=self.now)
        for d in self.model.values():
            if d.filed and self.now - d.seen > self.index.ttl_ms:
                d.filed = False

    @invariant()
    def each_filed_driver_sits_in_one_cell_and_region(self) -> None:
        for driver, d in self.model.items():
            cells = [cell_of(d.ping_at, self.index.levels[0])] if d.filed and d.ping_at else []
            assert filed_under(self.client, self.index, driver) == cells
            regions = [self.index.region_of(c) for c in cells]
            assert live_regions(self.client, driver) == regions

    @precondition(lambda self: any(d.online for d in self.model.values()))
    @invariant()
    def searches_match_brute_force(self) -> None:
        for product in (Product.ECONOMY, Product.COMFORT):
            for status in (DriverStatus.AVAILABLE, DriverStatus.ON_TRIP):
                for radius_m in (1000.0, 8000.0):
                    self.check_search(product, status, radius_m)

    def check_search(self, product: Product, status: DriverStatus, radius_m: float) -> None:
        """The k nearest distances match; each result is a driver that qualifies, at its
        distance (drivers at the same distance may come in either order)."""
        k = 3
        qualifying = {
            driver.hex: haversine_m(CENTRE, d.ping_at)
            for driver, d in self.model.items()
            if d.online and d.filed and d.ping_at is not None and d.product is product
            and d.shown is status and self.now - d.seen <= self.index.ttl_ms
            and haversine_m(CENTRE, d.ping_at) <= radius_m}
        found = self.index.nearby(CENTRE, product, k=k, radius_m=radius_m, now_ms=self.now,
                                  status=status)
        assert [round(f.distance_m, 3) for f in found] == [
            round(dist, 3) for dist in sorted(qualifying.values())[:k]]
        assert len({f.driver_id for f in found}) == len(found)
        for f in found:
            assert abs(qualifying[f.driver_id.hex] - f.distance_m) < 0.01


def live_regions(client: AnyRedis, driver: uuid.UUID) -> list[str]:
    """The regions whose `at` hash holds the driver as present, not as a tombstone (a full
    scan: test-only)."""
    return [key[key.index(b"{") + 1:key.index(b"}")].decode()
            for key in client.scan_iter(match=b"*}:at")
            if live_in(client, key[:-len(b":at")].decode(), driver)]


def follow_the_model(on: AnyRedis, examples: int) -> None:
    class OnThisRedis(IndexModel):
        client = on

    run_state_machine_as_test(
        OnThisRedis,
        settings=settings(max_examples=examples, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture]))


@ON_BOTH
def test_the_index_follows_its_model(redis_client: redis.Redis) -> None:
    follow_the_model(redis_client, examples=40)


def test_the_index_follows_its_model_on_a_cluster() -> None:
    """Regions of resolution 6 spread over the cluster's three nodes: a move across a region
    boundary is a place on one node and an evict on another."""
    client = RedisCluster.from_url(cluster_url())
    try:
        follow_the_model(client, examples=10)
    finally:
        client.close()
