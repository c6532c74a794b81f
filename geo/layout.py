"""The index's key names and scores: which Redis key holds a driver, and where in it.

Every key of a region shares the hash tag `{R}`, R being the cell's H3 parent at the region
resolution, so a region lives on one Redis Cluster slot; directory records live in
`DIRECTORY_SHARDS` hashes tagged `{sNN}` (the key table: `geo.index`, README "Driver index").
A driver's score in its region is the digits of its finest H3 cell below the region, so every
search cell's drivers are one contiguous score range of one sorted set; the bits below the
finest cell, which H3 fills with 7s, carry a tie-break taken from the driver's id, so drivers
in one cell have different scores and Redis's skip lists order them without comparing ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

DIRECTORY_SHARDS = 64
# H3 index bits: resolution in bits 52-55, then one 3-bit digit per resolution 1..15.
RES_MASK = 0xF << 52


def parent_int(cell: int, resolution: int) -> int:
    """`h3.cell_to_parent` on the integer form, in a few integer operations (a hot path)."""
    unused = (1 << (3 * (15 - resolution))) - 1
    return (cell & ~RES_MASK & ~unused) | (resolution << 52) | unused


def score_span(cell: int, score_mask: int, bucket_shift: int) -> bytes:
    """The bucket that holds the finest cells under `cell` and their drivers' lowest and highest
    scores, as the search script reads them: length-prefixed decimal texts. Below `cell`'s
    resolution a score holds its finest cell's digits (0 to 6), then the tie-break bits (any
    value: `KeyLayout.tie_mask`); `cell` itself has all ones there (H3's unused digits are 7s),
    the highest, and the lowest has all zeros."""
    high = cell & score_mask
    low = high & ~((1 << 3 * (15 - ((cell & RES_MASK) >> 52))) - 1)
    bucket, first, last = b"%d" % (low >> bucket_shift), b"%d" % low, b"%d" % high
    return b"%c%b%c%b%c%b" % (len(bucket), bucket, len(first), first, len(last), last)


def glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


class KeyLayout:
    """Key names and score arithmetic for one index: its `prefix`, `region_resolution` and
    search `levels` (finest first)."""

    def __init__(self, prefix: str, region_resolution: int, levels: Sequence[int], *,
                 tiebreak: bool = True) -> None:
        self.prefix = prefix
        self.region_resolution = region_resolution
        unused = (1 << (3 * (15 - region_resolution))) - 1   # parent_int, unrolled
        # A cell's region: (cell & region_keep) | region_bits.
        self.region_keep = ~RES_MASK & ~unused
        self.region_bits = (region_resolution << 52) | unused
        # A driver's score: the digits of its finest cell below the region (<= 45 bits, exact
        # as a double and as Lua's %.14g).
        self.score_mask = unused
        # Below the finest level's digits a cell has 7s (all ones); a driver's score puts there
        # the low bits of its id instead (`score`), so the drivers of one cell do not tie. A
        # skip list orders equal scores by comparing members: with ~20 drivers per cell (1M in
        # the benchmark city) that took 12% of Redis's time per ping. Scores written without
        # it (all ones, before the twenty-first session or with `tiebreak=False`) lie within
        # every range searches read (`score_span`).
        self.tie_mask = (1 << 3 * (15 - levels[0])) - 1 if tiebreak else 0
        self.cell_mask = unused & ~self.tie_mask
        # A driver's sorted set: its cell at the coarsest search level (score >> shift), so
        # sets stay small (compact listpacks up to 128 drivers) and each search cell is in one.
        self.bucket_shift = 3 * (15 - levels[-1])
        self.bucket_div = 1 << self.bucket_shift     # the scripts' divisor for the same
        self.shard_keys = [f"{prefix}:dir:{{s{i:02d}}}" for i in range(DIRECTORY_SHARDS)]
        self.stream_keys = [f"{prefix}:locs:{{s{i:02d}}}" for i in range(DIRECTORY_SHARDS)]
        self.regions_key = f"{prefix}:regions"

    def score(self, member: bytes, cell: int) -> int:
        """The score of a driver (16-byte id) whose finest cell is `cell` (`IngestPlanner`
        inlines it): the cell's digits below the region, then up to 16 bits of the id."""
        return (cell & self.cell_mask) | ((member[14] << 8 | member[15]) & self.tie_mask)

    def shard_of(self, member: bytes) -> int:
        """The directory shard of a driver's 16-byte id."""
        return member[0] % DIRECTORY_SHARDS

    def directory_key(self, driver_id: uuid.UUID) -> str:
        return self.shard_keys[self.shard_of(driver_id.bytes)]

    def region_prefix(self, region: str) -> str:
        return f"{self.prefix}:{{{region}}}"

    def region_at(self, region: str) -> str:
        """The region's `at` hash: the key its scripts declare (KEYS[1])."""
        return f"{self.region_prefix(region)}:at"

    def region_of(self, cell: str) -> str:
        return f"{parent_int(int(cell, 16), self.region_resolution):x}"

    def sets_pattern(self) -> str:
        """A SCAN pattern matching every region's sorted sets."""
        return f"{glob_escape(self.prefix)}:{{*}}:z:*"
