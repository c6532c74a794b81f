"""No double booking: the database refuses the second claim, whatever the code checked."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from accounts import service as accounts
from core.clock import FakeClock, to_ms
from core.errors import Conflict
from core.products import Product
from core.settings import Settings
from dispatch import service as dispatch
from dispatch.models import Offer
from geo.eta import StraightLineEta
from geo.index import RedisDriverIndex
from geo.records import DriverStatus
from simulations.rides import offset
from tests import factories
from trips import service as trips_service
from trips.domain import TripStatus
from trips.models import Trip


def race(n: int, work) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_one_active_trip_per_rider_under_concurrent_requests(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock) -> None:
    rider = factories.rider(sessions)
    results = race(8, lambda i: factories.trip(sessions, rider_id=rider, settings=settings,
                                               clock=clock))
    assert sum(isinstance(r, Trip) for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, Trip))


def test_idempotent_requests_under_concurrency_return_one_trip(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock) -> None:
    rider = factories.rider(sessions)
    results = race(8, lambda i: factories.trip(sessions, rider_id=rider, settings=settings,
                                               clock=clock, key="same-key"))
    assert all(isinstance(r, Trip) for r in results), results
    assert len({r.id for r in results if isinstance(r, Trip)}) == 1


def test_two_dispatchers_never_offer_one_driver_twice(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock,
        index: RedisDriverIndex) -> None:
    now_ms = to_ms(clock.now())
    drivers = [factories.online_driver(sessions, index, offset(factories.CENTRE, 40 * i, 0),
                                       now_ms) for i in range(6)]
    trips = [factories.trip(sessions, rider_id=factories.rider(sessions), settings=settings,
                            clock=clock, pickup=offset(factories.CENTRE, 10 * i, 10))
             for i in range(12)]
    for _ in range(3):
        race(4, lambda i: dispatch.dispatch_pending(sessions=sessions, index=index,
                                                    eta=StraightLineEta(), clock=clock,
                                                    settings=settings, batch=3))
    with sessions() as session:
        open_offers = session.execute(select(Offer.driver_id, Offer.trip_id)
                                      .where(Offer.status == "open")).all()
    by_driver = Counter(d for d, _ in open_offers)
    by_trip = Counter(t for _, t in open_offers)
    assert len(open_offers) == len(drivers)          # every free driver got exactly one offer
    assert max(by_driver.values()) == 1 and max(by_trip.values()) == 1
    assert set(by_driver) == set(drivers) and set(by_trip) <= {t.id for t in trips}


def test_the_database_refuses_a_second_active_trip_for_a_driver(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock) -> None:
    """Past every check in code: two transactions assign one driver to two trips at once."""
    driver = factories.driver(sessions)
    trips = [factories.trip(sessions, rider_id=factories.rider(sessions), settings=settings,
                            clock=clock) for _ in range(2)]

    def assign(i: int) -> str:
        with sessions() as session, session.begin():
            trip = session.get(Trip, trips[i].id)
            assert trip is not None
            trips_service.assign_driver(session, trip=trip, driver_id=driver, now=clock.now())
        return "committed"

    results = race(2, assign)
    assert results.count("committed") == 1
    assert any(isinstance(r, IntegrityError) for r in results)
    with sessions() as session:
        active = session.scalar(select(func.count()).select_from(Trip).where(
            Trip.driver_id == driver, Trip.status == "accepted"))
    assert active == 1


def offered_driver(sessions: sessionmaker[Session], settings: Settings, clock: FakeClock,
                   index: RedisDriverIndex) -> tuple[uuid.UUID, uuid.UUID]:
    """An online driver with an open offer: (driver, offer)."""
    driver = factories.online_driver(sessions, index, factories.CENTRE, to_ms(clock.now()))
    factories.trip(sessions, rider_id=factories.rider(sessions), settings=settings, clock=clock)
    dispatch.dispatch_pending(sessions=sessions, index=index, eta=StraightLineEta(), clock=clock,
                              settings=settings)
    with sessions() as session:
        offer_id = session.scalar(select(Offer.id).where(Offer.driver_id == driver))
    assert offer_id is not None
    return driver, offer_id


def test_accepting_an_offer_twice_is_a_conflict(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock,
        index: RedisDriverIndex) -> None:
    driver, offer_id = offered_driver(sessions, settings, clock, index)

    def accept(i: int) -> Trip:
        with sessions() as session:
            return dispatch.accept_offer(session=session, offer_id=offer_id, driver_id=driver,
                                         clock=clock, index=index)

    results = race(4, accept)
    assert sum(isinstance(r, Trip) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 3


class LateStatusWrites:
    """An index whose status writes are held back until `flush`, as if the process that
    committed a change stalled before writing it to Redis; all else goes straight through."""

    def __init__(self, index: RedisDriverIndex) -> None:
        self.index = index
        self.held: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def set_status(self, *args: object, **kwargs: object) -> bool:
        self.held.append((args, kwargs))
        return True

    def flush(self) -> None:
        for args, kwargs in self.held:
            self.index.set_status(*args, **kwargs)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.index, name)


def test_an_accept_written_late_to_the_index_cannot_hide_a_driver_whose_trip_ended(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock,
        index: RedisDriverIndex) -> None:
    """The accept's "on trip" reaches Redis only after the whole trip is over: the driver must
    stay available to dispatch, not be hidden as on a trip for good."""
    now_ms = to_ms(clock.now())
    driver, offer_id = offered_driver(sessions, settings, clock, index)
    with sessions() as session:
        trip_id = session.scalar(select(Offer.trip_id).where(Offer.id == offer_id))
    assert trip_id is not None
    late = LateStatusWrites(index)
    with sessions() as session:
        dispatch.accept_offer(session=session, offer_id=offer_id, driver_id=driver, clock=clock,
                              index=late)  # type: ignore[arg-type]
    for target in (TripStatus.ARRIVING, TripStatus.IN_PROGRESS, TripStatus.COMPLETED):
        with sessions() as session:
            trips_service.advance(session=session, trip_id=trip_id, driver_id=driver,
                                  target=target, clock=clock, index=index)
    late.flush()
    state = index.get(driver)
    assert state is not None and state.status is DriverStatus.AVAILABLE
    found = index.nearby(factories.CENTRE, Product.ECONOMY, k=3, radius_m=500, now_ms=now_ms)
    assert [d.driver_id for d in found] == [driver]


def test_an_offer_accepted_while_its_driver_goes_offline_is_refused(
        sessions: sessionmaker[Session], settings: Settings, clock: FakeClock,
        index: RedisDriverIndex) -> None:
    """Going offline checks that the driver has no active trip, then leaves the index; an
    accept landing between the two would leave the driver offline with a trip. The accept
    waits on the driver's row lock that going offline holds, then finds the driver offline,
    and is refused: the offer stays open (to expire) and the trip waits for another driver."""
    driver, offer_id = offered_driver(sessions, settings, clock, index)
    results: list[object] = []

    def accept() -> None:
        try:
            with sessions() as session:
                results.append(dispatch.accept_offer(session=session, offer_id=offer_id,
                                                     driver_id=driver, clock=clock, index=index))
        except Conflict as exc:
            results.append(exc)

    accepting = threading.Thread(target=accept)
    with sessions() as going_offline, going_offline.begin():
        assert accounts.lock_driver(going_offline, driver) is not None   # checks passed ...
        accepting.start()
        accepting.join(timeout=1.0)
        assert accepting.is_alive()           # the accept waits on the lock
        assert index.go_offline(driver)       # ... and the driver leaves the index
    accepting.join()
    [result] = results
    assert isinstance(result, Conflict) and "offline" in str(result)
    with sessions() as session:
        assert session.scalar(select(Offer.status).where(Offer.id == offer_id)) == "open"
        assert session.scalar(select(func.count()).select_from(Trip).where(
            Trip.driver_id == driver)) == 0
