"""Nearby search (K=10, 3 km, available economy): the index vs GEOSEARCH vs PostGIS KNN.

Run: `python -m benchmarks.nearby` (BENCH_SIZES; QUERIES per size). The same drivers go into
the index, into one GEO set per product (so GEOSEARCH filters the product for free), and into
a PostGIS table with a GiST-indexed geography column queried with a prepared KNN statement.
One client, queries one after another; latency is measured around each call; the index,
GEOSEARCH and PostGIS take turns over slices of the queries (TURNS). The index is
measured three times: as a fresh process (empty caches of cell geometry and level hints), as
one just started the way `ridehail api` and `ridehail worker` start (`warm_up`: the geometry
under the cells holding drivers is computed before serving), and as a running one, warmed by
QUERIES other queries over the same city (never the measured points) after its start-up
`warm_up`.
The index and PostGIS once more with the processes placed (`show_placed`): both servers on the
client's core, then both on the other core; the cost at 1M against 100k for each placement.
Then throughput under load: CLIENTS processes (BENCH_CLIENTS, default 4) query at once, each
over its own connections, for LOAD_S seconds; the index's clients are warmed the same way.
"""

from __future__ import annotations

import contextlib
import gc
import io
import multiprocessing
import os
import random
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import hiredis
import psycopg2
import redis

from benchmarks.baselines import geoadd_all
from benchmarks.city import City, make_city, query_points
from benchmarks.report import (
    Figure,
    bench_redis,
    bench_redis_url,
    header,
    median,
    new_index,
    percentile,
    show,
    sizes,
)
from core.products import Product
from core.settings import Settings
from geo.cells import LatLng, forget_geometry
from geo.index import RedisDriverIndex
from geo.records import NearbyDriver, PositionUpdate

K, RADIUS_M = 10, 3000.0
QUERIES = int(os.environ.get("BENCH_QUERIES", "3000"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "4"))
LOAD_S = float(os.environ.get("BENCH_LOAD_S", "4"))
TURNS = 6   # the single-client figures take turns (index, GEOSEARCH, PostGIS) in this many slices
Run = Callable[[LatLng], object]   # one query against one of the three
T0 = 1_800_000_000_000
MIX = [Product.ECONOMY] * 7 + [Product.COMFORT] * 2 + [Product.XL]


def products(n: int) -> list[Product]:
    rng = random.Random(11)
    return [rng.choice(MIX) for _ in range(n)]


def load_redis(client: redis.Redis, city: City, kinds: list[Product]) -> RedisDriverIndex:
    index = new_index(client)
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
    conn.close()
    return prepare_knn(dsn)


