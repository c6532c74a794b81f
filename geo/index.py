"""The live driver index: H3 cells in Redis, moved atomically by server-side scripts.

Key design (see README, "Driver index"): every key of a region shares the hash tag `{R}`,
R being the driver's H3 parent at `region_resolution`, so a region lives on one Redis Cluster
slot; each driver's directory key has its own tag `{driver}`.
- `P:d:{driver}`         directory: packed position, time, status, product, flags
- `P:{R}:c:<cell>:<prod>` hash driver -> packed (lat, lng, ts_ms, status, heading)
- `P:{R}:at`              hash driver -> "ts|cell|product" (where the driver sits in R)
- `P:{R}:gone`            hash driver -> ts_ms tombstones of drivers that left R
- `P:regions`             set of regions seen (for the sweeper)
A ping is claimed in the directory (serialising the driver's pings by time), then placed in
its region by one script that moves the cell entry atomically. A move to another region
evicts the old one with a tombstone, so no script ever spans two slots.
"""

from __future__ import annotations

import math
import struct
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from importlib import resources

import redis

from core.products import PRODUCT_CODES, Product
from geo.cells import LatLng, cell_of, parent_of, ring_gap_m, rings

DIR_FORMAT = struct.Struct("<dddBBhBd")
ENTRY_FORMAT = struct.Struct("<dddBh")
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


_OUTCOMES = {0: Outcome.OFFLINE, 1: Outcome.OUT_OF_ORDER, 2: Outcome.IMPOSSIBLE, 3: Outcome.APPLIED}


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
    publish: bool = False
    status: DriverStatus | None = None
    product: Product | None = None
    cell: str | None = None


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
class NearbyDriver:
    driver_id: uuid.UUID
    point: LatLng
    distance_m: float
    ts_ms: int
    heading_deg: int

    def age_s(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.ts_ms) / 1000)


def load_script(name: str) -> str:
    return resources.files("geo").joinpath("lua", f"{name}.lua").read_text()


