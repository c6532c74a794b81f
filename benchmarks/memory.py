"""Bytes per online driver in Redis: the index vs the same drivers in one GEO set.

Run: `python -m benchmarks.memory` (BENCH_SIZES as for the other benchmarks).
Two measures of each: the growth of `used_memory` (INFO memory: everything the data costs
the server, the keyspace's own entries included), and the sum of `MEMORY USAGE` over the
keys (exact per key, `SAMPLES 0`). The first can include memory a key frees a moment later
(a hash table's old array while it is resized incrementally): the GEO set's figure moves
between ~120 and ~128 bytes per driver from run to run with it, the second does not.
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


def keys_usage(client: redis.Redis) -> int:
    """The sum of `MEMORY USAGE key SAMPLES 0` over the database's keys."""
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(count=1000):
        pipe.memory_usage(key, samples=0)
    return sum(int(size or 0) for size in pipe.execute())


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
        ours_keys = keys_usage(client) / n
        client.flushdb()
        base = used(client)
        geoadd_all(client, "bench:geo", city.ids, city.points)
        geo = (used(client) - base) / n
        geo_keys = keys_usage(client) / n
        client.flushdb()
        print(f" {n:,} drivers")
        show(Figure("index", ours, "B/driver", "one GEO set (16-byte members)", geo,
                    higher_is_better=False, target="<= 4x"))
        show(Figure("index, MEMORY USAGE of its keys", ours_keys, "B/driver",
                    "MEMORY USAGE of the GEO set", geo_keys, higher_is_better=False))


if __name__ == "__main__":
    main()
