"""Onboarding request and reply shapes."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field, StringConstraints

from core.products import Product
from core.schemas import PRINTABLE, Integer, Reply, Strict

Name = Annotated[str, StringConstraints(min_length=1, max_length=100), PRINTABLE]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{6,15}$")]


class RiderIn(Strict):
    name: Name
    phone: Phone


class VehicleIn(Strict):
    make: Annotated[str, StringConstraints(min_length=1, max_length=40), PRINTABLE]
    model: Annotated[str, StringConstraints(min_length=1, max_length=40), PRINTABLE]
    plate: Annotated[str, StringConstraints(min_length=1, max_length=16), PRINTABLE]
    seats: Integer = Field(ge=1, le=12)
    product: Product


class DriverIn(Strict):
    name: Name
    phone: Phone
    vehicle: VehicleIn


class AccountOut(Reply):
    id: uuid.UUID
    token: str
