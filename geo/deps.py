"""Dependency aliases for the geo adapters on `app.state`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from geo.eta import EtaEstimator
from geo.index import RedisDriverIndex


async def get_index(request: Request) -> RedisDriverIndex:
    return request.app.state.index


async def get_eta(request: Request) -> EtaEstimator:
    return request.app.state.eta


IndexDep = Annotated[RedisDriverIndex, Depends(get_index)]
EtaDep = Annotated[EtaEstimator, Depends(get_eta)]
