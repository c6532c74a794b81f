"""Geo hygiene at the edges: coordinates are checked before H3; the ring bound is a bound."""

import functools
import math
import random
import uuid

import h3
import h3.api.basic_int as h3i
import pytest

from geo.cells import (
    QUICK_REACH_FACTOR,
    LatLng,
    _farthest_m,
    cell_floors_m,
    coarse_reach,
    haversine_m,
    haversine_raw_m,
    lowest_cos,
    quick_reach,
    reach,
    ring,
)
from geo.layout import KeyLayout, parent_int, score_span
from geo.search_geometry import SearchDisk, SearchGeometry, search_floors_m


@pytest.mark.parametrize(("lat", "lng"), [(999, 10), (-91, 0), (0, 181), (math.nan, 0),
                                          (0, math.inf)])
def test_impossible_coordinates_never_reach_h3(lat: float, lng: float) -> None:
    with pytest.raises(ValueError):
        LatLng(lat, lng)


def test_haversine_known_distance() -> None:
    # One degree of latitude is ~111.2 km.
    assert haversine_m(LatLng(0, 0), LatLng(1, 0)) == pytest.approx(111_195, rel=1e-3)


def cell_floor_m(point: LatLng, cell: int, finest: int) -> float:
    """The floor the index computes for one cell."""
    return cell_floors_m(point, (reach(cell, finest),))[0]


def _point_in(cell: str, rng: random.Random) -> LatLng:
    boundary = h3.cell_to_boundary(cell)
    centre = h3.cell_to_latlng(cell)
    lat, lng = boundary[rng.randrange(len(boundary))]
    f = rng.random()
    return LatLng(centre[0] + (lat - centre[0]) * f, centre[1] + (lng - centre[1]) * f)


@functools.cache
def _geometry(finest: int) -> SearchGeometry:
    """The search geometry of an index searching at `finest` alone (default key layout)."""
    layout = KeyLayout("rh", 3, (finest,))
    return SearchGeometry(finest, finest, layout.score_mask, layout.bucket_shift,
                          layout.region_keep)


def _disk(origin: int, first: int, last: int, finest: int) -> SearchDisk:
    """Rings `first`..`last` around `origin` as the index's search reads them."""
    return _geometry(finest).python_disk(origin, first, last)


@pytest.mark.parametrize("resolution", [7, 8, 9, 10, 11])
def test_cell_floor_is_a_lower_bound(resolution: int) -> None:
    """No point of a cell, its vertices included, lies nearer than the cell's floor: the exact
    one, and the one the search computes over its disk (rings 0-5, then ring 6 past them),
    nor than the one-step bound on ring 6."""
    rng = random.Random(resolution)
    flat_disks = 0
    for i in range(60):
        lng = rng.uniform(-179, 179) if i % 10 else rng.choice([-1, 1]) * rng.uniform(179, 180)
        query = LatLng(rng.uniform(-85, 85), lng)
        origin = h3i.latlng_to_cell(query.lat, query.lng, resolution)
        disk = _disk(origin, 0, 5, resolution)
        flat_disks += disk.cos_low is not None
        cell_at = {reach(cell, resolution)[:2]: cell for cell in h3i.grid_disk(origin, 6)}
        cells = (*disk.cells, *disk.outer)
        floors = (*disk.floors(query), *search_floors_m(query, disk.outer, disk.cos_low))
        disk_floor = {cell_at[c[:2]]: f for c, f in zip(cells, floors, strict=True)}
        assert len(disk_floor) == len(cell_at)
        one_step = disk.near_m - haversine_m(query, LatLng(*disk.centre))
        for k in range(7):
            for cell in ring(origin, k):
                floor = cell_floor_m(query, cell, resolution)
                inside = [LatLng(*v) for v in h3i.cell_to_boundary(cell)]
                inside += [_point_in(f"{cell:x}", rng) for _ in range(5)]
                for point in inside:
                    assert haversine_m(query, point) >= floor
                    assert haversine_m(query, point) >= disk_floor[cell]
                    assert k < 6 or haversine_m(query, point) >= one_step
                if abs(query.lat) < 60:          # and nearly as tight as the exact floor
                    assert max(disk_floor[cell], 0.0) >= floor - 0.005 * haversine_m(
                        query, LatLng(*h3i.cell_to_latlng(cell)))
    assert 40 <= flat_disks < 60   # not near the antimeridian nor the poles: the flat frame


