"""Bytes per online driver in Redis: the index vs the same drivers in one GEO set.

Run: `python -m benchmarks.memory` (BENCH_SIZES as for the other benchmarks).
"""

from __future__ import annotations

import redis

from benchmarks.baselines import geoadd_all
from benchmarks.city import make_city
from benchmarks.report import Figure, bench_redis, header, new_index, show, sizes
from core.products import Product
from core.settings import Settings
from geo.records import PositionUpdate

T0 = 1_800_000_000_000


def used(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def main() -> None:
    settings = Settings()
    client = bench_redis(settings)
    header("Memory: bytes per online driver (INFO memory) vs one GEO set of the same drivers")
    for n in sizes():
        city = make_city(n)
        client.flushdb()
        base = used(client)
        index = new_index(client)
        index.go_online_many([(d, Product.ECONOMY) for d in city.ids], now_ms=T0)
        updates = [PositionUpdate(d, p, T0) for d, p in zip(city.ids, city.points, strict=True)]
        for i in range(0, n, 10_000):
            index.ingest(updates[i:i + 10_000])
        ours = (used(client) - base) / n
        client.flushdb()
        base = used(client)
        geoadd_all(client, "bench:geo", city.ids, city.points)
        geo = (used(client) - base) / n
        client.flushdb()
        print(f" {n:,} drivers")
        show(Figure("index", ours, "B/driver", "one GEO set (16-byte members)", geo,
                    higher_is_better=False, target="<= 4x"))


if __name__ == "__main__":
    main()
