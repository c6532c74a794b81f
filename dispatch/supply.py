"""Driver supply use cases: going online or offline, and reporting GPS pings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from accounts.models import Driver
from core.clock import from_ms, to_ms
from core.errors import Conflict, NotFound, RateLimited
from core.products import Product
from events.catalogue import EventType
from events.envelope import Envelope
from events.publisher import Publisher
from geo.cells import cell_of
from geo.index import IngestResult, Outcome, PositionUpdate, RedisDriverIndex
from geo.pings import Ping, PingRules, triage
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
    driver = session.get(Driver, driver_id)
    if driver is None:
        raise NotFound("no such driver")
    index.go_online(driver_id, Product(driver.vehicle.product), now_ms=now_ms)


def go_offline(*, session: Session, driver_id: uuid.UUID, index: RedisDriverIndex) -> None:
    busy = session.scalar(select(exists().where(
        Trip.driver_id == driver_id, Trip.status.in_([s.value for s in DRIVER_ASSIGNED]))))
    if busy:
        raise Conflict("finish or cancel the active trip before going offline")
    index.go_offline(driver_id)


async def report_locations_async(*, driver_id: uuid.UUID, pings: list[Ping], now_ms: int,
                                 index: RedisDriverIndex, rules: PingRules,
                                 publisher: Publisher | None, resolution: int,
                                 aclient: AsyncRedis) -> LocationReport:
    """Screen the batch, apply its newest good ping, sample it to `driver-locations`.

    Async on the asyncio Redis client: the API's hottest path takes no thread per request.
    """
    report, update, newest = _screen(driver_id, pings, now_ms, rules)
    done = await index.ingest_async([update] if update else [], aclient, charge=[driver_id],
                                    now_ms=now_ms)
    if driver_id in done.denied:
        raise RateLimited("too many location posts; slow down")
    if update is None or newest is None:
        return report
    return _finish(report, done.results[0], newest, driver_id, publisher, resolution)


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


def _finish(report: LocationReport, result: IngestResult, newest: Ping, driver_id: uuid.UUID,
            publisher: Publisher | None, resolution: int) -> LocationReport:
    if result.outcome is Outcome.OFFLINE:
        raise Conflict("the driver is offline; go online before sending locations")
    if result.outcome is not Outcome.APPLIED:
        report.dropped[result.outcome.value] = (report.dropped.get(result.outcome.value, 0)
                                                + report.accepted)
        report.accepted = 0
        return report
    report.position_updated = True
    if result.publish and publisher is not None:
        event = Envelope(type=EventType.DRIVER_LOCATION, key=str(driver_id),
                         occurred_at=newest.recorded_at, data={
            "driver_id": str(driver_id), "lat": newest.point.lat, "lng": newest.point.lng,
            "cell": cell_of(newest.point, resolution), "resolution": resolution,
            "status": result.status.name.lower() if result.status else None,
            "product": result.product.value if result.product else None,
            "heading_deg": newest.heading_deg, "speed_mps": newest.speed_mps,
            "recorded_at": newest.recorded_at.isoformat(),
        })
        publisher.publish(event.topic.value, event.key, event.to_dict())
    return report
