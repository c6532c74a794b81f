"""The dispatcher loop: close offers that are over, then offer waiting trips, until stopped."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.orm import Session, sessionmaker

from core.clock import Clock
from core.settings import Settings
from dispatch import service
from geo.eta import EtaEstimator
from geo.index import RedisDriverIndex

log = logging.getLogger(__name__)


def run_dispatcher(*, sessions: sessionmaker[Session], index: RedisDriverIndex,
                   eta: EtaEstimator, clock: Clock, settings: Settings,
                   stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            service.close_offers(sessions=sessions, index=index, clock=clock)
            done = service.dispatch_pending(sessions=sessions, index=index, eta=eta, clock=clock,
                                            settings=settings)
            if done.offered or done.given_up:
                log.info("dispatch round: %d offered, %d gave up", done.offered, done.given_up)
        except Exception:
            log.exception("dispatch round failed; retrying")
        stop.wait(settings.dispatch_poll_s)
