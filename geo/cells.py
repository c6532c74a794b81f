"""LatLng and H3 helpers; coordinates are validated before they ever reach H3."""

from __future__ import annotations

import math
from collections.abc import Iterable
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
def min_edge_m(cell: int) -> float:
    """The shortest edge of a cell: the local scale for ring distance bounds."""
    return min(h3i.edge_length(e, "m") for e in h3i.origin_to_directed_edges(cell))


GAP_PER_RING = 0.9  # edges


def ring_gap_m(cell: int, ring: int) -> float:
    """A lower bound on the distance from any point in `cell` to any point of its ring `ring`.

    On a hexagonal grid the gap grows by 1.5 edges per ring in the flat direction and by at
    least one edge per ring toward a vertex; 0.9 edge per ring leaves room for H3's distortion.
    """
    return max(0, ring - 1) * GAP_PER_RING * min_edge_m(cell)


def rings_within_m(cell: int, radius_m: float) -> int:
    """The last ring around `cell` that can hold a point within radius_m of a point in it."""
    return max(1, int(radius_m / (GAP_PER_RING * min_edge_m(cell))) + 1)


@lru_cache(maxsize=131_072)
def ring(cell: int, k: int) -> tuple[int, ...]:
    """Ring `k` around `cell`, as integer cells (pentagon-safe)."""
    try:
        return tuple(h3i.grid_ring(cell, k))
    except h3.H3BaseException:
        inner = set(h3i.grid_disk(cell, k - 1)) if k > 0 else set()
        return tuple(c for c in h3i.grid_disk(cell, k) if c not in inner)


# Margin on a cell's reach: float noise at the boundary, never a visible distance.
REACH_SLACK_M = 0.5


@lru_cache(maxsize=262_144)
def reach(cell: int) -> tuple[float, float, float]:
    """A cell's centre (lat, lng) and the farthest any point of the cell lies from it (m).

    H3 edges are great-circle arcs (straight in each face's gnomonic projection), so a cell is
    geodesically convex and its farthest point from the centre is a vertex.
    """
    lat, lng = h3i.cell_to_latlng(cell)
    far = max(haversine_raw_m(lat, lng, vlat, vlng) for vlat, vlng in h3i.cell_to_boundary(cell))
    return lat, lng, far + REACH_SLACK_M


# Flat-earth distances at the pair's mean latitude stay within 0.1% of the great-circle
# distance over the few tens of km a search spans below 85° of latitude; the floors take 1%
# off to stay lower bounds.
FLAT_SLACK = 0.99
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


def cell_floors_m(point: LatLng, cells: Iterable[int]) -> list[tuple[float, int]]:
    """(floor, cell) for each cell: a lower bound on the distance from `point` to any point
    of the cell, by the triangle inequality through the cell's centre."""
    lat0, lng0, cos, rad = point.lat, point.lng, math.cos, math.pi / 360
    out = []
    for cell in cells:
        lat, lng, far = reach(cell)
        dy, dx = lat - lat0, (lng - lng0) * cos((lat + lat0) * rad)
        out.append((max(0.0, math.sqrt(dx * dx + dy * dy) * M_PER_DEG * FLAT_SLACK - far), cell))
    return out


def cell_floor_m(point: LatLng, cell: int) -> float:
    """The floor of one cell (see `cell_floors_m`)."""
    return cell_floors_m(point, (cell,))[0][0]
