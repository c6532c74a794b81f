"""Trips over HTTP: request, idempotency, one active trip, and the driver's path."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from accounts.tokens import Principal, Role, issue_token
from app.container import Resources
from app.main import create_app
from core.clock import FakeClock
from core.ids import new_id
from core.settings import Settings
from dispatch import service as dispatch
from geo.records import DriverStatus
from tests.api.helpers import bearer, new_driver, new_rider, ping

TRIP = {"pickup": {"lat": 40.7580, "lng": -73.9855}, "dropoff": {"lat": 40.7680, "lng": -73.9755}}


def test_request_is_idempotent_and_one_active_trip_per_rider(client: TestClient) -> None:
    rider = new_rider(client)
    headers = {**bearer(rider["token"]), "Idempotency-Key": "k-1"}
    first = client.post("/v1/trips", json=TRIP, headers=headers)
    again = client.post("/v1/trips", json=TRIP, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["status"] == "processing"
    assert float(first.json()["fare"]["amount"]) >= 6.0
    other = client.post("/v1/trips", json=TRIP, headers=bearer(rider["token"]))
    assert other.status_code == 409
    changed = client.post("/v1/trips", json={**TRIP, "product": "xl"}, headers=headers)
    assert changed.status_code == 409


def test_full_ride_over_http(client: TestClient, resources: Resources, clock: FakeClock) -> None:
    rider, driver = new_rider(client), new_driver(client)
    d = bearer(driver["token"])
    online = client.put("/v1/drivers/me/status", json={"status": "online"}, headers=d)
    assert online.status_code == 200
    sent = client.post("/v1/drivers/me/locations", headers=d,
                       json={"pings": [ping(40.7585, -73.9850, clock.now())]})
    assert sent.status_code == 202 and sent.json()["position_updated"]
    trip = client.post("/v1/trips", json=TRIP, headers=bearer(rider["token"])).json()
    assert client.get("/v1/drivers/me/offer", headers=d).status_code == 204
    dispatch.dispatch_pending(sessions=resources.sessions, index=resources.index,
                              eta=resources.eta, clock=clock, settings=resources.settings)
    offer = client.get("/v1/drivers/me/offer", headers=d)
    assert offer.status_code == 200 and offer.json()["trip_id"] == trip["id"]
    # Out of order: completing before arriving is a wrong state.
    offer_id = offer.json()["offer_id"]
    assert client.post(f"/v1/offers/{offer_id}/accept", headers=d).json()["status"] == "accepted"
    assert client.post(f"/v1/trips/{trip['id']}/complete", headers=d).status_code == 409
    assert client.put("/v1/drivers/me/status", json={"status": "offline"},
                      headers=d).status_code == 409
    for step, status in (("arrive", "arriving"), ("start", "in_progress"),
                         ("complete", "completed")):
        response = client.post(f"/v1/trips/{trip['id']}/{step}", headers=d)
        assert response.status_code == 200 and response.json()["status"] == status
    seen = client.get(f"/v1/trips/{trip['id']}", headers=bearer(rider["token"])).json()
    assert seen["status"] == "completed"
    assert seen["driver"]["name"] == "Bo" and seen["driver"]["location"] is not None
    assert seen["completed_at"] is not None


def test_rider_cancel_and_someone_elses_offer(client: TestClient, resources: Resources,
                                              clock: FakeClock) -> None:
    rider, driver, other = new_rider(client), new_driver(client), new_driver(client)
    d = bearer(driver["token"])
    client.put("/v1/drivers/me/status", json={"status": "online"}, headers=d)
    client.post("/v1/drivers/me/locations", headers=d,
                json={"pings": [ping(40.7585, -73.9850, clock.now())]})
    trip = client.post("/v1/trips", json=TRIP, headers=bearer(rider["token"])).json()
    dispatch.dispatch_pending(sessions=resources.sessions, index=resources.index,
                              eta=resources.eta, clock=clock, settings=resources.settings)
    offer_id = client.get("/v1/drivers/me/offer", headers=d).json()["offer_id"]
    assert client.post(f"/v1/offers/{offer_id}/accept",
                       headers=bearer(other["token"])).status_code == 404
    canceled = client.post(f"/v1/trips/{trip['id']}/cancel", headers=bearer(rider["token"]))
    assert canceled.status_code == 200 and canceled.json()["status"] == "rider_canceled"
    assert client.post(f"/v1/offers/{offer_id}/accept", headers=d).status_code == 409


def test_a_rider_canceling_frees_the_offered_driver_at_once(
        client: TestClient, resources: Resources, clock: FakeClock) -> None:
    """The driver's offer is gone at once, and the dispatcher's next round (not the offer's
    15 s) hands the driver back to dispatch."""
    rider, driver = new_rider(client), new_driver(client)
    d = bearer(driver["token"])
    client.put("/v1/drivers/me/status", json={"status": "online"}, headers=d)
    client.post("/v1/drivers/me/locations", headers=d,
                json={"pings": [ping(40.7585, -73.9850, clock.now())]})

    def dispatch_round() -> int:
        dispatch.close_offers(sessions=resources.sessions, index=resources.index, clock=clock)
        return dispatch.dispatch_pending(sessions=resources.sessions, index=resources.index,
                                         eta=resources.eta, clock=clock,
                                         settings=resources.settings).offered

    first = client.post("/v1/trips", json=TRIP, headers=bearer(rider["token"])).json()
    assert dispatch_round() == 1
    offer_id = client.get("/v1/drivers/me/offer", headers=d).json()["offer_id"]
    client.post(f"/v1/trips/{first['id']}/cancel", headers=bearer(rider["token"]))
    assert client.get("/v1/drivers/me/offer", headers=d).status_code == 204
    refused = client.post(f"/v1/offers/{offer_id}/accept", headers=d)
    assert refused.status_code == 409
    assert refused.json()["error"]["details"]["trip_status"] == "rider_canceled"
    second = client.post("/v1/trips", json=TRIP, headers=bearer(new_rider(client)["token"]))
    clock.advance(1)                                  # well inside the first offer's 15 s
    assert dispatch_round() == 1
    offer = client.get("/v1/drivers/me/offer", headers=d).json()
    assert offer["trip_id"] == second.json()["id"]
    withdrawn = client.post(f"/v1/offers/{offer_id}/accept", headers=d)
    assert withdrawn.json()["error"]["details"] == {"status": "withdrawn"}


@pytest.mark.parametrize("holding", ["an open offer", "an accepted trip"])
def test_a_driver_the_index_forgot_comes_back_online_as_the_database_says(
        client: TestClient, resources: Resources, clock: FakeClock, holding: str) -> None:
    """The index loses a driver who holds an offer or a trip (a Redis failover that lost
    writes, or the idle sweep after an hour without pings); the app's next ping gets 409 and
    it goes online again. The new session starts as the database says (offered, on trip), so
    the driver is not shown to riders as free, and takes the trip's next status as before."""
    rider, driver = new_rider(client), new_driver(client)
    d, driver_id = bearer(driver["token"]), uuid.UUID(driver["id"])
    here = {"lat": 40.7585, "lng": -73.9855}
    client.put("/v1/drivers/me/status", json={"status": "online"}, headers=d)
    client.post("/v1/drivers/me/locations", headers=d,
                json={"pings": [ping(here["lat"], here["lng"], clock.now())]})
    trip = client.post("/v1/trips", json=TRIP, headers=bearer(rider["token"])).json()
    dispatch.dispatch_pending(sessions=resources.sessions, index=resources.index,
                              eta=resources.eta, clock=clock, settings=resources.settings)
    offer_id = client.get("/v1/drivers/me/offer", headers=d).json()["offer_id"]
    if holding == "an accepted trip":
        client.post(f"/v1/offers/{offer_id}/accept", headers=d)
    assert resources.index.go_offline(driver_id)            # the index forgets the driver
    clock.advance(4)
    lost = client.post("/v1/drivers/me/locations", headers=d,
                       json={"pings": [ping(here["lat"], here["lng"], clock.now())]})
    assert lost.status_code == 409
    assert client.put("/v1/drivers/me/status", json={"status": "online"},
                      headers=d).status_code == 200
    client.post("/v1/drivers/me/locations", headers=d,
                json={"pings": [ping(here["lat"], here["lng"], clock.now())]})
    state = resources.index.get(driver_id)
    expected = DriverStatus.OFFERED if holding == "an open offer" else DriverStatus.ON_TRIP
    assert state is not None and state.status is expected
    assert client.get("/v1/drivers/nearby", params=here).json()["cars"] == []
    if holding == "an open offer":
        client.post(f"/v1/offers/{offer_id}/decline", headers=d)
    else:
        for step in ("arrive", "start", "complete"):
            client.post(f"/v1/trips/{trip['id']}/{step}", headers=d)
    state = resources.index.get(driver_id)
    assert state is not None and state.status is DriverStatus.AVAILABLE
    assert len(client.get("/v1/drivers/nearby", params=here).json()["cars"]) == 1


