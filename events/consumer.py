"""The consumer framework: a group member that applies each event once and commits manually.

Every event is applied in one database transaction together with its row in the
processed-events ledger, so a redelivered event (at-least-once) is skipped. An event that
cannot be parsed, or whose handler fails, goes to `<topic>.dlq` with the reason; then the
offset moves on, so one poison message never blocks a partition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from kafka import KafkaConsumer
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from core.settings import Settings
from events.envelope import Envelope
from events.models import ProcessedEvent

log = logging.getLogger(__name__)


class Handler(Protocol):
    name: str

    def handle(self, session: Session, event: Envelope) -> None: ...


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


class ConsumerRunner:
    def __init__(self, *, settings: Settings, sessions: sessionmaker[Session], handler: Handler,
                 topics: Iterable[str], group_id: str, dead_letters: Any | None = None,
                 **overrides: Any) -> None:
        self._sessions = sessions
        self._handler = handler
        self._dead_letters = dead_letters
        options: dict[str, Any] = {
            "bootstrap_servers": settings.kafka_servers,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "max_poll_interval_ms": 10000,
        }
        options.update(overrides)
        self._consumer = KafkaConsumer(*[settings.topic(t) for t in topics], **options)

    def poll_once(self, timeout_ms: int = 500) -> int:
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=500)
        handled = 0
        for records in batches.values():
            for record in records:
                self._apply(record)
                handled += 1
        if handled:
            self._consumer.commit()
        return handled

    def _apply(self, record: Any) -> None:
        try:
            event = Envelope.from_dict(json.loads(record.value))
        except (ValueError, KeyError, TypeError) as exc:
            self._dead_letter(record, f"unreadable envelope: {exc}")
            return
        try:
            with transaction(self._sessions) as session:
                fresh = session.execute(
                    insert(ProcessedEvent)
                    .values(consumer=self._handler.name, event_id=event.event_id)
                    .on_conflict_do_nothing()
                    .returning(ProcessedEvent.event_id)
                ).first()
                if fresh is not None:
                    self._handler.handle(session, event)
        except Exception as exc:
            log.exception("handler %s failed on %s", self._handler.name, event.event_id)
            self._dead_letter(record, f"handler failed: {exc!r}")

    def _dead_letter(self, record: Any, reason: str) -> None:
        if self._dead_letters is None:
            log.error("dropping %s@%s: %s", record.topic, record.offset, reason)
            return
        self._dead_letters.publish_raw(
            dead_letter_topic(record.topic),
            record.key.decode() if record.key else "",
            {"reason": reason, "topic": record.topic, "partition": record.partition,
             "offset": record.offset, "value": record.value.decode(errors="replace")},
        )

    def close(self) -> None:
        self._consumer.close()
