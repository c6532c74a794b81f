"""The FastAPI app factory: wires resources onto app.state and mounts every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from accounts.routes import router as accounts_router
from app import container, errors, openapi
from app.health import router as health_router
from app.limits import BodyLimit
from core.settings import Settings
from dispatch.routes import router as dispatch_router
from geo.routes import router as geo_router
from trips.routes import router as trips_router


def create_app(settings: Settings | None = None,
               resources: container.Resources | None = None) -> FastAPI:
    """Build the app; resources are created at start-up unless a test hands them in."""
    owned = resources is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        res = resources or container.build(settings or Settings())
        _attach(app, res)
        try:
            yield
        finally:
            if owned:
                await res.aclose()

    app = FastAPI(title="ridehail", version="0.1.0", lifespan=lifespan)
    errors.install(app)
    openapi.install(app)
    app.add_middleware(BodyLimit, max_bytes=(settings or Settings()).max_body_bytes)
    for router in (health_router, accounts_router, geo_router, dispatch_router, trips_router):
        app.include_router(router)
    if resources is not None:
        _attach(app, resources)
    return app


def _attach(app: FastAPI, res: container.Resources) -> None:
    state = app.state
    state.resources = res
    state.settings = res.settings
    state.sessions = res.sessions
    state.clock = res.clock
    state.index = res.index
    state.eta = res.eta
    state.ping_rules = res.ping_rules
    state.aredis = res.aredis
