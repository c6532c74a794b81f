"""Trip request and reply shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.products import Product
from core.schemas import Strict
from geo.cells import LatLng


class Point(Strict):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)

    def to_latlng(self) -> LatLng:
        return LatLng(self.lat, self.lng)

    @classmethod
    def of(cls, point: LatLng) -> Point:
        return cls(lat=point.lat, lng=point.lng)


class TripRequest(Strict):
    """Pickup and dropoff, or a quote (quotes are not available yet: a quote_id gets 422)."""

    model_config = ConfigDict(json_schema_extra={
        "anyOf": [{"required": ["pickup", "dropoff"]}, {"required": ["quote_id"]}]})

    quote_id: uuid.UUID | None = None
    pickup: Point | None = None
    dropoff: Point | None = None
    product: Product = Product.ECONOMY

    @model_validator(mode="after")
    def _places(self) -> TripRequest:
        if self.quote_id is None and (self.pickup is None or self.dropoff is None):
            raise ValueError("pickup and dropoff are required (or a quote_id)")
        return self


class FareOut(BaseModel):
    amount: Decimal
    currency: str
    surge_multiplier: Decimal
    breakdown: dict[str, str]


class VehicleOut(BaseModel):
    make: str
    model: str
    plate: str
    product: Product


class DriverOut(BaseModel):
    id: uuid.UUID
    name: str
    vehicle: VehicleOut
    location: Point | None
    location_age_s: float | None
    eta_s: float | None


class TripOut(BaseModel):
    id: uuid.UUID
    status: str
    product: Product
    pickup: Point
    dropoff: Point
    fare: FareOut
    driver: DriverOut | None = None
    requested_at: datetime
    accepted_at: datetime | None = None
    arrived_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    canceled_at: datetime | None = None
