"""The product vocabulary shared by accounts, geo, pricing and dispatch."""

from __future__ import annotations

from enum import StrEnum


class Product(StrEnum):
    ECONOMY = "economy"
    COMFORT = "comfort"
    XL = "xl"


PRODUCT_CODES: dict[Product, int] = {p: i for i, p in enumerate(Product)}
