"""Ping ingest into the index vs raw pipelined GEOADD of the same pings into the same Redis.

Run: `make bench` or `python -m benchmarks.ingest` (BENCH_SIZES=10000,100000,1000000).
Steady state is measured: every driver is already online and placed; then ROUNDS timed
rounds, 5 s apart, each moving every driver 80 m further (a ping every 5 s; with the default
10 s sampling, every other round also writes the location samples). Pings go in batches of
BATCH (one `ingest` call, two round trips); the `PositionUpdate`s are built before the clock
starts, as the baselines' members and points are. Two ways of feeding the index:
- one client calling `ingest` for one batch after another;
- asyncio (`ingest_async`, the API's path) with 2, then 3 batches under way at once (IN_FLIGHT),
  so that the client prepares one batch while Redis runs another's scripts: an API process
  serving many drivers has many batches in flight, and Redis's busy share grows with them.
Where the benchmark's Redis loads the index's module (`geo/module`), the index steps the pings
with its commands, as the API does there; one more run (asyncio, 2 in flight) steps them with
the Lua scripts on the same Redis, as on a Redis without the module.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import redis
import redis.asyncio as aredis

from benchmarks.baselines import geoadd_all
from benchmarks.city import City, make_city, moved
from benchmarks.report import (
    Figure,
    bench_redis,
    bench_redis_url,
    header,
    new_index,
    show,
    sizes,
)
from core.products import Product
from core.settings import Settings
from geo.cells import LatLng
from geo.index import RedisDriverIndex
from geo.records import PositionUpdate

BATCH = 2_000
ROUNDS = 4
IN_FLIGHT = (2, 3)
SCRIPTED = 2    # batches in flight for the run with the Lua scripts
PING_EVERY_MS = 5_000
T0 = 1_800_000_000_000
TARGET = ">= 100k/s and >= 0.3x"
Feed = Callable[[RedisDriverIndex, list[list[PositionUpdate]]], float]


def rate(count: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def batches(city: City, points: list[LatLng], ts_ms: int) -> list[list[PositionUpdate]]:
    updates = [PositionUpdate(d, p, ts_ms) for d, p in zip(city.ids, points, strict=True)]
    return [updates[i:i + BATCH] for i in range(0, len(updates), BATCH)]


def feed_sync(index: RedisDriverIndex, round_: list[list[PositionUpdate]]) -> float:
    return rate(sum(map(len, round_)), lambda: [index.ingest(b) for b in round_])


def feed_async(url: str, in_flight: int) -> Feed:
    def feed(index: RedisDriverIndex, round_: list[list[PositionUpdate]]) -> float:
        async def run() -> float:
            client = aredis.Redis.from_url(url)

            async def worker(mine: list[list[PositionUpdate]]) -> None:
                for batch in mine:
                    await index.ingest_async(batch, client)

            start = time.perf_counter()
            await asyncio.gather(*(worker(round_[k::in_flight]) for k in range(in_flight)))
            elapsed = time.perf_counter() - start
            await index.aclose(client)
            await client.aclose()
            return sum(map(len, round_)) / elapsed
        return asyncio.run(run())
    return feed


def index_rate(client: redis.Redis, city: City, feed: Feed, *, module: bool = True
               ) -> tuple[float, frozenset[str]]:
    """Pings/s over the timed rounds, after every driver went online and was placed; and the
    scripts its module ran in their place (none: the Lua scripts stepped the pings)."""
    client.flushdb()
    index = new_index(client, module=module)
    index.go_online_many([(d, Product.ECONOMY) for d in city.ids], now_ms=T0)
    points = city.points
    rounds = [batches(city, points, T0)]
    for r in range(1, ROUNDS + 1):
        points = moved(points, seed=r)
        rounds.append(batches(city, points, T0 + r * PING_EVERY_MS))
    gc.collect()
    gc.freeze()      # the rounds held in memory are static: keep the collector from rescanning
    feed_sync(index, rounds[0])                                  # placement (not timed)
    elapsed = sum(sum(map(len, round_)) / feed(index, round_) for round_ in rounds[1:])
    gc.unfreeze()
    return len(city.ids) * ROUNDS / elapsed, index._scripts.native


def geoadd_pipelined(client: redis.Redis, city: City) -> float:
    members = [d.bytes for d in city.ids]

    def run() -> None:
        for i in range(0, len(members), BATCH):
            pipe = client.pipeline(transaction=False)
            for member, p in zip(members[i:i + BATCH], city.points[i:i + BATCH], strict=True):
                pipe.geoadd("bench:geo", (p.lng, p.lat, member))
            pipe.execute()

    return rate(len(members), run)


def geoadd_multi(client: redis.Redis, city: City) -> float:
    return rate(len(city.ids),
                lambda: geoadd_all(client, "bench:geo2", city.ids, city.points, BATCH))


def main() -> None:
    settings = Settings()
    client = bench_redis(settings)
    header("Ingest: pings/s into the driver index vs raw GEOADD (same pings, same Redis)")
    for n in sizes():
        city = make_city(n)
        client.flushdb()
        raw = geoadd_pipelined(client, city)
        multi = geoadd_multi(client, city)
        one, native = index_rate(client, city, feed_sync)
        overlapped = {k: index_rate(client, city, feed_async(bench_redis_url(settings), k))[0]
                      for k in IN_FLIGHT}
        scripted, _ = index_rate(client, city, feed_async(bench_redis_url(settings), SCRIPTED),
                                 module=False)
        print(f" {n:,} drivers")
        print("  (" + ("the index steps the pings with its Redis module, RH.CLAIM and RH.PLACE;"
                       if {"claim", "place"} <= native else
                       "this Redis has not the index's module: the Lua scripts step the pings;")
              + ' the "Lua scripts" lines with the scripts, on the same Redis)')
        show(Figure("index, one client, batch after batch", one, "pings/s",
                    "pipelined GEOADD (1/command)", raw, target=TARGET))
        for k, rate_k in overlapped.items():
            show(Figure(f"index, asyncio, {k} batches in flight", rate_k, "pings/s",
                        "pipelined GEOADD (1/command)", raw, target=TARGET))
        for k, rate_k in overlapped.items():
            show(Figure(f"index, asyncio, {k} batches in flight", rate_k, "pings/s",
                        f"GEOADD, {BATCH:,} members/command", multi))
        show(Figure(f"index, Lua scripts, asyncio, {SCRIPTED} in flight", scripted, "pings/s",
                    "pipelined GEOADD (1/command)", raw))
        show(Figure(f"index, asyncio, {SCRIPTED} in flight", overlapped[SCRIPTED], "pings/s",
                    "index, Lua scripts, same", scripted))
    client.flushdb()


if __name__ == "__main__":
    main()
