"""Liveness and readiness: each dependency's state, checked with a short timeout."""

from __future__ import annotations

import socket
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    resources = request.app.state.resources
    checks: dict[str, Any] = {
        "postgres": _check(lambda: _postgres(resources)),
        "redis": _check(lambda: resources.redis.ping()),
        "kafka": _check(lambda: _kafka(resources.settings.kafka_servers)),
    }
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                        status_code=200 if ready else 503)


def _check(probe: Any) -> dict[str, Any]:
    try:
        probe()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _postgres(resources: Any) -> None:
    with resources.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _kafka(servers: list[str]) -> None:
    errors = []
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError as exc:
            errors.append(exc)
    raise ConnectionError(errors)
