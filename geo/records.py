"""The live driver index's values, and the fixed-width binary records its Lua scripts share."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import NamedTuple

from core.products import PRODUCT_CODES, Product
from geo.cells import LatLng

# Records as the scripts read and write them (each script's header describes its own).
# A directory record: its head (see claim.lua), then the status version (see dir_status.lua),
# which records written before versions existed lack. 64 bytes: small enough for a hash's
# compact encoding (hash-max-listpack-value).
DIRECTORY_HEAD = struct.Struct("<dddBBhBdd15s")
DIRECTORY = struct.Struct("<dddBBhBdd15sI")
FLAGGED = 1           # the directory record's flag: its last accepted ping was impossible
LEFT_REGION = struct.Struct("<d15s")   # field id + b"mv": a crossing's time and the region left
MAX_STATUS_VERSION = 2**32 - 1   # ~136 years of a change a second, per driver
CLAIM_IN = struct.Struct("<16sdddh15s")
CLAIM_OUT = struct.Struct("<BBBB15sdI")   # see claim.lua
PLACE_IN = struct.Struct("<16sdddBBhdddI")   # id, then the `at` record: see place.lua
EVICT_IN = struct.Struct("<16sdd")   # id, ts, since: see evict.lua
SAMPLE = struct.Struct("<16sdddBBh")
QUERY = struct.Struct("<ddddHB")   # see search.lua
FOUND = struct.Struct("<d16sdddh")   # NearbyDriver's fields: see search.lua
FLOOR = struct.Struct("<d")
NO_REGION = b"\0" * 15
CODE_PRODUCTS = {code: product for product, code in PRODUCT_CODES.items()}


class DriverStatus(IntEnum):
    AVAILABLE = 1
    OFFERED = 2
    ON_TRIP = 3


class Outcome(StrEnum):
    APPLIED = "applied"
    OUT_OF_ORDER = "out_of_order"
    IMPOSSIBLE = "impossible"
    OFFLINE = "offline"
    RATE_LIMITED = "rate_limited"


# The claim script's codes.
OUTCOMES = {0: Outcome.OFFLINE, 1: Outcome.OUT_OF_ORDER, 2: Outcome.IMPOSSIBLE,
            3: Outcome.APPLIED, 4: Outcome.RATE_LIMITED}
STATUSES: dict[int, DriverStatus | None] = {0: None, **{s.value: s for s in DriverStatus}}


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    driver_id: uuid.UUID
    point: LatLng
    ts_ms: int
    heading_deg: int = -1


@dataclass(frozen=True, slots=True)
class IngestResult:
    driver_id: uuid.UUID
    outcome: Outcome
    status: DriverStatus | None = None
    product: Product | None = None


@dataclass(frozen=True, slots=True)
class Ingested:
    results: list[IngestResult]
    denied: frozenset[uuid.UUID]  # charged drivers that were over their rate


@dataclass(frozen=True, slots=True)
class DriverState:
    driver_id: uuid.UUID
    point: LatLng | None
    ts_ms: int
    status: DriverStatus
    product: Product
    heading_deg: int
    cell: str | None
    region: str | None
    flagged: bool


@dataclass(frozen=True, slots=True)
class LocationSample:
    driver_id: uuid.UUID
    point: LatLng
    ts_ms: int
    status: DriverStatus
    product: Product
    heading_deg: int


class NearbyDriver(NamedTuple):
    """One search result, as the search script packs it (`FOUND`), so a reply becomes results
    without a step per field. Tuples order nearest first (then by id, which is unique); the id
    and point are built only when asked for (the public nearby view never shows ids)."""

    distance_m: float
    id_bytes: bytes
    lat: float
    lng: float
    ts: float
    heading_deg: int

    @property
    def driver_id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.id_bytes)

    @property
    def point(self) -> LatLng:
        return LatLng(self.lat, self.lng)

    @property
    def ts_ms(self) -> int:
        return int(self.ts)

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.ts) / 1000)


def region_text(raw: bytes) -> str | None:
    """A region as records carry it (15 bytes, zeros for none), as text."""
    return None if raw == NO_REGION else raw.decode()


def as_bytes(value: bytes | str) -> bytes:
    """The index's client never decodes replies; this narrows redis-py's reply type."""
    return value if isinstance(value, bytes) else value.encode()
