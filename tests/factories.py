"""Small builders for rows and online drivers used across test tiers."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session, sessionmaker

from accounts import service as accounts
from accounts.schemas import DriverIn, RiderIn, VehicleIn
from core.clock import Clock
from core.products import Product
from core.settings import Settings
from geo.cells import LatLng
from geo.eta import StraightLineEta
from geo.index import RedisDriverIndex
from geo.records import PositionUpdate
from trips import service as trips
from trips.models import Trip

CENTRE = LatLng(40.7580, -73.9855)


def phone() -> str:
    return f"+1555{uuid.uuid4().int % 10**9:09d}"


def rider(sessions: sessionmaker[Session]) -> uuid.UUID:
    with sessions() as session:
        return accounts.onboard_rider(session=session, data=RiderIn(name="R", phone=phone())).id


def driver(sessions: sessionmaker[Session], product: Product = Product.ECONOMY) -> uuid.UUID:
    data = DriverIn(name="D", phone=phone(), vehicle=VehicleIn(
        make="Kia", model="Niro", plate=uuid.uuid4().hex[:8], seats=4, product=product))
    with sessions() as session:
        return accounts.onboard_driver(session=session, data=data).id


def online_driver(sessions: sessionmaker[Session], index: RedisDriverIndex, at: LatLng,
                  ts_ms: int, product: Product = Product.ECONOMY) -> uuid.UUID:
    driver_id = driver(sessions, product)
    index.go_online(driver_id, product, now_ms=ts_ms)
    index.ingest([PositionUpdate(driver_id, at, ts_ms)])
    return driver_id


def trip(sessions: sessionmaker[Session], *, rider_id: uuid.UUID, settings: Settings,
         clock: Clock, pickup: LatLng = CENTRE, key: str | None = None) -> Trip:
    with sessions() as session:
        return trips.request_trip(session=session, rider_id=rider_id, pickup=pickup,
                                  dropoff=LatLng(pickup.lat + 0.01, pickup.lng),
                                  product=Product.ECONOMY, idempotency_key=key, clock=clock,
                                  settings=settings, eta=StraightLineEta())
