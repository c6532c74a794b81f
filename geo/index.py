"""The live driver index: H3 cells in Redis, moved atomically by server-side scripts.

Key design (README, "Driver index"): every key of a region shares the hash tag `{R}`, R being
the cell's H3 parent at `region_resolution`, so a region lives on one Redis Cluster slot.
Drivers' directory records live in `DIRECTORY_SHARDS` hashes tagged `{sNN}`.
- `P:dir:{sNN}`            hash driver -> directory record (position, time, status, ...)
- `P:locs:{sNN}`           stream of location samples for the relay
- `P:{R}:z:<prod>:<B>`     sorted set of the drivers in bucket B (their cell at the coarsest
                           search level), scored by the digits of their finest H3 cell below
                           R: every search cell is one score range of one set
- `P:{R}:at`               hash driver -> position, ping time, product, status, heading, score,
                           arrival time (freshness); status 0 is a tombstone of a driver that
                           left R
- `P:regions`              set of regions seen (for the sweeper)
A batch of pings costs two round trips: one claim script per directory shard (serialising
each driver's pings by time), then one place script per region that re-scores each driver
(one ZADD: a driver has one score, so it is never in two cells of a region). A move to
another region evicts the old one with a tombstone, so no script ever spans two slots.
Drivers are 16-byte ids; records travel as fixed-width binary.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import operator
import struct
import threading
import uuid
from collections import defaultdict
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from importlib import resources
from typing import Any, NamedTuple

import h3.api.basic_int as h3i
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError

from core.products import PRODUCT_CODES, Product
from core.settings import MAX_LEVEL_SPAN
from geo.cells import (
    LatLng,
    Reach,
    cell_floors_m,
    cells_within,
    flat_floors_m,
    haversine_raw_m,
    lowest_cos,
    quick_reach,
    reach,
    ring,
)

DIRECTORY_SHARDS = 64
# Hash entries per sweep call. Each call holds Redis for its duration (one atomic step): ~0.4 ms
# at 250 entries here, which a search arriving meanwhile waits out; per-call overhead is ~2%.
SWEEP_BATCH = 250
HINT_CAPACITY = 200_000
WARM_CELLS = 200_000    # at most this many cells' geometry cached at start-up (cache: 262,144)
# Rings 0-2 of a level certify answers out to ~2.5 edges from the query (ring 3's floor).
CERTAIN_EDGES = 2.5
# At the coarsest level, rings 0..k certify at least ~1.2 k average edges (the next ring's
# floors from the origin's centre); a query sits up to ~1.5 edges off that centre.
COVER_EDGES_PER_RING = 1.2
COVER_SLACK_EDGES = 1.5
MAX_SEARCH_RADIUS_M = 50_000.0  # a city-scale search; wider ones belong to another tool
MAX_FINE_RINGS = 2       # beyond rings 0-2 a finer level hands over to the next coarser one
# Coarsest-level cells a disk may walk (`SearchGeometry`): rings 0-3 (37 cells), ~45 ms cold.
WALKS_PER_DISK = 40
# A search starts at the finest level whose rings 0-2 certify this much more than its area's
# hint: a query a little sparser than the last one there still takes one round trip (at 100k,
# 0.4% of new queries climb a level instead of 2%, for 0.5% more Redis work per query).
HINT_MARGIN = 1.3
DIRECTORY = struct.Struct("<dddBBhBdd15s")
CLAIM_IN = struct.Struct("<16sdddh15s")
CLAIM_OUT = struct.Struct("<BBBB15sd")   # see claim.lua
PLACE_IN = struct.Struct("<16sdddBBhddd")   # id, then the `at` record: see place.lua
EVICT_IN = struct.Struct("<16sdd")   # id, ts, since: see evict.lua
SAMPLE = struct.Struct("<16sdddBBh")
NO_REGION = b"\0" * 15
FLOOR = struct.Struct("<d")
QUERY = struct.Struct("<ddddHB")   # see search.lua
FIRST = operator.itemgetter(0)
FOUND = struct.Struct("<d16sdddh")   # NearbyDriver's fields: see search.lua
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


_OUTCOMES = {0: Outcome.OFFLINE, 1: Outcome.OUT_OF_ORDER, 2: Outcome.IMPOSSIBLE, 3: Outcome.APPLIED,
             4: Outcome.RATE_LIMITED}
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


REGION_SCRIPTS = frozenset({"place", "evict", "status", "sweep"})


def load_script(name: str) -> str:
    """A script's source; the region scripts get the shared helpers of `region.lua` first."""
    folder = resources.files("geo").joinpath("lua")
    source = folder.joinpath(f"{name}.lua").read_text()
    if name in REGION_SCRIPTS:
        source = folder.joinpath("region.lua").read_text() + "\n" + source
    return source


@dataclass(frozen=True, slots=True)
class Ingested:
    results: list[IngestResult]
    denied: frozenset[uuid.UUID]  # charged drivers that were over their rate


AnyRedis = redis.Redis | RedisCluster
AnyAsyncRedis = AsyncRedis | AsyncRedisCluster
Call = tuple[str, list[Any], list[Any]]  # script name (or SADD), keys, args
IngestPlan = Generator[list[Call], list[Any], Ingested]
SADD = "SADD"


