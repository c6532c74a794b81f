"""Who is calling: bearer-token dependencies (401 when missing or bad, never 422)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from accounts.tokens import Principal, Role, read_token
from core.deps import SettingsDep
from core.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False)


async def _principal(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required")
    return read_token(credentials.credentials, secret=settings.jwt_secret,
                      algorithm=settings.jwt_algorithm)


def _with_role(role: Role):
    async def dependency(principal: Annotated[Principal, Depends(_principal)]) -> Principal:
        if principal.role is not role:
            raise Unauthorized(f"a {role.value} token is required")
        return principal

    return dependency


CurrentPrincipal = Annotated[Principal, Depends(_principal)]
CurrentRider = Annotated[Principal, Depends(_with_role(Role.RIDER))]
CurrentDriver = Annotated[Principal, Depends(_with_role(Role.DRIVER))]
CurrentAdmin = Annotated[Principal, Depends(_with_role(Role.ADMIN))]
