"""Who is calling: bearer-token dependencies (401 when missing or bad, never 422)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accounts.tokens import Principal, Role, read_token
from core.deps import SettingsDep
from core.errors import Unauthorized
from core.settings import Settings

_bearer = HTTPBearer(auto_error=False)


def _check(scheme: str, token: str, settings: Settings, role: Role | None) -> Principal:
    if not token or scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    principal = read_token(token, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm)
    if role is not None and principal.role is not role:
        raise Unauthorized(f"a {role.value} token is required")
    return principal


def _with_role(role: Role | None):
    async def dependency(
        settings: SettingsDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("a bearer token is required")
        return _check(credentials.scheme, credentials.credentials, settings, role)

    return dependency


async def _driver_flat(request: Request) -> Principal:
    """`CurrentDriver` as one dependency reading the header itself: the ping route is the
    hottest path, and each nested FastAPI dependency costs it measurably. The route declares
    the bearer scheme in its OpenAPI instead (`BEARER_OPENAPI`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return _check(scheme, token.strip(), request.app.state.settings, Role.DRIVER)


BEARER_OPENAPI: dict[str, Any] = {"security": [{"HTTPBearer": []}]}
CurrentPrincipal = Annotated[Principal, Depends(_with_role(None))]
CurrentRider = Annotated[Principal, Depends(_with_role(Role.RIDER))]
CurrentDriver = Annotated[Principal, Depends(_with_role(Role.DRIVER))]
CurrentDriverFlat = Annotated[Principal, Depends(_driver_flat)]
CurrentAdmin = Annotated[Principal, Depends(_with_role(Role.ADMIN))]
