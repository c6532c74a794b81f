"""Pure fare rules: base + distance + time, a minimum, and a capped surge multiplier."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from core.products import Product

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Rate:
    base: Decimal
    per_km: Decimal
    per_min: Decimal
    minimum: Decimal


RATES: dict[Product, Rate] = {
    Product.ECONOMY: Rate(Decimal("2.50"), Decimal("1.10"), Decimal("0.25"), Decimal("6.00")),
    Product.COMFORT: Rate(Decimal("3.50"), Decimal("1.55"), Decimal("0.35"), Decimal("9.00")),
    Product.XL: Rate(Decimal("4.50"), Decimal("1.90"), Decimal("0.45"), Decimal("11.00")),
}


@dataclass(frozen=True)
class Fare:
    amount: Decimal
    currency: str
    surge_multiplier: Decimal
    breakdown: dict[str, str]


def estimate_fare(*, product: Product, distance_m: float, duration_s: float, currency: str,
                  surge: float = 1.0, surge_cap: float = 3.0) -> Fare:
    rate = RATES[product]
    multiplier = Decimal(str(min(max(surge, 1.0), surge_cap))).quantize(CENT)
    distance = (rate.per_km * Decimal(str(distance_m)) / 1000).quantize(CENT, ROUND_HALF_UP)
    time = (rate.per_min * Decimal(str(duration_s)) / 60).quantize(CENT, ROUND_HALF_UP)
    subtotal = max(rate.base + distance + time, rate.minimum)
    amount = (subtotal * multiplier).quantize(CENT, ROUND_HALF_UP)
    return Fare(amount=amount, currency=currency, surge_multiplier=multiplier, breakdown={
        "base": str(rate.base), "distance": str(distance), "time": str(time),
        "minimum": str(rate.minimum), "surge_multiplier": str(multiplier),
    })
