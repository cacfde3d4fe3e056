"""SLA clocks count working time: Sunday to Thursday, 08:00-15:00 in Tripoli, without Libya's
public holidays as the ministry corrected them, and without the time spent waiting on the
citizen."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.requests.calendar import (
    HolidayCorrection,
    WorkingCalendar,
    add_working_time,
    working_time_between,
)
from callcenter.requests.sla import Clock, SlaState, Targets, read, request_sla, worst

TRIPOLI = ZoneInfo("Africa/Tripoli")
H = timedelta(hours=1)


def local(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A time in Tripoli in March 2026 (1 March 2026 is a Sunday; 20-22 March is Eid al-Fitr,
    estimated, in the holidays package)."""
    return datetime(2026, month, day, hour, minute, tzinfo=TRIPOLI)


@pytest.fixture(scope="module")
def week() -> WorkingCalendar:
    """The Libyan week without holidays."""
    return WorkingCalendar()


@pytest.fixture(scope="module")
def libya() -> WorkingCalendar:
    return WorkingCalendar.libya()


def test_time_left_on_thursday_carries_over_the_weekend_to_sunday(week: WorkingCalendar) -> None:
    due = add_working_time(local(12, 14), 2 * H, week)  # Thursday 14:00 + 2 working hours
    assert due == local(15, 9)  # Sunday 09:00: Friday and Saturday are off
    assert due.tzinfo is UTC
    assert working_time_between(local(12, 14), local(15, 9), week) == 2 * H


def test_a_day_of_work_is_seven_hours_and_ends_at_closing_time(week: WorkingCalendar) -> None:
    assert add_working_time(local(15, 8), 7 * H, week) == local(15, 15)  # not Monday 08:00
    assert add_working_time(local(15, 8), 8 * H, week) == local(16, 9)
    assert working_time_between(local(15, 0), local(16, 0), week) == 7 * H


def test_a_request_made_at_night_starts_counting_at_opening(week: WorkingCalendar) -> None:
    assert add_working_time(local(15, 3), H, week) == local(15, 9)
    assert add_working_time(local(13, 22), H, week) == local(15, 9)  # Friday night
    assert add_working_time(local(15, 3), timedelta(0), week) == local(15, 3)


def test_nothing_is_worked_backwards_or_over_a_weekend(week: WorkingCalendar) -> None:
    assert working_time_between(local(16, 10), local(15, 10), week) == timedelta(0)
    assert working_time_between(local(13, 8), local(14, 18), week) == timedelta(0)


def test_a_public_holiday_is_not_worked(libya: WorkingCalendar) -> None:
    # Thursday 19 March 14:00 + 2 h: Friday 20 and Saturday 21 (weekend and Eid), Sunday 22 (Eid)
    assert add_working_time(local(19, 14), 2 * H, libya) == local(23, 9)
    assert libya.is_working_day(date(2026, 3, 19)) and not libya.is_working_day(date(2026, 3, 22))
    # 1 May (Labour Day) is a Friday in 2026; 17 February (Revolution Day) a Tuesday
    assert not libya.is_working_day(date(2026, 2, 17))


def test_the_ministry_corrects_an_estimated_eid() -> None:
    moved = WorkingCalendar.libya(
        corrections=[
            HolidayCorrection(date(2026, 3, 22), "remove"),  # Eid ended a day earlier
            HolidayCorrection(date(2026, 3, 19), "add", "Eid al-Fitr (announced)"),
        ]
    )
    assert add_working_time(local(19, 14), 2 * H, moved) == local(22, 10)  # Thursday is off now
    assert add_working_time(local(18, 14), 2 * H, moved) == local(22, 9)
    assert moved.days_off(2026)[date(2026, 3, 19)] == "Eid al-Fitr (announced)"
    assert date(2026, 3, 22) not in moved.days_off(2026)


def test_a_later_correction_of_the_same_day_wins() -> None:
    cal = WorkingCalendar(
        corrections=[
            HolidayCorrection(date(2026, 3, 16), "add"),
            HolidayCorrection(date(2026, 3, 16), "remove"),
        ]
    )
    assert cal.is_working_day(date(2026, 3, 16))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start": time(15), "end": time(8)},
        {"weekend": range(7)},
        {"weekend": [7]},
        {"corrections": [HolidayCorrection(date(2026, 1, 1), "move")]},  # type: ignore[arg-type]
    ],
)
def test_a_bad_calendar_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(**kwargs)  # type: ignore[arg-type]


def test_naive_times_are_utc(week: WorkingCalendar) -> None:
    naive = datetime(2026, 3, 15, 6, 0)  # 08:00 in Tripoli
    assert add_working_time(naive, H, week) == local(15, 9)


def test_years_far_apart_are_covered(libya: WorkingCalendar) -> None:
    assert add_working_time(datetime(2031, 1, 5, 6, tzinfo=UTC), 7 * H, libya).year == 2031
    assert working_time_between(local(1, 8), datetime(2030, 3, 1, tzinfo=UTC), libya) > 5000 * H


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(moments, st.integers(min_value=1, max_value=400 * 3600))
def test_adding_working_time_is_what_working_time_between_measures(start: datetime, seconds: int) -> None:
    cal = WORKING_LIBYA
    due = add_working_time(start, timedelta(seconds=seconds), cal)
    assert due > start
    assert working_time_between(start, due, cal) == timedelta(seconds=seconds)
    local_due = due.astimezone(TRIPOLI)
    assert cal.is_working_day(local_due.date())
    assert time(8) < local_due.time() <= time(15)


WORKING_LIBYA = WorkingCalendar.libya()

# -- SLA clocks ----------------------------------------------------------------------------------


