"""``/admin/requests/holidays``: the ministry corrects the working calendar of the SLA clocks.
A year's public holidays as estimated (names in the reader's language), the corrections, a
form to add a day off or remove an estimated holiday, and a button to drop a correction.

After a change is committed every open request's SLA clocks are recomputed at once
(``recompute.recompute_sla``, as the hourly job does), so the queues and the expected dates
citizens hear follow the corrected calendar; the page says how many requests were looked at
and how many changed.
Supervisors and admins who see every municipality change it (the calendar is the whole
country's); every change is audited.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.accounts.principal import Principal
from callcenter.messages import N_
from callcenter.requests.holiday_admin import (
    FIRST_YEAR,
    LAST_YEAR,
    CorrectionForm,
    HolidayFormError,
    correct,
    drop,
    parse_day,
    parse_year,
    year_view,
)
from callcenter.requests.recompute import recompute_sla
from callcenter.requests.store import load_calendar
from callcenter.settings import Settings
from callcenter.web.deps import EngineDep, SessionDep, SettingsDep
from callcenter.web.guard import Forbidden
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, isolated, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

NOTICES: Final = {
    "add": N_("The day off is added to the calendar."),
    "remove": N_("The holiday is removed from the calendar: it is a working day."),
    "drop": N_("The correction is dropped: the estimated calendar applies to that day again."),
}
RECOMPUTED: Final = N_("SLA clocks recomputed: %(open)s open requests, %(changed)s with new due dates.")
BAD_YEAR: Final = N_("Choose a year from 2000 to 2099.")


def _may_change(user: Principal) -> None:
    if user.scoped:
        raise Forbidden("the holiday calendar is the whole country's")


def _today(settings: Settings) -> date:
    return datetime.now(ZoneInfo(settings.timezone)).date()


async def _context(session: AsyncSession, settings: Settings, year: int) -> dict[str, Any]:
    view = await year_view(
        await session.connection(), year, language=current_language.get(), weekend=settings.request_weekend
    )
    return {
        "year": view, "form": CorrectionForm(), "errors": {}, "notice": None, "recomputed": None,
        "previous": year - 1 if year > FIRST_YEAR else None, "next": year + 1 if year < LAST_YEAR else None,
    }  # fmt: skip


def _count(value: str | None) -> str | None:
    return f"{int(value):,}" if value and value.isascii() and value.isdigit() and len(value) < 10 else None


@router.get("/admin/requests/holidays")
async def holidays_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    year: str | None = None,
    done: str | None = None,
    open_requests: str | None = None,
    changed: str | None = None,
) -> Response:
    shown = parse_year(year, today=_today(settings))
    context = await _context(session, settings, shown or _today(settings).year)
    if shown is None:
        context["errors"] = {"year": _(BAD_YEAR)}
        return render(request, "admin/holidays.html", context, status_code=400)
    context["notice"] = _(NOTICES[done]) if done in NOTICES else None
    counts = _count(open_requests), _count(changed)
    if context["notice"] and counts[0] is not None and counts[1] is not None:
        context["recomputed"] = _(RECOMPUTED) % {"open": counts[0], "changed": counts[1]}
    return render(request, "admin/holidays.html", context)


async def _changed(
    engine: AsyncEngine, settings: Settings, session: AsyncSession, day: date, done: str
) -> Response:
    """Committed: recompute the open requests' clocks on the corrected calendar, then back to the year."""
    await session.commit()
    calendar = await load_calendar(engine, settings)
    # only the requests whose clocks span the corrected day move (a whole pass runs hourly)
    result = await recompute_sla(engine, calendar, due_soon_share=settings.request_due_soon_share, day=day)
    return redirect(
        f"/admin/requests/holidays?year={day.year}&done={done}&open_requests={result.open}"
        f"&changed={result.changed}#corrections"
    )


async def _refused(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    exc: HolidayFormError,
    *,
    form: CorrectionForm,
    day: str,
) -> Response:
    """The year of the day typed (else this year) again, the form as typed and its errors, 400."""
    await session.rollback()
    errors: dict[str, Markup] = {}
    for p in exc.problems:
        said = isolated(_(p.message), p.values)
        errors[p.field] = Markup(" ").join((errors[p.field], said)) if p.field in errors else said
    typed = parse_day(day)
    year = (
        typed.year if typed is not None and FIRST_YEAR <= typed.year <= LAST_YEAR else _today(settings).year
    )
    context = await _context(session, settings, year)
    context.update(form=form, errors=errors)
    return render(request, "admin/holidays.html", context, status_code=400)


@router.post("/admin/requests/holidays")
async def add_correction(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> Response:
    """Add a day off or remove an estimated holiday."""
    _may_change(user)
    form = CorrectionForm(
        day=await form_text(request, "day", limit=40), action=await form_text(request, "action", limit=10),
        name=await form_text(request, "name", limit=400),
    )  # fmt: skip
    try:
        day = await correct(session, form, actor=actor, weekend=settings.request_weekend)
    except HolidayFormError as exc:
        return await _refused(request, session, settings, exc, form=form, day=form.day)
    return await _changed(engine, settings, session, day, form.action)


@router.post("/admin/requests/holidays/drop")
async def drop_correction_page(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> Response:
    """Take a correction back."""
    _may_change(user)
    text = await form_text(request, "day", limit=40)
    try:
        day = await drop(session, text, actor=actor)
    except HolidayFormError as exc:
        return await _refused(request, session, settings, exc, form=CorrectionForm(), day=text)
    return await _changed(engine, settings, session, day, "drop")
