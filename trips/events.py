"""Building a trip's event from its row: one shape for every trip.* type."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.catalogue import EventType
from events.envelope import Envelope
from geo.columns import from_point
from trips.models import Trip


def trip_event(trip: Trip, type_: EventType, *, now: datetime, previous_status: str | None,
               **extra: Any) -> Envelope:
    pickup, dropoff = from_point(trip.pickup), from_point(trip.dropoff)
    data: dict[str, Any] = {
        "trip_id": str(trip.id),
        "rider_id": str(trip.rider_id),
        "driver_id": str(trip.driver_id) if trip.driver_id else None,
        "status": trip.status,
        "previous_status": previous_status,
        "product": trip.product,
        "pickup": {"lat": pickup.lat, "lng": pickup.lng},
        "dropoff": {"lat": dropoff.lat, "lng": dropoff.lng},
        "pickup_cell": trip.pickup_cell,
        "fare": {"amount": str(trip.fare_amount), "currency": trip.currency,
                 "surge_multiplier": str(trip.surge_multiplier)},
    }
    data.update(extra)
    return Envelope(type=type_, key=str(trip.id), data=data, occurred_at=now)
