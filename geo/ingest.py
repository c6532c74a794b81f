"""A batch of pings as two rounds of script calls: claims in the directory, then places and
evictions in the regions (the I/O is the caller's: sync, asyncio, or a test replaying a race)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Generator, Sequence
from typing import Any

import h3.api.basic_int as h3i

from geo.layout import DIRECTORY_SHARDS, KeyLayout
from geo.records import (
    CLAIM_IN,
    CLAIM_OUT,
    CODE_PRODUCTS,
    EVICT_IN,
    NO_REGION,
    OUTCOMES,
    PLACE_IN,
    STATUSES,
    Ingested,
    IngestResult,
    Outcome,
    PositionUpdate,
)
from geo.scripts import SADD, Call

IngestPlan = Generator[list[Call], list[Any], Ingested]


class IngestPlanner:
    """Plans batches of pings for one index: its key layout, finest level and limits."""

    def __init__(self, layout: KeyLayout, finest: int, *, max_speed_mps: float, sample_ms: int,
                 rate_per_s: float, rate_burst: int, sample_backlog: int) -> None:
        self._layout, self._finest = layout, finest
        self.max_speed_mps, self.sample_ms = max_speed_mps, sample_ms
        self.rate_per_s, self.rate_burst = rate_per_s, rate_burst
        self.sample_backlog = sample_backlog
        self._known_regions: set[bytes] = set()

    def plan(self, updates: Sequence[PositionUpdate], charge: Sequence[uuid.UUID],
             now_ms: int | None) -> IngestPlan:
        """The ingest logic without I/O: yields each round trip's calls, receives the replies."""
        charges: dict[int, list[bytes]] = defaultdict(list)
        for driver in charge:
            charges[self._layout.shard_of(driver.bytes)].append(driver.bytes)
        shards: dict[int, list[int]] = defaultdict(list)
        records: list[bytes] = []
        places_of: list[tuple[bytes, int, bytes]] = []
        layout = self._layout
        to_cell, finest = h3i.latlng_to_cell, self._finest
        cell_mask, tie_mask = layout.cell_mask, layout.tie_mask     # layout.score, inlined
        keep, bits = layout.region_keep, layout.region_bits
        for i, u in enumerate(updates):
            member, lat, lng = u.driver_id.bytes, u.point.lat, u.point.lng
            fine = to_cell(lat, lng, finest)
            region = b"%x" % ((fine & keep) | bits)
            records.append(CLAIM_IN.pack(member, lat, lng, u.ts_ms, u.heading_deg, region))
            places_of.append((member, (fine & cell_mask) | ((member[14] << 8 | member[15])
                                                            & tie_mask), region))
            shards[member[0] % DIRECTORY_SHARDS].append(i)
        for shard in charges:
            shards.setdefault(shard, [])
        replies = yield [("claim", [layout.shard_keys[shard], layout.stream_keys[shard]],
                          [b"".join(records[i] for i in members), self.max_speed_mps,
                           self.sample_ms, self.rate_per_s, self.rate_burst, now_ms or 0,
                           b"".join(charges.get(shard, ())), self.sample_backlog,
                           int(len({places_of[i][0] for i in members}) < len(members))])
                         for shard, members in shards.items()]
        outcomes: list[tuple[int, int, int, int, bytes, float, int]] = [
            (0, 0, 0, 0, NO_REGION, 0.0, 0)] * len(updates)
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
        for u, (member, score, region), (code, status, pcode, _, old, since, version) in zip(
                updates, places_of, outcomes, strict=True):
            outcome = OUTCOMES[code]
            if outcome is Outcome.APPLIED:
                last_place[member] = (region, PLACE_IN.pack(
                    member, u.point.lat, u.point.lng, u.ts_ms, pcode, status, u.heading_deg,
                    score, u.ts_ms if now_ms is None else now_ms, since, version))
            elif outcome is Outcome.IMPOSSIBLE:
                evictions[region].append(EVICT_IN.pack(member, u.ts_ms, since))
            if old != NO_REGION and old != region and outcome in (Outcome.APPLIED,
                                                                Outcome.IMPOSSIBLE):
                evictions[old].append(EVICT_IN.pack(member, u.ts_ms, since))
            results.append(IngestResult(u.driver_id, outcome, STATUSES[status],
                                        CODE_PRODUCTS[pcode] if status else None))
        places: dict[bytes, list[bytes]] = defaultdict(list)
        for region, record in last_place.values():
            places[region].append(record)
        div = layout.bucket_div
        calls: list[Call] = [
            ("place", [layout.region_at(region.decode())], [div, b"".join(blobs)])
            for region, blobs in places.items()]
        calls += [("evict", [layout.region_at(region.decode())], [div, b"".join(blobs)])
                  for region, blobs in evictions.items()]
        new_regions = [r for r in places if r not in self._known_regions]
        if new_regions:
            calls.append((SADD, [layout.regions_key], [r.decode() for r in new_regions]))
        if calls:
            replies = yield calls
            # Known once the SADD has run: a round trip that never ran (its process died, its
            # connection dropped; a test replaying a lost one sends no replies) leaves them
            # new, so a later batch adds them (else the sweeper would never visit a region
            # only this batch had entered).
            if len(replies) == len(calls):
                self._known_regions.update(new_regions)
        return Ingested(results, frozenset(denied))
