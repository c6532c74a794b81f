"""Offers and dispatch decisions; the database refuses two open offers for one driver or trip."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        Index("uq_offers_open_driver", "driver_id", unique=True,
              postgresql_where=text("status = 'open'")),
        Index("uq_offers_open_trip", "trip_id", unique=True,
              postgresql_where=text("status = 'open'")),
        Index("ix_offers_open_expiry", "expires_at", postgresql_where=text("status = 'open'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    trip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trips.id"), index=True)
    driver_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drivers.id"))
    status: Mapped[str] = mapped_column(String(16))
    pickup_eta_s: Mapped[float]
    distance_m: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    responded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DispatchDecision(Base):
    __tablename__ = "dispatch_decisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    trip_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("trips.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    strategy: Mapped[str] = mapped_column(String(32))
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    offered_driver_id: Mapped[uuid.UUID | None]
    reason: Mapped[str] = mapped_column(String(200))
