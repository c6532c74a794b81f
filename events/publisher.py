"""Publishing to Kafka: an idempotent, acks=all producer."""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaProducer
from kafka.serializer import Serializer

from core.settings import Settings


class TextSerializer(Serializer):
    def serialize(self, topic: str, headers: list[tuple[str, bytes]], data: Any) -> bytes:
        return str(data).encode()


class JsonSerializer(Serializer):
    def serialize(self, topic: str, headers: list[tuple[str, bytes]], data: Any) -> bytes:
        return json.dumps(data, separators=(",", ":")).encode()


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