def test_the_flat_frame_is_refused_near_the_antimeridian_and_the_poles() -> None:
    for lat, lng in [(-16.5, 179.5), (10.0, -179.2), (89.2, 20.0), (-89.5, 0.0)]:
        cell = h3i.latlng_to_cell(lat, lng, 8)
        assert lowest_cos([reach(c, 10) for c in h3i.grid_disk(cell, 2)]) is None, (lat, lng)
    cell = h3i.latlng_to_cell(40.7, -73.9, 8)
    assert lowest_cos([reach(c, 10) for c in h3i.grid_disk(cell, 2)]) == pytest.approx(
        math.cos(math.radians(40.7)), rel=0.01)


def test_the_farthest_point_bound_is_a_bound_at_every_scale_and_latitude() -> None:
    """The reaches' distance bound (flat-earth, 1% over, where that holds) is never short of
    the great-circle distance, from a few metres to beyond 20 km, up to the poles and across
    the antimeridian, and stays within 1.5% of it."""
    rng = random.Random(4)
    for _ in range(3000):
        lat, lng = rng.uniform(-89.9, 89.9), rng.uniform(-180, 180)
        spread = 10 ** rng.uniform(-4, -0.3)            # degrees: ~10 m to ~50 km
        points = [(max(-90.0, min(90.0, lat + rng.uniform(-spread, spread))),
                   (lng + rng.uniform(-spread, spread) + 540) % 360 - 180) for _ in range(6)]
        plus = [rng.uniform(0, 100) for _ in points]
        exact = max(haversine_raw_m(lat, lng, *p) + x for p, x in zip(points, plus, strict=True))
        bound = _farthest_m(lat, lng, points, plus)
        assert exact <= bound <= exact * 1.015 + 1e-6, (lat, lng, spread)


def test_a_finest_cell_reaches_as_far_as_its_farthest_sibling_vertex() -> None:
    """A finest cell's reach is its family's (`family_reach`): never short of its own farthest
    vertex (pentagons and their neighbours too), and no more than a few percent past it but
    in a pentagon's family (its siblings, distorted around it, reach ~25% farther)."""
    rng = random.Random(2)
    places = [(rng.uniform(-60, 60), rng.uniform(-179, 179)) for _ in range(300)]
    places += [h3i.cell_to_latlng(p) for p in h3i.get_pentagons(2)]
    for lat, lng in places:
        for finest in (9, 10, 11):
            for cell in h3i.grid_disk(h3i.latlng_to_cell(lat, lng, finest), 1):
                clat, clng, far, _ = reach(cell, finest)
                own = max(haversine_m(LatLng(clat, clng), LatLng(*v))
                          for v in h3i.cell_to_boundary(cell))
                assert own <= far, (cell, own, far)
                if not h3i.is_pentagon(h3i.cell_to_center_child(h3i.cell_to_parent(cell))):
                    assert far <= own * 1.03 + 1.0, (cell, own, far)


