"""Writing events into the outbox, inside the caller's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from events.envelope import Envelope
from events.models import OutboxRow


def record(session: Session, event: Envelope) -> None:
    """Add the event to the outbox; it commits (or not) with the change it describes."""
    session.add(OutboxRow(event_id=event.event_id, topic=event.topic.value, key=event.key,
                          type=event.type.value, envelope=event.to_dict()))
