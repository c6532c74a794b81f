"""LatLng and H3 helpers; coordinates are validated before they ever reach H3."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import h3
import h3.api.basic_int as h3i

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class LatLng:
    lat: float
    lng: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and math.isfinite(self.lng)):
            raise ValueError("coordinates must be finite numbers")
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError("lat must be within [-90, 90]")
        if not -180.0 <= self.lng <= 180.0:
            raise ValueError("lng must be within [-180, 180]")


def cell_of(point: LatLng, resolution: int) -> str:
    return h3.latlng_to_cell(point.lat, point.lng, resolution)


def haversine_m(a: LatLng, b: LatLng) -> float:
    return haversine_raw_m(a.lat, a.lng, b.lat, b.lng)


def haversine_raw_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@lru_cache(maxsize=65_536)
def min_edge_m(cell: str) -> float:
    """The shortest edge of a cell: the local scale for ring distance bounds."""
    return min(h3.edge_length(e, "m") for e in h3.origin_to_directed_edges(cell))


GAP_PER_RING = 0.9  # edges


def ring_gap_m(cell: str, ring: int) -> float:
    """A lower bound on the distance from any point in `cell` to any point of its ring `ring`.

    On a hexagonal grid the gap grows by 1.5 edges per ring in the flat direction and by at
    least one edge per ring toward a vertex; 0.9 edge per ring leaves room for H3's distortion.
    """
    return max(0, ring - 1) * GAP_PER_RING * min_edge_m(cell)


def rings_within_m(cell: str, radius_m: float) -> int:
    """The last ring around `cell` that can hold a point within radius_m of a point in it."""
    return max(1, int(radius_m / (GAP_PER_RING * min_edge_m(cell))) + 1)


def rings(cell: int, first: int, last: int) -> list[list[int]]:
    """Rings `first..last` around `cell`, as integer cells (pentagon-safe)."""
    out: list[list[int]] = []
    for k in range(first, last + 1):
        try:
            out.append(list(h3i.grid_ring(cell, k)))
        except h3.H3BaseException:
            inner = set(h3i.grid_disk(cell, k - 1)) if k > 0 else set()
            out.append([c for c in h3i.grid_disk(cell, k) if c not in inner])
    return out
