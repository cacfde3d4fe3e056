"""The desk during and after a call: notes saved with the call, a transfer to another queue,
a call back to the citizen from the card, and the wrap-up's service request form.

Each form names the call it was drawn for (``entry``): a click that arrives after the call
ended or changed hands acts on nothing and says so. Every action is audited; what it changes
in the call's history goes on the routing event log (``entry.note``, ``entry.transferred``,
``call.back``, ``entry.ticket``). The caller's number never reaches the browser: the call back
and the transfer act on the call the agent holds, on the server.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import Actor, audit
from callcenter.desk.acd import Acd
from callcenter.desk.call_control import (
    CallEnded,
    NotPossible,
    TelephonyUnavailable,
    call_back,
    transfer,
    waited_before,
)
from callcenter.errors import CallCenterError
from callcenter.phones import mask_phone
from callcenter.requests.catalogue import Catalogue
from callcenter.requests.notify import confirm_created
from callcenter.requests.service import Intake, create_request
from callcenter.requests.store import load_calendar, read_catalogue
from callcenter.routing.model import AgentState
from callcenter.routing.store import AgentRecord, Caller
from callcenter.settings import Settings
from callcenter.voice.tickets import SERVICE, create_ticket
from callcenter.web.deps import AmiDep, EngineDep, RedisDep, SessionDep, SettingsDep
from callcenter.web.i18n import gettext as _
from callcenter.web.pages import live
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.pages.desk import NOTE_EVENT, NOTES_LIMIT, Desk, Problem, _desk, _page

router = APIRouter(include_in_schema=False)

CATEGORY_LIMIT: Final = 120
DESCRIPTION_LIMIT: Final = 1500
TICKET_EVENT: Final = "entry.ticket"
CALL_BACK_EVENT: Final = "call.back"


def _holds(desk: Desk, entry: str, *states: AgentState) -> AgentRecord | None:
    """The agent's record if they hold ``entry`` in one of ``states`` now, else None."""
    record = desk.record
    if record is None or not entry or record.entry != entry or record.agent.state not in states:
        return None
    return record


async def _gone(
    request: Request,
    engine: AsyncEngine,
    acd: Acd,
    settings: Settings,
    desk: Desk,
    message: str,
    form: dict[str, str],
) -> Response:
    """The page again, saying the call is not there any more (nothing was done)."""
    fresh = Desk(desk.agent_id, await acd.store.agent(desk.agent_id))
    return await _page(request, engine, acd, settings, fresh, error=message, form=form, status_code=409)


async def _text(request: Request, name: str, limit: int) -> tuple[str, bool]:
    """The field, stripped, and whether it was longer than ``limit`` (read one more to know)."""
    value = (await form_text(request, name, limit=limit + 1)).strip()
    return value[:limit], len(value) > limit