def test_a_quick_reach_bounds_the_walked_one_next_to_every_pentagon_and_elsewhere() -> None:
    """`quick_reach` (one boundary, for coarse cells no warm-up walked) is never short of the
    walked bound (`coarse_reach`) three resolutions down, the most search levels span: for
    the cells within two steps of each of the twelve pentagons (where descendants spill
    farthest, up to ~17% past the cell's own farthest vertex) and for cells all over the
    globe, at every resolution a search level may take (6-12); ~20% looser on the whole."""
    rng = random.Random(4)
    looser = []
    for resolution in range(6, 13):
        cells = {c for p in h3i.get_pentagons(resolution) for c in h3i.grid_disk(p, 2)}
        cells |= {h3i.latlng_to_cell(math.degrees(math.asin(rng.uniform(-1, 1))),
                                     rng.uniform(-180, 180), resolution) for _ in range(60)}
        for cell in cells:
            walked = coarse_reach(cell, resolution + 3)
            quick = quick_reach(cell)
            assert quick[:2] == walked[:2] and quick[3] == cell
            assert walked[2] <= quick[2], (cell, walked[2], quick[2])
            looser.append(quick[2] / walked[2])
    coarse_reach.cache_clear()
    assert min(looser) > 1.0 and sorted(looser)[len(looser) // 2] < QUICK_REACH_FACTOR


# (a resolution-8 cell's ring walks 6 x 343 cells at finest 11: fewer points there)
@pytest.mark.parametrize(("levels", "points"), [((10, 9, 8), 1000), ((11, 10, 9, 8), 250)])
def test_cell_floor_holds_for_the_logical_parents_the_index_uses(
        levels: tuple[int, ...], points: int) -> None:
    """The index files a driver under the parents of its finest cell, and H3 children spill a
    few percent past their parent's hexagon: a coarse cell's floor must still hold for every
    point whose finest cell descends from it. Each query sits just beyond its point, on the
    ray from the cell's centre, where a floor that ignored the spill would be too high."""
    rng = random.Random(1)
    spill = 0
    for _ in range(points):
        point = LatLng(rng.uniform(-60, 60), rng.uniform(-170, 170))
        fine = h3i.latlng_to_cell(point.lat, point.lng, levels[0])
        for level in levels:
            cell = h3i.cell_to_parent(fine, level)
            clat, clng = h3i.cell_to_latlng(cell)
            query = LatLng(point.lat + (point.lat - clat) * 0.05,
                           point.lng + (point.lng - clng) * 0.05)
            assert haversine_m(query, point) >= cell_floor_m(query, cell, levels[0])
            origin = h3i.grid_ring(cell, 1)[0]          # the point's cell is in its ring 1
            ahead = _disk(origin, 0, 0, levels[0])   # ring 0, then ring 1 past it
            assert not ahead.clear_beyond(query, haversine_m(query, point))
            spill += cell != h3i.latlng_to_cell(point.lat, point.lng, level)
    assert spill > 0  # the sample does hold points outside their logical parent's hexagon


def test_integer_parent_matches_h3() -> None:
    """`parent_int` (bit arithmetic on the hot path) agrees with h3 everywhere."""
    rng = random.Random(3)
    for _ in range(500):
        lat, lng = rng.uniform(-89, 89), rng.uniform(-179.9, 179.9)
        resolution = rng.randrange(1, 16)
        cell = h3i.latlng_to_cell(lat, lng, resolution)
        for parent_res in range(resolution + 1):
            assert parent_int(cell, parent_res) == h3i.cell_to_parent(cell, parent_res)


def _span(cell: int, layout: KeyLayout) -> tuple[int, int, int]:
    """`score_span`'s bucket, lowest and highest score, read back from its texts."""
    raw, out = score_span(cell, layout.score_mask, layout.bucket_shift), []
    while raw:
        out.append(int(raw[1:1 + raw[0]]))
        raw = raw[1 + raw[0]:]
    bucket, low, high = out
    return bucket, low, high


def test_drivers_of_one_cell_get_different_scores_inside_every_level_range() -> None:
    levels = (11, 10, 9, 8)
    layout = KeyLayout("rh", 3, levels)
    cell = h3i.latlng_to_cell(40.758, -73.9855, levels[0])
    ids = [uuid.UUID(int=(i * 7919) << 64 | i * 104_729).bytes for i in range(200)]
    scores = [layout.score(member, cell) for member in ids]
    assert len(set(scores)) == len(scores)          # no two tie: no id comparisons in Redis
    untied = cell & layout.score_mask               # as scored before the tie-break (7s)
    every = [*scores, untied]
    siblings = [c for c in h3i.grid_disk(cell, 2) if c != cell]
    for level in levels:
        bucket, low, high = _span(h3i.cell_to_parent(cell, level), layout)
        assert all(low <= s <= high and s >> layout.bucket_shift == bucket
                   for s in every)
        if level == levels[0]:                      # no other cell's driver reads as this one's
            for other in siblings:
                _, olow, ohigh = _span(other, layout)
                assert not any(olow <= s <= ohigh for s in every)
    assert KeyLayout("rh", 3, levels, tiebreak=False).score(ids[0], cell) == untied
