"""JWT bearer tokens: HS256 pinned, expiry and role required."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import jwt

from core.errors import Unauthorized


class Role(StrEnum):
    RIDER = "rider"
    DRIVER = "driver"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    id: uuid.UUID
    role: Role


def issue_token(principal: Principal, *, secret: str, algorithm: str, ttl_s: int,
                now: datetime) -> str:
    claims = {
        "sub": str(principal.id),
        "role": principal.role.value,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=algorithm)


def read_token(token: str, *, secret: str, algorithm: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm],
                            options={"require": ["exp", "sub", "role"]})
        return Principal(uuid.UUID(claims["sub"]), Role(claims["role"]))
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("invalid or expired token") from exc
