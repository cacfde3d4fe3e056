"""``/wallboard``: the supervisors' live view of the queues and agents, staffing now, and the
15-minute interval reports (page and CSV).

The page follows the ``wallboard`` live topic: each ``wallboard.changed`` event makes it fetch
``/wallboard/figures`` again (at most every two seconds, and once more after the last event;
see ``static/app.js``). Everyone watching through one ``serve`` process shares a read until
the next event, so a room of supervisors costs one read per event, not one each.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from time import monotonic
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter.audit import audit
from callcenter.desk.acd import WALLBOARD_TOPIC
from callcenter.desk.recordings import recorded_calls, resolve
from callcenter.desk.wallboard import (
    By,
    Report,
    Wallboard,
    agent_names,
    day_bounds,
    interval_report,
    read_queues,
    read_wallboard,
    report_csv,
    today,
)
from callcenter.errors import CallCenterError
from callcenter.live import tip
from callcenter.messages import N_
from callcenter.routing.store import RoutingStore
from callcenter.settings import Settings
from callcenter.web.deps import EngineDep, RedisDep, SettingsDep
from callcenter.web.guard import client_address
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentUser
from callcenter.web.pages.desk import PAUSE_REASONS
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

#: a read is shared this long at most (and only while no newer event was published)
FRESH_S: Final = 1.0
BYS: Final = ("queue", "agent")


class BadReportQuery(CallCenterError):
    status_code = 400
    error_id = "bad_report_query"


class RecentWallboard:
    """The last wallboard read of this process, reused while no newer event has been
    published on the wallboard topic and for at most ``fresh_s`` seconds."""

    def __init__(self, *, fresh_s: float = FRESH_S) -> None:
        self.fresh_s = fresh_s
        self._seen: dict[int, tuple[float, str, Wallboard]] = {}

    async def get(self, engine: AsyncEngine, redis: Redis, settings: Settings) -> Wallboard:
        latest = await tip(redis, WALLBOARD_TOPIC)
        clock = monotonic()
        hit = self._seen.get(id(engine))
        if hit is not None and hit[1] == latest and clock - hit[0] < self.fresh_s:
            return hit[2]
        board = await read_wallboard(engine, RoutingStore(redis), timezone=settings.timezone)
        self._seen = {id(engine): (clock, latest, board)}
        return board


RECENT = RecentWallboard()

#: after a supervisor's listen / whisper / barge (``pages.supervise``)
SPY_NOTICES: Final = {
    "listen": N_("Your phone rings now: answer it to listen to %(agent)s's call."),
    "whisper": N_("Your phone rings now: answer it to speak to %(agent)s; the caller does not hear you."),
    "barge": N_("Your phone rings now: answer it to join %(agent)s's call; both hear you."),
}


def spy_notice(mode: str, agent_name: str) -> str | None:
    text = SPY_NOTICES.get(mode)
    return _(text) % {"agent": agent_name} if text else None


def _name(ar: str, en: str) -> str:
    return en if current_language.get() == "en" and en else ar


def _figures_context(board: Wallboard) -> dict[str, Any]:
    return {
        "board": board,
        "queue_names": {
            line.key: _name(line.settings.name_ar, line.settings.name_en) for line in board.queues
        },
        "pause_words": {k: _(v) for k, v in PAUSE_REASONS.items()},
    }


@router.get("/wallboard")
async def wallboard_page(
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    spy: str = "",
    agent: str = "",
) -> Response:
    """``spy``/``agent``: back from listening, whispering or barging (``pages.supervise``)."""
    board = await RECENT.get(engine, redis, settings)
    name = next((a.name for a in board.agents if a.id == agent[:20]), "") if spy else ""
    notice = spy_notice(spy[:16], name) if name else None
    context = _figures_context(board) | {"notice": notice, "error": None}
    return render(request, "wallboard/index.html", context)


@router.get("/wallboard/figures")
async def figures_fragment(
    request: Request, user: CurrentUser, engine: EngineDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    """The figures, for the live page to swap in on ``wallboard.changed``."""
    board = await RECENT.get(engine, redis, settings)
    return render(
        request, "wallboard/figures.html", _figures_context(board), headers={"Cache-Control": "no-store"}
    )


def _query(day: str, by: str, timezone: str) -> tuple[date, By]:
    """The report's day and subject, or ``BadReportQuery`` with the problems by field."""
    problems: dict[str, str] = {}
    chosen = today(datetime.now(UTC).timestamp(), timezone)
    if day:
        try:
            chosen = date.fromisoformat(day.strip()[:10])
        except ValueError:
            problems["day"] = N_("Enter the day as a date, for example 2026-12-05.")
    if by not in BYS:
        problems["by"] = N_("Choose queues or agents.")
    if problems:
        raise BadReportQuery("bad report query", **problems)
    return chosen, cast(Literal["queue", "agent"], by)


def _report_context(report: Report) -> dict[str, Any]:
    names = {k: _name(ar, en) for k, (ar, en) in report.names.items()}
    zone = ZoneInfo(report.timezone)

    def span(start: float, end: float) -> Markup:
        """``08:00–08:15`` in the report's time zone, kept left-to-right in Arabic text."""
        text = f"{datetime.fromtimestamp(start, zone):%H:%M}–{datetime.fromtimestamp(end, zone):%H:%M}"
        return Markup('<bdi dir="ltr">{}</bdi>').format(text)

    return {"report": report, "names": names, "errors": {}, "span": span}


@router.get("/wallboard/report")
async def report_page(
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    day: str = "",
    by: str = "queue",
) -> Response:
    given = {"day": day[:20], "by": by[:10]}
    try:
        chosen, subject = _query(day, by, settings.timezone)
    except BadReportQuery as exc:
        errors = {k: _(str(v)) for k, v in exc.details.items()}
        return render(
            request,
            "wallboard/report.html",
            {"report": None, "names": {}, "errors": errors, "given": given},
            status_code=400,
        )
    report = await interval_report(engine, chosen, subject, timezone=settings.timezone)
    given = {"day": chosen.isoformat(), "by": subject}
    recorded = await recorded_calls(engine, *day_bounds(chosen, settings.timezone))
    names = await agent_names(engine, {c.agent for c in recorded if c.agent})
    recordings = [
        {"call": c, "agent": names.get(c.agent or "", c.agent or ""), "kept": bool(resolve(settings, c.file))}
        for c in recorded
    ]
    queues = {q.queue.id: _name(q.name_ar, q.name_en) for q in await read_queues(engine)} if recorded else {}
    context = _report_context(report) | {"given": given, "recordings": recordings, "recording_queues": queues}
    return render(request, "wallboard/report.html", context)


@router.get("/wallboard/report.csv")
async def report_export(
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    settings: SettingsDep,
    day: str = "",
    by: str = "queue",
) -> Response:
    try:
        chosen, subject = _query(day, by, settings.timezone)
    except BadReportQuery as exc:
        raise BadReportQuery(str(next(iter(exc.details.values())))) from exc
    report = await interval_report(engine, chosen, subject, timezone=settings.timezone)
    async with AsyncSession(engine) as log, log.begin():
        audit(
            log,
            actor=user.actor(client_address(request)),
            action="wallboard.report_export",
            target=f"report:{subject}",
            day=chosen.isoformat(),
            rows=len(report.rows),
        )
    body = "\ufeff" + report_csv(report)
    return Response(
        body.encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="intervals-{subject}-{chosen.isoformat()}.csv"',
            "Cache-Control": "no-store",
        },
    )
