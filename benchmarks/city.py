"""A seeded 30 km x 30 km city: a dense centre, a few hotspots, and sparse edges."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass

from geo.cells import LatLng

CENTRE = LatLng(40.7580, -73.9855)
HALF_SIDE_M = 15_000  # 30 km x 30 km = 900 km²
M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class City:
    ids: list[uuid.UUID]
    points: list[LatLng]


def to_latlng(north_m: float, east_m: float) -> LatLng:
    return LatLng(CENTRE.lat + north_m / M_PER_DEG_LAT,
                  CENTRE.lng + east_m / (M_PER_DEG_LAT * math.cos(math.radians(CENTRE.lat))))


def sample_offset(rng: random.Random) -> tuple[float, float]:
    """55% around the centre (sigma 3 km), 30% around hotspots (sigma 1.2 km), 15% uniform."""
    hotspots = ((6_000, -4_000), (-7_000, 5_000), (3_000, 9_000), (-9_000, -8_000))
    while True:
        roll = rng.random()
        if roll < 0.55:
            n, e = rng.gauss(0, 3_000), rng.gauss(0, 3_000)
        elif roll < 0.85:
            hn, he = hotspots[rng.randrange(len(hotspots))]
            n, e = rng.gauss(hn, 1_200), rng.gauss(he, 1_200)
        else:
            n, e = rng.uniform(-HALF_SIDE_M, HALF_SIDE_M), rng.uniform(-HALF_SIDE_M, HALF_SIDE_M)
        if abs(n) <= HALF_SIDE_M and abs(e) <= HALF_SIDE_M:
            return n, e


def make_city(drivers: int, seed: int = 42) -> City:
    rng = random.Random(seed)
    ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(drivers)]
    return City(ids, [to_latlng(*sample_offset(rng)) for _ in range(drivers)])


def query_points(count: int, seed: int = 7) -> list[LatLng]:
    """Where riders ask from: the same mix as drivers (demand follows density)."""
    rng = random.Random(seed)
    return [to_latlng(*sample_offset(rng)) for _ in range(count)]


def moved(points: list[LatLng], seed: int, step_m: float = 80) -> list[LatLng]:
    """Every driver a few tens of metres further, as after one ping interval."""
    rng = random.Random(seed)
    out = []
    for p in points:
        angle = rng.uniform(0, 2 * math.pi)
        out.append(LatLng(p.lat + step_m * math.cos(angle) / M_PER_DEG_LAT,
                          p.lng + step_m * math.sin(angle)
                          / (M_PER_DEG_LAT * math.cos(math.radians(p.lat)))))
    return out
