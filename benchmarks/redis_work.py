"""Redis's own work, in instructions counted by callgrind: per nearby query (the index's search
script, and its module's command where a C compiler builds it, vs GEOSEARCH, over the
same queries of the same city), per ping (the index's claim and place, by its scripts and by
its module's commands, vs a pipelined GEOADD of the same pings), and per driver for one pass of
each sweep (of the cells, every `SWEEP_EVERY_S`; of the directory for idle drivers, every
`SWEEP_IDLE_EVERY_S`) that finds nothing to remove, the steady state, vs a bare `HSCAN` pass
over the same hashes: the least any sweep that visits every driver does.

Run: `python -m benchmarks.redis_work` (BENCH_SIZES; needs valgrind: `apt-get install
valgrind`). Wall-clock figures on a shared 2-core machine move by +-15% from run to run; an
instruction count does not (the same binary, data and queries give the same count), so this
one shows what a change to the search script costs or saves, and how much of one Redis core a
query takes, which bounds throughput once many clients share one Redis.

A private redis-server runs under `valgrind --tool=callgrind` with counting off; the city is
loaded into the benchmark Redis as in `benchmarks.nearby`, copied over with DUMP/RESTORE, and
the index's client is warmed by 1,000 other queries before counting is switched on around
the measured ones. Pings: PINGS drivers of the loaded city move 80 m twice, 5 s apart (with
the default 10 s sampling the second round also writes location samples, as in
`benchmarks.ingest`), in batches of 2,000 through `ingest`. Only redis-server is counted
(user-space instructions: the kernel's networking is not), not the client.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import redis

from benchmarks.city import City, make_city, moved, query_points
from benchmarks.ingest import BATCH, PING_EVERY_MS
from benchmarks.nearby import RADIUS_M, T0, K, geosearch_run, index_run, load_redis, products
from benchmarks.report import Figure, bench_redis, header, new_index, show, sizes
from core.settings import Settings
from geo import module
from geo.cells import LatLng
from geo.index import SWEEP_BATCH, RedisDriverIndex
from geo.records import PositionUpdate

WARM_QUERIES = 1000
# GEOSEARCH in the dense centre of a 1M city takes ~60 ms, ~50x that under callgrind.
QUERIES = {10_000: 300, 100_000: 200, 1_000_000: 40}
PINGS = 20_000


class CountedRedis:
    """A redis-server under callgrind, counting only between `start` and `stop`."""

    def __init__(self, workdir: Path, module_path: Path | None = None) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = workdir
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             f"--callgrind-out-file={workdir}/cg.%p", "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             *(["--loadmodule", str(module_path)] if module_path else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port)
        for _ in range(300):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        else:
            raise RuntimeError("redis-server under callgrind did not start")
        self.pid = str(self.client.info("server")["process_id"])

    def _control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, self.pid], check=True,
                       capture_output=True)

    def count(self, run: Callable[[], object]) -> int:
        """Instructions redis-server executed while `run` ran."""
        self._control("-i", "on")
        self._control("-z")
        run()
        before = set(self.workdir.glob("cg.*"))
        self._control("-d", "measured")
        self._control("-i", "off")
        (dump,) = set(self.workdir.glob("cg.*")) - before
        for line in reversed(dump.read_text().splitlines()):
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
        raise RuntimeError(f"no totals in {dump}")

    def copy_from(self, source: redis.Redis) -> None:
        keys = list(source.scan_iter(count=1000))
        for i in range(0, len(keys), 200):
            chunk = keys[i:i + 200]
            pipe = source.pipeline(transaction=False)
            for key in chunk:
                pipe.dump(key)
            dumps = pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for key, dumped in zip(chunk, dumps, strict=True):
                if dumped is not None:
                    pipe.restore(key, 0, dumped, replace=True)
            pipe.execute()

    def close(self) -> None:
        self.client.shutdown(nosave=True)
        self.proc.wait(timeout=60)


def per_query(counted: CountedRedis, run: Callable[[LatLng], object],
              queries: list[LatLng]) -> float:
    return counted.count(lambda: [run(q) for q in queries]) / len(queries)


def per_ping(counted: CountedRedis, indexes: dict[str, RedisDriverIndex],
             city: City) -> tuple[dict[str, float], float]:
    """Instructions per ping: two rounds by each index in turn (the drivers moving on), then
    GEOADD of the first two rounds' pings."""
    ids, points = city.ids[:PINGS], city.points[:PINGS]
    rounds = []
    for r in range(1, 2 * len(indexes) + 1):
        points = moved(points, seed=r)
        updates = [PositionUpdate(d, p, T0 + r * PING_EVERY_MS)
                   for d, p in zip(ids, points, strict=True)]
        rounds.append([updates[i:i + BATCH] for i in range(0, len(updates), BATCH)])
    pings = sum(len(batch) for batch in rounds[0]) * 2

    def feed(index: RedisDriverIndex, mine: list[list[list[PositionUpdate]]]) -> None:
        for round_ in mine:
            for batch in round_:
                index.ingest(batch)

    ours = {kind: counted.count(partial(feed, index, rounds[2 * k:2 * k + 2])) / pings
            for k, (kind, index) in enumerate(indexes.items())}

    def geoadd() -> None:
        for round_ in rounds[:2]:
            for batch in round_:
                pipe = counted.client.pipeline(transaction=False)
                for u in batch:
                    pipe.geoadd("bench:work:geo", (u.point.lng, u.point.lat, u.driver_id.bytes))
                pipe.execute()

    return ours, counted.count(geoadd) / pings


