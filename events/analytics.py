"""The minimal analytics consumer: trips counted by their current status."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from events.envelope import Envelope
from events.models import TripStatusCount


class TripStatusCounter:
    name = "analytics.trip-status"

    def handle(self, session: Session, event: Envelope) -> None:
        status = event.data.get("status")
        previous = event.data.get("previous_status")
        if not status or status == previous:
            return
        _add(session, status, 1)
        if previous:
            _add(session, previous, -1)


def _add(session: Session, status: str, delta: int) -> None:
    stmt = insert(TripStatusCount).values(status=status, count=delta)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[TripStatusCount.status],
        set_={"count": TripStatusCount.count + delta},
    ))


def trip_counts(session: Session) -> dict[str, int]:
    return {row.status: row.count for row in session.scalars(select(TripStatusCount))}
