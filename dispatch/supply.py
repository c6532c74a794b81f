"""Driver supply use cases: going online or offline, and reporting GPS pings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from accounts.service import lock_driver
from core.clock import from_ms, to_ms
from core.errors import Conflict, NotFound, RateLimited
from core.products import Product
from dispatch.models import Offer
from dispatch.service import OPEN
from geo.index import RedisDriverIndex
from geo.pings import Ping, PingRules, triage
from geo.records import DriverStatus, IngestResult, Outcome, PositionUpdate
from trips.domain import DRIVER_ASSIGNED
from trips.models import Trip


@dataclass
class LocationReport:
    received: int
    accepted: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    position_updated: bool = False


def go_online(*, session: Session, driver_id: uuid.UUID, index: RedisDriverIndex,
              now_ms: int) -> None:
    """The index's status follows what the database says the driver is doing: on a trip,
    holding an open offer, or available. A new session starts from it, so a driver the index
    forgot mid-trip (a Redis failover that lost writes, or the idle sweep after an hour
    without pings) and who comes back online is not shown available to riders and dispatch.
    A driver already online gets it too when the index's status is older than the database's
    latest change (that change's write was lost: its process died between commit and write).
    Under the driver's row lock, which every status change takes for its version, so none
    lands between the read and the write unordered."""
    with session.begin():
        driver = lock_driver(session, driver_id)
        if driver is None:
            raise NotFound("no such driver")
        status = (DriverStatus.ON_TRIP if _on_trip(session, driver_id)
                  else DriverStatus.OFFERED if session.scalar(select(exists().where(
                      Offer.driver_id == driver_id, Offer.status == OPEN)))
                  else DriverStatus.AVAILABLE)
        index.go_online(driver_id, Product(driver.vehicle.product), now_ms=now_ms,
                        status_version=driver.status_version, status=status)


def go_offline(*, session: Session, driver_id: uuid.UUID, index: RedisDriverIndex) -> None:
    """Under the driver's row lock, which an accept takes too: an offer accepted meanwhile
    either lands first (then its trip refuses this) or finds the driver offline."""
    with session.begin():
        if lock_driver(session, driver_id) is None:
            raise NotFound("no such driver")
        if _on_trip(session, driver_id):
            raise Conflict("finish or cancel the active trip before going offline")
        index.go_offline(driver_id)


def _on_trip(session: Session, driver_id: uuid.UUID) -> bool:
    return bool(session.scalar(select(exists().where(
        Trip.driver_id == driver_id, Trip.status.in_([s.value for s in DRIVER_ASSIGNED])))))


async def report_locations(*, driver_id: uuid.UUID, pings: list[Ping], now_ms: int,
                           index: RedisDriverIndex, rules: PingRules,
                           aclient: AsyncRedis) -> LocationReport:
    """Screen the batch and apply its newest good ping (the index samples it for Kafka).

    Async on the asyncio Redis client: the API's hottest path takes no thread per request,
    and never waits on Kafka.
    """
    report, update, newest = _screen(driver_id, pings, now_ms, rules)
    done = await index.ingest_async([update] if update else [], aclient, charge=[driver_id],
                                    now_ms=now_ms)
    if driver_id in done.denied:
        raise RateLimited("too many location posts; slow down")
    if update is None or newest is None:
        return report
    return _finish(report, done.results[0])


def _screen(driver_id: uuid.UUID, pings: list[Ping], now_ms: int,
            rules: PingRules) -> tuple[LocationReport, PositionUpdate | None, Ping | None]:
    screened = triage(pings, now=from_ms(now_ms), rules=rules)
    report = LocationReport(received=len(pings), dropped=dict(screened.dropped))
    newest = screened.newest
    if newest is None:
        return report, None, None
    report.accepted = len(screened.kept)
    heading = int(newest.heading_deg) % 360 if newest.heading_deg is not None else -1
    return report, PositionUpdate(driver_id, newest.point, to_ms(newest.recorded_at),
                                  heading), newest


def _finish(report: LocationReport, result: IngestResult) -> LocationReport:
    if result.outcome is Outcome.OFFLINE:
        raise Conflict("the driver is offline; go online before sending locations")
    if result.outcome is not Outcome.APPLIED:
        report.dropped[result.outcome.value] = (report.dropped.get(result.outcome.value, 0)
                                                + report.accepted)
        report.accepted = 0
        return report
    report.position_updated = True
    return report
