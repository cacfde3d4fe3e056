"""Working time: the hours a responsible body works, for the SLA clocks.

A working day is a day that is not in the weekend (Friday and Saturday in Libya) and not a
public holiday; it has one working interval (08:00-15:00 in Africa/Tripoli by default).
Holidays come from the ``holidays`` package's Libya calendar, whose Islamic dates are
estimates: the ministry corrects them (``HolidayCorrection``: add a day, remove a day).

For speed the calendar keeps its working intervals as sorted epoch seconds with the working
time before each one, so the working time up to any instant is one bisection, and
``add_working_time`` / ``working_time_between`` cost O(log days) whatever the durations:
recomputing every open request's clocks is a loop of a few bisections each. The intervals
are built for the years asked about, widened when an instant falls outside them.

Usage::

    cal = WorkingCalendar.libya(corrections=[HolidayCorrection(date(2026, 3, 19), "add")])
    add_working_time(datetime(2026, 3, 18, 14, tzinfo=UTC), timedelta(hours=8), cal)
    working_time_between(a, b, cal)      # a timedelta
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

#: Python weekday numbers (Monday 0) of the Libyan weekend: Friday and Saturday.
LIBYAN_WEEKEND = frozenset({4, 5})

HolidaySource = Callable[[int], Mapping[date, str]]


@dataclass(frozen=True, slots=True)
class HolidayCorrection:
    """The ministry's correction of the holiday calendar: ``add`` a day off (an Islamic date
    announced differently, an exceptional closure) or ``remove`` an estimated one."""

    day: date
    action: Literal["add", "remove"]
    name: str = ""


def libya_holidays(year: int) -> Mapping[date, str]:
    """Libya's public holidays in ``year`` (the ``holidays`` package; Islamic dates estimated)."""
    import holidays

    return dict(holidays.country_holidays("LY", years=year).items())