def prepare_knn(dsn: str) -> psycopg2.extensions.connection:
    """A connection with the KNN query prepared."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
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


def measure_turns(queries: list[LatLng], runs: list[Run], turns: int = TURNS,
                  ) -> list[tuple[float, list[float]]]:
    """`measure` for each run over the same queries, taking turns in `turns` slices of them,
    so that a slow spell of this shared machine falls on all of them alike."""
    for run in runs:
        for q in queries[:100]:
            run(q)
    elapsed: list[float] = [0.0] * len(runs)
    latencies: list[list[float]] = [[] for _ in runs]
    size = -(-len(queries) // turns)
    for first in range(0, len(queries), size):
        for i, run in enumerate(runs):
            qps, lat = measure(queries[first:first + size], run, warm_up=0)
            elapsed[i] += len(lat) / qps
            latencies[i] += lat
    return [(len(lat) / spent, lat) for spent, lat in zip(elapsed, latencies, strict=True)]


def under_load(make_run: Callable[[], Run], queries: list[LatLng],
               clients: int = CLIENTS, seconds: float = LOAD_S) -> float:
    """Queries/s with `clients` processes querying at once (forked, so they share nothing but
    the servers), each making its own connections with `make_run` and cycling through its
    share of `queries` for `seconds`."""
    ctx = multiprocessing.get_context("fork")
    ready, counts = ctx.Barrier(clients + 1), ctx.Queue()

    def client(part: int) -> None:
        run, mine = make_run(), queries[part::clients]
        ready.wait()
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            run(mine[done % len(mine)])
            done += 1
        counts.put((done, time.perf_counter() - start))

    workers = [ctx.Process(target=client, args=(part,)) for part in range(clients)]
    for w in workers:
        w.start()
    ready.wait()
    results = [counts.get() for _ in workers]
    for w in workers:
        w.join()
    return sum(done / elapsed for done, elapsed in results)


def index_run(index: RedisDriverIndex) -> Callable[[LatLng], list[NearbyDriver]]:
    return lambda q: index.nearby(q, Product.ECONOMY, k=K, radius_m=RADIUS_M, now_ms=T0)


def geosearch_run(client: redis.Redis) -> Run:
    return lambda q: client.geosearch("bench:geo:economy", longitude=q.lng, latitude=q.lat,
                                      radius=RADIUS_M, unit="m", sort="ASC", count=K,
                                      withdist=True)


def knn_run(cur: psycopg2.extensions.cursor) -> Run:
    def run(q: LatLng) -> object:
        cur.execute("EXECUTE knn(%s, %s)", (q.lng, q.lat))
        return cur.fetchall()
    return run


def dsn(settings: Settings) -> str:
    return settings.database_url.replace("postgresql+psycopg2://", "postgresql://")


def run_size(settings: Settings, client: redis.Redis, n: int, queries: list[LatLng],
             ping_us: float) -> dict[str, float]:
    """Load n drivers everywhere, print the figures; returns the index's cost per query (us),
    left to the scheduler (key "") and placed ("same core", "other core": `show_placed`).
    `ping_us`: one Redis round trip alone (`round_trips`), for the line on where time goes."""
    city, kinds = make_city(n), products(n)
    client.flushdb()
    index = load_redis(client, city, kinds)
    pg = load_postgis(dsn(settings), city, kinds)
    cur = pg.cursor()
    geosearch, knn = geosearch_run(client), knn_run(cur)
    gc.collect()
    gc.freeze()      # the loaded city is static: keep the collector from rescanning it
    forget_geometry()
    cold_qps, cold_lat = measure(queries, index_run(index), warm_up=0)
    forget_geometry()
    started = time.perf_counter()
    booted = new_index(client)
    warmed = booted.warm_up()
    warm_s = time.perf_counter() - started
    boot_qps, boot_lat = measure(queries, index_run(booted), warm_up=0)
    running = new_index(client)
    scripted = new_index(client, module=False)
    pythonic = new_index(client, native_geometry=False)
    forget_geometry()
    for one in (running, scripted, pythonic):
        one.warm_up()       # as `ridehail api` and `ridehail worker` start, then serve
    ours, lua, py_geometry = index_run(running), index_run(scripted), index_run(pythonic)
    for q in query_points(QUERIES, seed=8):
        ours(q)
        lua(q)
        py_geometry(q)
    found = [ours(q) for q in queries[:200]]
    _check_same(found, queries[:200], cur)
    assert found == [lua(q) for q in queries[:200]], "the module and the script disagree"
    assert found == [py_geometry(q) for q in queries[:200]], "C and Python geometry disagree"
    server_before = server_usec(client)
    (ours_qps, ours_lat), (lua_qps, lua_lat), (geo_qps, geo_lat), (pg_qps, pg_lat), (
        py_qps, py_lat) = measure_turns(queries, [ours, lua, geosearch, knn, py_geometry])
    # measure_turns runs each of them over 100 queries first, then over all of them
    measured = len(queries) + min(100, len(queries))
    server_after = server_usec(client)
    # the module's searches: the index's and the same index's with its geometry in Python
    module_us, script_us = ((server_after[c] - server_before[c]) / (measured * runs)
                            for c, runs in (("rh.search", 2), ("evalsha", 1)))
    native = bool(running._scripts.native)
    print(f" {n:,} drivers (mean {sum(len(f) for f in found) / len(found):.1f} results)")
    print("  (the index searches with " + (
        "its Redis module, RH.SEARCH; the \"Lua script\" lines search the same index with "
        "the script, as on a Redis without the module)" if native else
        "its Lua script: this Redis has no search module; `make services-test` starts one "
        "that does)"))
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
    in_c = ", geometry in C" if running._search.native_geometry else ", (no geo._native)"
    show(Figure("index, ring geometry in Python q/s", py_qps, "q/s", "PostGIS KNN", pg_qps))
    show(Figure("index queries/s" + in_c, ours_qps, "q/s",
                "index, ring geometry in Python", py_qps))
    show(Figure("index p50" + in_c, median(ours_lat), "us",
                "index, ring geometry in Python p50", median(py_lat), False))
    show(Figure("index, Lua script queries/s", lua_qps, "q/s", "GEOSEARCH", geo_qps))
    show(Figure("index, Lua script queries/s", lua_qps, "q/s", "PostGIS KNN", pg_qps))
    show(Figure("index, Lua script p50", median(lua_lat), "us", "PostGIS p50",
                median(pg_lat), False))
    show(Figure("index, Lua script p99", percentile(lua_lat, 0.99), "us", "PostGIS p99",
                percentile(pg_lat, 0.99), False))
    if native:
        show(Figure("index queries/s, module", ours_qps, "q/s", "index, Lua script", lua_qps))
        show(Figure("search in Redis, module", module_us, "us/q", "Lua script", script_us,
                    False))
    where_time_goes(1e6 / ours_qps, module_us if native else script_us, ping_us, 1e6 / pg_qps,
                    knn_execution_us(cur, queries[:200]))
    costs = {"": 1e6 / ours_qps, **show_placed(ours, knn, server_pids(client, cur))}
    outside_redis(running, client, queries[:1000])
    show(Figure("fresh, no warm-up: index queries/s", cold_qps, "q/s", "PostGIS KNN", pg_qps))
    show(Figure("fresh, no warm-up: index p99", percentile(cold_lat, 0.99), "us",
                "PostGIS p99", percentile(pg_lat, 0.99), False))
    print(f"  (start-up warm-up: {warm_s:.2f} s for the geometry under {warmed:,} coarse cells)")
    show(Figure("fresh after warm-up: index queries/s", boot_qps, "q/s", "PostGIS KNN", pg_qps))
    show(Figure("fresh after warm-up: index p99", percentile(boot_lat, 0.99), "us",
                "PostGIS p99", percentile(pg_lat, 0.99), False, target="index p99 <= 2000 us"))
    show_load(settings, city_queries=queries)
    cur.execute("DROP TABLE bench_drivers")
    pg.close()
    return costs


# Fresh query points for each placement (`show_placed`): none of them searched from before.
PLACED_SEEDS = {True: 31, False: 32}


def server_pids(client: redis.Redis, cur: psycopg2.extensions.cursor) -> list[int]:
    """The Redis server's and this PostgreSQL connection's backend process ids, where both run
    on this machine (their placement can be set only there); else none."""
    pids = [int(client.info("server")["process_id"])]
    cur.execute("SELECT pg_backend_pid()")
    pids.append(cur.fetchone()[0])
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/comm").read_text().strip())
        except OSError:
            return []
    local = names[0].startswith("redis") and names[1].startswith("postgres")
    return pids if local else []


@contextlib.contextmanager
def placed(server_pids: list[int], *, together: bool) -> Iterator[bool]:
    """This process on one core and the servers (`server_pids`) on the same core (`together`)
    or on another one; every affinity as it was afterwards. Yields False, placing nothing, with
    fewer than two cores, no servers on this machine or no right to move them."""
    cpus = sorted(os.sched_getaffinity(0))
    before: dict[int, set[int]] = {}
    ok = len(cpus) >= 2 and bool(server_pids)
    try:
        if ok:
            for pid in (0, *server_pids):
                before[pid] = os.sched_getaffinity(pid)
            os.sched_setaffinity(0, {cpus[0]})
            for pid in server_pids:
                os.sched_setaffinity(pid, {cpus[0] if together else cpus[1]})
    except OSError:
        ok = False
    try:
        yield ok
    finally:
        for pid, was in before.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, was)


def show_placed(ours: Run, knn: Run, pids: list[int]) -> dict[str, float]:
    """The index against PostGIS with the processes placed, not left to the scheduler: on this
    2-core VM a round trip between processes on the same core costs ~8-11 us, across cores
    ~65-75 us (waking the other, halted vCPU), and the scheduler tends to move a PostgreSQL
    backend onto its client's core but not Redis (a PostgreSQL `SELECT 1` 11 us where a Redis
    `PING` took 65 us, in the same run). Placed alike, both servers pay the same round trips:
    on the client's core (the machine's cheapest), then on the other core (every round trip
    crossing cores, as a network hop would). Fresh query points each time. Returns the
    index's cost per query (us) by placement."""
    costs: dict[str, float] = {}
    for together, label, short in ((True, "servers on the client's core", "same core"),
                                   (False, "servers on the other core", "other core")):
        with placed(pids, together=together) as ok:
            if not ok:
                print("  (the processes' placement could not be set here: no placed runs)")
                return costs
            points = query_points(QUERIES, seed=PLACED_SEEDS[together])
            (ours_qps, ours_lat), (pg_qps, pg_lat) = measure_turns(points, [ours, knn])
        show(Figure(f"{label}: index q/s", ours_qps, "q/s", "PostGIS KNN, same", pg_qps,
                    target=">= 2x at 100k"))
        show(Figure(f"{label}: index p99", percentile(ours_lat, 0.99), "us", "PostGIS p99",
                    percentile(pg_lat, 0.99), False))
        costs[short] = 1e6 / ours_qps
    return costs


