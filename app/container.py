"""Builds the real adapters from settings, once, at start-up."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock, SystemClock
from core.db import make_engine, make_session_factory
from core.settings import Settings
from geo.eta import EtaEstimator, StraightLineEta
from geo.index import RedisDriverIndex
from geo.pings import PingRules
from geo.scripts import AnyAsyncRedis, AnyRedis

log = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: AnyRedis
    aredis: AnyAsyncRedis
    index: RedisDriverIndex
    eta: EtaEstimator
    clock: Clock
    ping_rules: PingRules

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()

    async def aclose(self) -> None:
        await self.index.aclose(self.aredis)
        await self.aredis.aclose()
        self.close()


def redis_clients(settings: Settings) -> tuple[AnyRedis, AnyAsyncRedis]:
    """Sync and asyncio clients for REDIS_URL: plain, or cluster-aware (REDIS_CLUSTER=true)."""
    if settings.redis_cluster:
        return (RedisCluster.from_url(settings.redis_url, socket_timeout=5,
                                      socket_connect_timeout=2),
                AsyncRedisCluster.from_url(settings.redis_url, socket_timeout=5,
                                           socket_connect_timeout=2))
    return (redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2,
                                 health_check_interval=30),
            AsyncRedis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2))


def build(settings: Settings, *, clock: Clock | None = None) -> Resources:
    engine = make_engine(settings.database_url)
    client, aclient = redis_clients(settings)
    index = make_index(client, settings)
    warm_up(index, margin_m=settings.dispatch_radius_m)
    return Resources(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        redis=client,
        aredis=aclient,
        index=index,
        eta=StraightLineEta(settings.eta_detour_factor, settings.eta_speed_kmh_peak,
                            settings.eta_speed_kmh_offpeak, settings.city_tz),
        clock=clock or SystemClock(),
        ping_rules=PingRules(max_age_s=settings.ping_max_age_s,
                             max_future_s=settings.ping_max_future_s,
                             max_accuracy_m=settings.ping_max_accuracy_m,
                             max_speed_kmh=settings.ping_max_speed_kmh),
    )


def make_index(client: AnyRedis, settings: Settings) -> RedisDriverIndex:
    return RedisDriverIndex(client, resolution=settings.h3_index_resolution,
                            levels=settings.search_levels,
                            region_resolution=settings.h3_region_resolution,
                            prefix=settings.redis_key_prefix, ttl_s=settings.driver_ttl_s,
                            max_speed_kmh=settings.ping_max_speed_kmh,
                            sample_s=settings.location_sample_s,
                            idle_offline_s=settings.driver_idle_offline_s,
                            rate_per_s=settings.ping_rate_per_s,
                            rate_burst=settings.ping_rate_burst,
                            sample_backlog=settings.location_sample_backlog,
                            module=settings.redis_module,
                            native_geometry=settings.search_native_geometry,
                            score_tiebreak=settings.driver_score_tiebreak)


def warm_up(index: RedisDriverIndex, *, margin_m: float) -> None:
    """Fill the search geometry before serving (out to the dispatch radius past the drivers);
    a Redis that is down only skips it."""
    started = time.perf_counter()
    try:
        cells = index.warm_up(margin_m=margin_m)
    except redis.RedisError as exc:
        log.warning("search warm-up skipped: %s", exc)
        return
    log.info("search geometry warmed under %d coarse cells in %.2f s", cells,
             time.perf_counter() - started)
