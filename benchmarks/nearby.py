"""Nearby search (K=10, 3 km, available economy): the index vs GEOSEARCH vs PostGIS KNN.

Run: `python -m benchmarks.nearby` (BENCH_SIZES; QUERIES per size). The same drivers go into
the index, into one GEO set per product (so GEOSEARCH filters the product for free), and into
a PostGIS table with a GiST-indexed geography column queried with a prepared KNN statement.
One client, queries one after another; latency is measured around each call. The index is
measured twice: as a fresh process (empty caches of cell geometry and level hints), and as a
running one, warmed by QUERIES other queries over the same city (never the measured points).
"""

from __future__ import annotations

import gc
import io
import os
import random
import time
from collections.abc import Callable

import psycopg2
import redis

from benchmarks.baselines import geoadd_all
from benchmarks.city import City, make_city, query_points
from benchmarks.report import Figure, bench_redis, header, median, percentile, show, sizes
from core.products import Product
from core.settings import Settings
from geo.cells import LatLng, reach, ring, ring_reach, ring_span
from geo.index import NearbyDriver, PositionUpdate, RedisDriverIndex, score_span

K, RADIUS_M = 10, 3000.0
QUERIES = int(os.environ.get("BENCH_QUERIES", "3000"))
T0 = 1_800_000_000_000
MIX = [Product.ECONOMY] * 7 + [Product.COMFORT] * 2 + [Product.XL]


def products(n: int) -> list[Product]:
    rng = random.Random(11)
    return [rng.choice(MIX) for _ in range(n)]


def load_redis(client: redis.Redis, city: City, kinds: list[Product]) -> RedisDriverIndex:
    index = RedisDriverIndex(client)
    index.go_online_many(list(zip(city.ids, kinds, strict=True)), now_ms=T0)
    updates = [PositionUpdate(d, p, T0) for d, p in zip(city.ids, city.points, strict=True)]
    for i in range(0, len(updates), 10_000):
        index.ingest(updates[i:i + 10_000])
    for kind in Product:
        mine = [(d, p) for d, p, k in zip(city.ids, city.points, kinds, strict=True) if k is kind]
        geoadd_all(client, f"bench:geo:{kind.value}", [d for d, _ in mine], [p for _, p in mine])
    return index


def load_postgis(dsn: str, city: City, kinds: list[Product]) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_drivers")
        cur.execute("CREATE UNLOGGED TABLE bench_drivers (id uuid PRIMARY KEY, product text, "
                    "geog geography(Point, 4326))")
        rows = io.StringIO("".join(
            f"{d}\t{k.value}\tSRID=4326;POINT({p.lng} {p.lat})\n"
            for d, p, k in zip(city.ids, city.points, kinds, strict=True)))
        cur.copy_expert("COPY bench_drivers FROM STDIN", rows)
        cur.execute("CREATE INDEX bench_drivers_geog ON bench_drivers USING gist (geog)")
        cur.execute("ANALYZE bench_drivers")
        cur.execute(
            "PREPARE knn(float8, float8) AS SELECT id, ST_Distance(geog, q) FROM bench_drivers, "
            "(SELECT ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography AS q) s "
            "WHERE product = 'economy' AND ST_DWithin(geog, q, 3000) "
            "ORDER BY geog <-> q LIMIT 10")
    return conn


def measure(queries: list[LatLng], run: Callable[[LatLng], object],
            warm_up: int = 100) -> tuple[float, list[float]]:
    for q in queries[:warm_up]:
        run(q)
    latencies = []
    start = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        run(q)
        latencies.append((time.perf_counter() - t) * 1e6)
    return len(queries) / (time.perf_counter() - start), latencies


def forget_geometry() -> None:
    """Empty the per-process caches of cell geometry (as in a process just started)."""
    for cached in (reach, ring, ring_reach, ring_span, score_span):
        cached.cache_clear()


def dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg2://", "postgresql://")