class Scripts:
    """Lua scripts called by SHA (redis-py's Script objects add a SCRIPT EXISTS round trip to
    every pipeline). Loaded at start-up; reloaded once if Redis lost them (a restart)."""

    def __init__(self, client: AnyRedis, names: Sequence[str]) -> None:
        self._client = client
        self._sources = {name: load_script(name) for name in names}
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest()
                      for name, src in self._sources.items()}
        self._loaded = False
        self._held = threading.local()    # per thread: a connection of its own (`read`)

    def load(self) -> None:
        for source in self._sources.values():
            self._client.script_load(source)
        self._loaded = True

    def read(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """`call` for a read-only script, on a single Redis: each thread sends it over a
        connection it holds, skipping the pool's checkout, health check and observability
        wrappers (~25 us of a ~100 us round trip here). A call that fails on a dropped
        connection reconnects and runs once more (read-only: running it twice is harmless)."""
        if isinstance(self._client, RedisCluster):
            return self.call(name, keys, args)
        if not self._loaded:
            self.load()
        conn = getattr(self._held, "conn", None)
        if conn is None:
            pool = self._client.connection_pool
            conn = self._held.conn = pool.connection_class(**pool.connection_kwargs)
        packed = conn.pack_command("EVALSHA", self._shas[name], len(keys), *keys, *args)
        try:
            return _round_trip(conn, packed)
        except NoScriptError:
            self.load()
        except (redis.ConnectionError, redis.TimeoutError):
            conn.disconnect()
        return _round_trip(conn, packed)

    def call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """One script call (routed by its first key on Redis Cluster)."""
        if not self._loaded:
            self.load()
        try:
            return self._client.evalsha(self._shas[name], len(keys), *keys, *args)
        except NoScriptError:
            self.load()
            return self._client.evalsha(self._shas[name], len(keys), *keys, *args)

    def _queue(self, pipe: Any, calls: Sequence[Call]) -> Any:
        for name, keys, args in calls:
            if name == SADD:
                pipe.sadd(keys[0], *args)
            else:
                pipe.evalsha(self._shas[name], len(keys), *keys, *args)
        return pipe

    def run_calls(self, client: AnyRedis, calls: Sequence[Call]) -> list[Any]:
        """One round trip for the calls (one per node on Redis Cluster)."""
        if not self._loaded:
            self.load()
        if isinstance(client, RedisCluster):
            return self._run_on_nodes(client, calls, retry_moved=True)
        return self._pipelined(client, calls)

    def _pipelined(self, client: redis.Redis, calls: Sequence[Call]) -> list[Any]:
        """A Redis that lost its scripts (a restart) fails every EVALSHA of the batch, so
        loading them and running the batch again is safe."""
        try:
            return self._queue(client.pipeline(transaction=False), calls).execute()
        except NoScriptError:
            self.load()
            return self._queue(client.pipeline(transaction=False), calls).execute()

    def _run_on_nodes(self, cluster: RedisCluster, calls: Sequence[Call],
                      retry_moved: bool) -> list[Any]:
        """Redis Cluster: redis-py refuses pipelined EVALSHA, so the calls go as one plain
        pipeline per node, each routed by its first key (a call's keys share one slot). A node
        that answers MOVED (slots migrated) has only its own calls rerun, once, after the
        client learns the new slot map."""
        by_node: dict[str, list[int]] = defaultdict(list)
        for i, (_, keys, _) in enumerate(calls):
            by_node[cluster.get_node_from_key(keys[0]).name].append(i)
        replies: list[Any] = [None] * len(calls)
        for name, indexes in by_node.items():
            mine = [calls[i] for i in indexes]
            node = cluster.get_node(node_name=name)
            try:
                got = self._pipelined(cluster.get_redis_connection(node), mine)
            except (MovedError, AskError):
                if not retry_moved:
                    raise
                cluster.nodes_manager.initialize()
                got = self._run_on_nodes(cluster, mine, retry_moved=False)
            for i, reply in zip(indexes, got, strict=True):
                replies[i] = reply
        return replies

    async def run_calls_async(self, client: AnyAsyncRedis, calls: Sequence[Call]) -> list[Any]:
        """One round trip for the calls; on Redis Cluster they go concurrently, each routed
        (and redirected) by the cluster client."""
        if not self._loaded:
            await self.load_async(client)
        if isinstance(client, AsyncRedisCluster):
            return list(await asyncio.gather(*(self._call_async(client, c) for c in calls)))
        try:
            return await self._queue(client.pipeline(transaction=False), calls).execute()
        except NoScriptError:
            await self.load_async(client)
            return await self._queue(client.pipeline(transaction=False), calls).execute()

    async def _call_async(self, client: AsyncRedisCluster, call: Call) -> Any:
        name, keys, args = call
        if name == SADD:
            return await client.sadd(keys[0], *args)
        try:
            return await client.evalsha(self._shas[name], len(keys), *keys, *args)
        except NoScriptError:
            await self.load_async(client)
            return await client.evalsha(self._shas[name], len(keys), *keys, *args)

    async def load_async(self, client: AnyAsyncRedis) -> None:
        for source in self._sources.values():
            await client.script_load(source)
        self._loaded = True


def _round_trip(conn: Any, packed: list[bytes]) -> Any:
    """Send a packed command on a held connection (opened if closed) and read its reply."""
    conn.send_packed_command(packed, check_health=False)
    return conn.read_response()


@dataclass(frozen=True, slots=True)
class LocationSample:
    driver_id: uuid.UUID
    point: LatLng
    ts_ms: int
    status: DriverStatus
    product: Product
    heading_deg: int


def _next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _as_bytes(value: bytes | str) -> bytes:
    """The index's client never decodes replies; this narrows redis-py's reply type."""
    return value if isinstance(value, bytes) else value.encode()


def _region_text(raw: bytes) -> str | None:
    return None if raw == NO_REGION else raw.decode()


# H3 index bits: resolution in bits 52-55, then one 3-bit digit per resolution 1..15.
_RES_MASK = 0xF << 52


def parent_int(cell: int, resolution: int) -> int:
    """`h3.cell_to_parent` on the integer form, in a few integer operations (a hot path)."""
    unused = (1 << (3 * (15 - resolution))) - 1
    return (cell & ~_RES_MASK & ~unused) | (resolution << 52) | unused


def _glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def score_span(cell: int, finest: int, score_mask: int, bucket_shift: int) -> bytes:
    """The bucket that holds `cell`'s descendants at `finest` and their lowest and highest
    scores (their digits below `cell`'s resolution run from all 0 to all 6; `cell` itself has
    7s there), as the search script reads them: length-prefixed decimal texts."""
    high = cell & score_mask
    free = 3 * (finest - ((cell & _RES_MASK) >> 52))
    low = high & ~(((1 << free) - 1) << (3 * (15 - finest)))
    bucket, first, last = b"%d" % (low >> bucket_shift), b"%d" % low, b"%d" % high
    return b"%c%b%c%b%c%b" % (len(bucket), bucket, len(first), first, len(last), last)


# A cell as searches read it: centre lat, lng and reach (`geo.cells.reach`), then its record
# tail for the search script (`score_span`) and its region.
SearchCell = tuple[float, float, float, tuple[bytes, int]]


@dataclass(frozen=True, slots=True)
class SearchDisk:
    """Rings `first`..`last` around a cell (the origin) as a search reads them: their `cells`;
    `region`, the region of them all when they share one (the usual case), else None;
    `cos_low`, their, the next ring's and the origin's `lowest_cos` (None near the antimeridian
    or a pole). Then what tells whether anything beyond ring `last` can still be nearer: the
    next ring's cells (`outer`; every point beyond it is farther than some point of it), the
    origin's centre and `near_m`, a lower bound on the distance from that centre to the next
    ring's points."""
    cells: tuple[SearchCell, ...]
    region: int | None
    cos_low: float | None
    outer: tuple[SearchCell, ...]
    centre: tuple[float, float]
    near_m: float

    def floors(self, point: LatLng) -> list[float]:
        """Each cell's floor from `point`, a point of the origin cell."""
        return search_floors_m(point, self.cells, self.cos_low)

    def clear_beyond(self, point: LatLng, limit_m: float) -> bool:
        """Whether no point beyond the rings lies within `limit_m` of `point`: first in one
        step (the triangle inequality through the origin's centre), else cell by cell."""
        if self.near_m - haversine_raw_m(point.lat, point.lng, *self.centre) > limit_m:
            return True
        return min(search_floors_m(point, self.outer, self.cos_low), default=math.inf) > limit_m


def search_floors_m(point: LatLng, cells: tuple[SearchCell, ...],
                    cos_low: float | None) -> list[float]:
    """`geo.cells.flat_floors_m` when the cells allow it (`cos_low`), else the exact floors."""
    if cos_low is None:
        return cell_floors_m(point, cells)
    return flat_floors_m(point, cells, cos_low)


class SearchGeometry:
    """What searches compute once and reuse, for one index's levels and key layout: a tuple per
    cell, which every disk holding the cell shares, and a disk per origin and rings.
    Plain dicts (a hit is one lookup, a fraction of an lru_cache's over a key of several
    arguments), each emptied when it reaches its capacity.

    A coarsest-level cell's walked reach (`geo.cells.coarse_reach`, up to 343 descendants:
    ~1.2 ms) is what the start-up warm-up computes (`warm`). A disk being built walks at most
    `WALKS_PER_DISK` coarsest cells the warm-up did not (the nearest first: rings 0-3, which
    decide most searches); farther ones take their `quick_reach` (one boundary, ~20% looser),
    kept apart from the walked ones so that a disk nearer to them walks them later. So a
    search far from every driver over a wide radius costs milliseconds, not the seconds of
    walking hundreds of coarse cells (a cold 10 km search took 1.3 s, a 50 km one 26 s).
    Finer levels' cells are walked as searches meet them (at most 49 descendants each)."""

    def __init__(self, finest: int, coarsest: int, score_mask: int, bucket_shift: int,
                 region_keep: int, *, max_cells: int = 262_144, max_disks: int = 65_536) -> None:
        self.finest, self.coarsest = finest, coarsest
        self._score_mask, self._bucket_shift = score_mask, bucket_shift
        self._region_keep = region_keep
        self._max_cells, self._max_disks = max_cells, max_disks
        self._cells: dict[int, SearchCell] = {}
        self._quick: dict[int, SearchCell] = {}   # coarsest cells bounded, not walked
        self._disks: dict[tuple[int, int, int], SearchDisk] = {}

    def warm(self, cell: int) -> None:
        """Walk a coarsest-level cell's reach now (and its finer descendants', which
        `geo.cells.coarse_reach` caches), for the searches to come."""
        if cell not in self._cells:
            self._store(cell, reach(cell, self.finest))

    def _store(self, cell: int, found: Reach) -> SearchCell:
        if len(self._cells) >= self._max_cells:
            self._cells.clear()
        self._cells[cell] = item = self._item(found)
        return item

    def _item(self, found: Reach) -> SearchCell:
        lat, lng, far, cell = found
        span = score_span(cell, self.finest, self._score_mask, self._bucket_shift)
        return lat, lng, far, (span, cell & self._region_keep)

    def disk(self, origin: int, first: int, last: int) -> SearchDisk:
        key = (origin, first, last)
        found = self._disks.get(key)
        if found is None:
            if len(self._disks) >= self._max_disks:
                self._disks.clear()
            found = self._disks[key] = self._build(origin, first, last)
        return found

    def _build(self, origin: int, first: int, last: int) -> SearchDisk:
        walks = WALKS_PER_DISK
        known, quick = self._cells, self._quick
        coarsest = self.coarsest if self.coarsest < self.finest else -1

        def cell(c: int) -> SearchCell:
            nonlocal walks
            found = known.get(c)
            if found is not None:
                return found
            if h3i.get_resolution(c) == coarsest:
                if walks <= 0:
                    found = quick.get(c)
                    if found is None:
                        if len(quick) >= self._max_cells:
                            quick.clear()
                        found = quick[c] = self._item(quick_reach(c))
                    return found
                walks -= 1
            return self._store(c, reach(c, self.finest))

        inner = cells_within(origin, last) if first == 0 else [
            c for k in range(first, last + 1) for c in ring(origin, k)]
        lat, lng, far, _ = cell(origin)
        cells = tuple([cell(c) for c in inner])
        outer = tuple([cell(c) for c in ring(origin, last + 1)])
        regions = {c & self._region_keep for c in inner}
        cos_low = lowest_cos((*cells, *outer, (lat, lng, far, None)))
        return SearchDisk(cells, regions.pop() if len(regions) == 1 else None, cos_low, outer,
                          (lat, lng), min(search_floors_m(LatLng(lat, lng), outer, cos_low),
                                          default=math.inf))


class RedisDriverIndex:
    """Online drivers by H3 cell, with freshness, status and nearest-K search."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        resolution: int = 9,
        levels: Sequence[int] = (11, 10, 9, 8),
        region_resolution: int = 3,
        prefix: str = "rh",
        ttl_s: float = 30.0,
        max_speed_kmh: float = 250.0,
        sample_s: float = 10.0,
        idle_offline_s: float = 3600.0,
        rate_per_s: float = 5.0,
        rate_burst: int = 20,
        sample_backlog: int = 100_000,
    ) -> None:
        self.client = client
        self.resolution = resolution
        self.levels = tuple(sorted(set(levels), reverse=True))
        if not self.levels or self.levels[-1] <= region_resolution or self.levels[0] > 15:
            raise ValueError("search levels must lie between the region resolution and 15")
        if self.levels[0] - self.levels[-1] > MAX_LEVEL_SPAN:
            raise ValueError(f"search levels may span at most {MAX_LEVEL_SPAN} resolutions")
        self._hints: dict[int, float] = {}   # area -> how far its last search had to look
        self._last_reach: float | None = None  # the last search's, anywhere: for a new area
        self._edge_m = [h3i.average_hexagon_edge_length(lvl, "m") for lvl in self.levels]
        self._certain_m = [CERTAIN_EDGES * edge for edge in self._edge_m[:-1]]
        self._known_regions: set[bytes] = set()
        self.region_resolution = region_resolution
        unused = (1 << (3 * (15 - region_resolution))) - 1   # parent_int, unrolled
        self._region_mask = (~_RES_MASK & ~unused, (region_resolution << 52) | unused)
        # A driver's score: the digits of its finest cell below the region (<= 45 bits, exact
        # as a double and as Lua's %.14g). A cell's drivers are one contiguous score range.
        self._score_mask = unused
        # A driver's sorted set: its cell at the coarsest search level (score >> shift), so
        # sets stay small (compact listpacks up to 128 drivers) and each search cell is in one.
        self._bucket_shift = 3 * (15 - self.levels[-1])
        self._bucket_div = 1 << self._bucket_shift     # the scripts' divisor for the same
        self._geometry = SearchGeometry(self.levels[0], self.levels[-1], self._score_mask,
                                        self._bucket_shift, self._region_mask[0])
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.max_speed_mps = max_speed_kmh / 3.6
        self.sample_ms = int(sample_s * 1000)
        self.idle_offline_ms = int(idle_offline_s * 1000)
        self.rate_per_s, self.rate_burst = rate_per_s, rate_burst
        self._shard_keys = [f"{prefix}:dir:{{s{i:02d}}}" for i in range(DIRECTORY_SHARDS)]
        self._stream_keys = [f"{prefix}:locs:{{s{i:02d}}}" for i in range(DIRECTORY_SHARDS)]
        self.sample_backlog = sample_backlog
        self._scripts = Scripts(client, ("claim", "place", "evict", "status", "dir_status",
                                         "search", "sweep", "sweep_directory"))

    # -- keys -------------------------------------------------------------------------------
    def directory_key(self, driver_id: uuid.UUID) -> str:
        return self._shard_keys[driver_id.bytes[0] % DIRECTORY_SHARDS]

    @property
    def directory_keys(self) -> list[str]:
        return list(self._shard_keys)

    def region_prefix(self, region: str) -> str:
        return f"{self.prefix}:{{{region}}}"

    def region_at(self, region: str) -> str:
        """The region's `at` hash: the key its scripts declare (KEYS[1])."""
        return f"{self.region_prefix(region)}:at"

    def region_of(self, cell: str) -> str:
        return f"{parent_int(int(cell, 16), self.region_resolution):x}"

    def _run(self, name: str, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return self._scripts.call(name, keys, args)

    # -- lifecycle --------------------------------------------------------------------------
    def go_online(self, driver_id: uuid.UUID, product: Product, *, now_ms: int) -> None:
        """Idempotent: an online driver keeps its position and status."""
        self.go_online_many([(driver_id, product)], now_ms=now_ms)

    def go_online_many(self, drivers: Sequence[tuple[uuid.UUID, Product]], *,
                       now_ms: int) -> None:
        """`go_online` for many drivers in one pipelined round trip."""
        pipe = self.client.pipeline(transaction=False)
        for driver_id, product in drivers:
            pipe.hsetnx(self.directory_key(driver_id), driver_id.bytes,
                        DIRECTORY.pack(0, 0, 0, DriverStatus.AVAILABLE, PRODUCT_CODES[product],
                                       -1, 0, 0, now_ms, NO_REGION))
        pipe.execute()

    def go_offline(self, driver_id: uuid.UUID) -> bool:
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(self.directory_key(driver_id), driver_id.bytes)
        pipe.hdel(self.directory_key(driver_id), driver_id.bytes)
        raw, _ = pipe.execute()
        if raw is None:
            return False
        state = self._decode(driver_id, raw)
        if state.region:
            since = DIRECTORY.unpack(raw)[8]
            self._run("evict", keys=[self.region_at(state.region)],
                      args=[self._bucket_div,
                            EVICT_IN.pack(driver_id.bytes, state.ts_ms + 1, since)])
        return True

    def set_status(self, driver_id: uuid.UUID, status: DriverStatus) -> bool:
        region = self._run("dir_status", keys=[self.directory_key(driver_id)],
                           args=[driver_id.bytes, int(status)])
        if region is None:
            return False
        if region != NO_REGION:
            self._run("status", keys=[self.region_at(region.decode())],
                      args=[driver_id.bytes, int(status)])
        return True

    def get(self, driver_id: uuid.UUID) -> DriverState | None:
        raw = self.client.hget(self.directory_key(driver_id), driver_id.bytes)
        return None if raw is None else self._decode(driver_id, _as_bytes(raw))

    def _decode(self, driver_id: uuid.UUID, raw: bytes) -> DriverState:
        lat, lng, ts, status, pcode, heading, flag, _, _, region = DIRECTORY.unpack(raw)
        return DriverState(
            driver_id=driver_id,
            point=LatLng(lat, lng) if ts > 0 else None,
            ts_ms=int(ts),
            status=DriverStatus(status),
            product=CODE_PRODUCTS[pcode],
            heading_deg=heading,
            cell=f"{h3i.latlng_to_cell(lat, lng, self.resolution):x}" if ts > 0 else None,
            region=_region_text(region),
            flagged=bool(flag),
        )

    # -- pings ------------------------------------------------------------------------------
    def ingest(self, updates: Sequence[PositionUpdate], *,
               now_ms: int | None = None) -> list[IngestResult]:
        """Apply one newest position per driver; two pipelined round trips for the batch.

        `now_ms` is when the pings arrived, on the server's clock: a driver stays in search
        until `ttl_s` after it, whatever the phone's clock said in `ts_ms` (which orders a
        driver's pings). None takes each ping's own time (replays of recorded pings, tests).
        """
        plan = self._ingest_plan(updates, (), now_ms)
        try:
            calls = next(plan)
            while True:
                calls = plan.send(self._scripts.run_calls(self.client, calls))
        except StopIteration as done:
            return done.value.results  # type: ignore[no-any-return]

    async def ingest_async(self, updates: Sequence[PositionUpdate], aclient: AnyAsyncRedis, *,
                           charge: Sequence[uuid.UUID] = (),
                           now_ms: int | None = None) -> Ingested:
        """`ingest` on an asyncio Redis client (the HTTP ping path: no thread per request).

        Each driver in `charge` first takes a token from its bucket (`rate_per_s`,
        `rate_burst`), in the same script as the claim, on the clock of `now_ms` (then
        required); a denied driver's pings are skipped.
        """
        if charge and now_ms is None:
            raise ValueError("charging rate limits needs now_ms")
        plan = self._ingest_plan(updates, charge, now_ms)
        try:
            calls = next(plan)
            while True:
                calls = plan.send(await self._scripts.run_calls_async(aclient, calls))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _ingest_plan(self, updates: Sequence[PositionUpdate], charge: Sequence[uuid.UUID],
                     now_ms: int | None) -> IngestPlan:
        """The ingest logic without I/O: yields each round trip's calls, receives the replies."""
        charges: dict[int, list[bytes]] = defaultdict(list)
        for driver in charge:
            charges[driver.bytes[0] % DIRECTORY_SHARDS].append(driver.bytes)
        shards: dict[int, list[int]] = defaultdict(list)
        records: list[bytes] = []
        places_of: list[tuple[bytes, int, bytes]] = []
        to_cell, finest, score_mask = h3i.latlng_to_cell, self.levels[0], self._score_mask
        keep, bits = self._region_mask
        for i, u in enumerate(updates):
            member, lat, lng = u.driver_id.bytes, u.point.lat, u.point.lng
            fine = to_cell(lat, lng, finest)
            region = b"%x" % ((fine & keep) | bits)
            records.append(CLAIM_IN.pack(member, lat, lng, u.ts_ms, u.heading_deg, region))
            places_of.append((member, fine & score_mask, region))
            shards[member[0] % DIRECTORY_SHARDS].append(i)
        for shard in charges:
            shards.setdefault(shard, [])
        replies = yield [("claim", [self._shard_keys[shard], self._stream_keys[shard]],
                          [b"".join(records[i] for i in members), self.max_speed_mps,
                           self.sample_ms, self.rate_per_s, self.rate_burst, now_ms or 0,
                           b"".join(charges.get(shard, ())), self.sample_backlog])
                         for shard, members in shards.items()]
        outcomes: list[tuple[int, int, int, int, bytes, float]] = [
            (0, 0, 0, 0, NO_REGION, 0.0)] * len(updates)
        denied: set[uuid.UUID] = set()
        for members, (blob, refused) in zip(shards.values(), replies, strict=True):
            for j, i in enumerate(members):
                outcomes[i] = CLAIM_OUT.unpack_from(blob, j * CLAIM_OUT.size)
            denied.update(uuid.UUID(bytes=refused[k:k + 16]) for k in range(0, len(refused), 16))
        # Only a driver's last applied ping of the batch is placed: the earlier ones would be
        # overwritten at once (a phone posting a backlog of pings costs one ZADD, not one per
        # ping). The evictions of every ping stay: a region an earlier ping would have entered
        # gets a tombstone, which is harmless.
        last_place: dict[bytes, tuple[bytes, bytes]] = {}
        evictions: dict[bytes, list[bytes]] = defaultdict(list)
        results: list[IngestResult] = []
        for u, (member, score, region), (code, status, pcode, _, old, since) in zip(
                updates, places_of, outcomes, strict=True):
            outcome = _OUTCOMES[code]
            if outcome is Outcome.APPLIED:
                last_place[member] = (region, PLACE_IN.pack(
                    member, u.point.lat, u.point.lng, u.ts_ms, pcode, status, u.heading_deg,
                    score, u.ts_ms if now_ms is None else now_ms, since))
            elif outcome is Outcome.IMPOSSIBLE:
                evictions[region].append(EVICT_IN.pack(member, u.ts_ms, since))
            if old != NO_REGION and old != region and outcome in (Outcome.APPLIED,
                                                                Outcome.IMPOSSIBLE):
                evictions[old].append(EVICT_IN.pack(member, u.ts_ms, since))
            results.append(IngestResult(u.driver_id, outcome, _STATUSES[status],
                                        CODE_PRODUCTS[pcode] if status else None))
        places: dict[bytes, list[bytes]] = defaultdict(list)
        for region, record in last_place.values():
            places[region].append(record)
        div = self._bucket_div
        calls: list[Call] = [
            ("place", [self.region_at(region.decode())], [div, b"".join(blobs)])
            for region, blobs in places.items()]
        calls += [("evict", [self.region_at(region.decode())], [div, b"".join(blobs)])
                  for region, blobs in evictions.items()]
        new_regions = [r.decode() for r in places if r not in self._known_regions]
        if new_regions:
            calls.append((SADD, [f"{self.prefix}:regions"], new_regions))
            self._known_regions.update(places)
        if calls:
            yield calls
        return Ingested(results, frozenset(denied))

    # -- location samples -------------------------------------------------------------------
    def read_samples(self, after: dict[int, str], *, count: int = 1000) -> list[LocationSample]:
        """Samples written by the claim script since `after` (shard -> last stream id read);
        `after` is advanced in place. Each shard's stream lives on that shard's slot; an entry
        holds the samples of one claim call, so `count` entries may hold more samples."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(DIRECTORY_SHARDS):
            pipe.xrange(self._stream_keys[shard], min=f"({after.get(shard, '0')}", count=count)
        samples: list[LocationSample] = []
        for shard, entries in enumerate(pipe.execute()):
            for entry_id, fields in entries:
                samples += (LocationSample(uuid.UUID(bytes=member), LatLng(lat, lng), int(ts),
                                           DriverStatus(status), CODE_PRODUCTS[pcode], heading)
                            for member, lat, lng, ts, status, pcode, heading
                            in SAMPLE.iter_unpack(fields[b"s"]))
                after[shard] = entry_id.decode()
        return samples

    def trim_samples(self, upto: dict[int, str]) -> None:
        """Forget the samples up to and including `upto` (they have been published)."""
        pipe = self.client.pipeline(transaction=False)
        for shard, last in upto.items():
            pipe.xtrim(self._stream_keys[shard], minid=_next_id(last))
        pipe.execute()

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
        level: int | None = None,
    ) -> list[NearbyDriver]:
        """The k nearest fresh drivers within radius_m, nearest first.

        Exact at every level; the level only sets the cost. A hint per coarse area remembers
        how far its last search had to look (the k-th distance, or the radius when fewer were
        found; an area not seen yet takes its parent area's, else the last search's anywhere),
        and the search starts at the finest level whose rings 0-2 can certify that far with a
        margin (`HINT_MARGIN`).
        A level that cannot certify hands what it found to the next coarser one.
        """
        if not 0 < radius_m <= MAX_SEARCH_RADIUS_M:
            raise ValueError(f"radius_m must be within (0, {MAX_SEARCH_RADIUS_M:.0f}]")
        fine = h3i.latlng_to_cell(center.lat, center.lng, self.levels[0])
        coarsest = len(self.levels) - 1
        if level is not None:
            return self._search_level(fine, level, center, product, k, radius_m, now_ms,
                                      status, None, [])[0]
        area = parent_int(fine, self.levels[-1])
        wider = parent_int(area, self.levels[-1] - 1)
        reach_m = self._hints.get(area, self._hints.get(wider, self._last_reach))
        level = 0 if reach_m is None else next(
            (i for i, certain in enumerate(self._certain_m)
             if certain >= reach_m * HINT_MARGIN), coarsest)
        found: list[NearbyDriver] = []
        while True:
            cap = None if level == coarsest else MAX_FINE_RINGS
            found, done = self._search_level(fine, level, center, product, k, radius_m, now_ms,
                                             status, cap, found)
            if done:
                break
            level += 1          # too sparse here for this level: a coarser one is cheaper
        if len(self._hints) >= HINT_CAPACITY:
            self._hints.clear()
        self._hints[area] = self._hints[wider] = self._last_reach = (
            found[-1].distance_m if len(found) >= k else radius_m)
        return found

    def _search_level(self, fine: int, level: int, center: LatLng, product: Product, k: int,
                      radius_m: float, now_ms: int, status: DriverStatus,
                      max_ring: int | None, seed: list[NearbyDriver],
                      ) -> tuple[list[NearbyDriver], bool]:
        """Search one level: rings in growing chunks, each chunk's cells nearest floor first.
        Done once no cell of the next ring can hold a driver nearer than the k-th found (or
        within the radius): every point beyond that ring is farther than some point of it.
        `done` is False when it stopped at `max_ring` unsure. `seed` holds drivers found at a
        finer level: they bound the search from the start."""
        origin = parent_int(fine, self.levels[level])
        fresh_after = now_ms - self.ttl_ms
        found = seed
        limit = found[-1].distance_m if len(found) >= k else radius_m
        first = 0
        while True:
            if max_ring is not None:
                last = min(max_ring, first + 2)
            elif first == 0:
                last = 2
            else:
                # Out to the ring that should certify the limit, in this round trip: no
                # further (cells no answer needs cost geometry and floors), no nearer (another
                # round trip). If the estimate falls short, the next chunk goes on from there.
                last = max(first + 2, self._covering_ring(level, limit))
            disk = self._disk(origin, first, last)
            candidates = [(floor, cell[3]) for floor, cell in
                          zip(disk.floors(center), disk.cells, strict=True) if floor <= limit]
            candidates.sort(key=FIRST)          # by floor alone: floats compare fastest
            if candidates:
                query = QUERY.pack(center.lat, center.lng, limit, fresh_after, k, status)
                more = self._search_cells(disk, candidates, [PRODUCT_CODES[product], query])
                if found:        # a finer level's or an earlier chunk's: may hold the same
                    more = list({d.id_bytes: d for d in (*found, *more)}.values())
                found = sorted(more)[:k]
                if len(found) >= k:
                    limit = found[-1].distance_m
            if disk.clear_beyond(center, limit):
                return found, True
            if max_ring is not None and last >= max_ring:
                return found, False
            first = last + 1

    def _covering_ring(self, level: int, limit_m: float) -> int:
        """The last ring of a level whose next ring's floors should exceed `limit_m` (for a
        query anywhere in the origin cell): rings 0..k certify ~1.2 k average edges or more
        (measured from New York to Tromsø), less the query's offset from the origin's centre
        (at most ~1.5 edges)."""
        return math.ceil((limit_m / self._edge_m[level] + COVER_SLACK_EDGES) / COVER_EDGES_PER_RING)

    def _disk(self, origin: int, first: int, last: int) -> SearchDisk:
        return self._geometry.disk(origin, first, last)

    def _search_cells(self, disk: SearchDisk, candidates: list[tuple[float, tuple[bytes, int]]],
                      head: list[Any]) -> list[NearbyDriver]:
        """One search script per region over its cells (`candidates`: floor, then record tail
        and region, nearest floor first), in one round trip. A cell's record for the script:
        its floor, then the bucket whose set holds its drivers and their score range."""
        pack, bits = FLOOR.pack, self._region_mask[1]
        by_region: dict[int, list[bytes]]
        if disk.region is not None:
            by_region = {disk.region: [pack(floor) + tail for floor, (tail, _) in candidates]}
        else:
            by_region = {}
            for floor, (tail, region) in candidates:
                by_region.setdefault(region, []).append(pack(floor) + tail)
        calls: list[Call] = [
            ("search", [self.region_at(f"{region | bits:x}")], [*head, b"".join(records)])
            for region, records in by_region.items()]
        if len(calls) == 1:
            replies = [self._scripts.read(*calls[0])]
        else:
            replies = self._scripts.run_calls(self.client, calls)
        new = tuple.__new__
        return [new(NearbyDriver, row) for blob in replies for row in FOUND.iter_unpack(blob)]

    # -- start-up ---------------------------------------------------------------------------
    def warm_up(self, *, margin_m: float = 5_000.0, max_cells: int = WARM_CELLS) -> int:
        """Compute the search geometry (`geo.cells.coarse_reach`: centre and reach of every
        cell at every search level but the finest, whose cells take the reach of their family,
        computed here with their parents, and cost a centre each as searches meet them) before
        the first query, under the coarse cells that hold drivers and those within `margin_m`
        of them (a search's rings reach that far past the drivers: pass the widest radius
        searched). A process just started would otherwise pay for it
        inside its first searches (README, Performance: the "fresh process" lines).
        One SCAN of the index's sorted sets finds the coarse cells; the nearest are warmed
        first, and it stops before `max_cells` cells. Returns how many coarse cells it warmed."""
        coarsest, finest = self.levels[-1], self.levels[0]
        if coarsest == finest:
            return 0            # one level: nothing dear to compute
        per_cell = sum(7 ** (level - coarsest) for level in range(coarsest, finest))
        keep, _ = self._region_mask
        frontier: set[int] = set()
        for raw in self.client.scan_iter(match=f"{_glob_escape(self.prefix)}:{{*}}:z:*",
                                         count=1000):
            parts = _as_bytes(raw).decode().rsplit(":", 4)
            try:
                region, bucket = int(parts[1].strip("{}"), 16), int(parts[4])
            except (IndexError, ValueError):
                continue        # not one of the index's sets
            cell = parent_int((region & keep) | (bucket << self._bucket_shift), coarsest)
            if h3i.is_valid_cell(cell):
                frontier.add(cell)
        spacing_m = math.sqrt(3) * h3i.average_hexagon_edge_length(coarsest, "m")
        warmed: set[int] = set()
        for _ in range(math.ceil(margin_m / spacing_m) + 2):     # the cells, then ring by ring
            for cell in frontier:
                if (len(warmed) + 1) * per_cell > max_cells:
                    return len(warmed)
                warmed.add(cell)
                self._geometry.warm(cell)
            frontier = {near for cell in frontier for near in h3i.grid_disk(cell, 1)} - warmed
        return len(warmed)

    # -- freshness --------------------------------------------------------------------------
    def sweep(self, *, now_ms: int, batch: int = SWEEP_BATCH,
              tombstone_keep_s: float = 600) -> int:
        """`sweep_cells`, then `sweep_idle`; returns how many cell entries were removed."""
        removed = self.sweep_cells(now_ms=now_ms, batch=batch, tombstone_keep_s=tombstone_keep_s)
        self.sweep_idle(now_ms=now_ms, batch=batch)
        return removed

    def sweep_cells(self, *, now_ms: int, batch: int = SWEEP_BATCH,
                    tombstone_keep_s: float = 600) -> int:
        """Remove drivers silent for longer than the TTL from their cells (search already
        skips them: this frees their memory) and tombstones older than `tombstone_keep_s`;
        returns how many cell entries were removed. Visits every driver: its Redis work is
        `benchmarks.redis_work`'s "sweep of the cells" line, per driver and pass."""
        removed = 0
        cutoff = now_ms - self.ttl_ms
        tomb_cutoff = now_ms - int(tombstone_keep_s * 1000)
        for at in self.region_keys():
            removed += self._scan("sweep", [at], [self._bucket_div],
                                  [cutoff, tomb_cutoff], batch)
        return removed

    def region_keys(self) -> list[str]:
        """The `at` key of every region that has held drivers."""
        return [self.region_at(_as_bytes(raw).decode())
                for raw in self.client.smembers(f"{self.prefix}:regions")]

    def sweep_idle(self, *, now_ms: int, batch: int = SWEEP_BATCH) -> int:
        """Forget drivers idle for `idle_offline_s` (their directory records: their next ping
        gets 409 offline) and rate-limit buckets untouched as long; returns how many entries
        were forgotten. An hour's bound needs no pass every few seconds: the worker runs this
        every `SWEEP_IDLE_EVERY_S`."""
        return sum(self._scan("sweep_directory", [key], [], [now_ms - self.idle_offline_ms],
                              batch) for key in self._shard_keys)

    def _scan(self, script: str, keys: list[str], head: list[Any], tail: list[Any],
              batch: int) -> int:
        cursor: bytes | str = "0"
        total = 0
        while True:
            cursor, n = self._run(script, keys=keys, args=[*head, cursor, batch, *tail])
            total += int(n)
            if cursor in (b"0", "0"):
                return total

