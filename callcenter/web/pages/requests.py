"""``/requests``: the service requests' work queue (officers: their municipalities'; the
ministry's supervisors and admins: every one), a request's page with its history, its
recording and the reporter's number (masked; a reveal is audited), and the ministry's view
ranking the municipalities with the overdue requests escalated to it.

A request outside the reader's municipalities answers 404, as if it did not exist. The
changes (assign, status, duplicate, refusal, re-routing) are ``request_actions``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from callcenter.accounts.principal import Principal
from callcenter.accounts.roles import Role
from callcenter.audit import audit
from callcenter.desk.recordings import NAME
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.requests import lifecycle
from callcenter.requests.queue_read import (
    SORTS,
    QueueFilter,
    RequestPage,
    bodies,
    categories,
    colleagues,
    escalated,
    municipality_ranking,
    request_page,
    statuses,
    work_queue,
)
from callcenter.requests.read import find_by_reference, history
from callcenter.requests.reference import BadReference, Problem
from callcenter.settings import Settings
from callcenter.web.deps import SessionDep, SettingsDep
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, now, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

#: the ministry: routes and re-routes requests, sees the ranking
MINISTRY: Final = frozenset({Role.supervisor, Role.admin})
#: roles whose work may need the reporter's number, behind an audited reveal
MAY_CALL_BACK: Final = frozenset({Role.officer, Role.supervisor, Role.admin})
PERIODS: Final = (30, 90, 365)

PROBLEMS: Final = {
    Problem.NOT_DIGITS: N_("A reference is made of digits, like 1415-4217-0393."),
    Problem.WRONG_LENGTH: N_("A reference has 8 digits after 1415, like 1415-4217-0393."),
    Problem.BAD_CHECK_DIGIT: N_(
        "A digit of this reference is wrong (its check digit does not match): read it again with the citizen."
    ),
}
NOTICES: Final = {
    "status": N_("The status is changed."),
    "note": N_("The note is added."),
    "assigned": N_("The request is assigned."),
    "duplicate": N_("The request is marked as a duplicate."),
    "refused": N_("The request is sent back to the ministry to be routed again."),
    "rerouted": N_("The request is sent to the body you chose."),
    "sms": N_("The citizen is told by SMS."),
}


def say_reference(exc: BadReference) -> str:
    return _(PROBLEMS[exc.problem])


def _number(value: str | None, default: int = 1) -> int:
    return int(value) if value and value.isdigit() and len(value) < 10 else default


def _id_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


# -- the work queue -----------------------------------------------------------------------------


@router.get("/requests")
async def queue(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    status: str = "",
    category: str | None = None,
    body: str | None = None,
    mine: str | None = None,
    overdue: str | None = None,
    page: str | None = None,
    ref: str | None = None,
) -> Response:
    conn = await session.connection()
    ref_error = ""
    if ref is not None and ref.strip():
        try:
            found = await find_by_reference(conn, ref[:40])
        except BadReference as exc:
            ref_error = say_reference(exc)
        else:
            if found is not None and user.sees(found.municipality_id):
                return redirect(f"/requests/{found.reference}")
            ref_error = _("No request of yours has this reference.")
    chosen = QueueFilter(
        municipalities=user.municipalities,
        status=status if status in ("all", *statuses()) else "",
        category_id=_id_or_none(category),
        body_id=_id_or_none(body),
        assigned_to=user.user_id if mine else None,
        overdue=bool(overdue),
        page=_number(page),
    )
    listing = await work_queue(conn, chosen)
    query = {
        k: v
        for k, v in {
            "status": chosen.status, "category": category or "", "body": body or "",
            "mine": "1" if mine else "", "overdue": "1" if overdue else "",
        }.items()
        if v
    }  # fmt: skip

    def link(number: int) -> str:
        return "/requests?" + urlencode(query | {"page": str(number)})

    return render(
        request,
        "requests/queue.html",
        {
            "listing": listing,
            "filter": chosen,
            "mine": bool(mine),
            "statuses": statuses(),
            "categories": await categories(conn),
            "bodies": await bodies(conn),
            "previous_link": link(listing.page - 1) if listing.page > 1 else None,
            "next_link": link(listing.page + 1) if listing.page < listing.pages else None,
            "ref": (ref or "")[:40],
            "ref_error": ref_error,
            "ministry": user.role in MINISTRY,
        },
        status_code=400 if ref_error else 200,
    )


# -- the ministry's view ------------------------------------------------------------------------


@router.get("/requests/municipalities")
async def ranking(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    days: str | None = None,
    sort: str = "compliance",
) -> Response:
    period = _number(days, 90)
    period = period if period in PERIODS else 90
    order = sort if sort in SORTS else "compliance"
    conn = await session.connection()
    ranked = await municipality_ranking(
        conn, since=now() - timedelta(days=period), municipalities=user.municipalities, sort=order
    )
    return render(
        request,
        "requests/municipalities.html",
        {
            "ranked": ranked,
            "days": period,
            "periods": PERIODS,
            "sort": order,
            "sorts": SORTS,
            "escalated": await escalated(conn, user.municipalities),
        },
    )


# -- one request --------------------------------------------------------------------------------


async def visible(session: AsyncSession, user: Principal, reference: str) -> RequestPage:
    """The request of ``reference`` if the reader may see it; 404 otherwise (another
    municipality's request is not told apart from one that does not exist)."""
    conn = await session.connection()
    try:
        found = await find_by_reference(conn, reference[:40])
    except BadReference:
        found = None
    if found is None or not user.sees(found.municipality_id):
        raise NotFound(N_("No request of yours has this reference."))
    return await request_page(conn, found.id)


def recording_file(settings: Settings, recording_path: str | None) -> Path | None:
    """The request's recording inside the recordings directory (a bare name, or one under a
    folder of it), or None: nothing outside the directory is ever served."""
    if not recording_path:
        return None
    base = settings.recordings_path.resolve()
    path = (base / recording_path).resolve()
    if not path.is_relative_to(base) or not NAME.fullmatch(path.name) or not path.is_file():
        return None
    return path


async def detail_context(
    session: AsyncSession,
    user: Principal,
    found: RequestPage,
    settings: Settings,
    *,
    revealed: bool = False,
    errors: dict[str, str] | None = None,
    typed: dict[str, str] | None = None,
    conflict: bool = False,
) -> dict[str, Any]:
    """What the request's page shows; ``errors`` and ``typed`` keep a refused form's values."""
    conn = await session.connection()
    view = found.request
    role = user.role.value
    moves = [
        str(s)
        for s in lifecycle.moves_for(view.status, role)
        if s not in (lifecycle.Status.DUPLICATE, lifecycle.Status.NOT_RESPONSIBLE, lifecycle.Status.SENT)
    ]
    may_refuse = lifecycle.Status.NOT_RESPONSIBLE in lifecycle.moves_for(view.status, role)
    open_now = view.status in lifecycle.OPEN
    return {
        "found": found, "view": view, "history": await history(conn, view.id),
        "moves": moves, "public_moves": [str(s) for s in lifecycle.PUBLIC],
        "may_assign": open_now and role in lifecycle.BODY,
        "may_duplicate": lifecycle.Status.DUPLICATE in lifecycle.moves_for(view.status, role),
        "may_refuse": may_refuse,
        "may_reroute": user.role in MINISTRY and view.status is lifecycle.Status.NOT_RESPONSIBLE,
        "may_reveal": user.role in MAY_CALL_BACK and bool(view.phone) and not revealed,
        "phone": view.phone if revealed else "", "revealed": revealed,
        "colleagues": await colleagues(conn, view.municipality_id) if open_now else [],
        "bodies": await bodies(conn) if user.role in MINISTRY else [],
        "has_recording": recording_file(settings, found.recording_path) is not None,
        "errors": errors or {}, "typed": typed or {}, "conflict": conflict, "notice": None,
        "open_now": open_now,
    }  # fmt: skip


@router.get("/requests/{reference}")
async def detail(
    request: Request,
    reference: str,
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    done: str | None = None,
    sms: str | None = None,
) -> Response:
    found = await visible(session, user, reference)
    context = await detail_context(session, user, found, settings)
    said = [_(NOTICES[k]) for k in (done, "sms" if sms else None) if k in NOTICES]
    context["notice"] = " ".join(said) or None
    return render(request, "requests/detail.html", context)


@router.post("/requests/{reference}/reveal")
async def reveal(
    request: Request,
    reference: str,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Show the reporter's number on this page, once; audited."""
    found = await visible(session, user, reference)
    if user.role not in MAY_CALL_BACK or not found.request.phone:
        raise NotFound(N_("This request has no number to show."))
    audit(
        session, actor=actor, action="requests.reveal_phone", target=f"request:{found.request.id}",
        reference=found.request.reference,
    )  # fmt: skip
    context = await detail_context(session, user, found, settings, revealed=True)
    return render(request, "requests/detail.html", context, headers={"Cache-Control": "no-store"})


@router.get("/requests/{reference}/recording")
async def recording(
    request: Request,
    reference: str,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The citizen's spoken description as WAV; each new listening audited."""
    found = await visible(session, user, reference)
    path = recording_file(settings, found.recording_path)
    if path is None:
        raise NotFound(N_("This request has no recording (never made, or deleted after the retention time)."))
    asked = request.headers.get("range", "").replace(" ", "")
    if not asked or asked.startswith("bytes=0-"):
        audit(
            session, actor=actor, action="requests.recording.play", target=f"request:{found.request.id}",
            file=path.name,
        )  # fmt: skip
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})
