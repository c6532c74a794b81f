"""Ping screening: each kind of bad ping is dropped with its reason; the newest good one wins."""

from datetime import UTC, datetime, timedelta

from geo.cells import LatLng
from geo.pings import Ping, PingRules, triage

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
HERE = LatLng(40.7580, -73.9855)
RULES = PingRules(max_age_s=120, max_future_s=30, max_accuracy_m=500, max_speed_kmh=250)


def ping(seconds_ago: float, point: LatLng = HERE, accuracy_m: float | None = 5) -> Ping:
    return Ping(point, NOW - timedelta(seconds=seconds_ago), accuracy_m=accuracy_m)


def test_good_pings_are_kept_in_time_order_and_the_newest_wins() -> None:
    north = LatLng(HERE.lat + 0.001, HERE.lng)
    result = triage([ping(10), ping(5, north)], now=NOW, rules=RULES)
    assert [p.point for p in result.kept] == [HERE, north]
    assert result.newest is not None and result.newest.point == north
    assert not result.dropped


def test_each_reason_is_counted() -> None:
    far = LatLng(HERE.lat + 0.5, HERE.lng)  # ~55 km in 1 s
    result = triage([
        ping(500),                      # stale
        ping(-60),                      # 60 s in the future
        ping(20, accuracy_m=5000),      # inaccurate
        ping(10),
        ping(15),                       # older than the previous one in the batch
        ping(10),                       # same time as a kept one
        ping(9, far),                   # impossible jump
        ping(8),
    ], now=NOW, rules=RULES)
    assert dict(result.dropped) == {"stale": 1, "future": 1, "inaccurate": 1,
                                    "out_of_order": 2, "impossible": 1}
    assert len(result.kept) == 2


def test_future_within_bound_is_fine() -> None:
    assert len(triage([ping(-29)], now=NOW, rules=RULES).kept) == 1


def test_missing_accuracy_is_not_a_reason_to_drop() -> None:
    assert len(triage([ping(1, accuracy_m=None)], now=NOW, rules=RULES).kept) == 1
