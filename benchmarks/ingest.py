"""Ping ingest into the index vs raw pipelined GEOADD of the same pings into the same Redis.

Run: `make bench` or `python -m benchmarks.ingest` (BENCH_SIZES=10000,100000,1000000).
Steady state is measured: every driver is already online and placed; the timed round moves
each driver by 80 m, in batches of BATCH pings (one `ingest` call, two round trips).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis

from benchmarks.baselines import geoadd_all
from benchmarks.city import City, make_city, moved
from benchmarks.report import Figure, bench_redis, header, show, sizes
from core.products import Product
from core.settings import Settings
from geo.index import PositionUpdate, RedisDriverIndex

BATCH = 2_000
T0 = 1_800_000_000_000


def rate(count: int, run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def index_rounds(client: redis.Redis, city: City, threads: int) -> float:
    index = RedisDriverIndex(client)
    index.go_online_many([(d, Product.ECONOMY) for d in city.ids], now_ms=T0)
    n = len(city.ids)

    def feed(points: list, ts: int, part: int) -> None:
        mine = RedisDriverIndex(redis.Redis(connection_pool=client.connection_pool))
        updates = [PositionUpdate(d, p, ts) for d, p in zip(city.ids, points, strict=True)]
        for i in range(part * BATCH, n, BATCH * threads):
            mine.ingest(updates[i:i + BATCH])

    def run_round(points: list, ts: int) -> None:
        workers = [threading.Thread(target=feed, args=(points, ts, t)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    run_round(city.points, T0)                                  # placement (not timed)
    step = moved(city.points, seed=1)
    return rate(n, lambda: run_round(step, T0 + 5_000))


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
        client.flushdb()
        one = index_rounds(client, city, threads=1)
        client.flushdb()
        two = index_rounds(client, city, threads=2)
        print(f" {n:,} drivers")
        show(Figure("index, 1 client thread", one, "pings/s", "pipelined GEOADD (1/command)", raw,
                    target=">= 100k/s and >= 0.3x"))
        show(Figure("index, 2 client threads", two, "pings/s", "pipelined GEOADD (1/command)",
                    raw, target=">= 100k/s and >= 0.3x"))
        show(Figure("index, 2 client threads", two, "pings/s",
                    f"GEOADD, {BATCH:,} members/command", multi))
    client.flushdb()


if __name__ == "__main__":
    main()
