"""Dispatch use cases: offer pending trips to the nearest drivers; accept, decline, expire."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from accounts.service import next_status_version
from core.clock import Clock, to_ms
from core.db import transaction
from core.errors import Conflict, NotFound
from core.ids import new_id
from core.products import Product
from core.settings import Settings
from dispatch.domain import Candidate, Ranked, rank_greedy
from dispatch.models import DispatchDecision, Offer
from events import outbox
from events.catalogue import EventType
from geo.columns import from_point
from geo.eta import EtaEstimator
from geo.index import RedisDriverIndex
from geo.records import DriverStatus
from trips import service as trips
from trips.domain import DRIVER_ASSIGNED, TripStatus, check_transition
from trips.events import trip_event
from trips.models import Trip

OPEN = "open"
WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class DispatchRound:
    offered: int
    given_up: int


def dispatch_pending(*, sessions: sessionmaker[Session], index: RedisDriverIndex,
                     eta: EtaEstimator, clock: Clock, settings: Settings,
                     batch: int = 20) -> DispatchRound:
    """Offer each waiting trip to its best free driver. Several dispatchers may run at once:
    trips are claimed with SKIP LOCKED, and the database refuses a second open offer."""
    now = clock.now()
    offered: list[tuple[uuid.UUID, int]] = []   # driver, status version
    given_up = 0
    with transaction(sessions) as session:
        waiting = session.scalars(
            select(Trip).where(Trip.status == TripStatus.PROCESSING.value,
                               ~exists().where(Offer.trip_id == Trip.id, Offer.status == OPEN))
            .order_by(Trip.requested_at).limit(batch).with_for_update(skip_locked=True)
        ).all()
        for trip in waiting:
            driver_id = _offer_trip(session, trip, index=index, eta=eta, now=now,
                                    settings=settings)
            if driver_id is not None:
                offered.append((driver_id, next_status_version(session, driver_id)))
            elif _out_of_time(session, trip, now=now, settings=settings):
                _give_up(session, trip, now=now)
                given_up += 1
    for driver_id, version in offered:
        index.set_status(driver_id, DriverStatus.OFFERED, version=version)
    return DispatchRound(len(offered), given_up)


def _offer_trip(session: Session, trip: Trip, *, index: RedisDriverIndex, eta: EtaEstimator,
                now: datetime, settings: Settings) -> uuid.UUID | None:
    pickup = from_point(trip.pickup)
    now_ms = to_ms(now)
    found = index.nearby(pickup, Product(trip.product), k=settings.dispatch_candidates,
                         radius_m=settings.dispatch_radius_m, now_ms=now_ms)
    candidates = [Candidate(d.driver_id, d.distance_m, eta.eta_s(d.point, pickup, at=now),
                            d.age_s(now_ms)) for d in found]
    ids = [c.driver_id for c in candidates]
    tried = set(session.scalars(select(Offer.driver_id).where(Offer.trip_id == trip.id)))
    busy = {d for d in session.scalars(select(Trip.driver_id).where(
        Trip.driver_id.in_(ids), Trip.status.in_([s.value for s in DRIVER_ASSIGNED])))
        if d is not None}
    ranked = rank_greedy(candidates, tried=tried, busy=busy)
    chosen: Ranked | None = None
    for option in ranked:
        if option.excluded:
            continue
        offer = Offer(id=new_id(), trip_id=trip.id, driver_id=option.candidate.driver_id,
                      status=OPEN, pickup_eta_s=option.candidate.eta_s,
                      distance_m=option.candidate.distance_m, created_at=now,
                      expires_at=now + timedelta(seconds=settings.offer_timeout_s))
        try:
            with session.begin_nested():
                session.add(offer)
        except IntegrityError:
            # Another dispatcher offered this driver something else a moment ago.
            continue
        outbox.record(session, trip_event(
            trip, EventType.TRIP_OFFERED, now=now, previous_status=trip.status,
            offer_id=str(offer.id), offered_driver_id=str(offer.driver_id),
            pickup_eta_s=round(offer.pickup_eta_s, 1), expires_at=offer.expires_at.isoformat()))
        chosen = option
        break
    session.add(DispatchDecision(
        trip_id=trip.id, created_at=now, strategy="greedy",
        candidates=[{"driver_id": str(r.candidate.driver_id),
                     "distance_m": round(r.candidate.distance_m, 1),
                     "eta_s": round(r.candidate.eta_s, 1),
                     "location_age_s": round(r.candidate.location_age_s, 1),
                     "excluded": r.excluded} for r in ranked],
        offered_driver_id=chosen.candidate.driver_id if chosen else None,
        reason="lowest pickup ETA" if chosen else "no free driver within radius"))
    return chosen.candidate.driver_id if chosen else None


def _out_of_time(session: Session, trip: Trip, *, now: datetime, settings: Settings) -> bool:
    offers = len(session.scalars(select(Offer.id).where(Offer.trip_id == trip.id)).all())
    waited = (now - trip.requested_at).total_seconds()
    return offers >= settings.max_offers_per_trip or waited >= settings.dispatch_timeout_s


def _give_up(session: Session, trip: Trip, *, now: datetime) -> None:
    previous = trip.status
    check_transition(TripStatus(previous), TripStatus.NO_DRIVERS_AVAILABLE)
    trip.status = TripStatus.NO_DRIVERS_AVAILABLE.value
    trip.canceled_at = now
    trip.updated_at = now
    outbox.record(session, trip_event(trip, EventType.TRIP_NO_DRIVERS_AVAILABLE, now=now,
                                      previous_status=previous))


def close_offers(*, sessions: sessionmaker[Session], index: RedisDriverIndex,
                 clock: Clock) -> int:
    """Close the open offers that are over, and free their drivers: those past their time
    (`expired`, recorded as a decline) and those whose trip left dispatch (`withdrawn`: the
    rider canceled while the offer was open; the trip's own event says so). The dispatcher
    runs this before each round, so a driver whose rider canceled is offered again within a
    round (DISPATCH_POLL_S), not after the offer's 15 s."""
    now = clock.now()
    with transaction(sessions) as session:
        expired = session.scalars(
            update(Offer).where(Offer.status == OPEN, Offer.expires_at <= now)
            .values(status="expired", responded_at=now).returning(Offer)
        ).all()
        for offer in expired:
            _record_decline(session, offer, now=now, reason="expired")
        withdrawn = session.scalars(
            update(Offer).where(Offer.status == OPEN, exists().where(
                Trip.id == Offer.trip_id, Trip.status != TripStatus.PROCESSING.value))
            .values(status=WITHDRAWN, responded_at=now).returning(Offer)
        ).all()
        # In id order: two transactions locking the same drivers take them in the same order.
        versions = {driver: next_status_version(session, driver)
                    for driver in sorted({offer.driver_id for offer in (*expired, *withdrawn)})}
    for driver, version in versions.items():
        index.set_status(driver, DriverStatus.AVAILABLE, version=version)
    return len(expired) + len(withdrawn)


def current_offer(*, session: Session, driver_id: uuid.UUID,
                  clock: Clock) -> tuple[Offer, Trip] | None:
    """The driver's open offer, unless it is past its time or its trip left dispatch (the
    dispatcher closes those: `close_offers`)."""
    row = session.execute(
        select(Offer, Trip).join(Trip, Trip.id == Offer.trip_id)
        .where(Offer.driver_id == driver_id, Offer.status == OPEN,
               Offer.expires_at > clock.now(), Trip.status == TripStatus.PROCESSING.value)
    ).first()
    return None if row is None else (row[0], row[1])


def accept_offer(*, session: Session, offer_id: uuid.UUID, driver_id: uuid.UUID, clock: Clock,
                 index: RedisDriverIndex) -> Trip:
    now = clock.now()
    with session.begin():
        offer = _locked_offer(session, offer_id, driver_id)
        _must_be_open(offer, now)
        trip = session.scalar(select(Trip).where(Trip.id == offer.trip_id).with_for_update()
                              .execution_options(populate_existing=True))
        assert trip is not None
        if trip.status != TripStatus.PROCESSING.value:     # the rider canceled meanwhile
            raise Conflict("the trip no longer waits for a driver",
                           details={"status": WITHDRAWN, "trip_status": trip.status})
        # The driver's row lock first: a going offline under way ends before the check below.
        version = next_status_version(session, driver_id)
        if not index.is_online(driver_id):
            raise Conflict("the driver is offline; go online before accepting",
                           details={"status": "offline"})
        offer.status, offer.responded_at = "accepted", now
        try:
            trips.assign_driver(session, trip=trip, driver_id=driver_id, now=now)
        except IntegrityError as exc:
            raise Conflict("the driver already has an active trip") from exc
    index.set_status(driver_id, DriverStatus.ON_TRIP, version=version)
    return trip


def decline_offer(*, session: Session, offer_id: uuid.UUID, driver_id: uuid.UUID, clock: Clock,
                  index: RedisDriverIndex) -> None:
    now = clock.now()
    with session.begin():
        offer = _locked_offer(session, offer_id, driver_id)
        _must_be_open(offer, now)
        offer.status, offer.responded_at = "declined", now
        _record_decline(session, offer, now=now, reason="declined")
        version = next_status_version(session, driver_id)
    index.set_status(driver_id, DriverStatus.AVAILABLE, version=version)


def decisions(*, session: Session, trip_id: uuid.UUID) -> list[DispatchDecision]:
    if session.get(Trip, trip_id) is None:
        raise NotFound("no such trip")
    return list(session.scalars(select(DispatchDecision).where(DispatchDecision.trip_id == trip_id)
                                .order_by(DispatchDecision.id)))


def _locked_offer(session: Session, offer_id: uuid.UUID, driver_id: uuid.UUID) -> Offer:
    offer = session.scalar(select(Offer).where(Offer.id == offer_id).with_for_update()
                           .execution_options(populate_existing=True))
    if offer is None or offer.driver_id != driver_id:
        raise NotFound("no such offer")
    return offer


def _must_be_open(offer: Offer, now: datetime) -> None:
    if offer.status != OPEN:
        raise Conflict(f"the offer is {offer.status}", details={"status": offer.status})
    if offer.expires_at <= now:
        raise Conflict("the offer has expired", details={"status": "expired"})


def _record_decline(session: Session, offer: Offer, *, now: datetime, reason: str) -> None:
    trip = session.get(Trip, offer.trip_id)
    assert trip is not None
    outbox.record(session, trip_event(trip, EventType.TRIP_OFFER_DECLINED, now=now,
                                      previous_status=trip.status, offer_id=str(offer.id),
                                      offered_driver_id=str(offer.driver_id), reason=reason))
