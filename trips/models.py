"""The trips table: the database itself refuses a second active trip per rider or driver."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Numeric, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base
from geo.columns import geography_point
from trips.domain import ACTIVE, DRIVER_ASSIGNED, TripStatus


def _in(statuses: frozenset[TripStatus]) -> str:
    return "status IN (" + ", ".join(sorted(f"'{s.value}'" for s in statuses)) + ")"


class Trip(Base):
    __tablename__ = "trips"
    __table_args__ = (
        CheckConstraint(_in(frozenset(TripStatus)), name="status"),
        CheckConstraint(f"driver_id IS NOT NULL OR NOT ({_in(DRIVER_ASSIGNED)})",
                        name="driver_when_assigned"),
        Index("uq_trips_active_rider", "rider_id", unique=True, postgresql_where=text(_in(ACTIVE))),
        Index("uq_trips_active_driver", "driver_id", unique=True,
              postgresql_where=text(_in(DRIVER_ASSIGNED))),
        Index("uq_trips_idempotency", "rider_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL")),
        Index("ix_trips_processing", "requested_at",
              postgresql_where=text("status = 'processing'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("riders.id"), index=True)
    driver_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("drivers.id"), index=True)
    status: Mapped[str] = mapped_column(String(32))
    product: Mapped[str] = mapped_column(String(16))
    pickup: Mapped[Any] = mapped_column(geography_point())
    dropoff: Mapped[Any] = mapped_column(geography_point())
    pickup_cell: Mapped[str] = mapped_column(String(16))
    fare_amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    currency: Mapped[str] = mapped_column(String(3))
    surge_multiplier: Mapped[Decimal] = mapped_column(Numeric(4, 2))
    fare_breakdown: Mapped[dict[str, str]] = mapped_column(JSONB)
    distance_m: Mapped[float]
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    arrived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                 server_default=func.now())
