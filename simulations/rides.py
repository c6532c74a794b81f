"""One scripted ride, played over HTTP exactly as the rider and driver apps would."""

from __future__ import annotations

import math
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from geo.cells import LatLng, haversine_m

DRIVE_SPEED_MPS = 60.0  # fast-forwarded driving; stays under the 250 km/h plausibility bound
PING_EVERY_S = 0.25


@dataclass
class RideLog:
    trip_id: str
    rider_id: str
    driver_id: str
    statuses: list[str] = field(default_factory=list)
    fare: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def offset(point: LatLng, north_m: float, east_m: float) -> LatLng:
    dlat = north_m / 111_320
    dlng = east_m / (111_320 * math.cos(math.radians(point.lat)))
    return LatLng(point.lat + dlat, point.lng + dlng)


def _ok(response: httpx.Response, *expected: int) -> dict[str, Any]:
    if response.status_code not in expected:
        raise RuntimeError(f"{response.request.method} {response.request.url.path} -> "
                           f"{response.status_code}: {response.text}")
    return response.json() if response.content else {}


class DriverApp:
    def __init__(self, client: httpx.Client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.position: LatLng | None = None

    def ping(self, point: LatLng) -> dict[str, Any]:
        self.position = point
        body = {"pings": [{"lat": point.lat, "lng": point.lng, "accuracy_m": 5,
                           "recorded_at": datetime.now(UTC).isoformat()}]}
        return _ok(self.client.post("/v1/drivers/me/locations", json=body, headers=self.headers),
                   202)

    def drive_to(self, target: LatLng) -> None:
        assert self.position is not None
        start = self.position
        steps = max(1, math.ceil(haversine_m(start, target) / (DRIVE_SPEED_MPS * PING_EVERY_S)))
        for i in range(1, steps + 1):
            time.sleep(PING_EVERY_S)
            f = i / steps
            self.ping(LatLng(start.lat + (target.lat - start.lat) * f,
                             start.lng + (target.lng - start.lng) * f))

    def wait_for_offer(self, timeout_s: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = self.client.get("/v1/drivers/me/offer", headers=self.headers)
            if response.status_code == 200:
                return response.json()
            _ok(response, 204)
            time.sleep(0.2)
        raise TimeoutError("no offer arrived")

    def post(self, path: str, *expected: int) -> dict[str, Any]:
        return _ok(self.client.post(path, headers=self.headers), *(expected or (200,)))


def onboard(client: httpx.Client, n: int) -> tuple[dict[str, Any], ...]:
    """A new rider and driver; phones and plates are unique per run, so demos can repeat."""
    rider = _ok(client.post("/v1/riders", json={"name": f"Rider {n}", "phone": _phone()}), 201)
    driver = _ok(client.post("/v1/drivers", json={
        "name": f"Driver {n}", "phone": _phone(),
        "vehicle": {"make": "Toyota", "model": "Prius", "plate": f"SIM{uuid.uuid4().hex[:8]}",
                    "seats": 4, "product": "economy"}}), 201)
    return rider, driver


def _phone() -> str:
    return f"+1555{uuid.uuid4().int % 10**9:09d}"


def play_ride(client: httpx.Client, *, rng: random.Random, center: LatLng, n: int) -> RideLog:
    """Onboard a rider and a driver near `center`, then ride from request to completion."""
    started = time.monotonic()
    rider, driver = onboard(client, n)
    app = DriverApp(client, driver["token"])
    _ok(client.put("/v1/drivers/me/status", json={"status": "online"}, headers=app.headers), 200)
    pickup = offset(center, rng.uniform(-2000, 2000), rng.uniform(-2000, 2000))
    dropoff = offset(pickup, rng.uniform(-300, 300), rng.uniform(300, 500))
    app.ping(offset(pickup, 80, 60))
    rider_headers = {"Authorization": f"Bearer {rider['token']}",
                     "Idempotency-Key": uuid.uuid4().hex}
    trip = _ok(client.post("/v1/trips", headers=rider_headers, json={
        "pickup": {"lat": pickup.lat, "lng": pickup.lng},
        "dropoff": {"lat": dropoff.lat, "lng": dropoff.lng}, "product": "economy"}), 201)
    log = RideLog(trip_id=trip["id"], rider_id=rider["id"], driver_id=driver["id"],
                  statuses=[trip["status"]], fare=trip["fare"])
    offer = app.wait_for_offer()
    log.statuses.append(app.post(f"/v1/offers/{offer['offer_id']}/accept")["status"])
    app.drive_to(pickup)
    log.statuses.append(app.post(f"/v1/trips/{trip['id']}/arrive")["status"])
    log.statuses.append(app.post(f"/v1/trips/{trip['id']}/start")["status"])
    app.drive_to(dropoff)
    log.statuses.append(app.post(f"/v1/trips/{trip['id']}/complete")["status"])
    log.seconds = time.monotonic() - started
    return log
