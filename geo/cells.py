"""LatLng and H3 helpers; coordinates are validated before they ever reach H3."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import h3
import h3.api.basic_int as h3i
import h3.api.memview_int as h3m

EARTH_RADIUS_M = 6_371_008.8
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180


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
    s1, s2 = math.sin(dp / 2), math.sin(dl / 2)
    h = s1 * s1 + math.cos(p1) * math.cos(p2) * (s2 * s2)   # as geo/native: not pow's ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def ring(cell: int, k: int) -> tuple[int, ...]:
    """Ring `k` around `cell`, as integer cells (pentagon-safe). Not cached: its user
    (`geo.search_geometry.SearchGeometry`) caches what it builds from it."""
    try:
        return tuple(memoryview(h3m.grid_ring(cell, k)).tolist())
    except h3.H3BaseException:
        inner = set(cells_within(cell, k - 1)) if k > 0 else set()
        return tuple(c for c in cells_within(cell, k) if c not in inner)


def cells_within(cell: int, k: int) -> list[int]:
    """The cells within `k` steps of `cell`, as integers. h3's memoryview API: the list is
    built in C, where `h3.api.basic_int` converts item by item (twice the time here)."""
    return memoryview(h3m.grid_disk(cell, k)).tolist()  # type: ignore[no-any-return]


# Margin on a cell's reach: float noise at the boundary, never a visible distance.
REACH_SLACK_M = 0.5


Reach = tuple[float, float, float, int]  # centre lat, lng, reach (m), cell


def reach(cell: int, finest: int) -> Reach:
    """A cell's centre (lat, lng) and the farthest (m) from it that a point whose `finest`-level
    cell descends from it can lie, then the cell (one tuple, which every ring and search disk
    holding the cell shares).

    H3's hierarchy is logical, not geometric: a cell's children spill a few percent past its
    hexagon, so a coarse cell's reach is the farthest its children's reaches go (the triangle
    inequality through each child's centre). At `finest` a cell's own reach is its farthest
    vertex (H3 edges are great-circle arcs, straight in each face's gnomonic projection, so
    each hexagon is geodesically convex and its farthest point from the centre is a vertex);
    it takes the largest of its siblings' (`family_reach`), a bound as safe and at most a few
    percent looser, computed once per parent: a search meeting a new cell then pays for its
    centre alone. Coarser cells are cached (`coarse_reach`).
    """
    if h3i.get_resolution(cell) < finest:
        return coarse_reach(cell, finest)
    lat, lng = h3i.cell_to_latlng(cell)
    return lat, lng, family_reach(h3i.cell_to_parent(cell)), cell


# How far past its own farthest vertex a cell's descendants (down to three resolutions finer,
# the most search levels span) can lie, as a factor on that vertex's distance. The walked
# bound (`coarse_reach`) exceeds a hexagon's own farthest vertex by 3-10% and, next to the
# twelve pentagons, by up to 17%; a test holds this factor above the walked bound for every
# pentagon's neighbourhood and for cells all over the globe, at resolutions 6-12.
QUICK_REACH_FACTOR = 1.3


def quick_reach(cell: int) -> Reach:
    """`reach` without walking the descendants: the cell's own farthest vertex times
    `QUICK_REACH_FACTOR` (~20% looser than the walked bound, for one boundary instead of up to
    343). For cells searches meet before any warm-up computed them."""
    lat, lng = h3i.cell_to_latlng(cell)
    far = _farthest_m(lat, lng, h3i.cell_to_boundary(cell))
    return lat, lng, QUICK_REACH_FACTOR * far + REACH_SLACK_M, cell


def forget_geometry() -> None:
    """Empty this process's caches of cell geometry (as in a process just started)."""
    coarse_reach.cache_clear()
    _family.cache_clear()


def family_reach(parent: int) -> float:
    """The largest reach among `parent`'s children (each one's farthest vertex from its centre):
    a bound on each child's reach."""
    return _family(parent)[0]


@lru_cache(maxsize=262_144)
def _family(parent: int) -> tuple[float, float]:
    """`family_reach`, then how far the children's centres lie from the parent's at most."""
    plat, plng = h3i.cell_to_latlng(parent)
    children = h3i.cell_to_children(parent)
    centres = [h3i.cell_to_latlng(child) for child in children]
    far = max([_farthest_m(lat, lng, h3i.cell_to_boundary(child))
               for child, (lat, lng) in zip(children, centres, strict=True)])
    return far + REACH_SLACK_M, _farthest_m(plat, plng, centres)


@lru_cache(maxsize=262_144)
def coarse_reach(cell: int, finest: int) -> Reach:
    """`reach` of a cell coarser than `finest`, cached. It walks its descendants down to the
    parents of `finest` cells, whose children share one reach (`family_reach`): with search
    levels three resolutions apart the cache holds 57 cells per coarsest cell, not 400."""
    lat, lng = h3i.cell_to_latlng(cell)
    resolution = h3i.get_resolution(cell)
    if resolution + 1 >= finest:        # its children are finest cells: one family
        far, spread = _family(cell)
        return lat, lng, spread + far, cell
    kids = [coarse_reach(child, finest) for child in h3i.cell_to_children(cell, resolution + 1)]
    far = _farthest_m(lat, lng, [kid[:2] for kid in kids], [kid[2] for kid in kids])
    return lat, lng, far, cell


# A flat-earth distance (longitudes scaled by the cosine at the first point) is within 0.5% of
# the great-circle one below 80 degrees of latitude over 20 km at most; 1% over bounds it.
FLAT_OVER_M_PER_DEG = M_PER_DEG * 1.01
FLAT_MAX_M = 20_000.0


def _farthest_m(lat: float, lng: float, points: Sequence[tuple[float, float]],
                plus: Sequence[float] | None = None) -> float:
    """An upper bound on the largest distance from (lat, lng) to one of `points` (a cell's
    vertices, or its children's centres), plus that point's `plus` if given: flat-earth, 1%
    over, where that bounds it (below 80 degrees of latitude, away from the antimeridian,
    within 20 km); great-circle elsewhere."""
    dists: list[float] | None = None
    if -80.0 <= lat <= 80.0 and -179.0 < lng < 179.0:
        scale, sqrt = math.cos(math.radians(lat)), math.sqrt
        # sqrt(a*a + b*b), not math.hypot (CPython's own algorithm): as geo/native computes it
        dists = [sqrt((dy := plat - lat) * dy + (dx := (plng - lng) * scale) * dx)
                 * FLAT_OVER_M_PER_DEG for plat, plng in points]
        if max(dists) > FLAT_MAX_M:
            dists = None
    if dists is None:
        dists = [haversine_raw_m(lat, lng, plat, plng) for plat, plng in points]
    if plus is None:
        return max(dists)
    return max([d + p for d, p in zip(dists, plus, strict=True)])


# Flat-earth distances at the pair's mean latitude stay within 0.1% of the great-circle
# distance over the few tens of km a search spans below 85° of latitude; the floors take 1%
# off to stay lower bounds.
FLAT_SLACK = 0.99

# What the floors read of a cell: its centre's lat, lng and its reach (m), then anything
# (`Reach` has the cell; the search's cells carry what the search script needs).
Centred = tuple[float, float, float, Any]


def cell_floors_m(point: LatLng, cells: Iterable[Centred]) -> list[float]:
    """For each cell, a lower bound on the distance from `point` to any point whose
    finest-level cell descends from it, by the triangle inequality through the cell's centre."""
    lat0, lng0, cos, sqrt, rad = point.lat, point.lng, math.cos, math.sqrt, math.pi / 360
    scale = M_PER_DEG * FLAT_SLACK
    out = []
    for lat, lng, far, _ in cells:
        dl = lng - lng0
        if not -180.0 <= dl <= 180.0:                      # across the antimeridian
            dl -= math.copysign(360.0, dl)
        dy, dx = lat - lat0, dl * cos((lat + lat0) * rad)
        floor = sqrt(dx * dx + dy * dy) * scale - far
        out.append(floor if floor > 0.0 else 0.0)
    return out


def lowest_cos(cells: Collection[Centred]) -> float | None:
    """For `flat_floors_m`: the cosine of the highest latitude that a point within the cells'
    reaches can have; None when their points may come within a degree of the antimeridian or of
    a pole, or spread over more than 90 degrees of longitude (the flat frame would not hold).
    Every cell is taken to reach as far as the farthest-reaching one (a disk's cells differ
    little), which keeps this to a few passes in C."""
    if not cells:
        return None
    lats, lngs, fars, _ = zip(*cells, strict=True)
    far_deg = max(fars) / M_PER_DEG
    top = max(max(lats), -min(lats)) + far_deg
    if top >= 89.0:
        return None
    cos_top = math.cos(math.radians(top))
    west, east = min(lngs) - far_deg / cos_top, max(lngs) + far_deg / cos_top
    if west <= -179.0 or east >= 179.0 or east - west > 90.0:
        return None
    return cos_top


def flat_floors_m(point: LatLng, cells: Iterable[Centred], cos_low: float) -> list[float]:
    """`cell_floors_m`, faster, for cells (`point` within the reach of one of them) away from
    the antimeridian, given their `lowest_cos`. Longitudes scaled by the lowest cosine make no
    distance longer than at the pair's mean latitude, so each floor stays a lower bound; it
    may be negative (the point may lie in that cell)."""
    lat0, lng0, sqrt = point.lat, point.lng, math.sqrt
    x_scale, y_scale = cos_low * M_PER_DEG * FLAT_SLACK, M_PER_DEG * FLAT_SLACK
    return [sqrt((dx := (lng - lng0) * x_scale) * dx + (dy := (lat - lat0) * y_scale) * dy)
            - far for lat, lng, far, _ in cells]
