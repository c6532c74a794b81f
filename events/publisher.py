"""Publishing to Kafka, and an in-memory publisher with the same contract for fast mode."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError
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


class LazyKafkaPublisher:
    """Connects on first use and drops (with a log line) while the broker is unreachable.

    For lossy, sampled streams only (driver locations): the API must keep serving pings
    when Kafka is down. Trip events never use this: they go through the outbox.
    """

    def __init__(self, settings: Settings, retry_after_s: float = 5.0) -> None:
        self._settings = settings
        self._retry_after_s = retry_after_s
        self._inner: KafkaPublisher | None = None
        self._next_try = 0.0
        self._lock = threading.Lock()
        self.dropped = 0

    def _get(self) -> KafkaPublisher | None:
        with self._lock:
            if self._inner is None and time.monotonic() >= self._next_try:
                try:
                    self._inner = KafkaPublisher(self._settings, acks=1, enable_idempotence=False,
                                                 max_block_ms=500, linger_ms=50)
                except KafkaError:
                    log.warning("Kafka unreachable; location samples are dropped for now")
                    self._next_try = time.monotonic() + self._retry_after_s
            return self._inner

    def publish(self, topic: str, key: str, value: dict[str, Any]) -> None:
        inner = self._get()
        if inner is None:
            self.dropped += 1
            return
        inner.publish(topic, key, value)

    def flush(self, timeout_s: float = 10.0) -> None:
        if self._inner is not None:
            self._inner.flush(timeout_s)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
