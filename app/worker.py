"""`ridehail worker`: the dispatcher, outbox relay, analytics consumer and index sweeper."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from app import container
from core.clock import to_ms
from core.settings import Settings
from dispatch.location_relay import LocationSampleRelay
from dispatch.worker import run_dispatcher
from events.analytics import TripStatusCounter
from events.catalogue import Topic
from events.consumer import ConsumerRunner
from events.publisher import KafkaPublisher
from events.relay import OutboxRelay

log = logging.getLogger(__name__)


def _loop(name: str, step: Callable[[], object], pause_s: float,
          stop: threading.Event) -> threading.Thread:
    def body() -> None:
        while not stop.is_set():
            try:
                busy = step()
            except Exception:
                log.exception("%s failed; retrying", name)
                busy = False
            if not busy:
                stop.wait(pause_s)

    return threading.Thread(target=body, name=name, daemon=True)


def run_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    res = container.build(settings)
    producer = KafkaPublisher(settings)
    relay = OutboxRelay(res.sessions, producer)
    samples = LocationSampleRelay(res.index, producer, resolution=settings.h3_index_resolution)
    consumer = ConsumerRunner(settings=settings, sessions=res.sessions,
                              handler=TripStatusCounter(), topics=[Topic.TRIP_EVENTS.value],
                              group_id=settings.analytics_group, dead_letters=producer)
    threads = [
        threading.Thread(target=run_dispatcher, name="dispatcher", daemon=True, kwargs={
            "sessions": res.sessions, "index": res.index, "eta": res.eta, "clock": res.clock,
            "settings": settings, "stop": stop}),
        _loop("relay", relay.run_once, settings.relay_poll_s, stop),
        _loop("locations", samples.run_once, settings.relay_poll_s, stop),
        _loop("analytics", lambda: consumer.poll_once(500), 0.0, stop),
        _loop("sweeper", lambda: res.index.sweep_cells(now_ms=to_ms(res.clock.now())) and False,
              settings.sweep_every_s, stop),
        _loop("idle-sweeper",
              lambda: res.index.sweep_idle(now_ms=to_ms(res.clock.now())) and False,
              settings.sweep_idle_every_s, stop),
    ]
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    for thread in threads:
        thread.start()
    log.info("worker running: %s", ", ".join(t.name for t in threads))
    stop.wait()
    for thread in threads:
        thread.join(timeout=10)
    consumer.close()
    producer.close()
    res.close()
