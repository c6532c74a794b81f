"""Shared fixtures: real PostgreSQL/PostGIS, Redis and broker, isolated per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from app import container
from app.main import create_app
from core.clock import FakeClock, SystemClock
from core.db import make_engine, make_session_factory
from core.settings import Settings
from events.admin import ensure_topics
from geo.index import RedisDriverIndex
from tests.services import SCRIPTS, WITH_MODULE, module_url, service_urls

TABLES = ("processed_events", "analytics_trip_status_counts", "outbox", "dispatch_decisions",
          "offers", "trips", "vehicles", "drivers", "riders")


@pytest.fixture(scope="session")
def urls() -> Iterator[dict[str, str]]:
    with service_urls() as found:
        yield found


@pytest.fixture(scope="session")
def base_settings(urls: dict[str, str]) -> Settings:
    return Settings(environment="test", database_url=urls["DATABASE_URL"],
                    redis_url=urls["REDIS_URL"],
                    kafka_bootstrap_servers=urls["KAFKA_BOOTSTRAP_SERVERS"])


@pytest.fixture(scope="session")
def engine(base_settings: Settings) -> Iterator[Engine]:
    config = Config("migrations/alembic.ini")
    config.set_main_option("sqlalchemy.url", base_settings.database_url)
    command.upgrade(config, "head")
    eng = make_engine(base_settings.database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """A clean database for each test (the services commit, so rollback can't isolate)."""
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
    return make_session_factory(engine)


@pytest.fixture
def redis_client(request: pytest.FixtureRequest, base_settings: Settings
                 ) -> Iterator[redis.Redis]:
    """The test Redis, whose index runs its Lua scripts; parametrized indirectly with
    `ON_BOTH` (`WITH_MODULE`), also the test Redis that loads the index's module
    (`geo.module`), where the index runs its module commands instead."""
    if getattr(request, "param", SCRIPTS) == WITH_MODULE:
        client = module_client()
    else:
        client = redis.Redis.from_url(base_settings.redis_url)
    client.flushdb()
    yield client
    client.close()


def module_client() -> redis.Redis:
    client = redis.Redis.from_url(module_url())
    if not any(m[b"name"] == b"ridehail" for m in client.module_list()):
        pytest.fail(f"{module_url()} has no ridehail module: start it with `make services-test`")
    return client


@pytest.fixture
def module_redis() -> Iterator[redis.Redis]:
    """The test Redis that loads the index's module, emptied."""
    client = module_client()
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings


@pytest.fixture
def kafka_settings(base_settings: Settings) -> Settings:
    """Settings with a topic prefix of this test's own, and its topics created."""
    isolated = base_settings.model_copy(
        update={"kafka_topic_prefix": f"t{uuid.uuid4().hex[:10]}-"})
    ensure_topics(isolated)
    return isolated


@pytest.fixture
def index(redis_client: redis.Redis, settings: Settings) -> RedisDriverIndex:
    return container.make_index(redis_client, settings)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(SystemClock().now())


@pytest.fixture
def resources(settings: Settings, sessions: sessionmaker[Session], redis_client: redis.Redis,
              clock: FakeClock) -> Iterator[container.Resources]:
    res = container.build(settings, clock=clock)
    yield res
    res.close()


@pytest.fixture
def client(resources: container.Resources) -> Iterator[TestClient]:
    with TestClient(create_app(resources.settings, resources)) as test_client:
        yield test_client
