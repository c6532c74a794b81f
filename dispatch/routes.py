"""Driver-app endpoints (status, locations, offers) and the admin dispatch log."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from accounts.deps import BEARER_OPENAPI, CurrentAdmin, CurrentDriver, CurrentDriverFlat
from core.clock import to_ms
from core.deps import ClockDep, SessionDep
from core.schemas import error_responses
from dispatch import service, supply
from dispatch.schemas import (
    DecisionOut,
    DecisionsOut,
    LocationsIn,
    LocationsOut,
    OfferOut,
    StatusIn,
    StatusOut,
    fare_of,
)
from geo.columns import from_point
from geo.deps import IndexDep
from trips.routes import trip_out
from trips.schemas import Point, TripOut

router = APIRouter(prefix="/v1", tags=["driver"])


@router.put("/drivers/me/status", response_model=StatusOut,
            responses=error_responses(404, 409))
def set_status(body: StatusIn, driver: CurrentDriver, session: SessionDep,
               index: IndexDep, clock: ClockDep) -> StatusOut:
    if body.status == "online":
        supply.go_online(session=session, driver_id=driver.id, index=index,
                         now_ms=to_ms(clock.now()))
    else:
        supply.go_offline(session=session, driver_id=driver.id, index=index)
    return StatusOut(status=body.status)


@router.post("/drivers/me/locations", status_code=status.HTTP_202_ACCEPTED,
             response_model=LocationsOut, openapi_extra=BEARER_OPENAPI,
             responses=error_responses(409, 429))
async def post_locations(body: LocationsIn, driver: CurrentDriverFlat,
                         request: Request) -> LocationsOut:
    # The hottest endpoint: async end to end on the asyncio Redis client, no thread hop, and
    # one dependency (its adapters come straight from app.state).
    state = request.app.state
    report = await supply.report_locations(
        driver_id=driver.id, pings=[p.to_ping() for p in body.pings],
        now_ms=to_ms(state.clock.now()), index=state.index, rules=state.ping_rules,
        aclient=state.aredis)
    return LocationsOut(received=report.received, accepted=report.accepted,
                        dropped=sum(report.dropped.values()), reasons=report.dropped,
                        position_updated=report.position_updated)


@router.get("/drivers/me/offer", response_model=OfferOut,
            responses={204: {"description": "no open offer"}})
def get_offer(driver: CurrentDriver, session: SessionDep, clock: ClockDep) -> OfferOut | Response:
    found = service.current_offer(session=session, driver_id=driver.id, clock=clock)
    if found is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    offer, trip = found
    return OfferOut(offer_id=offer.id, trip_id=trip.id, pickup=Point.of(from_point(trip.pickup)),
                    dropoff=Point.of(from_point(trip.dropoff)),
                    fare=fare_of(trip.fare_amount, trip.currency, trip.surge_multiplier,
                                 trip.fare_breakdown),
                    pickup_eta_s=round(offer.pickup_eta_s, 1),
                    distance_m=round(offer.distance_m, 1), expires_at=offer.expires_at)


@router.post("/offers/{offer_id}/accept", response_model=TripOut,
             responses=error_responses(404, 409))
def accept(offer_id: uuid.UUID, driver: CurrentDriver, session: SessionDep, clock: ClockDep,
           index: IndexDep) -> TripOut:
    return trip_out(service.accept_offer(session=session, offer_id=offer_id,
                                         driver_id=driver.id, clock=clock, index=index))


@router.post("/offers/{offer_id}/decline", status_code=status.HTTP_204_NO_CONTENT,
             responses=error_responses(404, 409))
def decline(offer_id: uuid.UUID, driver: CurrentDriver, session: SessionDep, clock: ClockDep,
            index: IndexDep) -> Response:
    service.decline_offer(session=session, offer_id=offer_id, driver_id=driver.id, clock=clock,
                          index=index)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/dispatch/decisions/{trip_id}", response_model=DecisionsOut,
            responses=error_responses(404))
def decisions(trip_id: uuid.UUID, admin: CurrentAdmin, session: SessionDep) -> DecisionsOut:
    rows = service.decisions(session=session, trip_id=trip_id)
    return DecisionsOut(trip_id=trip_id, decisions=[
        DecisionOut(created_at=r.created_at, strategy=r.strategy, candidates=r.candidates,
                    offered_driver_id=r.offered_driver_id, reason=r.reason) for r in rows])

