"""Pickup ETA estimates behind an interface a road-network router can replace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Protocol

from geo.cells import LatLng, haversine_m

PEAK_HOURS = frozenset({7, 8, 9, 16, 17, 18, 19})   # local hours of the city


class EtaEstimator(Protocol):
    """What trips, dispatch and search ask of travel times; a road-network router implements
    the same three calls."""

    def distance_m(self, origin: LatLng, destination: LatLng) -> float: ...

    def eta_s(self, origin: LatLng, destination: LatLng, *, at: datetime) -> float: ...

    def reach_m(self, eta_s: float, *, at: datetime) -> float: ...


@dataclass(frozen=True)
class StraightLineEta:
    """Great-circle distance times a detour factor, over a speed that depends on the city's
    local hour (peak or not)."""

    detour_factor: float = 1.35
    speed_kmh_peak: float = 18.0
    speed_kmh_offpeak: float = 30.0
    city_tz: tzinfo = UTC

    def speed_mps(self, at: datetime) -> float:
        local = at.astimezone(self.city_tz) if at.tzinfo is not None else at
        kmh = self.speed_kmh_peak if local.hour in PEAK_HOURS else self.speed_kmh_offpeak
        return kmh / 3.6

    def distance_m(self, origin: LatLng, destination: LatLng) -> float:
        return haversine_m(origin, destination) * self.detour_factor

    def eta_s(self, origin: LatLng, destination: LatLng, *, at: datetime) -> float:
        return self.distance_m(origin, destination) / self.speed_mps(at)

    def reach_m(self, eta_s: float, *, at: datetime) -> float:
        """The straight-line distance a car covers within eta_s (for ETA-bounded searches)."""
        return max(0.0, eta_s) * self.speed_mps(at) / self.detour_factor
