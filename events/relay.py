"""The outbox relay: publishes unpublished rows in id order, marks them only once acked.

It selects by "not yet published", never "id above the last one seen", so a row whose
transaction commits late is still found. One relay publishes at a time (an advisory lock),
which keeps per-key order; a crash between publish and mark re-sends (at-least-once).
"""

from __future__ import annotations

import logging
from typing import Any

from kafka.errors import KafkaError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import transaction
from events.models import OutboxRow

log = logging.getLogger(__name__)
RELAY_LOCK = 0x52_48_4F_42  # "RHOB"


class OutboxRelay:
    def __init__(self, sessions: sessionmaker[Session], producer: Any, *, batch: int = 500,
                 ack_timeout_s: float = 10.0) -> None:
        self._sessions = sessions
        self._producer = producer
        self._batch = batch
        self._ack_timeout_s = ack_timeout_s

    def run_once(self) -> int:
        """Publish one batch; returns how many rows were published."""
        with transaction(self._sessions) as session:
            if not session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK))):
                return 0
            rows = session.scalars(
                select(OutboxRow).where(OutboxRow.published_at.is_(None))
                .order_by(OutboxRow.id).limit(self._batch)
            ).all()
            if not rows:
                return 0
            futures = [self._producer.send_envelope(r.topic, r.key, r.envelope) for r in rows]
            self._producer.flush(self._ack_timeout_s)
            for future in futures:
                try:
                    future.get(timeout=self._ack_timeout_s)
                except KafkaError:
                    log.exception("outbox publish failed; the batch will be retried")
                    raise
            session.execute(
                update(OutboxRow).where(OutboxRow.id.in_([r.id for r in rows]))
                .values(published_at=func.now())
            )
            return len(rows)