@router.post("/desk/notes")
async def save_note(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    """A note during the call, saved with it at once (the wrap-up's notes start from them)."""
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    entry = await form_text(request, "entry", limit=64)
    note, too_long = await _text(request, "note", NOTES_LIMIT)
    form = {"note": note}
    record = _holds(desk, entry, AgentState.ON_CALL)
    if record is None:
        return await _gone(
            request,
            engine,
            acd,
            settings,
            desk,
            _("The call has ended: write your note in the wrap-up."),
            form,
        )
    if not note or too_long:
        message = (
            _("A note has at most %(limit)s characters.") % {"limit": NOTES_LIMIT}
            if too_long
            else _("Write the note first.")
        )
        problem = Problem("note", message)
        return await _page(
            request, engine, acd, settings, desk, problems=[problem], form=form, status_code=422
        )
    await acd.record(NOTE_EVENT, entry=entry, agent=desk.agent_id, queue=record.queue, data={"notes": note})
    audit(
        session,
        actor=actor,
        action="desk.note",
        target=f"agent:{desk.agent_id}",
        entry=entry,
        length=len(note),
    )
    await acd.store.touch(desk.agent_id, ttl_s=live.CONTACT_TTL_S)
    return redirect("/desk?done=note")


@router.post("/desk/transfer")
async def transfer_call(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    ami: AmiDep,
) -> Response:
    """The caller to another queue, keeping the time they waited (``desk.call_control``)."""
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    entry = await form_text(request, "entry", limit=64)
    queue = (await form_text(request, "queue", limit=64)).strip()
    form = {"queue": queue}
    record = _holds(desk, entry, AgentState.ON_CALL)
    if record is None:
        return await _gone(
            request, engine, acd, settings, desk, _("The call has just ended: it was not transferred."), form
        )
    if not queue:
        problem = Problem("queue", _("Choose the queue to transfer the caller to."))
        return await _page(
            request, engine, acd, settings, desk, problems=[problem], form=form, status_code=422
        )
    try:
        moved = await transfer(
            acd, ami, agent_id=desk.agent_id, to_queue=queue, waited=await waited_before(engine, entry)
        )
    except NotPossible as exc:
        problem = Problem("queue", _(exc.message))
        return await _page(
            request, engine, acd, settings, desk, problems=[problem], form=form, status_code=422
        )
    except CallEnded as exc:
        return await _gone(request, engine, acd, settings, desk, _(exc.message), form)
    except TelephonyUnavailable as exc:
        return await _page(
            request, engine, acd, settings, desk, error=_(exc.message), form=form, status_code=503
        )
    audit(
        session, actor=actor, action="desk.transfer", target=f"agent:{desk.agent_id}",
        before={"entry": entry, "queue": record.queue}, after={"entry": moved.id, "queue": moved.queue},
        enqueued_at=moved.enqueued_at,
    )  # fmt: skip
    await acd.store.touch(desk.agent_id, ttl_s=live.CONTACT_TTL_S)
    return redirect("/desk?done=transferred")


@router.post("/desk/call-back")
async def call_back_citizen(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    ami: AmiDep,
) -> Response:
    """Click-to-call from the card: the agent's phone rings, then the citizen is dialled."""
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    entry = await form_text(request, "entry", limit=64)
    record = _holds(desk, entry, AgentState.WRAP_UP)
    if record is None:
        return await _gone(
            request,
            engine,
            acd,
            settings,
            desk,
            _("You can call the citizen back during the wrap-up of their call."),
            {},
        )
    try:
        action_id = await call_back(ami, settings, record)
    except (NotPossible, CallEnded) as exc:
        return await _page(request, engine, acd, settings, desk, error=_(exc.message), status_code=409)
    except TelephonyUnavailable as exc:
        return await _page(request, engine, acd, settings, desk, error=_(exc.message), status_code=503)
    phone = mask_phone(record.caller.phone) if record.caller else ""
    await acd.record(CALL_BACK_EVENT, entry=entry, agent=desk.agent_id, queue=record.queue,
                     data={"phone": phone, "action": action_id})  # fmt: skip
    audit(
        session,
        actor=actor,
        action="desk.call_back",
        target=f"agent:{desk.agent_id}",
        entry=entry,
        phone=phone,
    )
    await acd.store.touch(desk.agent_id, ttl_s=live.CONTACT_TTL_S)
    return redirect("/desk?done=calling")


async def _municipality(engine: AsyncEngine, value: str) -> int | None:
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    m = models.table(models.Municipality)
    async with engine.connect() as conn:
        found = (await conn.execute(select(m.c.id).where(m.c.id == int(value)))).scalar()
    return int(found) if found is not None else None


@router.post("/desk/ticket")
async def service_request(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    """The wrap-up's service request, for the caller of the call being wrapped up: a ticket
    (kind ``service``: the call's history links to it) and, when the service catalogue is
    loaded, the service request itself (category from the catalogue, routed, on its SLA
    clock), whose reference the agent reads out and the caller gets by SMS with the expected
    date. Without a catalogue the ticket alone is kept, as before."""
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    entry = await form_text(request, "entry", limit=64)
    category, long_category = await _text(request, "category", CATEGORY_LIMIT)
    description, long_description = await _text(request, "description", DESCRIPTION_LIMIT)
    municipality_field = (await form_text(request, "municipality", limit=20)).strip()
    form = {"category": category, "description": description, "municipality": municipality_field}
    record = _holds(desk, entry, AgentState.WRAP_UP, AgentState.ON_CALL)
    if record is None:
        return await _gone(
            request,
            engine,
            acd,
            settings,
            desk,
            _("The call is no longer on your desk: the request was not recorded."),
            form,
        )
    problems = []
    catalogue = await _catalogue(engine)
    chosen = catalogue.categories.get(category) if catalogue.categories else None
    if catalogue.categories and chosen is None:
        problems.append(Problem("category", _("Choose the category of the request.")))
    elif not category:
        problems.append(Problem("category", _("Write what the request is about (its category).")))
    elif long_category:
        problems.append(
            Problem(
                "category", _("The category has at most %(limit)s characters.") % {"limit": CATEGORY_LIMIT}
            )
        )
    municipality = await _municipality(engine, municipality_field) if municipality_field else None
    if municipality is None:
        problems.append(Problem("municipality", _("Choose the municipality the request is for.")))
    if not description:
        problems.append(Problem("description", _("Describe the request.")))
    elif long_description:
        problems.append(
            Problem(
                "description",
                _("The description has at most %(limit)s characters.") % {"limit": DESCRIPTION_LIMIT},
            )
        )
    if problems or municipality is None:
        return await _page(
            request, engine, acd, settings, desk, problems=problems, form=form, status_code=422
        )
    caller = record.caller or Caller()
    ticket = await create_ticket(
        engine, kind=SERVICE, phone=caller.phone, citizen_id=caller.citizen_id,
        call_id=await _call_id(engine, caller.call_id), callback=False,
        notes=f"{chosen.name_ar if chosen else category}\n{description}", municipality_id=municipality,
    )  # fmt: skip
    data: dict[str, object] = {"ticket": ticket.id, "category": category}
    made = None
    if chosen is not None:
        intake = Intake(
            category=chosen.key, channel="desk", description=description, phone=caller.phone,
            municipality=await _municipality_code(engine, municipality), citizen_id=caller.citizen_id,
            language=caller.language, ticket_id=ticket.id,
        )  # fmt: skip
        try:
            made = await create_request(
                session,
                intake,
                actor=actor,
                calendar=await load_calendar(engine, settings),
                settings=settings,
            )
        except CallCenterError as exc:
            await session.rollback()
            return await _page(
                request, engine, acd, settings, desk, error=_(exc.message), form=form, status_code=422
            )
        await session.commit()  # before the routing log's own write (SQLite: one writer)
        data["request"] = made.reference
    await acd.record(TICKET_EVENT, entry=entry, agent=desk.agent_id, queue=record.queue, data=data)
    _audit_ticket(session, actor, desk.agent_id, entry, ticket.id, category, municipality)
    await acd.store.touch(desk.agent_id, ttl_s=live.CONTACT_TTL_S)
    if made is None:
        return redirect(f"/desk?done=ticket&ticket={ticket.id}")
    await session.commit()  # the audit row; the citizen is texted about a request that exists
    await confirm_created(settings, engine, redis, made)
    return redirect(f"/desk?done=request&reference={made.reference}")


async def _catalogue(engine: AsyncEngine) -> Catalogue:
    async with engine.connect() as conn:
        return await read_catalogue(conn)


async def _municipality_code(engine: AsyncEngine, municipality_id: int) -> str:
    m = models.table(models.Municipality)
    async with engine.connect() as conn:
        return str((await conn.execute(select(m.c.code).where(m.c.id == municipality_id))).scalar_one())


async def _call_id(engine: AsyncEngine, call_id: int | None) -> int | None:
    """The call's row if it exists (a stale id must not stop the ticket on a foreign key)."""
    if call_id is None:
        return None
    c = models.table(models.Call)
    async with engine.connect() as conn:
        return (await conn.execute(select(c.c.id).where(c.c.id == call_id))).scalar()


def _audit_ticket(
    session: AsyncSession,
    actor: Actor,
    agent_id: str,
    entry: str,
    ticket_id: int,
    category: str,
    municipality: int,
) -> None:
    audit(
        session, actor=actor, action="desk.ticket", target=f"ticket:{ticket_id}",
        after={"kind": SERVICE, "category": category, "municipality_id": municipality},
        entry=entry, agent=agent_id,
    )  # fmt: skip
