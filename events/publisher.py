"""Publishing to Kafka, and an in-memory publisher with the same contract for fast mode."""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.serializer import Serializer

from core.settings import Settings

log = logging.getLogger(__name__)


class TextSerializer(Serializer):
    def serialize(self, topic: str, headers: list[tuple[str, bytes]], data: Any) -> bytes:
        return str(data).encode()


class JsonSerializer(Serializer):
    def serialize(self, topic: str, headers: list[tuple[str, bytes]], data: Any) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()


class Publisher(Protocol):
    def publish(self, topic: str, key: str, value: dict[str, Any]) -> None: ...

    def flush(self, timeout_s: float = 10.0) -> None: ...

    def close(self) -> None: ...


class KafkaPublisher:
    """Idempotent, acks=all producer; keyed messages keep per-key order."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self._settings = settings
        options: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_servers,
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 5,
            "retries": 5,
            "key_serializer": TextSerializer(),
            "value_serializer": JsonSerializer(),
        }
        options.update(overrides)
        self._producer = KafkaProducer(**options)

    def publish(self, topic: str, key: str, value: dict[str, Any]) -> None:
        self._producer.send(self._settings.topic(topic), key=key, value=value)

    def send_envelope(self, topic: str, key: str, value: dict[str, Any]) -> Any:
        """Send and return the future, so the caller can check the broker's ack."""
        return self._producer.send(self._settings.topic(topic), key=key, value=value)

    def publish_raw(self, topic: str, key: str, value: dict[str, Any]) -> None:
        """Publish to an exact topic name (dead letters already carry the prefix)."""
        self._producer.send(topic, key=key, value=value)

    def publish_sync(self, topic: str, key: str, value: dict[str, Any],
                     timeout_s: float = 10.0) -> None:
        self._producer.send(self._settings.topic(topic), key=key, value=value).get(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=5)


class InMemoryPublisher:
    def __init__(self) -> None:
        self.messages: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self._lock = threading.Lock()

    def publish(self, topic: str, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self.messages[topic].append((key, value))

    def flush(self, timeout_s: float = 10.0) -> None:
        return None

    def close(self) -> None:
        return None
