"""The HTTP baseline: a bare FastAPI endpoint that only parses the same location body."""

from __future__ import annotations

from fastapi import FastAPI, status

from dispatch.schemas import LocationsIn

app = FastAPI()


@app.post("/v1/drivers/me/locations", status_code=status.HTTP_202_ACCEPTED)
def post_locations(body: LocationsIn) -> dict[str, int]:
    return {"received": len(body.pings)}
