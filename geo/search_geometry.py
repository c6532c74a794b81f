"""What searches compute once per cell and per ring disk, and reuse: centres, reaches, floors.

Where the extension `geo._native` was built (`pyproject.toml`; its source is
`geo/native/geometry.c`), disks at every search level but the coarsest are built in C, and
cells' walked reaches computed there, with the same values as this module's, which stays the
reference and the path elsewhere."""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import h3.api.basic_int as h3i

from geo.cells import (
    LatLng,
    Reach,
    cell_floors_m,
    cells_within,
    coarse_reach,
    flat_floors_m,
    haversine_raw_m,
    lowest_cos,
    quick_reach,
    reach,
    ring,
)
from geo.layout import RES_MASK, score_span
from geo.records import FLOOR

try:
    from geo import _native  # type: ignore[attr-defined]
except ImportError as exc:      # built without a C compiler, or an h3 that hides its C
    _native = None
    logging.getLogger(__name__).warning("search geometry in Python: %s", exc)

# Coarsest-level cells a disk may walk (`SearchGeometry`): rings 0-3 (37 cells), ~45 ms cold.
WALKS_PER_DISK = 40

# A cell as searches read it: centre lat, lng and reach (`geo.cells.reach`), then its record
# tail for the search script (`score_span`) and its region.
SearchCell = tuple[float, float, float, tuple[bytes, int]]
FIRST = operator.itemgetter(0)
UINT64 = (1 << 64) - 1


