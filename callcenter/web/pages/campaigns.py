"""``/campaigns``: the list with progress, a new campaign, the live detail page and its moves.

The form ends in the JSON API's :class:`CampaignIn` (one set of rules for both), then the
same domain calls (``create_campaign``, ``control.request_start`` / ``control.change``).
A scoped user sees, and acts on, only campaigns whose audience lies within their
municipalities; any other campaign is "not found".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from arq.connections import ArqRedis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.accounts.principal import Principal
from callcenter.audit import Actor
from callcenter.campaigns import control
from callcenter.campaigns.progress import (
    Counts,
    Progress,
    RecentProgress,
    list_campaigns,
    publish_progress,
    quiet_hours,
    rate_of,
    visible_campaign,
)
from callcenter.campaigns.service import Audience, create_campaign, get_campaign
from callcenter.campaigns.waiting import Reason
from callcenter.errors import InvalidTransition, NotFound
from callcenter.messages import N_
from callcenter.settings import Settings
from callcenter.web.api.campaigns import CampaignIn
from callcenter.web.deps import EngineDep, ReaderDep, RedisDep, SessionDep, SettingsDep
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_list, form_text, now, redirect
from callcenter.web.policy import POLICIES
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)
RECENT = RecentProgress()

MAX_RATE: Final = 10_000.0  # messages a second; more is a typing mistake
INQUIRY_CHOICES: Final = 200  # the newest open inquiries offered on the form
MAX_CHOSEN: Final = 500  # municipalities in one audience, at most
FIELDS: Final = (
    "inquiry",
    "channel",
    "municipalities",
    "languages",
    "rate_per_s",
    "max_attempts",
    "quiet_start",
    "quiet_end",
)
DONE_NOTICES: Final = {
    "created": N_("The campaign has been created."),
    "start": N_("The campaign is starting: its audience is being drawn up."),
    "pause": N_("The campaign is paused."),
    "resume": N_("The campaign is running again."),
    "cancel": N_("The campaign is cancelled."),
}


def _field_messages() -> dict[str, str]:
    return {
        "inquiry": _("Choose the inquiry to send."),
        "channel": _("Choose SMS or voice calls."),
        "municipalities": _("Choose municipalities from the list."),
        "languages": _("Choose Arabic, English or both."),
        "rate_per_s": _("Enter the rate as a number of messages a second, 0 or more (0: no limit)."),
        "max_attempts": _("Enter a number of attempts from 1 to 10."),
        "quiet_start": _("Enter the start of the quiet hours as a time like 21:00."),
        "quiet_end": _("Enter the end of the quiet hours as a time like 08:00."),
    }


@dataclass(frozen=True, slots=True)
class ListRow:
    """One line of the list as the page shows it."""

    row: Any  # the campaign and its inquiry's columns
    title: str
    counts: Counts
    reason: str | None
    reason_code: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str


def _title(row: Any) -> str:
    if current_language.get() == "en" and row.title_en:
        return str(row.title_en)
    return str(row.title_ar)


def _reason_text(reason: Reason | None) -> str | None:
    return reason.text(_) if reason is not None else None


def _may(principal: Principal, method: str, path: str) -> bool:
    return POLICIES[(method, path)].allows(principal.role)


def _campaign_id(value: str) -> int:
    """A path's campaign id; anything but a plain number of sane length is not found."""
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise NotFound(N_("There is no such campaign."))
    return int(value)


async def _visible(engine: AsyncEngine, user: Principal, campaign_id: str) -> Any:
    row = await visible_campaign(engine, _campaign_id(campaign_id), user.municipalities)
    if row is None:
        raise NotFound(N_("There is no such campaign."))
    return row


# -- the list -----------------------------------------------------------------------------


