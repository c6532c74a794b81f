"""Every event type has a JSON Schema, and the envelopes we build satisfy it."""

import uuid
from datetime import UTC, datetime

from events.catalogue import EventType
from events.envelope import Envelope
from events.schemas import schema_errors, validator


def test_every_type_has_a_schema() -> None:
    for type_ in EventType:
        assert validator(type_) is not None


def test_envelope_round_trip_and_schema() -> None:
    trip_id = str(uuid.uuid4())
    event = Envelope(type=EventType.TRIP_REQUESTED, key=trip_id, occurred_at=datetime.now(UTC),
                     data={"trip_id": trip_id, "rider_id": str(uuid.uuid4()), "driver_id": None,
                           "status": "processing", "previous_status": None,
                           "product": "economy", "pickup": {"lat": 1.0, "lng": 2.0},
                           "dropoff": {"lat": 1.1, "lng": 2.1}, "pickup_cell": "8928308280fffff",
                           "fare": {"amount": "6.00", "currency": "USD",
                                    "surge_multiplier": "1.00"}})
    raw = event.to_dict()
    assert schema_errors(raw) == []
    assert Envelope.from_dict(raw) == event


def test_schema_catches_a_broken_event() -> None:
    raw = {"event_id": "nope", "type": "trip.started", "schema_version": 1,
           "occurred_at": "2026-01-01T00:00:00Z", "key": "k", "data": {"status": "flying"}}
    errors = schema_errors(raw)
    assert errors and any("status" in e or "event_id" in e for e in errors)
