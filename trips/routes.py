"""Trip endpoints for riders and drivers."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, status

from accounts.deps import CurrentDriver, CurrentPrincipal, CurrentRider
from core.clock import to_ms
from core.deps import ClockDep, SessionDep, SettingsDep
from core.errors import InvalidInput
from core.schemas import error_responses
from geo.columns import from_point
from geo.deps import EtaDep, IndexDep
from geo.eta import EtaEstimator
from trips import service
from trips.domain import TripStatus
from trips.models import Trip
from trips.schemas import DriverOut, FareOut, Point, TripOut, TripRequest, VehicleOut

router = APIRouter(prefix="/v1/trips", tags=["trips"])
TRANSITION_ERRORS = error_responses(404, 409)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=64)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TripOut,
             responses=error_responses(409))
def request_trip(body: TripRequest, rider: CurrentRider, session: SessionDep,
                 settings: SettingsDep, clock: ClockDep, eta: EtaDep,
                 idempotency_key: IdempotencyKey = None) -> TripOut:
    if body.quote_id is not None:
        raise InvalidInput("quotes are not available yet; send pickup and dropoff",
                           details={"field": "quote_id"})
    assert body.pickup is not None and body.dropoff is not None
    trip = service.request_trip(session=session, rider_id=rider.id,
                                pickup=body.pickup.to_latlng(), dropoff=body.dropoff.to_latlng(),
                                product=body.product, idempotency_key=idempotency_key,
                                clock=clock, settings=settings, eta=eta)
    return trip_out(trip)


@router.get("/{trip_id}", response_model=TripOut, responses=error_responses(404))
def get_trip(trip_id: uuid.UUID, viewer: CurrentPrincipal, session: SessionDep,
             index: IndexDep, clock: ClockDep, eta: EtaDep) -> TripOut:
    view = service.get_view(session=session, trip_id=trip_id, viewer=viewer, index=index)
    return trip_out(view.trip, view, now_ms=to_ms(clock.now()), eta=eta, clock=clock)


def _advance(target: TripStatus):
    def route(trip_id: uuid.UUID, driver: CurrentDriver, session: SessionDep, clock: ClockDep,
              index: IndexDep) -> TripOut:
        return trip_out(service.advance(session=session, trip_id=trip_id, driver_id=driver.id,
                                        target=target, clock=clock, index=index))
    return route


router.post("/{trip_id}/arrive", response_model=TripOut,
            responses=TRANSITION_ERRORS)(_advance(TripStatus.ARRIVING))
router.post("/{trip_id}/start", response_model=TripOut,
            responses=TRANSITION_ERRORS)(_advance(TripStatus.IN_PROGRESS))
router.post("/{trip_id}/complete", response_model=TripOut,
            responses=TRANSITION_ERRORS)(_advance(TripStatus.COMPLETED))


@router.post("/{trip_id}/cancel", response_model=TripOut, responses=TRANSITION_ERRORS)
def cancel_trip(trip_id: uuid.UUID, who: CurrentPrincipal, session: SessionDep,
                clock: ClockDep, index: IndexDep) -> TripOut:
    return trip_out(service.cancel(session=session, trip_id=trip_id, by=who, clock=clock,
                                   index=index))


def trip_out(trip: Trip, view: service.TripView | None = None, *, now_ms: int = 0,
             eta: EtaEstimator | None = None, clock: ClockDep | None = None) -> TripOut:
    pickup = from_point(trip.pickup)
    driver_out = None
    if view is not None and view.driver is not None:
        state, location, age, eta_s = view.driver_state, None, None, None
        if state is not None and state.point is not None:
            location = Point.of(state.point)
            age = max(0.0, (now_ms - state.ts_ms) / 1000)
            if eta is not None and clock is not None:
                eta_s = round(eta.eta_s(state.point, pickup, at=clock.now()), 1)
        vehicle = view.driver.vehicle
        driver_out = DriverOut(
            id=view.driver.id, name=view.driver.name,
            vehicle=VehicleOut(make=vehicle.make, model=vehicle.model, plate=vehicle.plate,
                               product=vehicle.product),
            location=location, location_age_s=age, eta_s=eta_s)
    return TripOut(
        id=trip.id, status=trip.status, product=trip.product, pickup=Point.of(pickup),
        dropoff=Point.of(from_point(trip.dropoff)),
        fare=FareOut(amount=trip.fare_amount, currency=trip.currency,
                     surge_multiplier=trip.surge_multiplier, breakdown=trip.fare_breakdown),
        driver=driver_out, requested_at=trip.requested_at, accepted_at=trip.accepted_at,
        arrived_at=trip.arrived_at, started_at=trip.started_at,
        completed_at=trip.completed_at, canceled_at=trip.canceled_at)