class RedisDriverIndex:
    """Online drivers by H3 cell, with freshness, status and nearest-K search."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        resolution: int = 9,
        region_resolution: int = 3,
        prefix: str = "rh",
        ttl_s: float = 30.0,
        max_speed_kmh: float = 250.0,
        sample_s: float = 10.0,
        directory_ttl_s: float = 24 * 3600,
    ) -> None:
        self.client = client
        self.resolution = resolution
        self.region_resolution = region_resolution
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.max_speed_mps = max_speed_kmh / 3.6
        self.sample_ms = int(sample_s * 1000)
        self.directory_ttl_ms = int(directory_ttl_s * 1000)
        self._claim = client.register_script(load_script("claim"))
        self._place = client.register_script(load_script("place"))
        self._evict = client.register_script(load_script("evict"))
        self._status = client.register_script(load_script("status"))
        self._dir_status = client.register_script(load_script("dir_status"))
        self._search = client.register_script(load_script("search"))
        self._sweep = client.register_script(load_script("sweep"))

    # -- keys -------------------------------------------------------------------------------
    def directory_key(self, driver_id: uuid.UUID) -> str:
        return f"{self.prefix}:d:{{{driver_id.hex}}}"

    def region_prefix(self, region: str) -> str:
        return f"{self.prefix}:{{{region}}}"

    def region_of(self, cell: str) -> str:
        return parent_of(cell, self.region_resolution)

    # -- lifecycle --------------------------------------------------------------------------
    def go_online(self, driver_id: uuid.UUID, product: Product) -> None:
        """Idempotent: an online driver keeps its position and status."""
        packed = DIR_FORMAT.pack(0, 0, 0, DriverStatus.AVAILABLE, PRODUCT_CODES[product], -1, 0, 0)
        self.client.set(
            self.directory_key(driver_id), packed + b"|", nx=True, px=self.directory_ttl_ms
        )

    def go_offline(self, driver_id: uuid.UUID) -> bool:
        raw = self.client.getdel(self.directory_key(driver_id))
        if raw is None:
            return False
        state = self._decode_directory(driver_id, raw)
        if state.region:
            self._evict(args=[self.region_prefix(state.region), driver_id.hex, state.ts_ms + 1])
        return True

    def set_status(self, driver_id: uuid.UUID, status: DriverStatus) -> bool:
        found, *rest = self._dir_status(keys=[self.directory_key(driver_id)], args=[int(status)])
        if not found:
            return False
        region = rest[0].decode()
        if region:
            self._status(args=[self.region_prefix(region), driver_id.hex, int(status)])
        return True

    def get(self, driver_id: uuid.UUID) -> DriverState | None:
        raw = self.client.get(self.directory_key(driver_id))
        return None if raw is None else self._decode_directory(driver_id, raw)

    @staticmethod
    def _decode_directory(driver_id: uuid.UUID, raw: bytes) -> DriverState:
        lat, lng, ts, status, pcode, heading, flag, _ = DIR_FORMAT.unpack_from(raw)
        cell, _, region = raw[DIR_FORMAT.size :].decode().partition("|")
        return DriverState(
            driver_id=driver_id,
            point=LatLng(lat, lng) if ts > 0 else None,
            ts_ms=int(ts),
            status=DriverStatus(status),
            product=CODE_PRODUCTS[pcode],
            heading_deg=heading,
            cell=cell or None,
            region=region or None,
            flagged=bool(flag),
        )

    # -- pings ------------------------------------------------------------------------------
    def ingest(self, updates: Sequence[PositionUpdate]) -> list[IngestResult]:
        """Apply one newest position per driver; two pipelined round trips for the batch."""
        cells = [cell_of(u.point, self.resolution) for u in updates]
        regions = [self.region_of(c) for c in cells]
        pipe = self.client.pipeline(transaction=False)
        for u, cell, region in zip(updates, cells, regions, strict=True):
            self._claim(
                keys=[self.directory_key(u.driver_id)],
                args=[u.ts_ms, repr(u.point.lat), repr(u.point.lng), cell, region,
                      u.heading_deg, self.max_speed_mps, self.sample_ms, self.directory_ttl_ms],
                client=pipe,
            )
        claims = pipe.execute()
        places: dict[str, list[object]] = defaultdict(list)
        evictions: list[tuple[str, str, int]] = []
        results: list[IngestResult] = []
        for u, cell, region, claim in zip(updates, cells, regions, claims, strict=True):
            outcome = _OUTCOMES[claim[0]]
            if outcome is Outcome.OFFLINE or outcome is Outcome.OUT_OF_ORDER:
                results.append(IngestResult(u.driver_id, outcome))
                continue
            status, pcode, old_region = claim[1], claim[2], claim[3].decode()
            if outcome is Outcome.IMPOSSIBLE:
                if old_region:
                    evictions.append((old_region, u.driver_id.hex, u.ts_ms))
                evictions.append((region, u.driver_id.hex, u.ts_ms))
            else:
                places[region].extend([u.driver_id.hex, cell, pcode, u.ts_ms, repr(u.point.lat),
                                       repr(u.point.lng), u.heading_deg, status])
                if old_region and old_region != region:
                    evictions.append((old_region, u.driver_id.hex, u.ts_ms))
            results.append(IngestResult(u.driver_id, outcome, publish=bool(claim[5]),
                                        status=DriverStatus(status),
                                        product=CODE_PRODUCTS[pcode], cell=cell))
        if places or evictions:
            pipe = self.client.pipeline(transaction=False)
            for region, args in places.items():
                self._place(args=[self.region_prefix(region), *args], client=pipe)
            for region, member, ts in evictions:
                self._evict(args=[self.region_prefix(region), member, ts], client=pipe)
            if places:
                pipe.sadd(f"{self.prefix}:regions", *places)
            pipe.execute()
        return results

    # -- search -----------------------------------------------------------------------------
    def nearby(
        self,
        center: LatLng,
        product: Product,
        *,
        k: int,
        radius_m: float,
        now_ms: int,
        status: DriverStatus = DriverStatus.AVAILABLE,
    ) -> list[NearbyDriver]:
        """The k nearest fresh drivers within radius_m, nearest first (ties by id)."""
        origin = cell_of(center, self.resolution)
        last_ring = 1
        while ring_gap_m(origin, last_ring + 1) <= radius_m:
            last_ring += 1
        pcode = PRODUCT_CODES[product]
        found: dict[uuid.UUID, NearbyDriver] = {}
        first, size = 0, 3
        while first <= last_ring:
            last = min(last_ring, first + size - 1)
            self._search_rings(origin, first, last, center, pcode, k, radius_m, now_ms,
                               status, found)
            best = sorted(found.values(), key=lambda d: (d.distance_m, d.driver_id.hex))[:k]
            if len(best) >= k and best[-1].distance_m <= ring_gap_m(origin, last + 1):
                return best
            first, size = last + 1, size * 2
        return sorted(found.values(), key=lambda d: (d.distance_m, d.driver_id.hex))[:k]

    def _search_rings(self, origin: str, first: int, last: int, center: LatLng, pcode: int,
                      k: int, radius_m: float, now_ms: int, status: DriverStatus,
                      found: dict[uuid.UUID, NearbyDriver]) -> None:
        width = last - first + 1
        by_region: dict[str, list[list[str]]] = defaultdict(lambda: [[] for _ in range(width)])
        for offset, ring in enumerate(rings(origin, first, last)):
            for cell in ring:
                by_region[self.region_of(cell)][offset].append(cell)
        head = [pcode, now_ms, self.ttl_ms, repr(center.lat), repr(center.lng), radius_m, k,
                int(status), last - first + 1]
        pipe = self.client.pipeline(transaction=False) if len(by_region) > 1 else None
        replies = []
        for region, per_ring in by_region.items():
            args: list[object] = [self.region_prefix(region), *head]
            for offset, cells in enumerate(per_ring):
                args.extend([len(cells), ring_gap_m(origin, first + offset + 1), *cells])
            replies.append(self._search(args=args, client=pipe))
        if pipe is not None:
            replies = pipe.execute()
        for flat in replies:
            for i in range(0, len(flat), 6):
                driver_id = uuid.UUID(flat[i].decode())
                found[driver_id] = NearbyDriver(
                    driver_id=driver_id,
                    point=LatLng(float(flat[i + 2]), float(flat[i + 3])),
                    distance_m=float(flat[i + 1]),
                    ts_ms=int(flat[i + 4]),
                    heading_deg=int(flat[i + 5]),
                )

    # -- freshness --------------------------------------------------------------------------
    def sweep(self, *, now_ms: int, batch: int = 1000, tombstone_keep_s: float = 600) -> int:
        """Remove drivers silent for longer than the TTL from their cells; returns how many."""
        removed = 0
        cutoff = now_ms - self.ttl_ms
        tomb_cutoff = now_ms - int(tombstone_keep_s * 1000)
        for raw in self.client.smembers(f"{self.prefix}:regions"):
            prefix = self.region_prefix(raw.decode())
            cursor: bytes | str = "0"
            while True:
                cursor, n = self._sweep(args=[prefix, cursor, batch, cutoff, tomb_cutoff])
                removed += int(n)
                if cursor in (b"0", "0"):
                    break
        return removed


def eta_bounded_radius_m(eta_s: float, speed_mps: float, detour_factor: float) -> float:
    """The straight-line radius that an ETA bound allows (for ETA-bounded searches)."""
    return max(0.0, eta_s * speed_mps / detour_factor) if math.isfinite(eta_s) else math.inf
