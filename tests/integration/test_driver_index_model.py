"""The driver index against a model of what it should hold, on real Redis: random sequences of
drivers going online and offline (a new session may come from a phone whose clock runs
behind), pings (plausible, too fast, out of order), status changes and time passing, with
every search compared to a brute-force answer over the model (hypothesis, stateful)."""

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

from core.products import Product
from geo.cells import LatLng, haversine_m
from geo.index import DriverStatus, Outcome, PositionUpdate, RedisDriverIndex
from simulations.rides import offset

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
    status: DriverStatus = DriverStatus.AVAILABLE
    searchable: bool = False            # placed, and not flagged by an impossible jump


class IndexModel(RuleBasedStateMachine):
    client: redis.Redis      # set by the test, per run

    def __init__(self) -> None:
        super().__init__()
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
            # Sessions are told apart by the millisecond they began.
            d.online, d.since, d.ping_ts, d.searchable = True, max(self.now, d.since + 1), 0, False
            d.status = DriverStatus.AVAILABLE
        self.index.go_online(driver, d.product, now_ms=d.since)

    @rule(i=st.integers(0, DRIVERS - 1))
    def go_offline(self, i: int) -> None:
        d = self.model[self.ids[i]]
        assert self.index.go_offline(self.ids[i]) == d.online
        d.online = d.searchable = False

    @rule(i=st.integers(0, DRIVERS - 1), status=st.sampled_from(DriverStatus))
    def set_status(self, i: int, status: DriverStatus) -> None:
        d = self.model[self.ids[i]]
        assert self.index.set_status(self.ids[i], status) == d.online
        if d.online:
            d.status = status

    @rule(i=st.integers(0, DRIVERS - 1), north=st.floats(-3000, 3000),
          east=st.floats(-3000, 3000), dt_ms=st.integers(-3000, 60_000),
          behind_ms=st.sampled_from([0, 0, 60_000]))
    def ping(self, i: int, north: float, east: float, dt_ms: int, behind_ms: int) -> None:
        """A ping `dt_ms` after the driver's last one (negative: out of order); a session's
        first ping may come from a phone whose clock runs `behind_ms` behind."""
        driver = self.ids[i]
        d = self.model[driver]
        base = d.ping_at or CENTRE
        point = offset(base, north, east)
        ts = d.ping_ts + dt_ms if d.ping_ts else self.now - behind_ms
        [result] = self.index.ingest([PositionUpdate(driver, point, ts)], now_ms=self.now)
        if not d.online:
            assert result.outcome is Outcome.OFFLINE
            return
        if d.ping_ts and ts <= d.ping_ts:
            assert result.outcome is Outcome.OUT_OF_ORDER
            return
        if d.ping_ts:
            speed = haversine_m(base, point) / ((ts - d.ping_ts) / 1000)
            if speed < SURELY_PLAUSIBLE_MPS:
                assert result.outcome is Outcome.APPLIED
            elif speed > SURELY_IMPOSSIBLE_MPS:
                assert result.outcome is Outcome.IMPOSSIBLE
        else:
            assert result.outcome is Outcome.APPLIED    # a session's first ping
        assert result.outcome in (Outcome.APPLIED, Outcome.IMPOSSIBLE)
        d.ping_ts, d.ping_at, d.seen = ts, point, self.now
        d.searchable = result.outcome is Outcome.APPLIED

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
            if d.online and d.searchable and d.ping_at is not None and d.product is product
            and d.status is status and self.now - d.seen <= self.index.ttl_ms
            and haversine_m(CENTRE, d.ping_at) <= radius_m}
        found = self.index.nearby(CENTRE, product, k=k, radius_m=radius_m, now_ms=self.now,
                                  status=status)
        assert [round(f.distance_m, 3) for f in found] == [
            round(dist, 3) for dist in sorted(qualifying.values())[:k]]
        assert len({f.driver_id for f in found}) == len(found)
        for f in found:
            assert abs(qualifying[f.driver_id.hex] - f.distance_m) < 0.01


def test_the_index_follows_its_model(redis_client: redis.Redis) -> None:
    class OnThisRedis(IndexModel):
        client = redis_client

    run_state_machine_as_test(
        OnThisRedis,
        settings=settings(max_examples=25, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture]))