def run_size(settings: Settings, client: redis.Redis, n: int, queries: list[LatLng]) -> float:
    """Load n drivers everywhere, print the figures; returns the index's cost per query (us)."""
    city, kinds = make_city(n), products(n)
    client.flushdb()
    index = load_redis(client, city, kinds)
    pg = load_postgis(dsn(settings), city, kinds)
    cur = pg.cursor()

    def ours(q: LatLng) -> list[NearbyDriver]:
        return index.nearby(q, Product.ECONOMY, k=K, radius_m=RADIUS_M, now_ms=T0)

    def geosearch(q: LatLng) -> object:
        return client.geosearch("bench:geo:economy", longitude=q.lng, latitude=q.lat,
                                radius=RADIUS_M, unit="m", sort="ASC", count=K, withdist=True)

    def knn(q: LatLng) -> object:
        cur.execute("EXECUTE knn(%s, %s)", (q.lng, q.lat))
        return cur.fetchall()

    gc.collect()
    gc.freeze()      # the loaded city is static: keep the collector from rescanning it
    forget_geometry()
    cold_qps, cold_lat = measure(queries, ours, warm_up=0)
    index = RedisDriverIndex(client)
    forget_geometry()
    for q in query_points(QUERIES, seed=8):
        ours(q)
    found = [ours(q) for q in queries[:200]]
    _check_same(found, queries[:200], cur)
    ours_qps, ours_lat = measure(queries, ours)
    geo_qps, geo_lat = measure(queries, geosearch)
    pg_qps, pg_lat = measure(queries, knn)
    print(f" {n:,} drivers (mean {sum(len(f) for f in found) / len(found):.1f} results)")
    show(Figure("index queries/s", ours_qps, "q/s", "GEOSEARCH BYRADIUS ... COUNT 10 ASC",
                geo_qps, target=">= 10x at 100k"))
    show(Figure("index queries/s", ours_qps, "q/s", "PostGIS KNN (GiST, prepared)", pg_qps,
                target=">= 2x at 100k"))
    show(Figure("index p50", median(ours_lat), "us", "GEOSEARCH p50", median(geo_lat), False))
    show(Figure("index p50", median(ours_lat), "us", "PostGIS p50", median(pg_lat), False))
    show(Figure("index p99", percentile(ours_lat, 0.99), "us", "GEOSEARCH p99",
                percentile(geo_lat, 0.99), False, target="index p99 <= 2000 us"))
    show(Figure("index p99", percentile(ours_lat, 0.99), "us", "PostGIS p99",
                percentile(pg_lat, 0.99), False))
    show(Figure("fresh process: index queries/s", cold_qps, "q/s", "PostGIS KNN", pg_qps))
    show(Figure("fresh process: index p99", percentile(cold_lat, 0.99), "us", "PostGIS p99",
                percentile(pg_lat, 0.99), False))
    cur.execute("DROP TABLE bench_drivers")
    pg.close()
    return 1e6 / ours_qps


def main() -> None:
    settings = Settings()
    client = bench_redis(settings)
    queries = query_points(QUERIES)
    header(f"Nearby: K={K}, {RADIUS_M / 1000:.0f} km, available economy; {QUERIES} queries, "
           "one client")
    per_query_us = {n: run_size(settings, client, n, queries) for n in sizes()}
    if 100_000 in per_query_us and 1_000_000 in per_query_us:
        show(Figure("per-query cost at 1M", per_query_us[1_000_000], "us", "at 100k",
                    per_query_us[100_000], False, target="<= 1.5x"))
    client.flushdb()


def _check_same(found: list, queries: list[LatLng], cur: object) -> None:
    """The three answer the same question: the index's ids must equal PostGIS's."""
    mismatches = 0
    for q, ours in zip(queries, found, strict=True):
        cur.execute("EXECUTE knn(%s, %s)", (q.lng, q.lat))  # type: ignore[attr-defined]
        theirs = [str(row[0]) for row in cur.fetchall()]  # type: ignore[attr-defined]
        mismatches += [str(d.driver_id) for d in ours] != theirs
    print(f"  (index vs PostGIS: {len(queries) - mismatches}/{len(queries)} identical answers)")


if __name__ == "__main__":
    main()
