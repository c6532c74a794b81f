"""Pure matching rules: rank candidates by pickup ETA, skip those already tried."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    driver_id: uuid.UUID
    distance_m: float
    eta_s: float
    location_age_s: float


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    excluded: str | None = None


def rank_greedy(candidates: list[Candidate], *, tried: set[uuid.UUID],
                busy: set[uuid.UUID]) -> list[Ranked]:
    """Nearest pickup ETA first; drivers already offered this trip or busy are excluded."""
    ranked = []
    for c in sorted(candidates, key=lambda c: (c.eta_s, c.driver_id.hex)):
        reason = None
        if c.driver_id in tried:
            reason = "already offered"
        elif c.driver_id in busy:
            reason = "busy"
        ranked.append(Ranked(c, reason))
    return ranked