def show_load(settings: Settings, city_queries: list[LatLng]) -> None:
    """The same three under load: each client process opens its own connections (the index's
    warmed like the single client's), then all query at once."""
    url = bench_redis_url(settings)

    def ours() -> Run:
        run = index_run(new_index(redis.Redis.from_url(url)))
        for q in query_points(QUERIES, seed=8):
            run(q)
        return run

    ours_qps = under_load(ours, city_queries)
    show(Figure(f"{CLIENTS} clients at once: index q/s", ours_qps, "q/s", "GEOSEARCH",
                under_load(lambda: geosearch_run(redis.Redis.from_url(url)), city_queries)))
    show(Figure(f"{CLIENTS} clients at once: index q/s", ours_qps, "q/s", "PostGIS KNN",
                under_load(lambda: knn_run(prepare_knn(dsn(settings)).cursor()),
                           city_queries)))


def main() -> None:
    settings = Settings()
    client = bench_redis(settings)
    queries = query_points(QUERIES)
    header(f"Nearby: K={K}, {RADIUS_M / 1000:.0f} km, available economy; {QUERIES} queries, "
           "one client")
    ping_us = round_trips(settings, client)
    per_query_us = {n: run_size(settings, client, n, queries, ping_us) for n in sizes()}
    if 100_000 in per_query_us and 1_000_000 in per_query_us:
        # Each placement against itself: the processes' placement moves both figures.
        for label in [key for key in per_query_us[100_000] if key in per_query_us[1_000_000]]:
            show(Figure(f"per-query cost at 1M{', ' if label else ''}{label}",
                        per_query_us[1_000_000][label], "us", "at 100k",
                        per_query_us[100_000][label], False, target="<= 1.5x"))
    client.flushdb()


