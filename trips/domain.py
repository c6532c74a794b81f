"""Trip statuses and the transitions SPEC.md allows; anything else is a 409."""

from __future__ import annotations

from enum import StrEnum

from core.errors import Conflict
from events.catalogue import EventType


class TripStatus(StrEnum):
    PROCESSING = "processing"
    ACCEPTED = "accepted"
    ARRIVING = "arriving"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RIDER_CANCELED = "rider_canceled"
    DRIVER_CANCELED = "driver_canceled"
    NO_DRIVERS_AVAILABLE = "no_drivers_available"


ACTIVE = frozenset({TripStatus.PROCESSING, TripStatus.ACCEPTED, TripStatus.ARRIVING,
                    TripStatus.IN_PROGRESS})
DRIVER_ASSIGNED = frozenset({TripStatus.ACCEPTED, TripStatus.ARRIVING, TripStatus.IN_PROGRESS})
TERMINAL = frozenset(TripStatus) - ACTIVE

TRANSITIONS: dict[TripStatus, frozenset[TripStatus]] = {
    TripStatus.PROCESSING: frozenset({TripStatus.ACCEPTED, TripStatus.RIDER_CANCELED,
                                      TripStatus.NO_DRIVERS_AVAILABLE}),
    # A driver who cancels an accepted trip sends it back to processing (re-dispatch).
    TripStatus.ACCEPTED: frozenset({TripStatus.ARRIVING, TripStatus.RIDER_CANCELED,
                                    TripStatus.PROCESSING, TripStatus.DRIVER_CANCELED}),
    TripStatus.ARRIVING: frozenset({TripStatus.IN_PROGRESS, TripStatus.RIDER_CANCELED,
                                    TripStatus.DRIVER_CANCELED}),
    TripStatus.IN_PROGRESS: frozenset({TripStatus.COMPLETED}),
}

EVENT_FOR: dict[TripStatus, EventType] = {
    TripStatus.PROCESSING: EventType.TRIP_REQUESTED,
    TripStatus.ACCEPTED: EventType.TRIP_ACCEPTED,
    TripStatus.ARRIVING: EventType.TRIP_DRIVER_ARRIVED,
    TripStatus.IN_PROGRESS: EventType.TRIP_STARTED,
    TripStatus.COMPLETED: EventType.TRIP_COMPLETED,
    TripStatus.RIDER_CANCELED: EventType.TRIP_CANCELED,
    TripStatus.DRIVER_CANCELED: EventType.TRIP_CANCELED,
    TripStatus.NO_DRIVERS_AVAILABLE: EventType.TRIP_NO_DRIVERS_AVAILABLE,
}


def check_transition(current: TripStatus, target: TripStatus) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"a trip cannot go from {current.value} to {target.value}",
                       details={"status": current.value, "requested": target.value})