class WorkingCalendar:
    """Working days and hours; answers in epoch seconds (``*_ts``) or datetimes."""

    def __init__(
        self,
        *,
        timezone: str = "Africa/Tripoli",
        start: time = time(8, 0),
        end: time = time(15, 0),
        weekend: Iterable[int] = LIBYAN_WEEKEND,
        holidays: HolidaySource | None = None,
        corrections: Iterable[HolidayCorrection] = (),
    ) -> None:
        if not start < end:
            raise ValueError(f"working hours end after they start ({start}-{end})")
        self.tz = ZoneInfo(timezone)
        self.start, self.end = start, end
        self.weekend = frozenset(weekend)
        if len(self.weekend) >= 7 or not self.weekend <= set(range(7)):
            raise ValueError("the weekend is some of the weekdays 0..6 (Monday 0), not all")
        self.holidays: HolidaySource = holidays or (lambda year: {})
        self.added: dict[date, str] = {}
        self.removed: set[date] = set()
        for c in corrections:  # in order: a later correction of the same day wins
            if c.action == "add":
                self.removed.discard(c.day)
                self.added[c.day] = c.name
            elif c.action == "remove":
                self.added.pop(c.day, None)
                self.removed.add(c.day)
            else:
                raise ValueError(f"a holiday correction adds or removes a day, not {c.action!r}")
        self._off: dict[int, dict[date, str]] = {}
        self._years: tuple[int, int] | None = None
        self._inside = (0.0, 0.0)
        self._shift = 0.0  # keeps worked values comparable when the index is widened backwards
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._before: list[float] = []  # working seconds before each interval
        self._upto: list[float] = []  # working seconds up to each interval's end

    @classmethod
    def libya(cls, *, corrections: Iterable[HolidayCorrection] = (), **kwargs: object) -> WorkingCalendar:
        """Libya's week and public holidays, with the ministry's corrections."""
        return cls(holidays=libya_holidays, corrections=corrections, **kwargs)  # type: ignore[arg-type]

    # -- days -----------------------------------------------------------------------------------

    def days_off(self, year: int) -> dict[date, str]:
        """The year's public holidays after corrections (weekends not included)."""
        if year in self._off:
            return self._off[year]
        days = {day: name for day, name in self.holidays(year).items() if day not in self.removed}
        days.update({day: name for day, name in self.added.items() if day.year == year})
        self._off[year] = days
        return days

    def is_working_day(self, day: date) -> bool:
        return day.weekday() not in self.weekend and day not in self.days_off(day.year)

    # -- the index ------------------------------------------------------------------------------

    def _build(self, first: int, last: int) -> None:
        starts, ends, before, upto = [], [], [], []
        total = 0.0
        day = date(first, 1, 1)
        off: set[date] = set()
        for year in range(first, last + 1):
            off |= set(self.days_off(year))
        while day.year <= last:
            if day.weekday() not in self.weekend and day not in off:
                s = datetime.combine(day, self.start, self.tz).timestamp()
                e = datetime.combine(day, self.end, self.tz).timestamp()
                starts.append(s)
                ends.append(e)
                before.append(total)
                total += e - s
                upto.append(total)
            day += timedelta(days=1)
        if self._starts:  # widened: keep every worked value given so far valid
            probe = self._starts[0]
            old = self._before[0] + self._shift
            self._shift = old - before[bisect_right(starts, probe) - 1]
        self._years = (first, last)
        # a fast test of "inside": from the second year's first day to the last year's
        self._inside = (
            datetime.combine(date(first + 1, 1, 1), time(0), self.tz).timestamp(),
            datetime.combine(date(last, 1, 1), time(0), self.tz).timestamp(),
        )
        self._starts, self._ends, self._before, self._upto = starts, ends, before, upto

    def _cover(self, ts: float) -> None:
        """Make sure the intervals span ``ts`` with a year to spare on either side."""
        if self._inside[0] <= ts < self._inside[1]:
            return
        year = datetime.fromtimestamp(ts, self.tz).year
        if self._years is not None and self._years[0] < year < self._years[1]:
            return
        first, last = (year - 1, year + 2) if self._years is None else self._years
        self._build(min(first, year - 1), max(last, year + 1))

    # -- answers --------------------------------------------------------------------------------

    def worked_ts(self, ts: float) -> float:
        """Working seconds from a fixed origin up to ``ts``: the difference of two is the working
        time between them, so a batch reads "now" once (values stay valid as the index grows)."""
        self._cover(ts)
        i = bisect_right(self._starts, ts) - 1
        if i < 0:
            return self._shift
        return self._before[i] + min(ts, self._ends[i]) - self._starts[i] + self._shift

    def at_worked(self, worked: float) -> float:
        """The instant at which ``worked_ts`` reaches ``worked`` (the earliest, so a value that
        ends a working day is its closing time, not the next opening)."""
        while True:
            target = worked - self._shift
            i = bisect_left(self._upto, target)
            if i < len(self._upto):
                if i == 0 and target <= 0:
                    self._cover(self._starts[0] - 366 * 86400)  # before the index: widen it back
                    continue
                return self._starts[i] + (target - self._before[i])
            assert self._years is not None
            self._build(self._years[0], self._years[1] + 1)

    def between_ts(self, a: float, b: float) -> float:
        """Working seconds from ``a`` to ``b`` (0 when ``b`` is not after ``a``)."""
        if b <= a:
            return 0.0
        return self.worked_ts(b) - self.worked_ts(a)

    def add_ts(self, start: float, seconds: float) -> float:
        """The instant ``seconds`` of working time after ``start``. A duration that ends a
        working day exactly ends at its closing time, not at the next opening."""
        if seconds <= 0:
            return start
        return self.at_worked(self.worked_ts(start) + seconds)


def add_working_time(start: datetime, duration: timedelta, calendar: WorkingCalendar) -> datetime:
    """``start`` plus ``duration`` of working time, as an aware UTC datetime."""
    return _utc(calendar.add_ts(_aware(start).timestamp(), duration.total_seconds()))


def working_time_between(a: datetime, b: datetime, calendar: WorkingCalendar) -> timedelta:
    """The working time from ``a`` to ``b`` (zero when ``b`` is not after ``a``)."""
    return timedelta(seconds=calendar.between_ts(_aware(a).timestamp(), _aware(b).timestamp()))


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are UTC (as SQLite gives them back)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
