"""`ridehail demo`: the real API and worker, a few scripted rides, and what happened."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import func, select

from core.db import make_engine, make_session_factory
from core.settings import Settings
from events.analytics import TripStatusCounter, trip_counts
from events.models import OutboxRow, ProcessedEvent
from geo.cells import LatLng
from simulations.rides import RideLog, play_ride
from simulations.stack import running_stack

MIDTOWN = LatLng(40.7580, -73.9855)


def run_demo(settings: Settings, *, rides: int, port: int, seed: int = 7) -> int:
    print(f"Starting the API on :{port} and the worker; playing {rides} rides ...", flush=True)
    with running_stack(port=port) as base_url:
        with httpx.Client(base_url=base_url, timeout=15) as client, \
                ThreadPoolExecutor(max_workers=rides) as pool:
            logs = list(pool.map(
                lambda n: play_ride(client, rng=random.Random(seed + n), center=MIDTOWN, n=n),
                range(rides)))
        _print_rides(logs)
        _print_pipeline(settings, logs)
    return 0


def _print_rides(logs: list[RideLog]) -> None:
    print("\nRides played")
    print(f"{'trip':38} {'fare':>9} {'secs':>5}  statuses")
    for log in logs:
        fare = f"{log.fare['amount']} {log.fare['currency']}"
        print(f"{log.trip_id:38} {fare:>9} {log.seconds:5.1f}  {' -> '.join(log.statuses)}")


def _print_pipeline(settings: Settings, logs: list[RideLog]) -> None:
    engine = make_engine(settings.database_url, pool_size=1)
    sessions = make_session_factory(engine)
    ids = [log.trip_id for log in logs]
    deadline = time.monotonic() + 30
    with sessions() as session:
        # Wait until the analytics consumer has applied every event of these rides.
        events = select(OutboxRow.event_id).where(OutboxRow.key.in_(ids))
        while True:
            pending = session.scalar(select(func.count()).select_from(
                events.except_(select(ProcessedEvent.event_id).where(
                    ProcessedEvent.consumer == TripStatusCounter.name)).subquery()))
            counts = trip_counts(session)
            session.rollback()
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        by_type = session.execute(
            select(OutboxRow.type, func.count()).where(OutboxRow.key.in_(ids))
            .group_by(OutboxRow.type).order_by(OutboxRow.type)).all()
    engine.dispose()
    print("\nEvents published to trip-events for these rides")
    for type_, n in by_type:
        print(f"  {type_:28} {n}")
    print("\nAnalytics consumer: trips by current status (all time)")
    for status, n in sorted(counts.items()):
        print(f"  {status:28} {n}")
