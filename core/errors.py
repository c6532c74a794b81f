"""Domain errors; the app maps each kind to one HTTP status in one place."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """A wrong state: the transition or claim is refused."""

    code = "conflict"


class Unauthorized(DomainError):
    code = "unauthorized"


class InvalidInput(DomainError):
    """Input that passed the schema but breaks a rule (422)."""

    code = "invalid"


class RateLimited(DomainError):
    code = "rate_limited"


class Unavailable(DomainError):
    """A dependency is down; the request may be retried."""

    code = "unavailable"