def round_trips(settings: Settings, client: redis.Redis) -> float:
    """What one round trip alone costs here: every query of all three pays one. Returns the
    Redis PING's p50 (us)."""
    pg = psycopg2.connect(dsn(settings))
    cur = pg.cursor()

    def select_1(_: LatLng) -> None:
        cur.execute("SELECT 1")
        cur.fetchall()

    points = query_points(2000, seed=3)
    _, ping = measure(points, lambda _: client.ping())
    _, select = measure(points, select_1)
    pg.close()
    blocking, spinning = raw_latencies(client, points)
    print(f"  one round trip alone, p50: Redis PING {median(ping):.0f} us (redis-py), "
          f"PostgreSQL SELECT 1 {median(select):.0f} us (psycopg2); a raw-socket PING "
          f"{median(blocking):.0f} us waiting in recv, {median(spinning):.0f} us spinning on "
          "it (the difference: waking the waiting client)")
    busy_round_trips(client, points[:1000])
    return median(ping)


PING = b"*1\r\n$4\r\nPING\r\n"
# Iterations of a Lua loop that keeps Redis busy for a call (~2, 10, 27 and 85 us here).
BUSY_LOOPS = (0, 1000, 3000, 10000)


def busy_round_trips(client: redis.Redis, points: list[LatLng]) -> None:
    """What a round trip costs beside the server's own work, as that work grows: a raw-socket
    call of a script that only loops (`BUSY_LOOPS`), the client waiting in `recv` and spinning
    on it, against Redis's time per call (`INFO commandstats`). If a short enough search
    escaped the wake-up that a waiting client pays, the gap would shrink with the work."""
    sha = client.script_load("local i, n = 0, tonumber(ARGV[1]) while i < n do i = i + 1 end "
                             "return 1")
    server: list[float] = []
    waiting: list[float] = []
    spinning: list[float] = []
    for loops in BUSY_LOOPS:
        call: Any = ("EVALSHA", sha, 0, loops)
        before = server_usec(client)["evalsha"]
        blocking, spun = raw_latencies(client, points, hiredis.pack_command(call))
        calls = 2 * (len(points) + min(100, len(points)))   # `measure` warms up on 100
        server.append((server_usec(client)["evalsha"] - before) / calls)
        waiting.append(median(blocking))
        spinning.append(median(spun))

    def row(values: list[float]) -> str:
        return " / ".join(f"{v:.0f}" for v in values)

    print(f"  a raw-socket call busy in Redis for {row(server)} us: p50 {row(waiting)} us "
          f"waiting in recv, {row(spinning)} us spinning on it")