def per_swept_driver(counted: CountedRedis, index: RedisDriverIndex,
                     drivers: int) -> list[tuple[str, float, float]]:
    """Instructions per online driver for one pass of each sweep that finds nothing to remove
    (every driver pinged within the TTL, none idle), and for a bare HSCAN pass over the same
    hashes with the same COUNT."""
    now_ms = T0 + 2 * PING_EVERY_MS
    passes = [
        ("sweep of the cells", index.region_keys(),
         lambda: index.sweep_cells(now_ms=now_ms)),
        ("idle sweep of the directory", index.directory_keys,
         lambda: index.sweep_idle(now_ms=now_ms)),
    ]
    figures = []
    for name, keys, sweep in passes:
        def scan(keys: list[str] = keys) -> None:
            for key in keys:
                cursor = 0
                while True:
                    cursor, _ = counted.client.hscan(key, cursor, count=SWEEP_BATCH)
                    if cursor == 0:
                        break

        figures.append((name, counted.count(sweep) / drivers, counted.count(scan) / drivers))
    return figures


def main() -> None:
    header(f"Redis work per nearby query (K={K}, {RADIUS_M / 1000:.0f} km, available economy) "
           f"and per ping (80 m moves, {PINGS:,} drivers x 2 rounds), and per driver for a "
           "sweep pass: instructions in redis-server, counted by callgrind")
    if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
        print("  skipped: valgrind is not installed (apt-get install valgrind)")
        return
    client = bench_redis(Settings())
    ours_at: dict[str, dict[int, float]] = {"script": {}, "module": {}}
    with tempfile.TemporaryDirectory() as workdir:
        module_path = module.build(Path(workdir))
        if module_path is None:
            print("  (no C compiler: the search module is not counted)")
        counted = CountedRedis(Path(workdir), module_path)
        try:
            for n in sizes():
                city = make_city(n)
                client.flushdb()
                load_redis(client, city, products(n))
                counted.client.flushdb()
                counted.copy_from(client)
                client.flushdb()
                queries = query_points(QUERIES.get(n, 100))
                index = new_index(counted.client)       # the module's, where loaded
                runs = {"script": index_run(new_index(counted.client, module=False)),
                        "module": index_run(index)}
                for q in query_points(WARM_QUERIES, seed=8):
                    for run in runs.values():
                        run(q)
                if not index._scripts.native:
                    del runs["module"]
                print(f" {n:,} drivers ({len(queries)} queries)")
                geo_q = per_query(counted, geosearch_run(counted.client), queries)
                for kind, run in runs.items():
                    ours_at[kind][n] = per_query(counted, run, queries)
                    show(Figure(f"index search {kind}", ours_at[kind][n], "instr/q",
                                "GEOSEARCH BYRADIUS ... COUNT 10 ASC", geo_q,
                                higher_is_better=False))
                if "module" in runs:
                    show(Figure("index search module", ours_at["module"][n], "instr/q",
                                "index search script", ours_at["script"][n],
                                higher_is_better=False))
                stepping = {"scripts": new_index(counted.client, module=False)}
                if {"claim", "place"} <= index._scripts.native:
                    stepping["module"] = index
                pings, geoadd = per_ping(counted, stepping, city)
                for kind, ping in pings.items():
                    show(Figure(f"index claim + place, {kind}", ping, "instr/ping",
                                "pipelined GEOADD (1/command)", geoadd, higher_is_better=False))
                if "module" in pings:
                    show(Figure("index claim + place, module", pings["module"], "instr/ping",
                                "claim + place scripts", pings["scripts"],
                                higher_is_better=False))
                for name, swept, scanned in per_swept_driver(counted, index, n):
                    show(Figure(f"{name}, a pass", swept, "instr/driver",
                                "bare HSCAN pass, same hashes", scanned,
                                higher_is_better=False))
        finally:
            counted.close()
    for kind, at in ours_at.items():
        if 100_000 in at and 1_000_000 in at:
            show(Figure(f"index {kind} at 1M", at[1_000_000], "instr/q", "at 100k",
                        at[100_000], higher_is_better=False))


if __name__ == "__main__":
    main()
