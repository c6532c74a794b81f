"""The live driver index: H3 cells in Redis, moved atomically by server-side scripts.

Key design (README, "Driver index"): every key of a region shares the hash tag `{R}`, R being
the cell's H3 parent at `region_resolution`, so a region lives on one Redis Cluster slot.
Drivers' directory records live in `DIRECTORY_SHARDS` hashes tagged `{sNN}`.
- `P:dir:{sNN}`            hash driver -> directory record (position, time, status, ...)
- `P:{R}:c:<cell>:<prod>`  hash driver -> (lat, lng, ts_ms, status, heading)
- `P:{R}:at`               hash driver -> (ts_ms, cell, product): where the driver sits in R
- `P:{R}:gone`             hash driver -> ts_ms tombstones of drivers that left R
- `P:regions`              set of regions seen (for the sweeper)
A batch of pings costs two round trips: one claim script per directory shard (serialising
each driver's pings by time), then one place script per region that moves cell entries
atomically. A move to another region evicts the old one with a tombstone, so no script ever
spans two slots. Drivers are 16-byte ids; records travel as fixed-width binary.
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
from typing import Any

import h3.api.basic_int as h3i
import redis

from core.products import PRODUCT_CODES, Product
from geo.cells import LatLng, cell_of, ring_gap_m, rings

DIRECTORY_SHARDS = 64
DIRECTORY = struct.Struct("<dddBBhBdd15s15s")
CLAIM_IN = struct.Struct("<16sdddh15s15s")
CLAIM_OUT = struct.Struct("<BBBB15s")
PLACE_IN = struct.Struct("<16s15sBdddhB")
EVICT_IN = struct.Struct("<16sd")
NO_CELL = b"\0" * 15
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
_STATUSES: dict[int, DriverStatus | None] = {0: None, **{s.value: s for s in DriverStatus}}


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


REGION_SCRIPTS = frozenset({"place", "evict", "status", "sweep"})


def load_script(name: str) -> str:
    """A script's source; the region scripts get the shared helpers of `region.lua` first."""
    folder = resources.files("geo").joinpath("lua")
    source = folder.joinpath(f"{name}.lua").read_text()
    if name in REGION_SCRIPTS:
        source = folder.joinpath("region.lua").read_text() + "\n" + source
    return source


def _as_bytes(value: bytes | str) -> bytes:
    """The index's client never decodes replies; this narrows redis-py's reply type."""
    return value if isinstance(value, bytes) else value.encode()


def _cell_text(raw: bytes) -> str | None:
    return None if raw == NO_CELL else raw.decode()


# H3 index bits: resolution in bits 52-55, then one 3-bit digit per resolution 1..15.
_RES_MASK = 0xF << 52


