"""Loading the same drivers into the baselines' structures."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import redis

from geo.cells import LatLng


def geoadd_all(client: redis.Redis, key: str, ids: Sequence[uuid.UUID],
               points: Sequence[LatLng], chunk: int = 10_000) -> None:
    """GEOADD every driver (16-byte members), `chunk` members per command."""
    for i in range(0, len(ids), chunk):
        values: list[bytes | float] = []
        for driver, p in zip(ids[i:i + chunk], points[i:i + chunk], strict=True):
            values += [p.lng, p.lat, driver.bytes]
        client.geoadd(key, values)
