"""Relays the index's location samples from Redis streams to the `driver-locations` topic.

The ping path never talks to Kafka: the claim script appends a sample to its shard's stream
at most once per `location_sample_s` per driver; this relay publishes them and trims what the
broker acknowledged. Event ids derive from driver and ping time, so two relays racing publish
duplicates that consumers already drop (at-least-once, deduplicated on `event_id`).
"""

from __future__ import annotations

import uuid
from typing import Any

from core.clock import from_ms
from events.catalogue import EventType
from events.envelope import Envelope
from geo.cells import cell_of
from geo.index import RedisDriverIndex
from geo.records import LocationSample

SAMPLE_NAMESPACE = uuid.UUID("6b1d4c1e-8a55-4a8e-9d2a-3f3b6f0c2a71")


def location_event(sample: LocationSample, *, resolution: int) -> Envelope:
    recorded_at = from_ms(sample.ts_ms)
    return Envelope(
        type=EventType.DRIVER_LOCATION, key=str(sample.driver_id), occurred_at=recorded_at,
        event_id=uuid.uuid5(SAMPLE_NAMESPACE, f"{sample.driver_id}:{sample.ts_ms}"),
        data={
            "driver_id": str(sample.driver_id), "lat": sample.point.lat,
            "lng": sample.point.lng, "cell": cell_of(sample.point, resolution),
            "resolution": resolution, "status": sample.status.name.lower(),
            "product": sample.product.value,
            "heading_deg": sample.heading_deg if sample.heading_deg >= 0 else None,
            "speed_mps": None, "recorded_at": recorded_at.isoformat(),
        })


class LocationSampleRelay:
    def __init__(self, index: RedisDriverIndex, producer: Any, *, resolution: int,
                 ack_timeout_s: float = 10.0) -> None:
        self._index = index
        self._producer = producer
        self._resolution = resolution
        self._ack_timeout_s = ack_timeout_s
        self._after: dict[int, str] = {}

    def run_once(self) -> int:
        """Publish one batch per shard; returns how many samples were published."""
        after = dict(self._after)
        samples = self._index.read_samples(after)
        if not samples:
            return 0
        futures = []
        for sample in samples:
            event = location_event(sample, resolution=self._resolution)
            futures.append(self._producer.send_envelope(event.topic.value, event.key,
                                                        event.to_dict()))
        self._producer.flush(self._ack_timeout_s)
        for future in futures:
            future.get(timeout=self._ack_timeout_s)   # a failure re-sends the batch next time
        self._index.trim_samples(after)
        self._after = after
        return len(samples)
