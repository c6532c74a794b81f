"""Topics and event types: the one place their names are spelled."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Topic(StrEnum):
    TRIP_EVENTS = "trip-events"
    DRIVER_LOCATIONS = "driver-locations"
    SURGE_UPDATES = "surge-updates"


class EventType(StrEnum):
    TRIP_REQUESTED = "trip.requested"
    TRIP_OFFERED = "trip.offered"
    TRIP_OFFER_DECLINED = "trip.offer_declined"
    TRIP_ACCEPTED = "trip.accepted"
    TRIP_DRIVER_ARRIVED = "trip.driver_arrived"
    TRIP_STARTED = "trip.started"
    TRIP_COMPLETED = "trip.completed"
    TRIP_CANCELED = "trip.canceled"
    TRIP_NO_DRIVERS_AVAILABLE = "trip.no_drivers_available"
    DRIVER_LOCATION = "driver.location"
    SURGE_UPDATED = "surge.updated"


@dataclass(frozen=True)
class TopicSpec:
    topic: Topic
    partitions: int
    types: frozenset[EventType]


TRIP_TYPES = frozenset(t for t in EventType if t.value.startswith("trip."))
CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec(Topic.TRIP_EVENTS, 6, TRIP_TYPES),
    TopicSpec(Topic.DRIVER_LOCATIONS, 6, frozenset({EventType.DRIVER_LOCATION})),
    TopicSpec(Topic.SURGE_UPDATES, 3, frozenset({EventType.SURGE_UPDATED})),
)
TOPIC_OF: dict[EventType, Topic] = {t: spec.topic for spec in CATALOGUE for t in spec.types}
