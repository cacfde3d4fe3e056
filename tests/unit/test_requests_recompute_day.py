"""A holiday correction moves only the clocks that run across the corrected day: whatever a
request's clocks (made, paused, answered, resolved, now), when ``spans`` says no, the clocks
computed with the corrected calendar are the ones computed before."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.requests.calendar import HolidayCorrection, WorkingCalendar
from callcenter.requests.recompute import DayWindow, spans
from callcenter.requests.sla import RequestSla, Targets, request_sla

TRIPOLI = ZoneInfo("Africa/Tripoli")
BASE = WorkingCalendar.libya()  # Eid al-Fitr estimated on 20-22 March 2026
START = datetime(2026, 3, 1, tzinfo=TRIPOLI).timestamp()  # a Sunday
H = 3600.0
TARGETS = [Targets(2, 14), Targets(4, 21), Targets(7, 35), Targets(14, 140)]


@cache
def corrected(day: date, action: Literal["add", "remove"]) -> WorkingCalendar:
    return WorkingCalendar.libya(corrections=[HolidayCorrection(day, action)])


def clocks(cal: WorkingCalendar, **request: float | Targets | None) -> RequestSla:
    return request_sla(cal=cal, **request)  # type: ignore[arg-type]


def spanning(day: date, old: RequestSla, **request: float | Targets | None) -> bool:
    return spans(
        DayWindow.of(day, BASE), now=request["now"], created=request["created"],  # type: ignore[arg-type]
        first_due=old.first_response_due, resolution_due=old.resolution_due,
        first_response_at=request.get("first_response_at"),  # type: ignore[arg-type]
        resolved_at=request.get("resolved_at"),  # type: ignore[arg-type]
    )  # fmt: skip


hours = st.floats(min_value=0, max_value=70 * 24)
maybe_hours = st.one_of(st.none(), hours)


@settings(max_examples=1000, deadline=None)
@given(
    created=hours, age=hours, pause=maybe_hours, paused_s=st.sampled_from([0.0, H, 7 * H]),
    answer=maybe_hours, fix=maybe_hours, targets=st.sampled_from(TARGETS),
    action=st.sampled_from(["add", "remove"]), data=st.data(),
)  # fmt: skip
def test_a_request_that_does_not_span_the_corrected_day_keeps_its_clocks(
    created: float, age: float, pause: float | None, paused_s: float, answer: float | None,
    fix: float | None, targets: Targets, action: Literal["add", "remove"], data: st.DataObject,
) -> None:  # fmt: skip
    start, now = START + created * H, START + (created + age) * H
    request: dict[str, float | Targets | None] = {
        "created": start, "now": now, "targets": targets, "paused_s": paused_s,
        "paused_since": None if pause is None or start + pause * H > now else start + pause * H,
        "first_response_at": None if answer is None or start + answer * H > now else start + answer * H,
        "resolved_at": None if fix is None or start + fix * H > now else start + fix * H,
    }  # fmt: skip
    old = clocks(BASE, **request)
    # the day corrected: around one of the request's instants (where a mistake would show),
    # or anywhere in the months around it
    instants = [start, now, old.first_response_due, old.resolution_due]
    instants += [v for k, v in request.items() if k.endswith(("_at", "_since")) and isinstance(v, float)]
    anchor = datetime.fromtimestamp(data.draw(st.sampled_from(instants)), TRIPOLI).date()
    day = data.draw(
        st.one_of(
            st.integers(min_value=-1, max_value=1).map(lambda n: anchor + timedelta(days=n)),
            st.integers(min_value=0, max_value=120).map(lambda n: date(2026, 2, 20) + timedelta(days=n)),
        )
    )
    if spanning(day, old, **request):
        return
    new = clocks(corrected(day, action), **request)
    assert (new.first_response, new.resolution) == (old.first_response, old.resolution)
    assert new.first_response_due == pytest.approx(old.first_response_due, abs=1e-3)
    assert new.resolution_due == pytest.approx(old.resolution_due, abs=1e-3)


def test_a_clock_running_across_the_corrected_day_moves_by_that_day() -> None:
    made = datetime(2026, 3, 15, 9, tzinfo=TRIPOLI).timestamp()  # Sunday
    request = {"created": made, "now": made + H, "targets": Targets(7, 35)}
    old = clocks(BASE, **request)
    day = date(2026, 3, 17)  # the Tuesday between: declared a day off
    assert spanning(day, old, **request)
    new = clocks(corrected(day, "add"), **request)
    assert new.resolution_due - old.resolution_due == 24 * H  # one working day later


def test_a_request_made_after_the_corrected_day_or_due_before_it_does_not_span_it() -> None:
    made = datetime(2026, 3, 15, 9, tzinfo=TRIPOLI).timestamp()
    request = {"created": made, "now": made + H, "targets": Targets(2, 14)}  # due Monday 16th
    old = clocks(BASE, **request)
    assert not spanning(date(2026, 3, 14), old, **request)  # the day before: made after it
    assert not spanning(date(2026, 3, 18), old, **request)  # the Wednesday after: due before it
    assert spanning(date(2026, 3, 16), old, **request)  # the day it is due


def test_a_past_day_spans_every_clock_still_running_that_began_before_it() -> None:
    made = datetime(2026, 3, 1, 9, tzinfo=TRIPOLI).timestamp()
    late = {"created": made, "now": made + 40 * 24 * H, "targets": Targets(2, 14)}  # long overdue
    old = clocks(BASE, **late)
    assert spanning(date(2026, 3, 30), old, **late)  # "breached" counts from now back to it
    done = {**late, "first_response_at": made + H, "resolved_at": made + 2 * 24 * H}
    assert not spanning(date(2026, 3, 30), clocks(BASE, **done), **done)  # stopped before it
