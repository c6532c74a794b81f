"""Printing figures beside their baselines, with the ratio and the target."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

import redis

from app.container import make_index
from core.settings import Settings
from geo.index import RedisDriverIndex


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str
    baseline: float
    higher_is_better: bool = True
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def show(figure: Figure) -> None:
    print(f"  {figure.name:44} {figure.value:>14,.1f} {figure.unit:9} | "
          f"{figure.baseline_name:34} {figure.baseline:>14,.1f} | ratio {figure.ratio:6.2f}x"
          + (f" | target {figure.target}" if figure.target else ""), flush=True)


def header(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def sizes() -> list[int]:
    """Driver counts to run: BENCH_SIZES=10000,100000,1000000 by default."""
    raw = os.environ.get("BENCH_SIZES", "10000,100000,1000000")
    return [int(s) for s in raw.split(",") if s.strip()]


def bench_redis_url(settings: Settings) -> str:
    """The benchmark's Redis database (flushed between runs: never point it at real data):
    BENCH_REDIS_URL, else the test Redis that loads the index's search module
    (REDIS_MODULE_URL, which `make services-test` starts), else REDIS_URL. The baselines
    (GEOADD, GEOSEARCH) run on the same server."""
    return (os.environ.get("BENCH_REDIS_URL") or os.environ.get("REDIS_MODULE_URL")
            or settings.redis_url)


def bench_redis(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(bench_redis_url(settings))


def new_index(client: redis.Redis, *, module: bool = True,
              native_geometry: bool = True) -> RedisDriverIndex:
    """The index as the API builds it (`app.container.make_index`), from the settings: e.g.
    `H3_SEARCH_RESOLUTIONS` picks its search levels. `module=False`: the Lua scripts
    even where Redis has the index's module; `native_geometry=False`: the ring geometry in
    Python even where `geo._native` was built."""
    settings = Settings()
    settings = settings.model_copy(update={
        "redis_module": module and settings.redis_module,
        "search_native_geometry": native_geometry and settings.search_native_geometry})
    return make_index(client, settings)
