"""One ride end to end: API and worker as real processes; PostGIS, Redis and Kafka read back."""

from __future__ import annotations

import random
import socket
import time
import uuid

import httpx
import pytest
import redis
from redis.cluster import RedisCluster
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.container import make_index
from core.settings import Settings
from events.analytics import trip_counts
from events.catalogue import Topic
from events.schemas import schema_errors
from geo.cells import LatLng
from geo.records import DriverStatus
from simulations.rides import play_ride
from simulations.stack import running_stack
from tests.kafka_reading import read_topic
from tests.services import cluster_url

pytestmark = pytest.mark.e2e
EXPECTED = ["trip.requested", "trip.offered", "trip.accepted", "trip.driver_arrived",
            "trip.started", "trip.completed"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stack_env(settings: Settings, **redis: str) -> dict[str, str]:
    """The API's and worker's environment: this test's services, topics and consumer group."""
    return {
        "DATABASE_URL": settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": settings.kafka_topic_prefix,
        "ANALYTICS_GROUP": f"e2e-{uuid.uuid4().hex[:8]}",
        **redis,
    }


def trip_events(settings: Settings, trip_id: str) -> list[dict]:
    """The trip's `trip-events`, read back from the broker: all of them, in order."""
    topic = settings.topic(Topic.TRIP_EVENTS.value)
    messages = [v for k, v in read_topic(settings, topic, expect=len(EXPECTED)) if k == trip_id]
    assert [m["type"] for m in messages] == EXPECTED
    return messages


def test_one_ride_end_to_end(sessions: sessionmaker[Session], redis_client: redis.Redis,
                             kafka_settings: Settings, tmp_path) -> None:
    env = stack_env(kafka_settings, REDIS_URL=kafka_settings.redis_url)
    with running_stack(port=free_port(), env=env, log_dir=tmp_path) as base_url, \
            httpx.Client(base_url=base_url, timeout=15) as client:
        log = play_ride(client, rng=random.Random(3), center=LatLng(40.7580, -73.9855), n=1)
        assert log.statuses == ["processing", "accepted", "arriving", "in_progress", "completed"]

        # Kafka: the trip's events, in order, each valid against its JSON Schema.
        messages = trip_events(kafka_settings, log.trip_id)
        assert all(schema_errors(m) == [] for m in messages)
        assert [m["data"]["status"] for m in messages][-1] == "completed"

        # The driver's sampled positions went out on driver-locations, through the worker.
        locations = [v for k, v in read_topic(
            kafka_settings, kafka_settings.topic(Topic.DRIVER_LOCATIONS.value), expect=1)
            if k == log.driver_id]
        assert locations and all(schema_errors(m) == [] for m in locations)

        # The analytics consumer (inside the worker) counted the trip as completed.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sessions() as session:
                counts = trip_counts(session)
            if counts.get("completed") == 1:
                break
            time.sleep(0.3)
        assert counts.get("completed") == 1 and counts.get("processing", 0) == 0

    # PostGIS: the trip row with geography points, the accepted offer, every event published.
    with sessions() as session:
        row = session.execute(text(
            "SELECT status, driver_id::text, ST_AsText(pickup::geometry), "
            "ST_Distance(pickup, dropoff) FROM trips WHERE id = :id"), {"id": log.trip_id}).one()
        assert row[0] == "completed" and row[1] == log.driver_id
        assert row[2].startswith("POINT(-73.9") and row[3] > 100
        offers = session.execute(text("SELECT status FROM offers WHERE trip_id = :id"),
                                 {"id": log.trip_id}).scalars().all()
        assert offers == ["accepted"]
        unpublished = session.execute(text(
            "SELECT count(*) FROM outbox WHERE key = :id AND published_at IS NULL"),
            {"id": log.trip_id}).scalar()
        assert unpublished == 0

    # Redis: the driver is back to available, filed exactly once (one region, one cell).
    member = uuid.UUID(log.driver_id).bytes
    index = make_index(redis_client, kafka_settings)
    state = index.get(uuid.UUID(log.driver_id))
    assert state is not None and state.status is DriverStatus.AVAILABLE and not state.flagged
    filed = [k for k in redis_client.scan_iter(match=b"rh:*}:z:*")
             if redis_client.zscore(k, member) is not None]
    assert len(filed) == 1


def test_a_ride_with_the_index_on_a_redis_cluster(sessions: sessionmaker[Session],
                                                   kafka_settings: Settings, tmp_path) -> None:
    """The same stack with REDIS_CLUSTER=true: API, dispatcher, relays and sweeper all reach the
    index through cluster-aware clients, and the driver ends filed once, on some node."""
    cluster = RedisCluster.from_url(cluster_url())
    cluster.flushdb(target_nodes=RedisCluster.PRIMARIES)
    env = stack_env(kafka_settings, REDIS_URL=cluster_url(), REDIS_CLUSTER="true")
    with running_stack(port=free_port(), env=env, log_dir=tmp_path) as base_url, \
            httpx.Client(base_url=base_url, timeout=15) as client:
        log = play_ride(client, rng=random.Random(4), center=LatLng(40.7580, -73.9855), n=1)
        assert log.statuses == ["processing", "accepted", "arriving", "in_progress", "completed"]
        trip_events(kafka_settings, log.trip_id)
    index = make_index(cluster, kafka_settings)
    state = index.get(uuid.UUID(log.driver_id))
    assert state is not None and state.status is DriverStatus.AVAILABLE
    member = uuid.UUID(log.driver_id).bytes
    filed = [k for k in cluster.scan_iter(match=b"rh:*}:z:*")
             if cluster.zscore(k, member) is not None]
    assert len(filed) == 1
    cluster.close()
