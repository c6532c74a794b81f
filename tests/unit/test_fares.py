"""Fares: base + distance + time with a minimum, and a surge multiplier capped at the limit."""

from decimal import Decimal

from core.products import Product
from pricing.fares import estimate_fare


def test_short_trip_pays_the_minimum() -> None:
    fare = estimate_fare(product=Product.ECONOMY, distance_m=100, duration_s=30, currency="USD")
    assert fare.amount == Decimal("6.00")


def test_long_trip_adds_distance_and_time() -> None:
    fare = estimate_fare(product=Product.ECONOMY, distance_m=10_000, duration_s=1200,
                         currency="USD")
    assert fare.amount == Decimal("2.50") + Decimal("11.00") + Decimal("5.00")
    assert fare.breakdown["distance"] == "11.00"


def test_surge_is_capped_and_never_below_one() -> None:
    capped = estimate_fare(product=Product.XL, distance_m=5000, duration_s=600, currency="USD",
                           surge=9.0, surge_cap=3.0)
    plain = estimate_fare(product=Product.XL, distance_m=5000, duration_s=600, currency="USD",
                          surge=0.5)
    assert capped.surge_multiplier == Decimal("3.00")
    assert plain.surge_multiplier == Decimal("1.00")
    assert capped.amount == plain.amount * 3