@router.get("/campaigns")
async def campaigns(
    request: Request,
    user: CurrentUser,
    reader: ReaderDep,
    redis: RedisDep,
    settings: SettingsDep,
    page: str = "1",
) -> Response:
    number = int(page) if page.isascii() and page.isdigit() and len(page) < 7 else 1
    listing = await list_campaigns(
        reader, redis, settings, municipalities=user.municipalities, page=number, now=now()
    )
    rows = [
        ListRow(
            row=line.row,
            title=_title(line.row),
            counts=line.counts,
            reason=_reason_text(line.reason),
            reason_code=line.reason.code if line.reason else None,
        )
        for line in listing.lines
    ]
    return render(
        request,
        "campaigns/list.html",
        {
            "rows": rows,
            "total": listing.total,
            "page": listing.page,
            "pages": listing.pages,
            "previous": f"/campaigns?page={listing.page - 1}" if listing.page > 1 else None,
            "next": f"/campaigns?page={listing.page + 1}" if listing.page < listing.pages else None,
            "can_create": _may(user, "POST", "/campaigns"),
        },
    )


# -- a new campaign -----------------------------------------------------------------------


async def _form_choices(session: AsyncSession, user: Principal) -> dict[str, Any]:
    inquiries = models.table(models.Inquiry)
    open_inquiries = (
        await session.execute(
            select(inquiries.c.slug, inquiries.c.title_ar, inquiries.c.title_en)
            .where(inquiries.c.status != "closed")
            .order_by(inquiries.c.created_at.desc(), inquiries.c.id.desc())
            .limit(INQUIRY_CHOICES)
        )
    ).all()
    places = models.table(models.Municipality)
    query = select(places.c.id, places.c.code, places.c.name_ar, places.c.name_en).order_by(places.c.name_ar)
    if user.municipalities:
        query = query.where(places.c.id.in_(sorted(user.municipalities)))
    municipalities = (await session.execute(query)).all()
    english = current_language.get() == "en"
    return {
        "inquiries": [{"slug": r.slug, "title": _title(r)} for r in open_inquiries],
        "municipalities": [
            {"code": m.code, "name": (m.name_en if english and m.name_en else m.name_ar)}
            for m in municipalities
        ],
        "scoped": bool(user.municipalities),
    }


def _blank_form() -> dict[str, Any]:
    return {
        "inquiry": "",
        "channel": "sms",
        "municipalities": [],
        "languages": [],
        "rate_per_s": "",
        "max_attempts": "4",
        "quiet_start": "",
        "quiet_end": "",
        "start": False,
    }


