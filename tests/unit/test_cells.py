"""Geo hygiene at the edges: coordinates are checked before H3; the ring bound is a bound."""

import math
import random

import h3
import h3.api.basic_int as h3i
import pytest

from geo.cells import LatLng, cell_of, haversine_m, ring_gap_m, rings
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
        for k, ring in enumerate(rings(int(cell, 16), 2, 5), start=2):
            bound = ring_gap_m(cell, k)
            for other in (f"{c:x}" for c in ring):
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


def test_integer_parent_matches_h3() -> None:
    """`parent_int` (bit arithmetic on the hot path) agrees with h3 everywhere."""
    rng = random.Random(3)
    for _ in range(500):
        lat, lng = rng.uniform(-89, 89), rng.uniform(-179.9, 179.9)
        resolution = rng.randrange(1, 16)
        cell = h3i.latlng_to_cell(lat, lng, resolution)
        for parent_res in range(resolution + 1):
            assert parent_int(cell, parent_res) == h3i.cell_to_parent(cell, parent_res)