class RingDisk(Protocol):
    """What a search reads of a ring disk (`SearchDisk`, or `geo._native`'s `Disk`)."""

    def records(self, point: LatLng, limit_m: float) -> list[tuple[int, bytes]]: ...

    def clear_beyond(self, point: LatLng, limit_m: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class SearchDisk:
    """Rings `first`..`last` around a cell (the origin) as a search reads them: their `cells`;
    `region`, the region of them all when they share one (the usual case), else None;
    `cos_low`, their, the next ring's and the origin's `lowest_cos` (None near the antimeridian
    or a pole). Then what tells whether anything beyond ring `last` can still be nearer: the
    next ring's cells (`outer`; every point beyond it is farther than some point of it), the
    origin's centre and `near_m`, a lower bound on the distance from that centre to the next
    ring's points."""
    cells: tuple[SearchCell, ...]
    region: int | None
    cos_low: float | None
    outer: tuple[SearchCell, ...]
    centre: tuple[float, float]
    near_m: float

    def floors(self, point: LatLng) -> list[float]:
        """Each cell's floor from `point`, a point of the origin cell."""
        return search_floors_m(point, self.cells, self.cos_low)

    def records(self, point: LatLng, limit_m: float) -> list[tuple[int, bytes]]:
        """The search script's records of the cells whose floor from `point` is within
        `limit_m`, nearest floor first (ties in ring order): the floor, then the cell's record
        tail, grouped by region (regions in the order of their first record)."""
        candidates = [(floor, cell[3]) for floor, cell in
                      zip(self.floors(point), self.cells, strict=True) if floor <= limit_m]
        candidates.sort(key=FIRST)          # by floor alone: floats compare fastest
        pack = FLOOR.pack
        if self.region is not None:
            return [(self.region, b"".join([pack(floor) + tail for floor, (tail, _) in
                                           candidates]))] if candidates else []
        by_region: dict[int, list[bytes]] = {}
        for floor, (tail, region) in candidates:
            by_region.setdefault(region, []).append(pack(floor) + tail)
        return [(region, b"".join(records)) for region, records in by_region.items()]

    def clear_beyond(self, point: LatLng, limit_m: float) -> bool:
        """Whether no point beyond the rings lies within `limit_m` of `point`: first in one
        step (the triangle inequality through the origin's centre), else cell by cell."""
        if self.near_m - haversine_raw_m(point.lat, point.lng, *self.centre) > limit_m:
            return True
        return min(search_floors_m(point, self.outer, self.cos_low), default=math.inf) > limit_m


def search_floors_m(point: LatLng, cells: tuple[SearchCell, ...],
                    cos_low: float | None) -> list[float]:
    """`geo.cells.flat_floors_m` when the cells allow it (`cos_low`), else the exact floors."""
    if cos_low is None:
        return cell_floors_m(point, cells)
    return flat_floors_m(point, cells, cos_low)


class SearchGeometry:
    """What searches compute once and reuse, for one index's levels and key layout: a tuple per
    cell, which every disk holding the cell shares, and a disk per origin and rings.
    Plain dicts (a hit is one lookup, a fraction of an lru_cache's over a key of several
    arguments), each emptied when it reaches its capacity.

    A coarsest-level cell's walked reach (`geo.cells.coarse_reach`, up to 343 descendants:
    ~1.2 ms) is what the start-up warm-up computes (`warm`). A disk being built walks at most
    `WALKS_PER_DISK` coarsest cells the warm-up did not (the nearest first: rings 0-3, which
    decide most searches); farther ones take their `quick_reach` (one boundary, ~20% looser),
    kept apart from the walked ones so that a disk nearer to them walks them later. So a
    search far from every driver over a wide radius costs milliseconds, not the seconds of
    walking hundreds of coarse cells (a cold 10 km search took 1.3 s, a 50 km one 26 s).
    Finer levels' cells are walked as searches meet them (at most 49 descendants each)."""

    def __init__(self, finest: int, coarsest: int, score_mask: int, bucket_shift: int,
                 region_keep: int, *, max_cells: int = 262_144, max_disks: int = 65_536,
                 native: bool = True) -> None:
        self.finest, self.coarsest = finest, coarsest
        self._score_mask, self._bucket_shift = score_mask, bucket_shift
        self._region_keep = region_keep
        self._max_cells, self._max_disks = max_cells, max_disks
        self._cells: dict[int, SearchCell] = {}
        self._quick: dict[int, SearchCell] = {}   # coarsest cells bounded, not walked
        self._disks: dict[tuple[int, int, int], SearchDisk] = {}
        # Disks in C (`geo._native`), at every level but the coarsest (whose cells' walks
        # `WALKS_PER_DISK` bounds): built from its table of cells in a few microseconds, so
        # not kept (`disk`).
        self._native = _native.Geometry(finest, score_mask, bucket_shift, region_keep & UINT64,
                                        max_cells) if native and _native is not None else None
        self._python_bits = (coarsest << 52) if coarsest < finest else -1

    @property
    def native(self) -> bool:
        """Whether it builds disks in C (`geo._native`), but at the coarsest level."""
        return self._native is not None

    def cached_cells(self) -> int:
        """How many cells' walked geometry it holds (in C, or in `geo.cells`' caches)."""
        if self._native is not None:
            return self._native.cached()  # type: ignore[no-any-return]
        return coarse_reach.cache_info().currsize

    def known(self, cell: int) -> bool:
        """Whether a cell coarser than the finest level has its geometry walked already."""
        if self._native is not None:
            return self._native.known(cell)  # type: ignore[no-any-return]
        misses = coarse_reach.cache_info().misses
        coarse_reach(cell, self.finest)
        return coarse_reach.cache_info().misses == misses

    def warm(self, cell: int) -> None:
        """Walk a coarsest-level cell's reach now (and its finer descendants', which
        `geo._native` or `geo.cells.coarse_reach` keeps), for the searches to come."""
        if cell not in self._cells:
            self._store(cell, self._walk(cell))

    def _walk(self, cell: int) -> Reach:
        """`geo.cells.reach`: in C where `geo._native` was built (the same values)."""
        if self._native is not None:
            lat, lng, far = self._native.reach(cell)
            return lat, lng, far, cell
        return reach(cell, self.finest)

    def _store(self, cell: int, found: Reach) -> SearchCell:
        if len(self._cells) >= self._max_cells:
            self._cells.clear()
        self._cells[cell] = item = self._item(found)
        return item

    def _item(self, found: Reach) -> SearchCell:
        lat, lng, far, cell = found
        span = score_span(cell, self._score_mask, self._bucket_shift)
        return lat, lng, far, (span, cell & self._region_keep)

    def disk(self, origin: int, first: int, last: int) -> RingDisk:
        """Rings `first`..`last` around `origin`, a cell of one of the search levels."""
        if self._native is not None and origin & RES_MASK > self._python_bits:
            return self._native.disk(origin, first, last)  # type: ignore[no-any-return]
        return self.python_disk(origin, first, last)

    def python_disk(self, origin: int, first: int, last: int) -> SearchDisk:
        """`disk` as this module computes it (the reference; the coarsest level always)."""
        key = (origin, first, last)
        found = self._disks.get(key)
        if found is None:
            if len(self._disks) >= self._max_disks:
                self._disks.clear()
            found = self._disks[key] = self._build(origin, first, last)
        return found

    def _build(self, origin: int, first: int, last: int) -> SearchDisk:
        walks = WALKS_PER_DISK
        known, quick = self._cells, self._quick
        coarsest = self.coarsest if self.coarsest < self.finest else -1

        def cell(c: int) -> SearchCell:
            nonlocal walks
            found = known.get(c)
            if found is not None:
                return found
            if h3i.get_resolution(c) == coarsest:
                if walks <= 0:
                    found = quick.get(c)
                    if found is None:
                        if len(quick) >= self._max_cells:
                            quick.clear()
                        found = quick[c] = self._item(quick_reach(c))
                    return found
                walks -= 1
            return self._store(c, self._walk(c))

        def cells_of(ids: Sequence[int]) -> tuple[SearchCell, ...]:
            # One lookup pass in C; only the cells not known yet go through `cell`, in order
            # (a disk is mostly known cells: a new query location meets a few new ones).
            found = list(map(known.get, ids))
            if None in found:
                found = [f if f is not None else cell(c) for f, c in zip(found, ids, strict=True)]
            return tuple(found)   # type: ignore[arg-type]

        inner = cells_within(origin, last) if first == 0 else [
            c for k in range(first, last + 1) for c in ring(origin, k)]
        lat, lng, far, _ = cell(origin)
        cells = cells_of(inner)
        outer = cells_of(ring(origin, last + 1))
        regions = {c & self._region_keep for c in inner}
        cos_low = lowest_cos((*cells, *outer, (lat, lng, far, None)))
        return SearchDisk(cells, regions.pop() if len(regions) == 1 else None, cos_low, outer,
                          (lat, lng), min(search_floors_m(LatLng(lat, lng), outer, cos_low),
                                          default=math.inf))
