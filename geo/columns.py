"""PostGIS column types and conversions (lng-lat order only here, where PostGIS needs it)."""

from __future__ import annotations

import struct
from typing import Any

from geoalchemy2 import Geography, WKBElement, WKTElement

from geo.cells import LatLng

_SRID_FLAG = 0x20000000


def geography_point() -> Geography:
    return Geography(geometry_type="POINT", srid=4326, spatial_index=True)


def to_point(point: LatLng) -> WKTElement:
    return WKTElement(f"POINT({point.lng!r} {point.lat!r})", srid=4326)


def from_point(value: Any) -> LatLng:
    """Decode a point read back from PostGIS (EWKB) into a LatLng."""
    if isinstance(value, WKTElement):
        lng, lat = value.data.removeprefix("SRID=4326;").strip("POINT() ").split()
        return LatLng(float(lat), float(lng))
    if not isinstance(value, WKBElement):
        raise TypeError(f"not a PostGIS point: {value!r}")
    raw = bytes.fromhex(value.data) if isinstance(value.data, str) else bytes(value.data)
    order = "<" if raw[0] == 1 else ">"
    (kind,) = struct.unpack_from(order + "I", raw, 1)
    offset = 9 if kind & _SRID_FLAG else 5
    lng, lat = struct.unpack_from(order + "dd", raw, offset)
    return LatLng(lat, lng)
