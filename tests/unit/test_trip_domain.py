"""The status graph of SPEC.md: every allowed move passes, every other one is a 409."""

import itertools

import pytest

from core.errors import Conflict
from trips.domain import ACTIVE, TERMINAL, TRANSITIONS, TripStatus, check_transition

ALLOWED = {
    ("processing", "accepted"), ("processing", "rider_canceled"),
    ("processing", "no_drivers_available"), ("accepted", "arriving"),
    ("accepted", "rider_canceled"), ("accepted", "processing"), ("accepted", "driver_canceled"),
    ("arriving", "in_progress"), ("arriving", "rider_canceled"),
    ("arriving", "driver_canceled"), ("in_progress", "completed"),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(TripStatus, TripStatus)))
def test_only_spec_transitions_are_allowed(current: TripStatus, target: TripStatus) -> None:
    if (current.value, target.value) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(Conflict):
            check_transition(current, target)


def test_terminal_statuses_have_no_way_out() -> None:
    assert all(not TRANSITIONS.get(s) for s in TERMINAL)
    expected = {TripStatus.COMPLETED, TripStatus.RIDER_CANCELED, TripStatus.DRIVER_CANCELED,
                TripStatus.NO_DRIVERS_AVAILABLE}
    assert expected == TERMINAL
    assert ACTIVE.isdisjoint(TERMINAL)
