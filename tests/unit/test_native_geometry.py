"""The search's ring geometry in C (`geo._native`) gives the Python reference's values, bit for
bit: the same cells with the same centres and reaches, the same records for the search script
and the same answer to whether anything beyond the rings can be nearer."""

import math
import random

import h3.api.basic_int as h3i
import pytest

from geo import search_geometry
from geo.cells import LatLng, reach
from geo.layout import KeyLayout
from geo.search_geometry import SearchDisk, SearchGeometry


def test_the_extension_is_built() -> None:
    assert search_geometry._native is not None, (
        "geo._native is missing: `pip install -e .` builds it where a C compiler is found")


def _geometries(levels: tuple[int, ...], max_cells: int) -> tuple[SearchGeometry, SearchGeometry]:
    layout = KeyLayout("rh", 3, levels)
    return tuple(  # type: ignore[return-value]
        SearchGeometry(levels[0], levels[-1], layout.score_mask, layout.bucket_shift,
                       layout.region_keep, max_cells=max_cells, native=native)
        for native in (True, False))


def _places(rng: random.Random, levels: tuple[int, ...]) -> list[tuple[float, float]]:
    """All over the globe, then across the antimeridian, near the poles, at pentagons."""
    places = [(rng.uniform(-85, 85), rng.uniform(-180, 180)) for _ in range(50)]
    places += [(rng.uniform(-60, 60), rng.choice([-1, 1]) * rng.uniform(178.5, 180))
               for _ in range(10)]
    places += [(rng.choice([-1, 1]) * rng.uniform(86, 89.99), rng.uniform(-180, 180))
               for _ in range(10)]
    places += [h3i.cell_to_latlng(p) for p in h3i.get_pentagons(levels[-1])][:6]
    return places


@pytest.mark.parametrize(("levels", "max_cells"), [
    ((11, 10, 9, 8), 262_144), ((10, 9, 8), 262_144), ((9,), 262_144), ((12, 11, 10), 262_144),
    ((11, 10, 9, 8), 40),      # tables emptied while a disk or a walk is being built
])
def test_native_disks_equal_the_python_reference(levels: tuple[int, ...],
                                                 max_cells: int) -> None:
    rng = random.Random(sum(levels) + max_cells)
    native, python = _geometries(levels, max_cells)
    native_levels = levels[:-1] or levels      # the coarsest level's walks stay in Python
    for lat, lng in _places(rng, levels):
        if rng.random() < 0.5:
            native.warm(h3i.latlng_to_cell(lat, lng, levels[-1]))
        origin = h3i.latlng_to_cell(lat, lng, rng.choice(native_levels))
        first = rng.choice([0, 0, 1, 3])
        last = first + rng.choice([0, 1, 2, 4])
        ours, reference = native.disk(origin, first, last), python.disk(origin, first, last)
        assert not isinstance(ours, SearchDisk) and isinstance(reference, SearchDisk)
        cells, outer, region, cos_low, centre, near_m = ours.view()  # type: ignore[attr-defined]
        assert cells == reference.cells, hex(origin)
        assert outer == tuple(cell[:3] for cell in reference.outer)
        assert (region, cos_low, centre) == (reference.region, reference.cos_low,
                                             reference.centre)
        assert near_m == reference.near_m or math.isinf(near_m) == math.isinf(reference.near_m)
        size_deg = 10 * h3i.average_hexagon_edge_length(h3i.get_resolution(origin), "m") / 111e3
        clat, clng = centre
        for _ in range(8):
            point = LatLng(max(-90.0, min(90.0, clat + rng.uniform(-size_deg, size_deg))),
                           max(-180.0, min(180.0, clng + rng.uniform(-size_deg, size_deg))))
            limit = rng.choice([0.0, 1.0, 50.0, 400.0, 5_000.0, 1e7])
            assert ours.records(point, limit) == reference.records(point, limit)
            assert ours.clear_beyond(point, limit) == reference.clear_beyond(point, limit)


@pytest.mark.parametrize("levels", [(11, 10, 9, 8), (10, 9, 8), (12, 11, 10)])
def test_native_walks_equal_the_python_reference(levels: tuple[int, ...]) -> None:
    """A coarse cell's walked reach (`geo.cells.reach`), as the warm-up and the coarsest
    level's disks take it from C."""
    rng = random.Random(len(levels))
    native, _ = _geometries(levels, 262_144)
    for lat, lng in _places(rng, levels)[::3]:
        for level in levels:
            cell = h3i.latlng_to_cell(lat, lng, level)
            assert native._walk(cell) == reach(cell, levels[0]), hex(cell)


def test_the_coarsest_level_keeps_its_bounded_walks_in_python() -> None:
    native, _ = _geometries((11, 10, 9, 8), 262_144)
    cell = h3i.latlng_to_cell(40.7, -73.9, 8)
    assert isinstance(native.disk(cell, 0, 2), SearchDisk)
    assert not isinstance(native.disk(h3i.cell_to_center_child(cell, 9), 0, 2), SearchDisk)


def test_native_disks_refuse_bad_input() -> None:
    layout = KeyLayout("rh", 3, (11, 10, 9, 8))
    native = search_geometry._native.Geometry(  # type: ignore[union-attr]
        11, layout.score_mask, layout.bucket_shift, layout.region_keep & search_geometry.UINT64)
    cell = h3i.latlng_to_cell(40.7, -73.9, 11)
    with pytest.raises(ValueError):
        native.disk(cell, 2, 1)
    with pytest.raises(ValueError):
        native.disk(h3i.cell_to_center_child(cell, 12), 0, 2)
    with pytest.raises(ValueError):
        native.disk(0, 0, 2)
    with pytest.raises(OverflowError):
        native.disk(-1, 0, 2)
    with pytest.raises(ValueError):
        native.reach(h3i.cell_to_center_child(cell, 12))
    with pytest.raises(TypeError):
        native.disk(cell, 0, 2).records(LatLng(40.7, -73.9))
