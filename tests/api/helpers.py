"""Onboarding over HTTP for API tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import phone


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_rider(client: TestClient) -> dict[str, Any]:
    response = client.post("/v1/riders", json={"name": "Ada", "phone": phone()})
    assert response.status_code == 201, response.text
    return response.json()


def new_driver(client: TestClient, product: str = "economy") -> dict[str, Any]:
    response = client.post("/v1/drivers", json={
        "name": "Bo", "phone": phone(),
        "vehicle": {"make": "Kia", "model": "Niro", "plate": phone()[-8:], "seats": 4,
                    "product": product}})
    assert response.status_code == 201, response.text
    return response.json()


def ping(lat: float, lng: float, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"lat": lat, "lng": lng, "recorded_at": at.isoformat(), **extra}
