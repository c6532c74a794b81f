"""Reading a topic back from the broker, start to end, for assertions."""

from __future__ import annotations

import json
import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from core.settings import Settings


def read_topic(settings: Settings, topic: str, *, expect: int = 0,
               timeout_s: float = 20) -> list[tuple[str, dict[str, Any]]]:
    """All (key, value) pairs of a physical topic, waiting until at least `expect` arrived."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_servers, enable_auto_commit=False,
                             consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    found.append((r.key.decode() if r.key else "", json.loads(r.value)))
            if len(found) >= expect and expect:
                break
            if not expect and not consumer.poll(timeout_ms=200):
                break
        return found
    finally:
        consumer.close()
