"""Account tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base


class Rider(Base):
    __tablename__ = "riders"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Driver(Base):
    __tablename__ = "drivers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Counts the driver's status changes (offered, on a trip, available again): each takes the
    # next one in its transaction, so the live index applies them in commit order.
    status_version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    vehicle: Mapped[Vehicle] = relationship(back_populates="driver", lazy="joined")


class Vehicle(Base):
    __tablename__ = "vehicles"
    __table_args__ = (
        CheckConstraint("product IN ('economy', 'comfort', 'xl')", name="product"),
        CheckConstraint("seats BETWEEN 1 AND 12", name="seats"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    driver_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("drivers.id"), unique=True)
    make: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(40))
    plate: Mapped[str] = mapped_column(String(16), unique=True)
    seats: Mapped[int] = mapped_column(Integer)
    product: Mapped[str] = mapped_column(String(16))
    driver: Mapped[Driver] = relationship(back_populates="vehicle")
