"""The API keeps its OpenAPI contract for any input: generated requests (valid and invalid,
per the document) to every operation, as a driver, a rider, an admin and no one, never get a
5xx, and get only documented statuses, content types and bodies (Schemathesis). The document
is exact about what is valid: a request it calls valid is not refused as invalid (422), and
one it calls invalid is not accepted."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tokens import Principal, Role, issue_token
from app.main import create_app
from core.ids import new_id
from tests.api.helpers import bearer, new_driver, new_rider

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, positive_data_acceptance, negative_data_rejection]


class CurrentApp:
    """The ASGI app under test: the schema is read once, each test points this at its own app
    (wired to that test's services)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


APP = CurrentApp(create_app())
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture
def callers(client: TestClient) -> list[dict[str, str]]:
    """An online driver, a rider, an admin, and no token at all."""
    driver = new_driver(client)
    online = client.put("/v1/drivers/me/status", json={"status": "online"},
                        headers=bearer(driver["token"]))
    assert online.status_code == 200, online.text
    settings = client.app.state.settings  # type: ignore[attr-defined]
    admin = issue_token(Principal(new_id(), Role.ADMIN), secret=settings.jwt_secret,
                        algorithm=settings.jwt_algorithm, ttl_s=600,
                        now=client.app.state.clock.now())  # type: ignore[attr-defined]
    APP.app = client.app
    return [bearer(driver["token"]), bearer(new_rider(client)["token"]), bearer(admin), {}]


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_every_reply_is_documented(case: Any, callers: list[dict[str, str]]) -> None:
    for auth in callers:
        case.call_and_validate(headers={**(case.headers or {}), **auth}, checks=CHECKS)
