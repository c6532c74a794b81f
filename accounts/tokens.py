"""JWT bearer tokens: HS256 pinned, expiry and role required."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

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
    """Verify a bearer token. A driver sends the same token with every ping, so verified
    tokens are remembered (bounded); the expiry is still checked on every use."""
    principal, expires_at = _verified(token, secret, algorithm)
    if expires_at <= time.time():
        raise Unauthorized("invalid or expired token")
    return principal


@lru_cache(maxsize=100_000)
def _verified(token: str, secret: str, algorithm: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm],
                            options={"require": ["exp", "sub", "role"]})
        return Principal(uuid.UUID(claims["sub"]), Role(claims["role"])), float(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("invalid or expired token") from exc