def test_going_online_again_repairs_a_status_write_that_was_lost(
        client: TestClient, resources: Resources, clock: FakeClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An accept commits, but its process dies before writing the index: the index still
    shows the driver offered. The app's next "online" (idempotent for an online driver) sets
    the database's status, by its newer version; a second one changes nothing."""
    rider, driver = new_rider(client), new_driver(client)
    d, driver_id = bearer(driver["token"]), uuid.UUID(driver["id"])
    client.put("/v1/drivers/me/status", json={"status": "online"}, headers=d)
    client.post("/v1/drivers/me/locations", headers=d,
                json={"pings": [ping(40.7585, -73.9850, clock.now())]})
    client.post("/v1/trips", json=TRIP, headers=bearer(rider["token"]))
    dispatch.dispatch_pending(sessions=resources.sessions, index=resources.index,
                              eta=resources.eta, clock=clock, settings=resources.settings)
    offer_id = client.get("/v1/drivers/me/offer", headers=d).json()["offer_id"]
    with monkeypatch.context() as lost:
        lost.setattr(resources.index, "set_status", lambda *_, **__: True)
        accepted = client.post(f"/v1/offers/{offer_id}/accept", headers=d)
    assert accepted.status_code == 200

    def status() -> DriverStatus | None:
        state = resources.index.get(driver_id)
        return state.status if state is not None else None

    assert status() is DriverStatus.OFFERED
    for _ in range(2):
        assert client.put("/v1/drivers/me/status", json={"status": "online"},
                          headers=d).status_code == 200
        assert status() is DriverStatus.ON_TRIP


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert {name for name, c in ready.json()["checks"].items() if c["ok"]} == {
        "postgres", "redis", "kafka"}


def test_an_api_started_while_redis_is_down_starts_and_says_so(settings: Settings) -> None:
    """Start-up touches Redis only to warm the search geometry; with Redis down it skips that,
    serves, and reports Redis as not ready (and requests needing it get 503)."""
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with TestClient(create_app(down)) as started:
        assert started.get("/healthz").status_code == 200
        ready = started.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"]["ok"] is False
        cars = started.get("/v1/drivers/nearby", params={"lat": 40.75, "lng": -73.98})
        assert cars.status_code == 503
        assert cars.json()["error"]["code"] == "unavailable"
        # The ping path's own connections (held outside the pool) fail the same way.
        now = started.app.state.clock.now()  # type: ignore[attr-defined]
        token = issue_token(Principal(new_id(), Role.DRIVER), secret=settings.jwt_secret,
                            algorithm=settings.jwt_algorithm, ttl_s=600, now=now)
        posted = started.post("/v1/drivers/me/locations", headers=bearer(token),
                              json={"pings": [ping(40.75, -73.98, now)]})
        assert posted.status_code == 503
        assert posted.json()["error"]["code"] == "unavailable"