def parent_int(cell: int, resolution: int) -> int:
    """`h3.cell_to_parent` on the integer form, in a few integer operations (a hot path)."""
    unused = (1 << (3 * (15 - resolution))) - 1
    return (cell & ~_RES_MASK & ~unused) | (resolution << 52) | unused


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
        idle_offline_s: float = 3600.0,
    ) -> None:
        self.client = client
        self.resolution = resolution
        self.region_resolution = region_resolution
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.max_speed_mps = max_speed_kmh / 3.6
        self.sample_ms = int(sample_s * 1000)
        self.idle_offline_ms = int(idle_offline_s * 1000)
        self._shard_keys = [f"{prefix}:dir:{{s{i:02d}}}" for i in range(DIRECTORY_SHARDS)]
        scripts = ("claim", "place", "evict", "status", "dir_status", "search", "sweep",
                   "sweep_directory")
        self._scripts = {name: client.register_script(load_script(name)) for name in scripts}

    # -- keys -------------------------------------------------------------------------------
    def directory_key(self, driver_id: uuid.UUID) -> str:
        return self._shard_keys[driver_id.bytes[0] % DIRECTORY_SHARDS]

    def region_prefix(self, region: str) -> str:
        return f"{self.prefix}:{{{region}}}"

    def region_of(self, cell: str) -> str:
        return f"{parent_int(int(cell, 16), self.region_resolution):x}"

    def _run(self, name: str, keys: Sequence[Any] = (), args: Sequence[Any] = (),
             client: Any = None) -> Any:
        return self._scripts[name](keys=list(keys), args=list(args), client=client)

    # -- lifecycle --------------------------------------------------------------------------
    def go_online(self, driver_id: uuid.UUID, product: Product, *, now_ms: int) -> None:
        """Idempotent: an online driver keeps its position and status."""
        record = DIRECTORY.pack(0, 0, 0, DriverStatus.AVAILABLE, PRODUCT_CODES[product], -1, 0, 0,
                                now_ms, NO_CELL, NO_CELL)
        self.client.hsetnx(self.directory_key(driver_id), driver_id.bytes, record)

    def go_offline(self, driver_id: uuid.UUID) -> bool:
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(self.directory_key(driver_id), driver_id.bytes)
        pipe.hdel(self.directory_key(driver_id), driver_id.bytes)
        raw, _ = pipe.execute()
        if raw is None:
            return False
        state = self._decode(driver_id, raw)
        if state.region:
            self._run("evict", args=[self.region_prefix(state.region),
                                     EVICT_IN.pack(driver_id.bytes, state.ts_ms + 1)])
        return True

    def set_status(self, driver_id: uuid.UUID, status: DriverStatus) -> bool:
        region = self._run("dir_status", keys=[self.directory_key(driver_id)],
                           args=[driver_id.bytes, int(status)])
        if region is None:
            return False
        if region != NO_CELL:
            self._run("status", args=[self.region_prefix(region.decode()), driver_id.bytes,
                                      int(status)])
        return True

    def get(self, driver_id: uuid.UUID) -> DriverState | None:
        raw = self.client.hget(self.directory_key(driver_id), driver_id.bytes)
        return None if raw is None else self._decode(driver_id, _as_bytes(raw))

    @staticmethod
    def _decode(driver_id: uuid.UUID, raw: bytes) -> DriverState:
        lat, lng, ts, status, pcode, heading, flag, _, _, cell, region = DIRECTORY.unpack(raw)
        return DriverState(
            driver_id=driver_id,
            point=LatLng(lat, lng) if ts > 0 else None,
            ts_ms=int(ts),
            status=DriverStatus(status),
            product=CODE_PRODUCTS[pcode],
            heading_deg=heading,
            cell=_cell_text(cell),
            region=_cell_text(region),
            flagged=bool(flag),
        )

    def member(self, driver_id: uuid.UUID) -> bytes:
        """How a driver is named inside the index's hashes."""
        return driver_id.bytes

    # -- pings ------------------------------------------------------------------------------
    def ingest(self, updates: Sequence[PositionUpdate]) -> list[IngestResult]:
        """Apply one newest position per driver; two pipelined round trips for the batch."""
        shards: dict[int, list[int]] = defaultdict(list)
        records: list[bytes] = []
        places_of: list[tuple[bytes, bytes, bytes]] = []
        to_cell, res, region_res = h3i.latlng_to_cell, self.resolution, self.region_resolution
        for i, u in enumerate(updates):
            member, lat, lng = u.driver_id.bytes, u.point.lat, u.point.lng
            cell_int = to_cell(lat, lng, res)
            cell = b"%x" % cell_int
            region = b"%x" % parent_int(cell_int, region_res)
            records.append(CLAIM_IN.pack(member, lat, lng, u.ts_ms, u.heading_deg, cell, region))
            places_of.append((member, cell, region))
            shards[member[0] % DIRECTORY_SHARDS].append(i)
        pipe = self.client.pipeline(transaction=False)
        for shard, members in shards.items():
            self._run("claim", keys=[self._shard_keys[shard]], client=pipe, args=[
                b"".join(records[i] for i in members), self.max_speed_mps, self.sample_ms])
        replies = pipe.execute()
        outcomes: list[tuple[int, int, int, int, bytes]] = [(0, 0, 0, 0, NO_CELL)] * len(updates)
        for members, reply in zip(shards.values(), replies, strict=True):
            for j, i in enumerate(members):
                outcomes[i] = CLAIM_OUT.unpack_from(reply, j * CLAIM_OUT.size)
        places: dict[bytes, list[bytes]] = defaultdict(list)
        evictions: dict[bytes, list[bytes]] = defaultdict(list)
        results: list[IngestResult] = []
        for u, (member, cell, region), (code, status, pcode, publish, old) in zip(
                updates, places_of, outcomes, strict=True):
            outcome = _OUTCOMES[code]
            if outcome is Outcome.APPLIED:
                places[region].append(PLACE_IN.pack(member, cell, pcode, u.ts_ms, u.point.lat,
                                                    u.point.lng, u.heading_deg, status))
            elif outcome is Outcome.IMPOSSIBLE:
                evictions[region].append(EVICT_IN.pack(member, u.ts_ms))
            if old != NO_CELL and old != region and outcome in (Outcome.APPLIED,
                                                                Outcome.IMPOSSIBLE):
                evictions[old].append(EVICT_IN.pack(member, u.ts_ms))
            results.append(IngestResult(u.driver_id, outcome, publish == 1, _STATUSES[status],
                                        CODE_PRODUCTS[pcode] if status else None))
        if places or evictions:
            pipe = self.client.pipeline(transaction=False)
            for region, blobs in places.items():
                self._run("place", args=[self.region_prefix(region.decode()), b"".join(blobs)],
                          client=pipe)
            for region, blobs in evictions.items():
                self._run("evict", args=[self.region_prefix(region.decode()), b"".join(blobs)],
                          client=pipe)
            if places:
                pipe.sadd(f"{self.prefix}:regions", *[r.decode() for r in places])
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
            replies.append(self._run("search", args=args, client=pipe))
        if pipe is not None:
            replies = pipe.execute()
        for flat in replies:
            for i in range(0, len(flat), 6):
                driver_id = uuid.UUID(bytes=flat[i])
                found[driver_id] = NearbyDriver(
                    driver_id=driver_id,
                    point=LatLng(float(flat[i + 2]), float(flat[i + 3])),
                    distance_m=float(flat[i + 1]),
                    ts_ms=int(flat[i + 4]),
                    heading_deg=int(flat[i + 5]),
                )

    # -- freshness --------------------------------------------------------------------------
    def sweep(self, *, now_ms: int, batch: int = 1000, tombstone_keep_s: float = 600) -> int:
        """Remove drivers silent for longer than the TTL from their cells, forget drivers idle
        for `idle_offline_s`; returns how many cell entries were removed."""
        removed = 0
        cutoff = now_ms - self.ttl_ms
        tomb_cutoff = now_ms - int(tombstone_keep_s * 1000)
        for raw in self.client.smembers(f"{self.prefix}:regions"):
            prefix = self.region_prefix(_as_bytes(raw).decode())
            removed += self._scan("sweep", [], [prefix], [cutoff, tomb_cutoff], batch)
        for shard in range(DIRECTORY_SHARDS):
            key = f"{self.prefix}:dir:{{s{shard:02d}}}"
            self._scan("sweep_directory", [key], [], [now_ms - self.idle_offline_ms], batch)
        return removed

    def _scan(self, script: str, keys: list[str], head: list[Any], tail: list[Any],
              batch: int) -> int:
        cursor: bytes | str = "0"
        total = 0
        while True:
            cursor, n = self._run(script, keys=keys, args=[*head, cursor, batch, *tail])
            total += int(n)
            if cursor in (b"0", "0"):
                return total


def eta_bounded_radius_m(eta_s: float, speed_mps: float, detour_factor: float) -> float:
    """The straight-line radius that an ETA bound allows (for ETA-bounded searches)."""
    return max(0.0, eta_s * speed_mps / detour_factor) if math.isfinite(eta_s) else math.inf
