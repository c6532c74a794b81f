"""Ping intake over HTTP: counted drops, 409 offline, 429 over the rate, index untouched."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.container import Resources
from core.clock import FakeClock
from tests.api.helpers import bearer, new_driver, ping


@pytest.fixture
def online(client: TestClient) -> dict[str, str]:
    driver = new_driver(client)
    client.put("/v1/drivers/me/status", json={"status": "online"}, headers=bearer(driver["token"]))
    return driver


def post(client: TestClient, driver: dict[str, str], pings: list[dict]):
    return client.post("/v1/drivers/me/locations", json={"pings": pings},
                       headers=bearer(driver["token"]))


def test_reply_counts_each_reason(client: TestClient, online: dict[str, str],
                                  clock: FakeClock) -> None:
    now = clock.now()
    reply = post(client, online, [
        ping(40.75, -73.98, now - timedelta(minutes=10)),             # stale
        ping(40.75, -73.98, now + timedelta(minutes=5)),              # future
        ping(40.75, -73.98, now - timedelta(seconds=3), accuracy_m=9000),  # inaccurate
        ping(40.75, -73.98, now - timedelta(seconds=2)),
        ping(41.50, -73.98, now - timedelta(seconds=1)),              # 83 km in 1 s
        ping(40.7501, -73.98, now),
    ])
    assert reply.status_code == 202
    assert reply.json() == {"received": 6, "accepted": 2, "dropped": 4, "position_updated": True,
                            "reasons": {"stale": 1, "future": 1, "inaccurate": 1,
                                        "impossible": 1}}


def test_a_ping_sent_again_is_answered_as_the_first_time(client: TestClient,
                                                         online: dict[str, str],
                                                         clock: FakeClock) -> None:
    """A phone that lost the reply re-sends its batch: its newest ping is the driver's last
    accepted one, so the batch is accepted again, with the same answer (idempotently: the
    index completes the place if the first request never made it). The same time at another
    position is out of order."""
    now = clock.now()
    batch = [ping(40.7500, -73.98, now - timedelta(seconds=4)), ping(40.7501, -73.98, now)]
    answer = post(client, online, batch).json()
    assert answer == {"received": 2, "accepted": 2, "dropped": 0, "position_updated": True,
                      "reasons": {}}
    assert post(client, online, batch).json() == answer
    moved = post(client, online, [ping(40.7502, -73.98, now)]).json()      # same time, moved
    assert moved["reasons"] == {"out_of_order": 1}


def test_all_bad_pings_leave_the_index_untouched(client: TestClient, online: dict[str, str],
                                                 clock: FakeClock, resources: Resources) -> None:
    before = resources.index.get(uuid.UUID(online["id"]))
    reply = post(client, online, [ping(40.75, -73.98, clock.now() - timedelta(hours=1))])
    assert reply.json()["position_updated"] is False
    assert resources.index.get(uuid.UUID(online["id"])) == before


@pytest.mark.parametrize("bad", [
    '{"pings": []}',
    '{"pings": [{"lat": NaN, "lng": 0, "recorded_at": "2026-01-01T00:00:00Z"}]}',
    '{"pings": [{"lat": 0, "lng": 1e309, "recorded_at": "2026-01-01T00:00:00Z"}]}',
    '{"pings": [{"lat": 91, "lng": 0, "recorded_at": "2026-01-01T00:00:00Z"}]}',
    '{"pings": [{"lat": 1, "lng": 0, "recorded_at": "yesterday"}]}',
    '{"pings": [{"lat": 1, "lng": 0, "recorded_at": "2026-01-01T00:00:00"}]}',
    '{"pings": [{"lat": 1, "lng": 0, "recorded_at": "2026-01-01T00:00:00Z", "heading_deg": 400}]}',
    '{"pings": [{"lat": 1, "lng": 0, "recorded_at": "2026-01-01T00:00:00Z", "speed_mps": -1}]}',
    '{"pings": [{"lat": 1, "lng": 0, "recorded_at": "2026-01-01T00:00:00Z", "accuracy_m": -5}]}',
])
def test_schema_violations_are_422(client: TestClient, online: dict[str, str], bad: str) -> None:
    response = client.post("/v1/drivers/me/locations", content=bad,
                           headers={**bearer(online["token"]), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "pings" in response.json()["error"]["message"]


def test_more_than_100_pings_is_422(client: TestClient, online: dict[str, str],
                                    clock: FakeClock) -> None:
    assert post(client, online, [ping(40.75, -73.98, clock.now())] * 101).status_code == 422


def test_offline_driver_is_409(client: TestClient, clock: FakeClock) -> None:
    driver = new_driver(client)
    assert post(client, driver, [ping(40.75, -73.98, clock.now())]).status_code == 409


def test_rate_limit_is_429(client: TestClient, online: dict[str, str], clock: FakeClock,
                           resources: Resources) -> None:
    burst = resources.settings.ping_rate_burst
    codes = [post(client, online, [ping(40.75, -73.98, clock.now())]).status_code
             for _ in range(burst + 3)]
    assert codes[:burst].count(202) == burst
    assert codes[burst:] == [429, 429, 429]


def test_nearby_shows_cars_without_ids(client: TestClient, online: dict[str, str],
                                       clock: FakeClock) -> None:
    post(client, online, [ping(40.7581, -73.9856, clock.now(), heading_deg=90)])
    cars = client.get("/v1/drivers/nearby", params={"lat": 40.758, "lng": -73.9855}).json()
    assert len(cars["cars"]) == 1
    assert set(cars["cars"][0]) == {"lat", "lng", "heading_deg", "location_age_s"}
    assert client.get("/v1/drivers/nearby", params={"lat": 999, "lng": 0}).status_code == 422
    assert client.get("/v1/drivers/nearby", params={"lat": "nan", "lng": 0}).status_code == 422


def test_nearby_can_be_bounded_by_eta(client: TestClient, clock: FakeClock,
                                      resources: Resources) -> None:
    near, far = new_driver(client), new_driver(client)
    for driver, lat in ((near, 40.7585), (far, 40.7780)):       # ~60 m and ~2.2 km north
        client.put("/v1/drivers/me/status", json={"status": "online"},
                   headers=bearer(driver["token"]))
        post(client, driver, [ping(lat, -73.9855, clock.now())])
    params = {"lat": 40.758, "lng": -73.9855, "radius_m": 5000}
    assert len(client.get("/v1/drivers/nearby", params=params).json()["cars"]) == 2
    reach = resources.eta.reach_m(60, at=clock.now())            # well under 2 km
    assert 100 < reach < 2000
    bounded = client.get("/v1/drivers/nearby", params={**params, "max_eta_s": 60}).json()
    assert len(bounded["cars"]) == 1


def test_a_phone_with_a_wrong_clock_is_seen_while_it_pings_and_not_after(
        client: TestClient, clock: FakeClock, resources: Resources) -> None:
    """Freshness follows when pings arrive: a phone 40 s slow is on the map (its age as the
    phone says), a phone 20 s fast leaves it `DRIVER_TTL_S` after its last ping arrived."""
    slow, fast = new_driver(client), new_driver(client)
    for driver, lat, skew in ((slow, 40.7585, -40), (fast, 40.7590, 20)):
        client.put("/v1/drivers/me/status", json={"status": "online"},
                   headers=bearer(driver["token"]))
        reply = post(client, driver, [ping(lat, -73.9855, clock.now() + timedelta(seconds=skew))])
        assert reply.json()["position_updated"] is True
    params = {"lat": 40.758, "lng": -73.9855}
    cars = client.get("/v1/drivers/nearby", params=params).json()["cars"]
    assert [car["location_age_s"] for car in cars] == [40.0, 0.0]
    clock.advance(resources.settings.driver_ttl_s + 1)
    assert client.get("/v1/drivers/nearby", params=params).json()["cars"] == []
