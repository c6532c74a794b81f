"""Bad input earns a 4xx in the SPEC.md error shape, never a 5xx, and writes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from accounts.models import Driver, Rider
from tests.api.helpers import bearer, new_rider, ping
from trips.models import Trip

TRIP = {"pickup": {"lat": 40.75, "lng": -73.98}, "dropoff": {"lat": 40.76, "lng": -73.97}}


def counts(sessions: sessionmaker[Session]) -> tuple[int, ...]:
    with sessions() as session:
        return tuple(session.scalar(select(func.count()).select_from(m)) or 0
                     for m in (Rider, Driver, Trip))


def assert_error(response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    if field:
        assert field in error["message"]


@pytest.mark.parametrize("raw", [
    '{"pickup": {"lat": NaN, "lng": 1}, "dropoff": {"lat": 1, "lng": 1}}',
    '{"pickup": {"lat": Infinity, "lng": 1}, "dropoff": {"lat": 1, "lng": 1}}',
    '{"pickup": {"lat": -Infinity, "lng": 1}, "dropoff": {"lat": 1, "lng": 1}}',
    '{"pickup": {"lat": 1e309, "lng": 1}, "dropoff": {"lat": 1, "lng": 1}}',
    '{"pickup": {"lat": 999, "lng": 10}, "dropoff": {"lat": 1, "lng": 1}}',
    '{"pickup": {"lat": "north", "lng": 10}, "dropoff": {"lat": 1, "lng": 1}}',
    '{"pickup": {"lat": 1, "lng": 10, "alt": 3}, "dropoff": {"lat": 1, "lng": 1}}',
])
def test_bad_coordinates_are_422_naming_the_field(client: TestClient,
                                                  sessions: sessionmaker[Session],
                                                  raw: str) -> None:
    rider = new_rider(client)
    before = counts(sessions)
    response = client.post("/v1/trips", content=raw,
                           headers={**bearer(rider["token"]), "Content-Type": "application/json"})
    assert_error(response, 422, "pickup")
    assert counts(sessions) == before


@pytest.mark.parametrize(("raw", "field"), [
    ('{"name": "A", "phone": ', "body"),
    ('[1, 2]', "body"),
    ('{"name": 5, "phone": "+15551234567"}', "name"),
    ('{"name": "A", "phone": "call me"}', "phone"),
    ('{"name": "A", "phone": "+15551234567", "admin": true}', "admin"),
    ('{"name": "", "phone": "+15551234567"}', "name"),
    ('{"name": "A\\u0000B", "phone": "+15551234567"}', "name"),   # PostgreSQL can't store NUL
    ('{"name": "A\\u0007", "phone": "+15551234567"}', "name"),
    ('{"name": "\\ud800", "phone": "+15551234567"}', "name"),     # a lone surrogate: no UTF-8
])
def test_malformed_onboarding_is_422(client: TestClient, sessions: sessionmaker[Session],
                                     raw: str, field: str) -> None:
    response = client.post("/v1/riders", content=raw,
                           headers={"Content-Type": "application/json"})
    assert_error(response, 422, field)
    assert counts(sessions) == (0, 0, 0)


def test_driver_with_unknown_product_is_422(client: TestClient) -> None:
    response = client.post("/v1/drivers", json={"name": "B", "phone": "+15550001111", "vehicle": {
        "make": "K", "model": "N", "plate": "X1", "seats": 4, "product": "helicopter"}})
    assert_error(response, 422, "vehicle.product")


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not.a.jwt"},
    {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
])
def test_missing_or_forged_token_is_401(client: TestClient, sessions: sessionmaker[Session],
                                        headers: dict[str, str]) -> None:
    response = client.post("/v1/trips", json=TRIP, headers=headers)
    assert_error(response, 401)
    assert counts(sessions) == (0, 0, 0)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not.a.jwt"},
    {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."},
])
def test_the_ping_route_refuses_bad_tokens_before_reading_the_body(
        client: TestClient, headers: dict[str, str]) -> None:
    """The hot ping route checks its token itself (one flat dependency): same 401s, even for
    a body that would not parse, and still documented as bearer-protected."""
    body = {"pings": [ping(40.75, -73.98, datetime.now(UTC))]}
    assert_error(client.post("/v1/drivers/me/locations", json=body, headers=headers), 401)
    assert_error(client.post("/v1/drivers/me/locations", json={"pings": "x"}, headers=headers),
                 401)


def test_the_ping_route_wants_a_driver_token(client: TestClient) -> None:
    rider = new_rider(client)
    body = {"pings": [ping(40.75, -73.98, datetime.now(UTC))]}
    assert_error(client.post("/v1/drivers/me/locations", json=body,
                             headers=bearer(rider["token"])), 401)
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/v1/drivers/me/locations"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_a_driver_token_cannot_request_a_trip(client: TestClient) -> None:
    driver = client.post("/v1/drivers", json={"name": "B", "phone": "+15550002222", "vehicle": {
        "make": "K", "model": "N", "plate": "X2", "seats": 4, "product": "xl"}}).json()
    assert_error(client.post("/v1/trips", json=TRIP, headers=bearer(driver["token"])), 401)


def test_someone_elses_trip_is_404(client: TestClient) -> None:
    owner, stranger = new_rider(client), new_rider(client)
    trip = client.post("/v1/trips", json=TRIP, headers=bearer(owner["token"])).json()
    assert_error(client.get(f"/v1/trips/{trip['id']}", headers=bearer(stranger["token"])), 404)
    assert_error(client.get(f"/v1/trips/{uuid.uuid4()}", headers=bearer(owner["token"])), 404)
    assert_error(client.get("/v1/trips/not-a-uuid", headers=bearer(owner["token"])), 422)


def test_oversized_body_is_413(client: TestClient, sessions: sessionmaker[Session]) -> None:
    response = client.post("/v1/riders", content=b'{"name": "' + b"a" * 100_000 + b'"}',
                           headers={"Content-Type": "application/json"})
    assert_error(response, 413)
    assert counts(sessions) == (0, 0, 0)


def test_duplicate_phone_is_409(client: TestClient) -> None:
    body = {"name": "Ada", "phone": "+15550009999"}
    assert client.post("/v1/riders", json=body).status_code == 201
    assert_error(client.post("/v1/riders", json=body), 409)


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    assert_error(client.get("/v1/nothing"), 404)
    assert_error(client.delete("/v1/riders"), 405)
