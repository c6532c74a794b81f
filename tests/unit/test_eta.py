"""The straight-line ETA: detour, peak hours in the city's own time, and the inverse reach."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from core.settings import Settings
from geo.cells import LatLng, haversine_m
from geo.eta import EtaEstimator, StraightLineEta

A, B = LatLng(-23.55, -46.63), LatLng(-23.56, -46.64)


def test_peak_hours_are_the_citys_local_hours() -> None:
    sao_paulo = StraightLineEta(city_tz=ZoneInfo("America/Sao_Paulo"))   # UTC-3
    eight_local = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    eight_utc = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)                   # 05:00 local
    assert sao_paulo.speed_mps(eight_local) == pytest.approx(18.0 / 3.6)
    assert sao_paulo.speed_mps(eight_utc) == pytest.approx(30.0 / 3.6)
    assert StraightLineEta().speed_mps(eight_utc) == pytest.approx(18.0 / 3.6)


def test_eta_is_detoured_distance_over_speed_and_reach_inverts_it() -> None:
    eta: EtaEstimator = StraightLineEta(detour_factor=1.5)
    at = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert eta.distance_m(A, B) == pytest.approx(1.5 * haversine_m(A, B))
    seconds = eta.eta_s(A, B, at=at)
    assert seconds == pytest.approx(1.5 * haversine_m(A, B) / (30.0 / 3.6))
    assert eta.reach_m(seconds, at=at) == pytest.approx(haversine_m(A, B))


def test_city_timezone_must_be_an_iana_zone() -> None:
    assert Settings(city_timezone="Asia/Kolkata").city_tz.key == "Asia/Kolkata"
    with pytest.raises(ValidationError, match="CITY_TIMEZONE"):
        Settings(city_timezone="Mars/Olympus_Mons")