@contextlib.contextmanager
def raw_socket(client: redis.Redis) -> Iterator[socket.socket]:
    """A plain TCP connection to `client`'s server and database, for calls sent without a
    Redis client."""
    kwargs = client.connection_pool.connection_kwargs
    with socket.create_connection((kwargs.get("host", "localhost"),
                                   kwargs.get("port", 6379))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        select: Any = ("SELECT", kwargs.get("db", 0))
        raw_call(sock, hiredis.pack_command(select), spin=False)
        yield sock


def raw_call(sock: socket.socket, command: bytes, *, spin: bool) -> None:
    """Send a packed command and read its whole reply, the client blocked in `recv` (as
    every client here waits) or spinning on a non-blocking `recv` (never put to sleep, which
    no client here does: it burns a core while it waits)."""
    sock.sendall(command)
    reader = hiredis.Reader()
    while True:
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT) if spin else sock.recv(65536)
        except BlockingIOError:
            continue
        reader.feed(data)
        if reader.gets() is not False:
            return


def raw_latencies(client: redis.Redis, points: list[LatLng], command: bytes = PING,
                  ) -> tuple[list[float], list[float]]:
    """Latencies of a packed command (a bare RESP PING by default) over a plain socket,
    waiting and spinning (`raw_call`)."""
    with raw_socket(client) as sock:
        return (measure(points, lambda _: raw_call(sock, command, spin=False))[1],
                measure(points, lambda _: raw_call(sock, command, spin=True))[1])


