"""Validated settings read from the environment (with working local defaults)."""

from __future__ import annotations

from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-0123456789abcdef"


MAX_LEVEL_SPAN = 3  # a coarse search cell's reach walks 7**span descendants once per process


class Settings(BaseSettings):
    """Every tunable of the product; SPEC.md's defaults."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    environment: str = Field("development", description="development | test | production")
    database_url: str = "postgresql+psycopg2://root@127.0.0.1:5432/ridehail"
    redis_url: str = "redis://127.0.0.1:6379/0"
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    kafka_topic_prefix: str = ""
    jwt_secret: str = DEV_JWT_SECRET
    jwt_algorithm: str = "HS256"
    jwt_ttl_s: int = Field(7 * 24 * 3600, gt=0)

    h3_index_resolution: int = Field(9, ge=5, le=12)
    h3_surge_resolution: int = Field(7, ge=3, le=10)
    h3_region_resolution: int = Field(3, ge=0, le=5)
    h3_search_resolutions: str = Field("11,10,9,8", description="search levels, finest first")
    redis_key_prefix: str = "rh"
    redis_cluster: bool = Field(False, description="REDIS_URL is a node of a Redis Cluster")
    redis_module: bool = Field(
        True, description="run the index's hot steps (RH.SEARCH, RH.CLAIM, RH.PLACE) in its "
                          "Redis module where Redis has it loaded; false: always the Lua scripts")
    search_native_geometry: bool = Field(
        True, description="compute the finest search level's ring geometry in C (geo._native) "
                          "where it was built; false: always in Python")
    driver_score_tiebreak: bool = Field(
        True, description="give drivers of one cell different scores (low bits of their id); "
                          "false while processes of a version before it still search")
    driver_ttl_s: float = Field(30.0, gt=0)
    driver_idle_offline_s: float = Field(3600.0, gt=0, description="silent this long: offline")
    ping_max_age_s: float = Field(120.0, gt=0)
    ping_max_future_s: float = Field(30.0, ge=0)
    ping_max_accuracy_m: float = Field(500.0, gt=0)
    ping_max_speed_kmh: float = Field(250.0, gt=0)
    ping_rate_per_s: float = Field(5.0, gt=0, description="location posts per driver per second")
    ping_rate_burst: int = Field(20, gt=0)
    location_sample_s: float = Field(10.0, ge=0, description="min gap between published locations")
    location_sample_backlog: int = Field(
        100_000, gt=0, description="sample entries (one per ping batch) kept per shard stream")

    eta_detour_factor: float = Field(1.35, ge=1.0)
    eta_speed_kmh_peak: float = Field(18.0, gt=0)
    eta_speed_kmh_offpeak: float = Field(30.0, gt=0)
    city_timezone: str = Field("UTC", description="IANA zone of the city: its local peak hours")
    dispatch_radius_m: float = Field(5000.0, gt=0, le=50_000)
    dispatch_candidates: int = Field(10, gt=0)
    offer_timeout_s: float = Field(15.0, gt=0)
    max_offers_per_trip: int = Field(5, gt=0)
    dispatch_timeout_s: float = Field(60.0, gt=0, description="give up after this long")
    dispatch_poll_s: float = Field(0.2, gt=0)
    relay_poll_s: float = Field(0.1, gt=0)
    sweep_every_s: float = Field(10.0, gt=0)
    sweep_idle_every_s: float = Field(60.0, gt=0)
    analytics_group: str = "analytics-trip-status"
    quote_ttl_s: float = Field(120.0, gt=0)
    currency: str = "USD"
    max_body_bytes: int = Field(64 * 1024, gt=0)

    @field_validator("environment")
    @classmethod
    def _known_environment(cls, value: str) -> str:
        if value not in {"development", "test", "production"}:
            raise ValueError("environment must be development, test or production")
        return value

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.environment == "production" and (
            self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32
        ):
            raise ValueError("JWT_SECRET must be set to a 32+ character secret in production")
        return self

    @field_validator("h3_search_resolutions")
    @classmethod
    def _levels(cls, value: str) -> str:
        levels = [int(v) for v in value.split(",") if v.strip()]
        if not levels or any(not 6 <= lvl <= 13 for lvl in levels):
            raise ValueError("search resolutions must be between 6 and 13")
        if max(levels) - min(levels) > MAX_LEVEL_SPAN:
            raise ValueError(f"search resolutions may span at most {MAX_LEVEL_SPAN} resolutions")
        return ",".join(str(lvl) for lvl in sorted(set(levels), reverse=True))

    @field_validator("city_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"CITY_TIMEZONE {value!r} is not an IANA time zone") from exc
        return value

    @cached_property
    def city_tz(self) -> ZoneInfo:
        return ZoneInfo(self.city_timezone)

    @cached_property
    def search_levels(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.h3_search_resolutions.split(","))

    @cached_property
    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    def topic(self, name: str) -> str:
        """The physical topic name for a logical one (a prefix isolates tests)."""
        return f"{self.kafka_topic_prefix}{name}"
