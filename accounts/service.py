"""Onboarding use cases."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.models import Driver, Rider, Vehicle
from accounts.schemas import DriverIn, RiderIn
from core.errors import Conflict
from core.ids import new_id


def onboard_rider(*, session: Session, data: RiderIn) -> Rider:
    rider = Rider(id=new_id(), name=data.name, phone=data.phone)
    try:
        with session.begin():
            session.add(rider)
    except IntegrityError as exc:
        raise Conflict("a rider with this phone exists", details={"field": "phone"}) from exc
    return rider


def onboard_driver(*, session: Session, data: DriverIn) -> Driver:
    driver = Driver(id=new_id(), name=data.name, phone=data.phone)
    driver.vehicle = Vehicle(id=new_id(), **data.vehicle.model_dump(mode="json"))
    try:
        with session.begin():
            session.add(driver)
    except IntegrityError as exc:
        raise Conflict("a driver with this phone or plate exists",
                       details={"fields": ["phone", "vehicle.plate"]}) from exc
    return driver


