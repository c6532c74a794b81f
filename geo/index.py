"""The live driver index: H3 cells in Redis, moved atomically by server-side scripts.

Key design (README, "Driver index"): every key of a region shares the hash tag `{R}`, R being
the cell's H3 parent at `region_resolution`, so a region lives on one Redis Cluster slot.
Drivers' directory records live in `DIRECTORY_SHARDS` hashes tagged `{sNN}`.
- `P:dir:{sNN}`            hash driver -> directory record (position, time, status, ...)
- `P:locs:{sNN}`           stream of location samples for the relay
- `P:{R}:z:<prod>:<B>`     sorted set of the drivers in bucket B (their cell at the coarsest
                           search level), scored by the digits of their finest H3 cell below
                           R, then a tie-break from their id: every search cell is one score
                           range of one set
- `P:{R}:at`               hash driver -> position, ping time, product, status, heading, score,
                           arrival time (freshness), session, status version; status 0 is a
                           tombstone of a driver that left R (or not yet arrived: it may hold
                           a status change waiting for the driver's place)
- `P:regions`              set of regions seen (for the sweeper)
A batch of pings costs two round trips: one claim script per directory shard (serialising
each driver's pings by time), then one place script per region that re-scores each driver
(one ZADD: a driver has one score, so it is never in two cells of a region). A move to
another region evicts the old one with a tombstone, so no script ever spans two slots.
Drivers are 16-byte ids; records travel as fixed-width binary. Where Redis loads the index's
module (`geo/module`), its commands run the claim, the place and the search instead of the
scripts: the same keys, arguments, replies and writes, at a fraction of Redis's work.

This module is the index's face; its parts: `geo.layout` (key names and scores),
`geo.records` (its values and the scripts' binary records), `geo.scripts` (calling the Lua
scripts in `geo/lua`), `geo.ingest` (a batch of pings as script calls), `geo.search` and
`geo.search_geometry` (nearest-K search).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import h3.api.basic_int as h3i

from core.products import PRODUCT_CODES, Product
from core.settings import MAX_LEVEL_SPAN
from geo.cells import LatLng
from geo.ingest import IngestPlanner
from geo.layout import KeyLayout
from geo.records import (
    CODE_PRODUCTS,
    DIRECTORY,
    DIRECTORY_HEAD,
    EVICT_IN,
    FLAGGED,
    LEFT_REGION,
    MAX_STATUS_VERSION,
    NO_REGION,
    SAMPLE,
    DriverState,
    DriverStatus,
    Ingested,
    IngestResult,
    LocationSample,
    NearbyDriver,
    PositionUpdate,
    as_bytes,
    region_text,
)
from geo.scripts import AnyAsyncRedis, AnyRedis, Scripts
from geo.search import WARM_CELLS, NearbySearch

# Hash entries per sweep call. Each call holds Redis for its duration (one atomic step): ~0.4 ms
# at 250 entries here, which a search arriving meanwhile waits out; per-call overhead is ~2%.
SWEEP_BATCH = 250
PENDING = 2     # `status.lua`'s reply: the change waits in a tombstone for the driver's place


def _next_id(stream_id: str) -> str:
    """The smallest stream id after `stream_id` (XTRIM MINID keeps ids >= it)."""
    ms, _, seq = stream_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


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
        module: bool = True,
        native_geometry: bool = True,
        score_tiebreak: bool = True,
    ) -> None:
        self.client = client
        self.resolution = resolution
        self.levels = tuple(sorted(set(levels), reverse=True))
        if not self.levels or self.levels[-1] <= region_resolution or self.levels[0] > 15:
            raise ValueError("search levels must lie between the region resolution and 15")
        if self.levels[0] - self.levels[-1] > MAX_LEVEL_SPAN:
            raise ValueError(f"search levels may span at most {MAX_LEVEL_SPAN} resolutions")
        self.region_resolution = region_resolution
        self.prefix = prefix
        self.ttl_ms = int(ttl_s * 1000)
        self.max_speed_mps = max_speed_kmh / 3.6
        self.idle_offline_ms = int(idle_offline_s * 1000)
        self.layout = KeyLayout(prefix, region_resolution, self.levels, tiebreak=score_tiebreak)
        self._scripts = Scripts(client, ("claim", "place", "evict", "status", "dir_status",
                                         "search", "sweep", "sweep_directory"),
                                native=module)
        self._planner = IngestPlanner(
            self.layout, self.levels[0], max_speed_mps=self.max_speed_mps,
            sample_ms=int(sample_s * 1000), rate_per_s=rate_per_s, rate_burst=rate_burst,
            sample_backlog=sample_backlog)
        self._search = NearbySearch(client, self._scripts, self.layout, self.levels,
                                    ttl_ms=self.ttl_ms, native_geometry=native_geometry)

    # -- keys -------------------------------------------------------------------------------
    def directory_key(self, driver_id: uuid.UUID) -> str:
        return self.layout.directory_key(driver_id)

    @property
    def directory_keys(self) -> list[str]:
        return list(self.layout.shard_keys)

    def region_prefix(self, region: str) -> str:
        return self.layout.region_prefix(region)

    def region_at(self, region: str) -> str:
        """The region's `at` hash: the key its scripts declare (KEYS[1])."""
        return self.layout.region_at(region)

    def region_of(self, cell: str) -> str:
        return self.layout.region_of(cell)

    def _run(self, name: str, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return self._scripts.call(name, keys, args)

    # -- lifecycle --------------------------------------------------------------------------
    def go_online(self, driver_id: uuid.UUID, product: Product, *, now_ms: int,
                  status_version: int = 0,
                  status: DriverStatus = DriverStatus.AVAILABLE) -> None:
        """Idempotent: an online driver keeps its position. A new session starts with
        `status` and `status_version`, the driver's latest status version (`set_status`), so
        that a change older than it, written late, cannot apply to the new session. An online
        driver takes `status` only when `status_version` is newer than the one it holds (a
        change whose write was lost)."""
        [started] = self._online([(driver_id, product, status_version, status)], now_ms)
        if not started and status_version > 0:
            self.set_status(driver_id, status, version=status_version, now_ms=now_ms)

    def go_online_many(self, drivers: Sequence[tuple[uuid.UUID, Product]], *,
                       now_ms: int) -> None:
        """`go_online` for many available drivers (status version 0) in one pipelined round
        trip."""
        self._online([(driver, product, 0, DriverStatus.AVAILABLE)
                      for driver, product in drivers], now_ms)

    def _online(self, drivers: Sequence[tuple[uuid.UUID, Product, int, DriverStatus]],
                now_ms: int) -> list[bool]:
        """Whether each driver started a new session (False: it was online already)."""
        pipe = self.client.pipeline(transaction=False)
        for driver_id, product, version, status in drivers:
            pipe.hsetnx(self.directory_key(driver_id), driver_id.bytes,
                        DIRECTORY.pack(0, 0, 0, status, PRODUCT_CODES[product],
                                       -1, 0, 0, now_ms, NO_REGION, version))
        return [bool(started) for started in pipe.execute()]

    def go_offline(self, driver_id: uuid.UUID) -> bool:
        """Forget the driver and evict it from its region, and from the region its last
        crossing left, when that is still kept (`claim.lua`: the crossing's region steps may
        never have run)."""
        key, left = self.directory_key(driver_id), driver_id.bytes + b"mv"
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(key, driver_id.bytes)
        pipe.hget(key, left)
        pipe.hdel(key, driver_id.bytes, left)
        raw, crossing, _ = pipe.execute()
        if raw is None:
            return False
        state = self._decode(driver_id, raw)
        regions = [state.region] if state.region else []
        left_region = region_text(LEFT_REGION.unpack(as_bytes(crossing))[1]) if crossing else None
        if left_region and left_region not in regions:
            regions.append(left_region)
        since = DIRECTORY_HEAD.unpack_from(raw)[8]
        for region in regions:
            self._run("evict", keys=[self.region_at(region)],
                      args=[self.layout.bucket_div,
                            EVICT_IN.pack(driver_id.bytes, state.ts_ms + 1, since)])
        return True

    def set_status(self, driver_id: uuid.UUID, status: DriverStatus, *, version: int,
                   now_ms: int | None = None) -> bool:
        """Set an online driver's status; False when offline or when `version` is not above
        the last change's. Versions order a driver's changes (`dir_status.lua`): the database
        hands them out in commit order (`accounts.service.next_status_version`), so a change
        whose write reaches Redis after a newer one's is refused. The driver's region entry
        takes the status at once too, unless it holds a newer change's (`status.lua`: two
        changes' region writes crossed); a ping placed meanwhile keeps it (`place.lua`), and
        when the driver's entry there is still on its way (a ping's claim filed it in that
        region and its place has not landed yet), the change waits for it there, in a
        tombstone swept like the others (`now_ms`, the wall clock by default, dates a new
        one)."""
        if not 0 <= version <= MAX_STATUS_VERSION:
            raise ValueError(f"status version {version} is out of range")
        region = self._run("dir_status", keys=[self.directory_key(driver_id)],
                           args=[driver_id.bytes, int(status), version])
        if not region:
            return False
        if region != NO_REGION:
            now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            kept = self._run("status", keys=[self.region_at(region.decode())],
                             args=[driver_id.bytes, int(status), version, now])
            if kept == PENDING:     # the sweeper must know the region, placed there or not
                self.client.sadd(self.layout.regions_key, region.decode())
        return True

    def is_online(self, driver_id: uuid.UUID) -> bool:
        return bool(self.client.hexists(self.directory_key(driver_id), driver_id.bytes))

    def get(self, driver_id: uuid.UUID) -> DriverState | None:
        raw = self.client.hget(self.directory_key(driver_id), driver_id.bytes)
        return None if raw is None else self._decode(driver_id, as_bytes(raw))

    def _decode(self, driver_id: uuid.UUID, raw: bytes) -> DriverState:
        lat, lng, ts, status, pcode, heading, flag, _, _, region = DIRECTORY_HEAD.unpack_from(raw)
        return DriverState(
            driver_id=driver_id,
            point=LatLng(lat, lng) if ts > 0 else None,
            ts_ms=int(ts),
            status=DriverStatus(status),
            product=CODE_PRODUCTS[pcode],
            heading_deg=heading,
            cell=f"{h3i.latlng_to_cell(lat, lng, self.resolution):x}" if ts > 0 else None,
            region=region_text(region),
            flagged=bool(flag & FLAGGED),
        )

    # -- pings ------------------------------------------------------------------------------
    def ingest(self, updates: Sequence[PositionUpdate], *,
               now_ms: int | None = None) -> list[IngestResult]:
        """Apply one newest position per driver; two pipelined round trips for the batch.

        `now_ms` is when the pings arrived, on the server's clock: a driver stays in search
        until `ttl_s` after it, whatever the phone's clock said in `ts_ms` (which orders a
        driver's pings). None takes each ping's own time (replays of recorded pings, tests).
        """
        plan = self._planner.plan(updates, (), now_ms)
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
        plan = self._planner.plan(updates, charge, now_ms)
        try:
            calls = next(plan)
            while True:
                calls = plan.send(await self._scripts.run_calls_async(aclient, calls))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def aclose(self, aclient: AnyAsyncRedis) -> None:
        """Close the connections `ingest_async` holds to `aclient`'s Redis (a single Redis:
        `scripts.HeldConnections`); call it before closing `aclient`."""
        await self._scripts.aclose(aclient)

    # -- location samples -------------------------------------------------------------------
    def read_samples(self, after: dict[int, str], *, count: int = 1000) -> list[LocationSample]:
        """Samples written by the claim script since `after` (shard -> last stream id read);
        `after` is advanced in place. Each shard's stream lives on that shard's slot; an entry
        holds the samples of one claim call, so `count` entries may hold more samples."""
        pipe = self.client.pipeline(transaction=False)
        for shard, key in enumerate(self.layout.stream_keys):
            pipe.xrange(key, min=f"({after.get(shard, '0')}", count=count)
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
            pipe.xtrim(self.layout.stream_keys[shard], minid=_next_id(last))
        pipe.execute()

    # -- search -----------------------------------------------------------------------------
    def nearby(self, center: LatLng, product: Product, *, k: int, radius_m: float, now_ms: int,
               status: DriverStatus = DriverStatus.AVAILABLE,
               level: int | None = None) -> list[NearbyDriver]:
        """The k nearest fresh drivers within radius_m, nearest first (`NearbySearch.nearby`;
        `level` forces one search level, for tests)."""
        return self._search.nearby(center, product, k=k, radius_m=radius_m, now_ms=now_ms,
                                   status=status, level=level)

    def warm_up(self, *, margin_m: float = 5_000.0, max_cells: int = WARM_CELLS) -> int:
        """Compute the search geometry before the first query (`NearbySearch.warm_up`); returns
        how many coarse cells it warmed."""
        return self._search.warm_up(margin_m=margin_m, max_cells=max_cells)

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
            removed += self._scan("sweep", [at], [self.layout.bucket_div],
                                  [cutoff, tomb_cutoff], batch)
        return removed

    def region_keys(self) -> list[str]:
        """The `at` key of every region that has held drivers."""
        return [self.region_at(as_bytes(raw).decode())
                for raw in self.client.smembers(self.layout.regions_key)]

    def sweep_idle(self, *, now_ms: int, batch: int = SWEEP_BATCH) -> int:
        """Forget drivers idle for `idle_offline_s` (their directory records: their next ping
        gets 409 offline) and rate-limit buckets untouched as long; returns how many entries
        were forgotten. An hour's bound needs no pass every few seconds: the worker runs this
        every `SWEEP_IDLE_EVERY_S`."""
        return sum(self._scan("sweep_directory", [key], [], [now_ms - self.idle_offline_ms],
                              batch) for key in self.layout.shard_keys)

    def _scan(self, script: str, keys: list[str], head: list[Any], tail: list[Any],
              batch: int) -> int:
        cursor: bytes | str = "0"
        total = 0
        while True:
            cursor, n = self._run(script, keys=keys, args=[*head, cursor, batch, *tail])
            total += int(n)
            if cursor in (b"0", "0"):
                return total
