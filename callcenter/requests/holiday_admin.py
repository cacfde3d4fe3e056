"""The ministry corrects the holiday calendar from its page: a year's public holidays as the
``holidays`` package estimates them (the Islamic ones move with the moon sighting), the
corrections made, and a correction added (a day off the estimate missed, or an estimated
holiday that is a working day after all) or dropped.

Each change is checked first; the problems come back as message ids with the field they
belong to and their values, for the page to say in the reader's language. A day is written
``YYYY-MM-DD`` (Arabic-Indic digits too), from 2000 to 2099. Adding needs a name and a working
day (not the weekend, not a holiday already); removing needs a holiday the package estimates
(a day a correction added is taken back by dropping that correction). ``store`` writes the
correction and its audit row; the caller recomputes the open requests' SLA clocks once it has
committed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.audit import Actor
from callcenter.messages import N_
from callcenter.requests.calendar import libya_holidays
from callcenter.requests.store import correct_holiday, drop_correction

CORRECTION = models.table(models.HolidayCorrection)
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2099
NAME_LIMIT: Final = 200
ACTIONS: Final = ("add", "remove")
_DIGITS: Final = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str  # a message id, with %(name)s values
    values: dict[str, str] = dataclasses.field(default_factory=dict)


class HolidayFormError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(slots=True)
class CorrectionForm:
    day: str = ""
    action: str = "add"
    name: str = ""


@dataclass(frozen=True, slots=True)
class Holiday:
    day: date
    name: str  # in the language asked for
    removed: bool  # a correction made it a working day
    weekend: bool


@dataclass(frozen=True, slots=True)
class Correction:
    day: date
    action: str  # add | remove
    name: str
    estimated: str  # the package's name of the day ('' when it estimates no holiday then)
    created_by: str
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class Year:
    year: int
    holidays: list[Holiday]
    corrections: list[Correction]


def parse_day(text: str) -> date | None:
    """``2026-03-20`` (Arabic-Indic digits too), or None."""
    cleaned = text.strip().translate(_DIGITS)
    if len(cleaned) != 10:
        return None
    try:
        return date.fromisoformat(cleaned)
    except ValueError:
        return None


def parse_year(text: str | None, *, today: date) -> int | None:
    """The year asked for (this year when none), or None when it is not one of ours."""
    if not text:
        return today.year
    cleaned = text.strip().translate(_DIGITS)
    if not cleaned.isascii() or not cleaned.isdigit() or not FIRST_YEAR <= int(cleaned) <= LAST_YEAR:
        return None
    return int(cleaned)


def holiday_names(year: int, language: str) -> Mapping[date, str]:
    """The package's holidays of ``year`` with their names in ``language`` (the days are those
    of ``calendar.libya_holidays``)."""
    import holidays

    return dict(
        holidays.country_holidays("LY", years=year, language="ar" if language == "ar" else "en_US").items()
    )


async def corrections_of(conn: AsyncConnection, year: int) -> list[dict[str, object]]:
    rows = await conn.execute(
        select(CORRECTION)
        .where(CORRECTION.c.day >= date(year, 1, 1), CORRECTION.c.day <= date(year, 12, 31))
        .order_by(CORRECTION.c.day)
    )
    return [dict(row) for row in rows.mappings()]


async def year_view(conn: AsyncConnection, year: int, *, language: str, weekend: Iterable[int]) -> Year:
    """The year's estimated holidays (each marked when a correction removed it) and its corrections."""
    names = holiday_names(year, language)
    fixes = await corrections_of(conn, year)
    removed = {row["day"] for row in fixes if row["action"] == "remove"}
    off = frozenset(weekend)
    return Year(
        year=year,
        holidays=[
            Holiday(day, name, day in removed, day.weekday() in off) for day, name in sorted(names.items())
        ],
        corrections=[
            Correction(
                day=cast(date, row["day"]), action=str(row["action"]), name=str(row["name"]),
                estimated=names.get(cast(date, row["day"]), ""), created_by=str(row["created_by"]),
                created_at=cast(datetime | None, row["created_at"]),
            )
            for row in fixes
        ],
    )  # fmt: skip


def _day(text: str, problems: list[Problem], name: str = "day") -> date | None:
    if not text.strip():
        problems.append(Problem(name, N_("Enter the date.")))
        return None
    day = parse_day(text)
    if day is None:
        problems.append(Problem(name, N_("Enter the date as year-month-day, such as 2026-03-20.")))
        return None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        problems.append(Problem(name, N_("Choose a date from 2000 to 2099.")))
        return None
    return day


async def correct(
    session: AsyncSession, form: CorrectionForm, *, actor: str | Actor, weekend: Iterable[int]
) -> date:
    """Check and store the correction (audited by ``store``); ``HolidayFormError`` says what is
    wrong, and nothing is written."""
    problems: list[Problem] = []
    day = _day(form.day, problems)
    if form.action not in ACTIONS:
        problems.append(Problem("action", N_("Choose whether the day becomes a day off or a working day.")))
    name = form.name.strip()
    if len(name) > NAME_LIMIT:
        problems.append(Problem("name", N_("A name has at most 200 characters.")))
    if day is not None and form.action in ACTIONS:
        conn = await session.connection()
        fixes = {row["day"]: row for row in await corrections_of(conn, day.year)}
        estimated = libya_holidays(day.year)
        shown = {"day": day.isoformat()}
        fix = fixes.get(day)
        if form.action == "add":
            if not name:
                problems.append(Problem("name", N_("Name the day off, such as Eid al-Fitr.")))
            if day.weekday() in frozenset(weekend):
                problems.append(
                    Problem("day", N_("%(day)s falls on the weekend: it is off every week already."), shown)
                )
            elif day in estimated and (fix is None or fix["action"] != "remove"):
                problems.append(Problem("day", N_("%(day)s is a public holiday already."), shown))
        elif fix is not None and fix["action"] == "add":
            problems.append(
                Problem(
                    "day",
                    N_("%(day)s is a day off that a correction added: drop that correction instead."),
                    shown,
                )
            )
        elif day not in estimated:
            problems.append(
                Problem(
                    "day",
                    N_("%(day)s is not a public holiday in the calendar: there is nothing to remove."),
                    shown,
                )
            )
        elif fix is not None:
            problems.append(Problem("day", N_("%(day)s is removed from the holidays already."), shown))
    if problems:
        raise HolidayFormError(problems)
    assert day is not None
    action = cast(Literal["add", "remove"], form.action)
    await correct_holiday(session, day, action, actor=actor, name=name)
    return day


async def drop(session: AsyncSession, text: str, *, actor: str | Actor) -> date:
    """Take a correction back (audited by ``store``), or ``HolidayFormError``."""
    problems: list[Problem] = []
    day = _day(text, problems, "drop")
    if day is not None and not await drop_correction(session, day, actor=actor):
        problems.append(Problem("drop", N_("There is no correction for %(day)s."), {"day": day.isoformat()}))
    if problems:
        raise HolidayFormError(problems)
    assert day is not None
    return day