def server_usec(client: redis.Redis) -> dict[str, int]:
    """Microseconds Redis has spent in the search module's command and in scripts called by
    SHA (INFO commandstats, server-wide: only the index's searches run either while the
    figures are measured)."""
    stats = client.info("commandstats")
    return {command: int(stats.get(f"cmdstat_{command}", {}).get("usec", 0))
            for command in ("rh.search", "evalsha")}


def knn_execution_us(cur: psycopg2.extensions.cursor, queries: list[LatLng]) -> float:
    """Mean time PostgreSQL spends executing the prepared KNN (EXPLAIN ANALYZE, without
    per-node timing), over `queries`."""
    total_ms = 0.0
    for q in queries:
        cur.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) EXECUTE knn(%s, %s)",
                    (q.lng, q.lat))
        total_ms += cur.fetchone()[0][0]["Execution Time"]
    return total_ms * 1000 / len(queries)


def where_time_goes(ours_us: float, search_us: float, ping_us: float, pg_us: float,
                    pg_exec_us: float) -> None:
    """Each side's mean query split into the server's own work and the rest (round trip and
    client), and what 2x PostGIS would leave the index: a query cannot take less than its
    search in Redis (module or script) plus one round trip."""
    pg_rest = pg_us - pg_exec_us
    # The execution is timed apart (EXPLAIN ANALYZE over 200 queries): on a noisy spell of a
    # shared machine it can exceed the mean of the measured turns.
    rest = f"{pg_rest:.0f}" if pg_rest >= 0 else (
        f"~0 (the execution, timed apart, took {-pg_rest:.0f} us more than the mean)")
    print(f"  where a query's time goes (means): index {ours_us:.0f} us = search in "
          f"Redis {search_us:.0f} + round trip and client {ours_us - search_us:.0f}; PostGIS "
          f"{pg_us:.0f} us = KNN executing in PostgreSQL {pg_exec_us:.0f} + round trip and "
          f"client {rest}")
    print(f"  (2x PostGIS needs {pg_us / 2:.0f} us per index query; its search in Redis plus "
          f"one Redis PING round trip take {search_us + ping_us:.0f} us)")


def outside_redis(index: RedisDriverIndex, client: redis.Redis, queries: list[LatLng]) -> None:
    """What an index query spends outside Redis, in two parts: its client work alone (the
    same queries with Redis's replies replayed: the Python of a search, packing included), and
    its search call (module or script) sent over a raw socket, the client waiting in `recv`
    against one spinning on it: the difference is what waking a client that waited as long as
    a search costs on this machine (a PING's wait, ~20 us, may cost nothing: `round_trips`)."""
    scripts = index._scripts        # the index's own calls, recorded and replayed
    run = index_run(index)
    replies: dict[tuple[object, ...], object] = {}
    calls: list[bytes] = []
    real_read = scripts.read

    def recording(name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        reply = replies[(name, *keys, *args)] = real_read(name, keys, args)
        calls.append(hiredis.pack_command(scripts._command(name, keys, args)))
        return reply

    def replaying(name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        key = (name, *keys, *args)
        return replies[key] if key in replies else real_read(name, keys, args)

    scripts.read = recording        # type: ignore[method-assign]
    for q in queries:
        run(q)
    scripts.read = replaying        # type: ignore[method-assign]
    try:
        client_us = median(measure(queries, run)[1])
    finally:
        del scripts.read            # the class's method again
    with raw_socket(client) as sock:

        def timed(spin: bool) -> list[float]:
            latencies = []
            for command in calls:
                t = time.perf_counter()
                raw_call(sock, command, spin=spin)
                latencies.append((time.perf_counter() - t) * 1e6)
            return latencies

        # Not alternately: a wait right after a spin would find this machine's cores awake.
        waiting, spinning = timed(spin=False), timed(spin=True)
    print(f"  outside Redis, p50: the index's client work alone {client_us:.0f} us (replies "
          f"replayed); its search call over a raw socket {median(waiting):.0f} us "
          f"waiting in recv, {median(spinning):.0f} us spinning on it")


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
