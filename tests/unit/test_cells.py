"""Geo hygiene at the edges: coordinates are checked before H3; the ring bound is a bound."""

import math
import random

import h3
import h3.api.basic_int as h3i
import pytest

from geo.cells import LatLng, cell_floor_m, cell_of, haversine_m, ring, ring_gap_m
from geo.index import parent_int


@pytest.mark.parametrize(("lat", "lng"), [(999, 10), (-91, 0), (0, 181), (math.nan, 0),
                                          (0, math.inf)])
def test_impossible_coordinates_never_reach_h3(lat: float, lng: float) -> None:
    with pytest.raises(ValueError):
        LatLng(lat, lng)


def test_haversine_known_distance() -> None:
    # One degree of latitude is ~111.2 km.
    assert haversine_m(LatLng(0, 0), LatLng(1, 0)) == pytest.approx(111_195, rel=1e-3)


@pytest.mark.parametrize("resolution", [7, 9, 10])
def test_ring_gap_is_a_lower_bound(resolution: int) -> None:
    rng = random.Random(resolution)
    for _ in range(40):
        origin = LatLng(rng.uniform(-60, 60), rng.uniform(-179, 179))
        cell = cell_of(origin, resolution)
        for k in range(2, 6):
            bound = ring_gap_m(int(cell, 16), k)
            for other in (f"{c:x}" for c in ring(int(cell, 16), k)):
                for _ in range(3):  # random points inside both cells
                    a = _point_in(cell, rng)
                    b = _point_in(other, rng)
                    assert haversine_m(a, b) >= bound


def _point_in(cell: str, rng: random.Random) -> LatLng:
    boundary = h3.cell_to_boundary(cell)
    centre = h3.cell_to_latlng(cell)
    lat, lng = boundary[rng.randrange(len(boundary))]
    f = rng.random()
    return LatLng(centre[0] + (lat - centre[0]) * f, centre[1] + (lng - centre[1]) * f)


@pytest.mark.parametrize("resolution", [7, 8, 9, 10, 11])
def test_cell_floor_is_a_lower_bound(resolution: int) -> None:
    """No point of a cell, its vertices included, lies nearer than the cell's floor; points
    that H3 itself puts in the cell are checked too."""
    rng = random.Random(resolution)
    for _ in range(60):
        query = LatLng(rng.uniform(-85, 85), rng.uniform(-179, 179))
        origin = h3i.latlng_to_cell(query.lat, query.lng, resolution)
        for cell in (c for k in range(6) for c in ring(origin, k)):
            floor = cell_floor_m(query, cell)
            inside = [LatLng(*v) for v in h3i.cell_to_boundary(cell)]
            inside += [_point_in(f"{cell:x}", rng) for _ in range(5)]
            for point in inside:
                assert haversine_m(query, point) >= floor


def test_cell_floor_never_misses_points_h3_assigns() -> None:
    """Points scattered around a query: each lies no nearer than its own H3 cell's floor."""
    rng = random.Random(1)
    for _ in range(3000):
        query = LatLng(rng.uniform(-60, 60), rng.uniform(-170, 170))
        point = LatLng(query.lat + rng.uniform(-0.01, 0.01), query.lng + rng.uniform(-0.01, 0.01))
        for resolution in (8, 9, 10):
            cell = h3i.latlng_to_cell(point.lat, point.lng, resolution)
            assert haversine_m(query, point) >= cell_floor_m(query, cell)


def test_integer_parent_matches_h3() -> None:
    """`parent_int` (bit arithmetic on the hot path) agrees with h3 everywhere."""
    rng = random.Random(3)
    for _ in range(500):
        lat, lng = rng.uniform(-89, 89), rng.uniform(-179.9, 179.9)
        resolution = rng.randrange(1, 16)
        cell = h3i.latlng_to_cell(lat, lng, resolution)
        for parent_res in range(resolution + 1):
            assert parent_int(cell, parent_res) == h3i.cell_to_parent(cell, parent_res)
