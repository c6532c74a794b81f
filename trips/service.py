"""Trip use cases: each one transaction that changes the row and records its event."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.models import Driver
from accounts.service import next_status_version
from accounts.tokens import Principal, Role
from core.clock import Clock
from core.errors import Conflict, NotFound
from core.ids import new_id
from core.products import Product
from core.settings import Settings
from events import outbox
from geo.cells import LatLng, cell_of
from geo.columns import from_point, to_point
from geo.eta import EtaEstimator
from geo.index import RedisDriverIndex
from geo.records import DriverState, DriverStatus
from pricing.fares import estimate_fare
from trips.domain import EVENT_FOR, TripStatus, check_transition
from trips.events import trip_event
from trips.models import Trip


@dataclass(frozen=True)
class TripView:
    trip: Trip
    driver: Driver | None
    driver_state: DriverState | None


def request_trip(*, session: Session, rider_id: uuid.UUID, pickup: LatLng, dropoff: LatLng,
                 product: Product, idempotency_key: str | None, clock: Clock,
                 settings: Settings, eta: EtaEstimator) -> Trip:
    now = clock.now()
    distance_m = eta.distance_m(pickup, dropoff)
    fare = estimate_fare(product=product, distance_m=distance_m,
                         duration_s=eta.eta_s(pickup, dropoff, at=now), currency=settings.currency)
    trip = Trip(
        id=new_id(), rider_id=rider_id, status=TripStatus.PROCESSING.value, product=product.value,
        pickup=to_point(pickup), dropoff=to_point(dropoff),
        pickup_cell=cell_of(pickup, settings.h3_index_resolution),
        fare_amount=fare.amount, currency=fare.currency, surge_multiplier=fare.surge_multiplier,
        fare_breakdown=fare.breakdown, distance_m=distance_m, idempotency_key=idempotency_key,
        requested_at=now, updated_at=now,
    )
    try:
        with session.begin():
            if idempotency_key:
                existing = _by_idempotency_key(session, rider_id, idempotency_key)
                if existing is not None:
                    return _same_request(existing, pickup, dropoff, product)
            session.add(trip)
            session.flush()
            outbox.record(session, trip_event(trip, EVENT_FOR[TripStatus.PROCESSING], now=now,
                                              previous_status=None))
    except IntegrityError as exc:
        # A concurrent twin with the same key may trip either unique index first.
        if idempotency_key:
            replay = _by_idempotency_key(session, rider_id, idempotency_key)
            if replay is not None:
                return _same_request(replay, pickup, dropoff, product)
        if _constraint(exc) == "uq_trips_active_rider":
            raise Conflict("the rider already has an active trip") from exc
        raise
    return trip


def get_view(*, session: Session, trip_id: uuid.UUID, viewer: Principal,
             index: RedisDriverIndex) -> TripView:
    trip = session.get(Trip, trip_id)
    if trip is None or not _visible(trip, viewer):
        raise NotFound("no such trip")
    driver = session.get(Driver, trip.driver_id) if trip.driver_id else None
    state = index.get(trip.driver_id) if trip.driver_id else None
    return TripView(trip, driver, state)


def advance(*, session: Session, trip_id: uuid.UUID, driver_id: uuid.UUID, target: TripStatus,
            clock: Clock, index: RedisDriverIndex) -> Trip:
    """A driver moves their trip along: arrive, start, complete."""
    now = clock.now()
    with session.begin():
        trip = _locked(session, trip_id)
        if trip.driver_id != driver_id:
            raise NotFound("no such trip")
        previous = TripStatus(trip.status)
        check_transition(previous, target)
        trip.status = target.value
        _stamp(trip, target, now)
        outbox.record(session, trip_event(trip, EVENT_FOR[target], now=now,
                                          previous_status=previous.value))
        version = (next_status_version(session, driver_id)
                   if target is TripStatus.COMPLETED else None)
    if version is not None:
        index.set_status(driver_id, DriverStatus.AVAILABLE, version=version)
    return trip


def cancel(*, session: Session, trip_id: uuid.UUID, by: Principal, clock: Clock,
           index: RedisDriverIndex) -> Trip:
    """Rider cancels (terminal); a driver who cancels an accepted trip sends it back to dispatch."""
    now = clock.now()
    with session.begin():
        trip = _locked(session, trip_id)
        if not _visible(trip, by):
            raise NotFound("no such trip")
        previous = TripStatus(trip.status)
        driver_id = trip.driver_id
        if by.role is Role.RIDER:
            target = TripStatus.RIDER_CANCELED
        elif previous is TripStatus.ACCEPTED:
            target = TripStatus.PROCESSING
        else:
            target = TripStatus.DRIVER_CANCELED
        check_transition(previous, target)
        trip.status = target.value
        if target is TripStatus.PROCESSING:
            trip.driver_id = None
            trip.accepted_at = None
        else:
            trip.canceled_at = now
        trip.updated_at = now
        outbox.record(session, trip_event(trip, EVENT_FOR[TripStatus.RIDER_CANCELED], now=now,
                                          previous_status=previous.value,
                                          canceled_by=by.role.value,
                                          canceled_driver_id=str(driver_id) if driver_id else None))
        version = next_status_version(session, driver_id) if driver_id is not None else None
    if driver_id is not None and version is not None:
        index.set_status(driver_id, DriverStatus.AVAILABLE, version=version)
    return trip


def assign_driver(session: Session, *, trip: Trip, driver_id: uuid.UUID, now: datetime) -> None:
    """Inside the caller's transaction: the trip gets its driver.

    The database refuses a second active trip for the driver (a partial unique index).
    """
    previous = TripStatus(trip.status)
    check_transition(previous, TripStatus.ACCEPTED)
    trip.status = TripStatus.ACCEPTED.value
    trip.driver_id = driver_id
    _stamp(trip, TripStatus.ACCEPTED, now)
    session.flush()
    outbox.record(session, trip_event(trip, EVENT_FOR[TripStatus.ACCEPTED], now=now,
                                      previous_status=previous.value))


def _stamp(trip: Trip, target: TripStatus, now: datetime) -> None:
    column = {TripStatus.ACCEPTED: "accepted_at", TripStatus.ARRIVING: "arrived_at",
              TripStatus.IN_PROGRESS: "started_at", TripStatus.COMPLETED: "completed_at",
              TripStatus.NO_DRIVERS_AVAILABLE: "canceled_at"}.get(target)
    if column:
        setattr(trip, column, now)
    trip.updated_at = now


def _locked(session: Session, trip_id: uuid.UUID) -> Trip:
    trip = session.scalar(select(Trip).where(Trip.id == trip_id).with_for_update()
                          .execution_options(populate_existing=True))
    if trip is None:
        raise NotFound("no such trip")
    return trip


def _visible(trip: Trip, viewer: Principal) -> bool:
    if viewer.role is Role.ADMIN:
        return True
    if viewer.role is Role.RIDER:
        return trip.rider_id == viewer.id
    return trip.driver_id == viewer.id


def _by_idempotency_key(session: Session, rider_id: uuid.UUID, key: str) -> Trip | None:
    return session.scalar(select(Trip).where(Trip.rider_id == rider_id,
                                             Trip.idempotency_key == key))


def _same_request(trip: Trip, pickup: LatLng, dropoff: LatLng, product: Product) -> Trip:
    if (from_point(trip.pickup), from_point(trip.dropoff), trip.product) != (
            pickup, dropoff, product.value):
        raise Conflict("this Idempotency-Key was used for a different request",
                       details={"header": "Idempotency-Key"})
    return trip


def _constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)