@router.get("/campaigns/new")
async def new_campaign(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    return render(
        request,
        "campaigns/new.html",
        {"form": _blank_form(), "problems": [], "errors": {}} | await _form_choices(session, user),
    )


async def _read_form(request: Request) -> dict[str, Any]:
    return {
        "inquiry": await form_text(request, "inquiry", limit=200),
        "channel": await form_text(request, "channel", limit=20),
        "municipalities": [v[:64] for v in (await form_list(request, "municipalities"))[: MAX_CHOSEN + 1]],
        "languages": [v[:8] for v in (await form_list(request, "languages"))[:5]],
        "rate_per_s": (await form_text(request, "rate_per_s", limit=40)).strip(),
        "max_attempts": (await form_text(request, "max_attempts", limit=40)).strip(),
        "quiet_start": (await form_text(request, "quiet_start", limit=40)).strip(),
        "quiet_end": (await form_text(request, "quiet_end", limit=40)).strip(),
        "start": (await form_text(request, "start", limit=10)) in ("1", "on", "yes", "true"),
    }


def _valid_time(value: str | None) -> bool:
    if value is None:
        return True
    hours, _sep, minutes = value.partition(":")
    return hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60


def _checked(form: dict[str, Any], places: set[str], scoped: bool) -> tuple[CampaignIn | None, list[Problem]]:
    """The form as :class:`CampaignIn` (the API's rules), and what else a page must refuse."""
    messages = _field_messages()
    problems: list[Problem] = []
    try:
        body = CampaignIn.model_validate(
            {
                "inquiry": form["inquiry"],
                "channel": form["channel"],
                "municipalities": form["municipalities"],
                "languages": form["languages"],
                "rate_per_s": form["rate_per_s"] or None,
                "max_attempts": form["max_attempts"] or 4,
                "quiet_start": form["quiet_start"] or None,
                "quiet_end": form["quiet_end"] or None,
                "start": form["start"],
            }
        )
    except ValidationError as exc:
        seen: set[str] = set()
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if name in messages and name not in seen:
                seen.add(name)
                problems.append(Problem(name, messages[name]))
        return None, sorted(problems, key=lambda p: FIELDS.index(p.field))
    if not body.inquiry:
        problems.append(Problem("inquiry", messages["inquiry"]))
    if len(body.municipalities) > MAX_CHOSEN or not set(body.municipalities) <= places:
        problems.append(Problem("municipalities", messages["municipalities"]))
    elif scoped and not body.municipalities:
        problems.append(Problem("municipalities", _("Choose at least one of your municipalities.")))
    if body.rate_per_s is not None and not (math.isfinite(body.rate_per_s) and body.rate_per_s <= MAX_RATE):
        problems.append(Problem("rate_per_s", messages["rate_per_s"]))
    if not _valid_time(body.quiet_start):
        problems.append(Problem("quiet_start", messages["quiet_start"]))
    if not _valid_time(body.quiet_end):
        problems.append(Problem("quiet_end", messages["quiet_end"]))
    if (body.quiet_start is None) != (body.quiet_end is None):
        field = "quiet_end" if body.quiet_end is None else "quiet_start"
        problems.append(Problem(field, _("Give both the start and the end of the quiet hours, or neither.")))
    return (None if problems else body), problems


async def _create(
    session: AsyncSession, body: CampaignIn, actor: Actor, settings: Settings
) -> models.Campaign | None:
    """The new campaign, or None when the inquiry does not exist or is closed."""
    try:
        return await create_campaign(
            session,
            inquiry=body.inquiry,
            audience=Audience(tuple(body.municipalities), tuple(body.languages)),
            actor=actor,
            channel=body.channel,
            gateway=settings.sms_gateway if body.channel == "sms" else "trunk",
            rate_per_s=body.rate_per_s,
            max_attempts=body.max_attempts,
            quiet_start=body.quiet_start,
            quiet_end=body.quiet_end,
        )
    except (NotFound, InvalidTransition):
        return None


@router.post("/campaigns")
async def create(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    form = await _read_form(request)
    choices = await _form_choices(session, user)
    places = {m["code"] for m in choices["municipalities"]}
    body, problems = _checked(form, places, bool(user.municipalities))
    if body is not None:
        campaign = await _create(session, body, actor, settings)
        if campaign is None:
            problems.append(Problem("inquiry", _("There is no open inquiry with this name.")))
        else:
            await session.commit()
            assert campaign.id is not None
            done = "created"
            if body.start:
                await control.request_start(redis, campaign, actor=actor)
                await publish_progress(engine, redis, settings, campaign.id)
                done = "start"
            return redirect(f"/campaigns/{campaign.id}?done={done}")
    errors = {p.field: p.message for p in reversed(problems)}
    return render(
        request,
        "campaigns/new.html",
        {"form": form, "problems": problems, "errors": errors} | choices,
        status_code=422,
    )


# -- one campaign -------------------------------------------------------------------------


async def _detail_context(
    engine: AsyncEngine,
    redis: ArqRedis,
    settings: Settings,
    user: Principal,
    campaign_id: str,
) -> dict[str, Any]:
    row = await _visible(engine, user, campaign_id)
    # shared with the live fragment: a change of status publishes an event, which ends the reuse
    progress = await RECENT.get(engine, redis, settings, row)
    if progress is None:
        raise NotFound(N_("There is no such campaign."))
    return _context_of(row, progress, user)


def _context_of(row: Any, progress: Progress, user: Principal) -> dict[str, Any]:
    counts: Counts = progress.counts
    actions = [
        a
        for a in control.actions_for(progress.status)
        if _may(user, "POST", f"/campaigns/{{campaign_id}}/{a}")
    ]
    return {
        "campaign": row,
        "campaign_id": row.id,
        "title": _title(row),
        "status": progress.status,
        "counts": counts,
        "reason": _reason_text(progress.reason),
        "reason_code": progress.reason.code if progress.reason else None,
        "actions": actions,
        "live": progress.status not in ("done", "cancelled"),
        "error": None,
        "notice": None,
    }


async def _audience_names(engine: AsyncEngine, audience: dict[str, Any]) -> list[str]:
    codes = list(audience.get("municipalities") or [])
    if not codes:
        return []
    places = models.table(models.Municipality)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(places.c.code, places.c.name_ar, places.c.name_en).where(places.c.code.in_(codes))
            )
        ).all()
    english = current_language.get() == "en"
    names = {r.code: (r.name_en if english and r.name_en else r.name_ar) for r in rows}
    return [names.get(code, code) for code in codes]


