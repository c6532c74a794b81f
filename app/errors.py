"""One place that maps errors to HTTP: `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from core.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger(__name__)

STATUS = {NotFound: 404, Conflict: 409, Unauthorized: 401, InvalidInput: 422,
          RateLimited: 429, Unavailable: 503}
HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
              415: "unsupported_media_type", 422: "validation_error", 429: "rate_limited"}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "details": details}},
                        status_code=status, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    # The offending input is never echoed: it may hold NaN or Infinity, which JSON can't carry.
    details = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid"),
                "type": e.get("type", "invalid")} for e in exc.errors()]
    fields = ", ".join(d["field"] for d in details) or "request"
    return error_response(422, "validation_error", f"invalid input: {fields}", details)


async def on_domain(request: Request, exc: DomainError) -> JSONResponse:
    status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 400)
    headers = {"Retry-After": "1"} if status == 429 else None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return error_response(status, exc.code, exc.message, exc.details, headers)


async def on_http(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, HTTP_CODES.get(exc.status_code, "error"),
                          str(exc.detail), None, getattr(exc, "headers", None))


async def on_dependency_down(request: Request, exc: Exception) -> JSONResponse:
    log.warning("dependency unavailable: %r", exc)
    return error_response(503, "unavailable", "a backing service is unavailable; retry",
                          None, {"Retry-After": "2"})


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(DomainError, on_domain)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, on_http)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, on_dependency_down)
    app.add_exception_handler(redis.ConnectionError, on_dependency_down)
    app.add_exception_handler(redis.TimeoutError, on_dependency_down)
    app.add_exception_handler(Exception, on_unexpected)
