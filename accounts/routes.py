"""Onboarding endpoints."""

from __future__ import annotations

from fastapi import APIRouter, status

from accounts import service
from accounts.schemas import AccountOut, DriverIn, RiderIn
from accounts.tokens import Principal, Role, issue_token
from core.deps import ClockDep, SessionDep, SettingsDep
from core.schemas import error_responses

router = APIRouter(prefix="/v1", tags=["accounts"])


@router.post("/riders", status_code=status.HTTP_201_CREATED, response_model=AccountOut,
             responses=error_responses(409))
def create_rider(body: RiderIn, session: SessionDep, settings: SettingsDep,
                 clock: ClockDep) -> AccountOut:
    rider = service.onboard_rider(session=session, data=body)
    return AccountOut(id=rider.id, token=_token(Principal(rider.id, Role.RIDER), settings, clock))


@router.post("/drivers", status_code=status.HTTP_201_CREATED, response_model=AccountOut,
             responses=error_responses(409))
def create_driver(body: DriverIn, session: SessionDep, settings: SettingsDep,
                  clock: ClockDep) -> AccountOut:
    driver = service.onboard_driver(session=session, data=body)
    return AccountOut(id=driver.id,
                      token=_token(Principal(driver.id, Role.DRIVER), settings, clock))


def _token(principal: Principal, settings: SettingsDep, clock: ClockDep) -> str:
    return issue_token(principal, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm,
                       ttl_s=settings.jwt_ttl_s, now=clock.now())
