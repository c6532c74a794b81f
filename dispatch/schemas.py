"""Driver-app shapes: status, location batches, offers; and the admin decision log."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from core.schemas import Number, Strict, Timestamp
from geo.cells import LatLng
from geo.pings import Ping
from trips.schemas import FareOut, Point


class Availability(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class StatusIn(Strict):
    status: Availability


class StatusOut(BaseModel):
    status: Availability


class PingIn(Strict):
    lat: Number = Field(ge=-90, le=90)
    lng: Number = Field(ge=-180, le=180)
    recorded_at: Timestamp
    heading_deg: Number | None = Field(None, ge=0, lt=360)
    speed_mps: Number | None = Field(None, ge=0, le=120)
    accuracy_m: Number | None = Field(None, ge=0, le=100_000)

    def to_ping(self) -> Ping:
        return Ping(LatLng(self.lat, self.lng), self.recorded_at, self.heading_deg,
                    self.speed_mps, self.accuracy_m)


class LocationsIn(Strict):
    pings: list[PingIn] = Field(min_length=1, max_length=100)


class LocationsOut(BaseModel):
    received: int
    accepted: int
    dropped: int
    reasons: dict[str, int]
    position_updated: bool


class OfferOut(BaseModel):
    offer_id: uuid.UUID
    trip_id: uuid.UUID
    pickup: Point
    dropoff: Point
    fare: FareOut
    pickup_eta_s: float
    distance_m: float
    expires_at: datetime


class DecisionOut(BaseModel):
    created_at: datetime
    strategy: str
    candidates: list[dict[str, Any]]
    offered_driver_id: uuid.UUID | None
    reason: str


class DecisionsOut(BaseModel):
    trip_id: uuid.UUID
    decisions: list[DecisionOut]


def fare_of(amount: Decimal, currency: str, surge: Decimal, breakdown: dict[str, str]) -> FareOut:
    return FareOut(amount=amount, currency=currency, surge_multiplier=surge, breakdown=breakdown)
