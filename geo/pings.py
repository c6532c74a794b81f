"""Pure rules for a driver's batch of GPS pings: which to keep, which to drop and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from geo.cells import LatLng, haversine_m


@dataclass(frozen=True, slots=True)
class Ping:
    point: LatLng
    recorded_at: datetime
    heading_deg: float | None = None
    speed_mps: float | None = None
    accuracy_m: float | None = None


@dataclass(frozen=True)
class PingRules:
    max_age_s: float = 120.0
    max_future_s: float = 30.0
    max_accuracy_m: float = 500.0
    max_speed_kmh: float = 250.0

    @property
    def max_speed_mps(self) -> float:
        return self.max_speed_kmh / 3.6


@dataclass
class Triage:
    """The outcome of screening one batch: the newest good ping and the drop counts."""

    kept: list[Ping] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def newest(self) -> Ping | None:
        return self.kept[-1] if self.kept else None


def implied_speed_mps(a: Ping, b: Ping) -> float:
    dt = abs((b.recorded_at - a.recorded_at).total_seconds())
    dist = haversine_m(a.point, b.point)
    if dist == 0:
        return 0.0
    return float("inf") if dt == 0 else dist / dt


def triage(pings: list[Ping], *, now: datetime, rules: PingRules) -> Triage:
    """Drop stale, future, inaccurate, duplicate and impossible pings; keep the rest in time order.

    Reasons: `stale` (older than max_age_s), `future` (more than max_future_s ahead),
    `inaccurate` (accuracy_m worse than the bound), `out_of_order` (same or earlier time than a
    kept ping), `impossible` (implied speed from the previous kept ping over max_speed_kmh).
    """
    result = Triage()
    timely: list[Ping] = []
    for ping in pings:
        age_s = (now - ping.recorded_at).total_seconds()
        if age_s > rules.max_age_s:
            result.dropped["stale"] += 1
        elif -age_s > rules.max_future_s:
            result.dropped["future"] += 1
        elif ping.accuracy_m is not None and ping.accuracy_m > rules.max_accuracy_m:
            result.dropped["inaccurate"] += 1
        else:
            timely.append(ping)
    # Out of order means "not newer than what came before it in the batch as sent".
    newest_seen: datetime | None = None
    ordered: list[Ping] = []
    for ping in timely:
        if newest_seen is not None and ping.recorded_at <= newest_seen:
            result.dropped["out_of_order"] += 1
            continue
        newest_seen = ping.recorded_at
        ordered.append(ping)
    for ping in ordered:
        previous = result.kept[-1] if result.kept else None
        if previous is not None and implied_speed_mps(previous, ping) > rules.max_speed_mps:
            result.dropped["impossible"] += 1
            continue
        result.kept.append(ping)
    return result
