"""Nearest-K search over the index: rings of H3 cells at a level chosen per area, read by one
search script per region and round trip."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import h3.api.basic_int as h3i

from core.products import PRODUCT_CODES, Product
from geo.cells import LatLng
from geo.layout import KeyLayout, parent_int
from geo.records import FOUND, QUERY, DriverStatus, NearbyDriver, as_bytes
from geo.scripts import AnyRedis, Call, Scripts
from geo.search_geometry import RingDisk, SearchGeometry

HINT_CAPACITY = 200_000
WARM_CELLS = 200_000    # at most this many cells' geometry cached at start-up (cache: 262,144)
# Rings 0-2 of a level certify answers out to ~2.5 edges from the query (ring 3's floor).
CERTAIN_EDGES = 2.5
# At the coarsest level, rings 0..k certify at least ~1.2 k average edges (the next ring's
# floors from the origin's centre); a query sits up to ~1.5 edges off that centre.
COVER_EDGES_PER_RING = 1.2
COVER_SLACK_EDGES = 1.5
MAX_SEARCH_RADIUS_M = 50_000.0  # a city-scale search; wider ones belong to another tool
MAX_FINE_RINGS = 2       # beyond rings 0-2 a finer level hands over to the next coarser one
# A search starts at the finest level whose rings 0-2 certify this much more than its area's
# hint: a query a little sparser than the last one there still takes one round trip (at 100k,
# 0.4% of new queries climb a level instead of 2%, for 0.5% more Redis work per query).
HINT_MARGIN = 1.3


class NearbySearch:
    """The index's searches (`geo.index.RedisDriverIndex.nearby`), with what they learn and
    cache as they go: each area's level hint and the cells' and disks' geometry."""

    def __init__(self, client: AnyRedis, scripts: Scripts, layout: KeyLayout,
                 levels: Sequence[int], *, ttl_ms: int, native_geometry: bool = True) -> None:
        self._client, self._scripts, self._layout = client, scripts, layout
        self.levels = tuple(levels)
        self._ttl_ms = ttl_ms
        self._hints: dict[int, float] = {}   # area -> how far its last search had to look
        self._last_reach: float | None = None  # the last search's, anywhere: for a new area
        self._edge_m = [h3i.average_hexagon_edge_length(lvl, "m") for lvl in self.levels]
        self._certain_m = [CERTAIN_EDGES * edge for edge in self._edge_m[:-1]]
        self._geometry = SearchGeometry(self.levels[0], self.levels[-1], layout.score_mask,
                                        layout.bucket_shift, layout.region_keep,
                                        native=native_geometry)

    @property
    def native_geometry(self) -> bool:
        """Whether its ring geometry is computed in C (`geo._native`)."""
        return self._geometry.native

    def nearby(
        self,
        center: LatLng,
        product: Product,
        *,
        k: int,
        radius_m: float,
        now_ms: int,
        status: DriverStatus = DriverStatus.AVAILABLE,
        level: int | None = None,
    ) -> list[NearbyDriver]:
        """The k nearest fresh drivers within radius_m, nearest first.

        Exact at every level; the level only sets the cost. A hint per coarse area remembers
        how far its last search had to look (the k-th distance, or the radius when fewer were
        found; an area not seen yet takes its parent area's, else the last search's anywhere),
        and the search starts at the finest level whose rings 0-2 can certify that far with a
        margin (`HINT_MARGIN`).
        A level that cannot certify hands what it found to the next coarser one.
        """
        if not 0 < radius_m <= MAX_SEARCH_RADIUS_M:
            raise ValueError(f"radius_m must be within (0, {MAX_SEARCH_RADIUS_M:.0f}]")
        fine = h3i.latlng_to_cell(center.lat, center.lng, self.levels[0])
        coarsest = len(self.levels) - 1
        if level is not None:
            return self._search_level(fine, level, center, product, k, radius_m, now_ms,
                                      status, None, [])[0]
        area = parent_int(fine, self.levels[-1])
        wider = parent_int(area, self.levels[-1] - 1)
        reach_m = self._hints.get(area, self._hints.get(wider, self._last_reach))
        level = 0 if reach_m is None else next(
            (i for i, certain in enumerate(self._certain_m)
             if certain >= reach_m * HINT_MARGIN), coarsest)
        found: list[NearbyDriver] = []
        while True:
            cap = None if level == coarsest else MAX_FINE_RINGS
            found, done = self._search_level(fine, level, center, product, k, radius_m, now_ms,
                                             status, cap, found)
            if done:
                break
            level += 1          # too sparse here for this level: a coarser one is cheaper
        if len(self._hints) >= HINT_CAPACITY:
            self._hints.clear()
        self._hints[area] = self._hints[wider] = self._last_reach = (
            found[-1].distance_m if len(found) >= k else radius_m)
        return found

    def _search_level(self, fine: int, level: int, center: LatLng, product: Product, k: int,
                      radius_m: float, now_ms: int, status: DriverStatus,
                      max_ring: int | None, seed: list[NearbyDriver],
                      ) -> tuple[list[NearbyDriver], bool]:
        """Search one level: rings in growing chunks, each chunk's cells nearest floor first.
        Done once no cell of the next ring can hold a driver nearer than the k-th found (or
        within the radius): every point beyond that ring is farther than some point of it.
        `done` is False when it stopped at `max_ring` unsure. `seed` holds drivers found at a
        finer level: they bound the search from the start."""
        origin = parent_int(fine, self.levels[level])
        fresh_after = now_ms - self._ttl_ms
        found = seed
        limit = found[-1].distance_m if len(found) >= k else radius_m
        first = 0
        while True:
            if max_ring is not None:
                last = min(max_ring, first + 2)
            elif first == 0:
                last = 2
            else:
                # Out to the ring that should certify the limit, in this round trip: no
                # further (cells no answer needs cost geometry and floors), no nearer (another
                # round trip). If the estimate falls short, the next chunk goes on from there.
                last = max(first + 2, self._covering_ring(level, limit))
            disk = self._disk(origin, first, last)
            records = disk.records(center, limit)
            if records:
                query = QUERY.pack(center.lat, center.lng, limit, fresh_after, k, status)
                more = self._search_cells(records, [PRODUCT_CODES[product], query])
                if found:        # a finer level's or an earlier chunk's: may hold the same
                    more = list({d.id_bytes: d for d in (*found, *more)}.values())
                found = sorted(more)[:k]
                if len(found) >= k:
                    limit = found[-1].distance_m
            if disk.clear_beyond(center, limit):
                return found, True
            if max_ring is not None and last >= max_ring:
                return found, False
            first = last + 1

    def _covering_ring(self, level: int, limit_m: float) -> int:
        """The last ring of a level whose next ring's floors should exceed `limit_m` (for a
        query anywhere in the origin cell): rings 0..k certify ~1.2 k average edges or more
        (measured from New York to Tromsø), less the query's offset from the origin's centre
        (at most ~1.5 edges)."""
        return math.ceil((limit_m / self._edge_m[level] + COVER_SLACK_EDGES) / COVER_EDGES_PER_RING)

    def _disk(self, origin: int, first: int, last: int) -> RingDisk:
        return self._geometry.disk(origin, first, last)

    def _search_cells(self, records: list[tuple[int, bytes]], head: list[Any],
                      ) -> list[NearbyDriver]:
        """One search script per region over its cells' records (`RingDisk.records`), in one
        round trip."""
        bits, region_at = self._layout.region_bits, self._layout.region_at
        calls: list[Call] = [("search", [region_at(f"{region | bits:x}")], [*head, blob])
                             for region, blob in records]
        if len(calls) == 1:
            replies = [self._scripts.read(*calls[0])]
        else:
            replies = self._scripts.run_calls(self._client, calls)
        new = tuple.__new__
        return [new(NearbyDriver, row) for blob in replies for row in FOUND.iter_unpack(blob)]

    def warm_up(self, *, margin_m: float = 5_000.0, max_cells: int = WARM_CELLS) -> int:
        """Compute the search geometry (`geo.cells.coarse_reach`: centre and reach of every
        cell at every search level but the finest, whose cells take the reach of their family,
        computed here with their parents, and cost a centre each as searches meet them) before
        the first query, under the coarse cells that hold drivers and those within `margin_m`
        of them (a search's rings reach that far past the drivers: pass the widest radius
        searched). A process just started would otherwise pay for it
        inside its first searches (README, Performance: the "fresh process" lines).
        One SCAN of the index's sorted sets finds the coarse cells; the nearest are warmed
        first, and it stops before `max_cells` cells. Returns how many coarse cells it warmed."""
        coarsest, finest = self.levels[-1], self.levels[0]
        if coarsest == finest:
            return 0            # one level: nothing dear to compute
        per_cell = sum(7 ** (level - coarsest) for level in range(coarsest, finest))
        layout = self._layout
        frontier: set[int] = set()
        for raw in self._client.scan_iter(match=layout.sets_pattern(), count=1000):
            parts = as_bytes(raw).decode().rsplit(":", 4)
            try:
                region, bucket = int(parts[1].strip("{}"), 16), int(parts[4])
            except (IndexError, ValueError):
                continue        # not one of the index's sets
            cell = parent_int((region & layout.region_keep) | (bucket << layout.bucket_shift),
                              coarsest)
            if h3i.is_valid_cell(cell):
                frontier.add(cell)
        spacing_m = math.sqrt(3) * h3i.average_hexagon_edge_length(coarsest, "m")
        warmed: set[int] = set()
        for _ in range(math.ceil(margin_m / spacing_m) + 2):     # the cells, then ring by ring
            for cell in frontier:
                if (len(warmed) + 1) * per_cell > max_cells:
                    return len(warmed)
                warmed.add(cell)
                self._geometry.warm(cell)
            frontier = {near for cell in frontier for near in h3i.grid_disk(cell, 1)} - warmed
        return len(warmed)
