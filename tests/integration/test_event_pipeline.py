"""The outbox relay and consumer framework against real PostgreSQL and the real broker."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from kafka import KafkaProducer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.settings import Settings
from events import outbox
from events.analytics import TripStatusCounter, trip_counts
from events.catalogue import EventType, Topic
from events.consumer import ConsumerRunner, dead_letter_topic
from events.envelope import Envelope
from events.models import OutboxRow
from events.publisher import KafkaPublisher
from events.relay import OutboxRelay
from tests.kafka_reading import read_topic


def event(status: str = "processing", previous: str | None = None,
          key: str | None = None) -> Envelope:
    return Envelope(type=EventType.TRIP_REQUESTED, key=key or str(uuid.uuid4()),
                    occurred_at=datetime.now(UTC),
                    data={"status": status, "previous_status": previous})


def test_relay_publishes_a_row_that_commits_after_a_newer_one(
        sessions: sessionmaker[Session], kafka_settings: Settings) -> None:
    producer = KafkaPublisher(kafka_settings)
    relay = OutboxRelay(sessions, producer)
    late, early = event(), event()
    slow = sessions()
    slow.begin()
    outbox.record(slow, late)
    slow.flush()                                   # takes the lower id, not committed yet
    with transaction(sessions) as session:
        outbox.record(session, early)
    assert relay.run_once() == 1                   # only the committed one is visible
    slow.commit()
    slow.close()
    assert relay.run_once() == 1                   # the late one is still found
    assert relay.run_once() == 0
    with sessions() as session:
        ids = session.execute(select(OutboxRow.event_id, OutboxRow.id)).all()
        assert {e for e, _ in ids} == {late.event_id, early.event_id}
        assert session.scalar(select(OutboxRow.id).where(OutboxRow.published_at.is_(None))) is None
    topic = kafka_settings.topic(Topic.TRIP_EVENTS.value)
    published = read_topic(kafka_settings, topic, expect=2)
    assert {v["event_id"] for _, v in published} == {str(late.event_id), str(early.event_id)}
    assert {k for k, _ in published} == {late.key, early.key}
    producer.close()


def test_relay_keeps_per_key_order(sessions: sessionmaker[Session],
                                   kafka_settings: Settings) -> None:
    producer = KafkaPublisher(kafka_settings)
    key = str(uuid.uuid4())
    statuses = ["processing", "accepted", "arriving", "in_progress", "completed"]
    for previous, status in zip([None, *statuses], statuses, strict=False):
        with transaction(sessions) as session:
            outbox.record(session, event(status, previous, key))
    OutboxRelay(sessions, producer, batch=2).run_once()
    OutboxRelay(sessions, producer, batch=10).run_once()
    topic = kafka_settings.topic(Topic.TRIP_EVENTS.value)
    got = [v["data"]["status"] for k, v in read_topic(kafka_settings, topic, expect=5) if k == key]
    assert got == statuses
    producer.close()


def test_consumer_applies_each_event_once_and_dead_letters_poison(
        sessions: sessionmaker[Session], kafka_settings: Settings) -> None:
    topic = kafka_settings.topic(Topic.TRIP_EVENTS.value)
    producer = KafkaPublisher(kafka_settings)
    first = event("processing")
    producer.publish_sync(Topic.TRIP_EVENTS.value, first.key, first.to_dict())
    producer.publish_sync(Topic.TRIP_EVENTS.value, first.key, first.to_dict())   # redelivery
    raw = KafkaProducer(bootstrap_servers=kafka_settings.kafka_servers)
    raw.send(topic, key=b"poison", value=b"{not json").get(10)
    raw.close()
    runner = ConsumerRunner(settings=kafka_settings, sessions=sessions,
                            handler=TripStatusCounter(), topics=[Topic.TRIP_EVENTS.value],
                            group_id=f"test-{uuid.uuid4().hex[:8]}", dead_letters=producer)
    handled, deadline = 0, time.monotonic() + 40
    while handled < 3 and time.monotonic() < deadline:
        handled += runner.poll_once(500)
    runner.close()
    producer.flush()
    assert handled == 3
    with sessions() as session:
        assert trip_counts(session) == {"processing": 1}
    dead = read_topic(kafka_settings, dead_letter_topic(topic), expect=1)
    assert len(dead) == 1 and dead[0][0] == "poison"
    assert dead[0][1]["reason"].startswith("unreadable envelope")
    producer.close()
