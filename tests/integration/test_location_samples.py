"""Location samples: written by the claim script, relayed to `driver-locations`, trimmed."""

from __future__ import annotations

import uuid

import redis

from core.products import Product
from core.settings import Settings
from dispatch.location_relay import LocationSampleRelay
from events.catalogue import Topic
from events.publisher import KafkaPublisher
from events.schemas import schema_errors
from geo.index import RedisDriverIndex
from geo.records import PositionUpdate
from simulations.rides import offset
from tests.factories import CENTRE
from tests.kafka_reading import read_topic
from tests.services import ON_BOTH

pytestmark = ON_BOTH   # the index on its Lua scripts, and on its Redis module

T0 = 1_800_000_000_000


def test_samples_reach_the_topic_once_per_interval_and_are_trimmed(
        redis_client: redis.Redis, kafka_settings: Settings) -> None:
    index = RedisDriverIndex(redis_client, sample_s=10)
    drivers = [uuid.uuid4() for _ in range(3)]
    for driver in drivers:
        index.go_online(driver, Product.COMFORT, now_ms=T0)
    # One ping a second for 25 s: samples at 0 s, 10 s and 20 s for each driver.
    for second in range(25):
        index.ingest([PositionUpdate(d, offset(CENTRE, 5 * second, 100 * i), T0 + 1000 * second)
                      for i, d in enumerate(drivers)])
    producer = KafkaPublisher(kafka_settings)
    relay = LocationSampleRelay(index, producer, resolution=9)
    assert relay.run_once() == 9
    assert relay.run_once() == 0
    assert all(redis_client.xlen(key) == 0 for key in index.layout.stream_keys)
    topic = kafka_settings.topic(Topic.DRIVER_LOCATIONS.value)
    messages = read_topic(kafka_settings, topic, expect=9)
    assert sorted(k for k, _ in messages) == sorted(str(d) for d in drivers for _ in range(3))
    assert all(schema_errors(m) == [] for _, m in messages)
    assert {m["data"]["product"] for _, m in messages} == {"comfort"}
    assert len({m["event_id"] for _, m in messages}) == 9
    producer.close()


def test_a_sample_is_republished_with_the_same_event_id(
        redis_client: redis.Redis, kafka_settings: Settings) -> None:
    """A relay that crashed before trimming publishes again: consumers see the same ids."""
    index = RedisDriverIndex(redis_client)
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    index.ingest([PositionUpdate(driver, CENTRE, T0)])
    producer = KafkaPublisher(kafka_settings)
    first = LocationSampleRelay(index, producer, resolution=9)
    index.trim_samples = lambda upto: None  # type: ignore[method-assign]  # the crash
    first.run_once()
    LocationSampleRelay(index, producer, resolution=9).run_once()
    topic = kafka_settings.topic(Topic.DRIVER_LOCATIONS.value)
    ids = [m["event_id"] for _, m in read_topic(kafka_settings, topic, expect=2)]
    assert len(ids) == 2 and len(set(ids)) == 1
    producer.close()


def test_one_stream_entry_carries_a_batchs_samples_of_a_shard(
        redis_client: redis.Redis) -> None:
    """A batch's samples of one directory shard go into one stream entry (one XADD), and
    reading splits them back into one sample per driver."""
    index = RedisDriverIndex(redis_client)
    drivers = [uuid.UUID(bytes=bytes([7]) + uuid.uuid4().bytes[1:]) for _ in range(50)]
    index.go_online_many([(d, Product.XL) for d in drivers], now_ms=T0)
    points = {d: offset(CENTRE, 30 * i, 10 * i) for i, d in enumerate(drivers)}
    index.ingest([PositionUpdate(d, points[d], T0 + 1000, heading_deg=90) for d in drivers])
    shard_stream = index.layout.stream_keys[7]
    assert redis_client.xlen(shard_stream) == 1
    after: dict[int, str] = {}
    samples = index.read_samples(after)
    assert {s.driver_id: s.point for s in samples} == points
    assert {(s.ts_ms, s.product, s.heading_deg) for s in samples} == {(T0 + 1000, Product.XL, 90)}
    assert set(after) == {7}
