"""Public shapes of the geo endpoints."""

from __future__ import annotations

from pydantic import BaseModel


class NearbyCar(BaseModel):
    lat: float
    lng: float
    heading_deg: int | None
    location_age_s: float


class NearbyOut(BaseModel):
    product: str
    cars: list[NearbyCar]