async def _detail_page(
    request: Request,
    engine: AsyncEngine,
    redis: ArqRedis,
    settings: Settings,
    user: Principal,
    campaign_id: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    context = await _detail_context(engine, redis, settings, user, campaign_id)
    row = context["campaign"]
    audience = row.audience or {}
    start, end = quiet_hours(row, settings)
    context |= {
        "error": error,
        "notice": notice,
        "places": await _audience_names(engine, audience),
        "languages": list(audience.get("languages") or []),
        "rate": rate_of(row, settings),
        "rate_default": row.rate_per_s is None,
        "quiet": f"{start:%H:%M}–{end:%H:%M}" if start and end and start != end else None,
        "quiet_default": not (row.quiet_start and row.quiet_end),
    }
    return render(request, "campaigns/detail.html", context, status_code=status_code)


@router.get("/campaigns/{campaign_id}")
async def campaign(
    request: Request,
    campaign_id: str,
    user: CurrentUser,
    reader: ReaderDep,
    redis: RedisDep,
    settings: SettingsDep,
    done: str = "",
) -> Response:
    notice = DONE_NOTICES.get(done)
    return await _detail_page(
        request, reader, redis, settings, user, campaign_id, notice=_(notice) if notice else None
    )


@router.get("/campaigns/{campaign_id}/progress")
async def progress_fragment(
    request: Request,
    campaign_id: str,
    user: CurrentUser,
    reader: ReaderDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    """The cards, the reason and the buttons, for the live page to swap in (on each live
    event: every viewer at once, hence the shared recent read)."""
    row = await _visible(reader, user, campaign_id)
    progress = await RECENT.get(reader, redis, settings, row)
    if progress is None:
        raise NotFound(N_("There is no such campaign."))
    context = _context_of(row, progress, user)
    return render(request, "campaigns/progress.html", context, headers={"Cache-Control": "no-store"})


async def _act(
    request: Request,
    action: control.Action,
    campaign_id: str,
    user: Principal,
    actor: Actor,
    engine: AsyncEngine,
    redis: ArqRedis,
    settings: Settings,
) -> Response:
    row = await _visible(engine, user, campaign_id)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        campaign = await get_campaign(session, row.id)
    try:
        if action == "start":
            await control.request_start(redis, campaign, actor=actor)
            await publish_progress(engine, redis, settings, row.id)
        else:
            await control.change(engine, redis, settings, campaign, action, actor=actor)
    except InvalidTransition:
        message = _("This campaign cannot do that now. Its status is: %(status)s.") % {
            "status": _status_word(campaign.status)
        }
        return await _detail_page(
            request, engine, redis, settings, user, campaign_id, error=message, status_code=409
        )
    return redirect(f"/campaigns/{row.id}?done={action}")


def _status_word(status: str) -> str:
    words = {
        "draft": _("Draft"),
        "running": _("Running"),
        "paused": _("Paused"),
        "done": _("Done"),
        "cancelled": _("Cancelled"),
    }
    return words.get(status, status)


@router.post("/campaigns/{campaign_id}/start")
async def start(
    request: Request,
    campaign_id: str,
    user: CurrentUser,
    actor: CurrentActor,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    return await _act(request, "start", campaign_id, user, actor, engine, redis, settings)


@router.post("/campaigns/{campaign_id}/pause")
async def pause(
    request: Request,
    campaign_id: str,
    user: CurrentUser,
    actor: CurrentActor,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    return await _act(request, "pause", campaign_id, user, actor, engine, redis, settings)


@router.post("/campaigns/{campaign_id}/resume")
async def resume(
    request: Request,
    campaign_id: str,
    user: CurrentUser,
    actor: CurrentActor,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    return await _act(request, "resume", campaign_id, user, actor, engine, redis, settings)


@router.post("/campaigns/{campaign_id}/cancel")
async def cancel(
    request: Request,
    campaign_id: str,
    user: CurrentUser,
    actor: CurrentActor,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    return await _act(request, "cancel", campaign_id, user, actor, engine, redis, settings)