def ts(moment: datetime) -> float:
    return moment.timestamp()


def test_a_clock_is_ok_then_due_soon_then_breached(week: WorkingCalendar) -> None:
    clock = Clock(ts(local(15, 8)), target_s=7 * 3600)  # due Sunday 15:00
    assert read(clock, week, ts(local(15, 9))).state is SlaState.OK
    assert read(clock, week, ts(local(15, 13, 30))).state is SlaState.DUE_SOON  # 1.5 h of 7 left
    late = read(clock, week, ts(local(15, 15, 1)))
    assert late.state is SlaState.BREACHED and late.due == ts(local(15, 15))


def test_a_clock_met_in_time_stays_ok_and_one_met_late_stays_breached(week: WorkingCalendar) -> None:
    start = ts(local(15, 8))
    assert (
        read(Clock(start, 7 * 3600, stopped=ts(local(15, 14))), week, ts(local(20, 8))).state is SlaState.OK
    )
    late = Clock(start, 7 * 3600, stopped=ts(local(16, 9)))
    assert read(late, week, ts(local(20, 8))).state is SlaState.BREACHED


def test_waiting_on_the_citizen_pauses_the_clock(week: WorkingCalendar) -> None:
    start = ts(local(15, 8))
    # two working hours waited and finished: the due date moves two working hours later
    waited = read(Clock(start, 7 * 3600, paused_s=2 * 3600), week, ts(local(15, 9)))
    assert waited.due == ts(local(16, 10))
    # a pause in progress since Sunday 10:00, read on Monday 10:00: 7 working hours paused so far
    pausing = Clock(start, 7 * 3600, paused_since=ts(local(15, 10)))
    reading = read(pausing, week, ts(local(16, 10)))
    assert reading.due == ts(local(16, 15)) and reading.state is SlaState.OK
    # a paused clock is never "due soon": nobody can act on it
    assert read(pausing, week, ts(local(16, 14, 30))).state is SlaState.OK


def test_a_request_is_as_late_as_its_worse_clock(week: WorkingCalendar) -> None:
    created = ts(local(15, 8))
    sla = request_sla(created=created, targets=Targets(2, 14), cal=week, now=ts(local(15, 11)))
    assert sla.first_response is SlaState.BREACHED and sla.resolution is SlaState.OK
    assert sla.state is SlaState.BREACHED
    assert sla.first_response_due == ts(local(15, 10)) and sla.resolution_due == ts(local(16, 15))
    answered = request_sla(
        created=created, targets=Targets(2, 14), cal=week, now=ts(local(15, 11)),
        first_response_at=ts(local(15, 9)),
    )  # fmt: skip
    assert answered.state is SlaState.OK
    resolved = request_sla(
        created=created, targets=Targets(2, 14), cal=week, now=ts(local(25, 11)), resolved_at=ts(local(15, 9))
    )
    assert resolved.state is SlaState.OK  # resolving counts as the first response
    assert worst(SlaState.OK, SlaState.DUE_SOON) is SlaState.DUE_SOON


@pytest.mark.parametrize(("first", "resolution"), [(0, 5), (6, 5), (-1, 3)])
def test_targets_must_make_sense(first: float, resolution: float) -> None:
    with pytest.raises(ValueError):
        Targets(first, resolution)


def test_recomputing_many_clocks_is_fast(libya: WorkingCalendar) -> None:
    import time as clock

    base = ts(local(1, 8))
    started = clock.perf_counter()
    for n in range(20_000):
        request_sla(
            created=base + n * 97.0, targets=Targets(7, 35), cal=libya, now=base + 30 * 86400,
            paused_s=float(n % 3) * 3600,
        )  # fmt: skip
    assert clock.perf_counter() - started < 2.0  # 200,000 in well under the 10 s target


def test_worked_values_stay_comparable_when_the_calendar_widens_backwards() -> None:
    cal = WorkingCalendar.libya()
    now = ts(local(15, 10))
    before = cal.worked_ts(now)
    cal.worked_ts(ts(datetime(2012, 6, 1, tzinfo=UTC)))  # rebuilds the index from 2011
    assert cal.worked_ts(now) == before
    assert cal.at_worked(before) == now


instants = st.floats(min_value=0, max_value=60 * 86400)


@settings(max_examples=300, deadline=None)
@given(
    instants, instants, st.one_of(st.none(), instants), st.sampled_from([0.0, 3600.0, 25200.0]),
    st.one_of(st.none(), instants), st.one_of(st.none(), instants),
)  # fmt: skip
def test_a_batch_reading_agrees_with_reading_each_clock(
    created: float, age: float, pause: float | None, paused_s: float, answer: float | None, fix: float | None
) -> None:
    cal, base = WORKING_LIBYA, ts(local(1, 0))
    start, now = base + created, base + created + age
    paused_since = None if pause is None or start + pause > now else start + pause
    responded = None if answer is None else start + answer
    resolved = None if fix is None else start + fix
    got = request_sla(
        created=start, targets=Targets(7, 35), cal=cal, now=now, paused_s=paused_s, paused_since=paused_since,
        first_response_at=responded, resolved_at=resolved, now_worked=cal.worked_ts(now),
    )  # fmt: skip
    first = read(Clock(start, 7 * 3600, paused_s, paused_since, responded or resolved), cal, now)
    last = read(Clock(start, 35 * 3600, paused_s, paused_since, resolved), cal, now)
    assert (got.first_response, got.resolution) == (first.state, last.state)
    assert got.first_response_due == pytest.approx(first.due, abs=1e-3)
    assert got.resolution_due == pytest.approx(last.due, abs=1e-3)
