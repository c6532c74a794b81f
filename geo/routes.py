"""Public map endpoint: approximate positions of nearby available cars, never their ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from core.clock import to_ms
from core.deps import ClockDep
from core.products import Product
from geo.cells import LatLng
from geo.deps import EtaDep, IndexDep
from geo.schemas import NearbyCar, NearbyOut

router = APIRouter(prefix="/v1/drivers", tags=["geo"])
# ~11 m of blur: enough to hide a parked car's exact spot, fine for drawing it on a map.
DISPLAY_DECIMALS = 4


@router.get("/nearby", response_model=NearbyOut)
def nearby_cars(
    index: IndexDep, clock: ClockDep, eta: EtaDep,
    lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    lng: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    product: Product = Product.ECONOMY,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
    radius_m: Annotated[float, Query(gt=0, le=10_000, allow_inf_nan=False)] = 3000,
    max_eta_s: Annotated[float | None, Query(gt=0, le=3600, allow_inf_nan=False)] = None,
) -> NearbyOut:
    now = clock.now()
    now_ms = to_ms(now)
    if max_eta_s is not None:
        radius_m = min(radius_m, eta.reach_m(max_eta_s, at=now))
    found = index.nearby(LatLng(lat, lng), product, k=limit, radius_m=radius_m, now_ms=now_ms)
    return NearbyOut(product=product.value, cars=[
        NearbyCar(lat=round(d.lat, DISPLAY_DECIMALS),
                  lng=round(d.lng, DISPLAY_DECIMALS),
                  heading_deg=d.heading_deg if d.heading_deg >= 0 else None,
                  location_age_s=round(d.age_s(now_ms), 1))
        for d in found
    ])
