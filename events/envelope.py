"""The envelope every message travels in (SPEC.md): id, type, version, time, key, data."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from events.catalogue import TOPIC_OF, EventType, Topic

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Envelope:
    type: EventType
    key: str
    data: dict[str, Any]
    occurred_at: datetime
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    schema_version: int = SCHEMA_VERSION

    @property
    def topic(self) -> Topic:
        return TOPIC_OF[self.type]

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": str(self.event_id),
            "type": self.type.value,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "key": self.key,
            "data": self.data,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Envelope:
        return cls(
            type=EventType(raw["type"]),
            key=raw["key"],
            data=raw["data"],
            occurred_at=datetime.fromisoformat(raw["occurred_at"].replace("Z", "+00:00")),
            event_id=uuid.UUID(raw["event_id"]),
            schema_version=int(raw["schema_version"]),
        )
