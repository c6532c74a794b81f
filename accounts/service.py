"""Onboarding use cases, and what orders a driver's status changes: its row's lock and version."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
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


def next_status_version(session: Session, driver_id: uuid.UUID) -> int:
    """Inside the caller's transaction that changes what the driver is doing (offered, on a
    trip, free again): the version that change carries to the live index
    (`RedisDriverIndex.set_status`). The row lock taken here orders a driver's changes by
    commit, so a later commit always holds a higher version, whichever write reaches Redis
    first."""
    return session.execute(
        update(Driver).where(Driver.id == driver_id)
        .values(status_version=Driver.status_version + 1)
        .returning(Driver.status_version)
        .execution_options(synchronize_session=False)).scalar_one()


def lock_driver(session: Session, driver_id: uuid.UUID) -> Driver | None:
    """Inside the caller's transaction: the driver's row, locked until it ends. Going online
    or offline takes it, as every status change does (`next_status_version`), so an accept
    waits for a going offline under way and then sees its result."""
    return session.scalar(select(Driver).where(Driver.id == driver_id)
                          .with_for_update(of=Driver)
                          .execution_options(populate_existing=True))
