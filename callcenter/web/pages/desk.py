"""``/desk``: the agent's desk — their state and its controls, the caller's card, wrap-up.

The page follows the agent's ``desk:<id>`` live topic: each ``desk.agent`` event that changes
the agent's state (or the caller held) makes the page fetch its two fragments again,
``/desk/state`` (state, timer, controls) and ``/desk/card`` (the caller's card), without a
reload. The stream is also the desk's contact (see ``pages.live``). The buttons are plain
forms: every move is checked against the state the agent saw, audited, and sent through the
ACD so that it is logged and announced like any other routing change. During and after a call
(notes, transfer, call back, the service request form) see ``pages.desk_call``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.accounts.principal import Principal
from callcenter.audit import Actor, audit
from callcenter.desk.acd import Acd
from callcenter.desk.cards import HOLDING, read_card
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.requests.reference import BadReference, parse
from callcenter.requests.store import read_catalogue
from callcenter.routing.model import AgentState, AgentTransitionError
from callcenter.routing.store import AgentRecord
from callcenter.settings import Settings
from callcenter.voice.tickets import reference as ticket_reference
from callcenter.web.deps import EngineDep, RedisDep, SessionDep, SettingsDep
from callcenter.web.i18n import current_language
from callcenter.web.i18n import gettext as _
from callcenter.web.pages import live
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

#: What the agent may choose from each state (a pause from a pause changes its reason).
MOVES: Final[dict[AgentState, tuple[AgentState, ...]]] = {
    AgentState.OFFLINE: (AgentState.READY, AgentState.PAUSED),
    AgentState.READY: (AgentState.PAUSED, AgentState.OFFLINE),
    AgentState.RESERVED: (),
    AgentState.RINGING: (),
    AgentState.ON_CALL: (),
    AgentState.WRAP_UP: (AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE),
    AgentState.PAUSED: (AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE),
    AgentState.MISSED: (AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE),
    AgentState.LOST_CONTACT: (AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE),
}
CHOSEN: Final = frozenset({AgentState.READY, AgentState.PAUSED, AgentState.OFFLINE})
NOTES_LIMIT: Final = 2000
DONE: Final = {
    "ready": N_("You are ready: calls come to your phone."),
    "paused": N_("You are paused: no calls come to you until you choose Ready."),
    "offline": N_("You are offline."),
    "note": N_("Your note is saved with the call."),
    "transferred": N_("The caller is on the way to the other queue. Wrap up the call."),
    "calling": N_("Your phone rings now: answer it and the citizen is called."),
}


@dataclass(frozen=True, slots=True)
class Desk:
    """The agent's desk: None when the user is not set up to take calls."""

    agent_id: str
    record: AgentRecord | None


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str


async def _desk(engine: AsyncEngine, acd: Acd, user: Principal) -> Desk:
    """The user's desk: their agent record from the routing store (loaded from the database
    when the store does not know them yet); ``record`` None when they have no active agent
    profile."""
    agent_id = str(user.user_id)
    if user.user_id is None:
        return Desk(agent_id, None)
    profile = models.table(models.AgentProfile)
    async with engine.connect() as conn:
        active = (
            await conn.execute(select(profile.c.active).where(profile.c.user_id == user.user_id))
        ).scalar()
    if not active:
        return Desk(agent_id, None)
    record = await acd.store.agent(agent_id)
    if record is None:
        await acd.load()
        record = await acd.store.agent(agent_id)
    return Desk(agent_id, record)


def _labels(keys: list[str], known: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "label": _(known[k]) if k in known else k} for k in keys]


PAUSE_REASONS: Final = {
    "break": N_("Break"),
    "training": N_("Training"),
    "meeting": N_("Meeting"),
    "admin": N_("Administrative work"),
}
DISPOSITIONS: Final = {
    "resolved": N_("Resolved"),
    "information_given": N_("Information given"),
    "service_request": N_("Service request recorded"),
    "transferred": N_("Transferred"),
    "no_action": N_("No action needed"),
}


async def _queue_name(acd: Acd, key: str | None) -> str:
    if not key:
        return ""
    snap = await acd.store.snapshot()
    for q in snap.queues:
        if q.queue.id == key:
            english = current_language.get() == "en"
            return (q.name_en if english and q.name_en else q.name_ar) or key
    return key


async def _state_context(acd: Acd, settings: Settings, desk: Desk) -> dict[str, Any]:
    record = desk.record
    if record is None:
        return {"set_up": False, "agent_id": desk.agent_id}
    now = await acd.store._now()
    agent = record.agent
    return {
        "set_up": True,
        "agent_id": desk.agent_id,
        "state": str(agent.state),
        "since": agent.since,
        "elapsed": max(0.0, now - agent.since),
        "pause_reason": agent.pause_reason,
        "entry": record.entry if agent.state in HOLDING else None,
        "held": record.entry,  # as the desk.agent events carry it
        "moves": [str(m) for m in MOVES[agent.state]],
        "pause_reasons": _labels(settings.pause_reasons, PAUSE_REASONS),
        "dispositions": _labels(settings.dispositions, DISPOSITIONS),
        "notes_required": settings.wrap_up_notes_required,
    } | await _call_context(acd, record)


NOTE_EVENT: Final = "entry.note"
#: what the call's log says -> the disposition the wrap-up starts from
SUGGESTS: Final = {"entry.transferred": "transferred", "entry.ticket": "service_request"}


async def _call_context(acd: Acd, record: AgentRecord) -> dict[str, Any]:
    """What the forms during and after a call need: the other queues to transfer to, the
    notes saved during the call (shown, and the wrap-up's notes start from them), the
    municipalities for the service request (the caller's first)."""
    state = record.agent.state
    if state not in (AgentState.ON_CALL, AgentState.WRAP_UP) or not record.entry:
        return {}
    ev, c = models.table(models.RoutingEvent), models.table(models.Citizen)
    m = models.table(models.Municipality)
    caller = record.caller
    english = current_language.get() == "en"
    async with acd.engine.connect() as conn:
        done = (
            await conn.execute(
                select(ev.c.kind, ev.c.data)
                .where(ev.c.entry == record.entry, ev.c.kind.in_((NOTE_EVENT, *SUGGESTS)))
                .order_by(ev.c.id)
            )
        ).all()
        notes = [str((row.data or {}).get("notes") or "") for row in done if row.kind == NOTE_EVENT]
        context: dict[str, Any] = {"call_notes": [n for n in notes if n]}
        # a transfer or a service request made during this call suggests the disposition
        suggested = [SUGGESTS[row.kind] for row in done if row.kind in SUGGESTS]
        context["suggested_disposition"] = suggested[-1] if suggested else ""
        if state is AgentState.ON_CALL:
            snap = await acd.store.snapshot()
            others = [q for q in snap.queues if q.queue.id != record.queue]
            context["transfer_queues"] = [
                {
                    "key": q.queue.id,
                    "label": (q.name_en if english and q.name_en else q.name_ar) or q.queue.id,
                }
                for q in others
            ]
            context["transferable"] = bool(caller and caller.channel)
            return context
        rows = (await conn.execute(select(m.c.id, m.c.name_ar, m.c.name_en).order_by(m.c.name_ar))).all()
        catalogue = await read_catalogue(conn)  # the service catalogue's categories, when loaded
        home = None
        if caller is not None and (caller.citizen_id is not None or caller.phone):
            who = c.c.id == caller.citizen_id if caller.citizen_id is not None else c.c.phone == caller.phone
            home = (await conn.execute(select(c.c.municipality_id).where(who))).scalar()
    context["municipalities"] = [
        {"id": str(r.id), "label": (r.name_en if english and r.name_en else r.name_ar)} for r in rows
    ]
    context["home_municipality"] = str(home) if home is not None else ""
    context["categories"] = [
        {"key": cat.key, "label": (cat.name_en if english and cat.name_en else cat.name_ar)}
        for cat in sorted(catalogue.categories.values(), key=lambda cat: int(cat.keypad))
    ]
    context["saved_notes"] = "\n".join(context["call_notes"])
    return context


async def _card_context(engine: AsyncEngine, acd: Acd, desk: Desk) -> dict[str, Any]:
    card = await read_card(engine, desk.record)
    english = current_language.get() == "en"
    record = desk.record
    return {
        "card": card,
        "can_call_back": bool(
            card
            and record is not None
            and record.agent.state is AgentState.WRAP_UP
            and record.caller is not None
            and record.caller.phone.startswith("+")
        ),
        "queue_name": await _queue_name(acd, card.queue) if card else "",
        "municipality": (
            (card.municipality_en if english and card.municipality_en else card.municipality_ar)
            if card
            else ""
        ),
        "english": english,
    }


async def _page(
    request: Request,
    engine: AsyncEngine,
    acd: Acd,
    settings: Settings,
    desk: Desk,
    *,
    problems: list[Problem] | None = None,
    error: str | None = None,
    notice: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context = await _state_context(acd, settings, desk)
    if desk.record is not None:
        context |= await _card_context(engine, acd, desk)
        await acd.store.touch(desk.agent_id, ttl_s=live.CONTACT_TTL_S)
    problems = problems or []
    context |= {
        "problems": problems,
        "errors": {p.field: p.message for p in reversed(problems)},
        "error": error,
        "notice": notice,
        "form": form or {},
    }
    return render(request, "desk/index.html", context, status_code=status_code)


def _request_reference(text: str) -> str | None:
    """A service request's reference from the query string, checked (never echoed raw)."""
    try:
        return parse(text[:20]).display
    except BadReference:
        return None


@router.get("/desk")
async def desk_page(
    request: Request,
    user: CurrentUser,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    done: str = "",
    ticket: str = "",
    reference: str = "",
) -> Response:
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    notice = DONE.get(done)
    text = _(notice) if notice else None
    if done == "ticket" and ticket.isascii() and ticket.isdigit() and 0 < int(ticket) < 10**12:
        said = Markup(escape(_("Service request %(reference)s is recorded: give the caller this reference.")))
        shown = Markup('<bdi class="mono" dir="ltr">{}</bdi>').format(ticket_reference(int(ticket)))
        text = said % {"reference": shown}
    if done == "request" and (made := _request_reference(reference)) is not None:
        said = Markup(escape(_("Service request %(reference)s is recorded: give the caller this reference.")))
        shown = Markup('<bdi class="mono" dir="ltr">{}</bdi>').format(made)
        text = said % {"reference": shown} + " " + _("The caller also gets it by SMS with the expected date.")
    return await _page(request, engine, acd, settings, desk, notice=text)


@router.get("/desk/state")
async def state_fragment(
    request: Request, user: CurrentUser, engine: EngineDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    """The state, its timer and the controls, for the desk to swap in on a ``desk.agent`` event."""
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    context = await _state_context(acd, settings, desk) | {"errors": {}, "form": {}}
    return render(request, "desk/state.html", context, headers={"Cache-Control": "no-store"})


@router.get("/desk/card")
async def card_fragment(
    request: Request, user: CurrentUser, engine: EngineDep, redis: RedisDep, entry: str = ""
) -> Response:
    """The caller's card of the call the agent holds (``entry``: only that call's, else not
    found: an agent never reads the card of a call that is not theirs)."""
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    record = desk.record
    holds = record.entry if record is not None and record.agent.state in HOLDING else None
    if entry and entry[:64] != holds:
        raise NotFound(N_("There is no such call on your desk."))
    context = await _card_context(engine, acd, desk) if record is not None else {"card": None}
    return render(request, "desk/card.html", context, headers={"Cache-Control": "no-store"})


def _check(
    form: dict[str, str], current: AgentState, settings: Settings
) -> tuple[AgentState | None, list[Problem]]:
    """The move asked for, and what is wrong with the form."""
    problems: list[Problem] = []
    try:
        to: AgentState | None = AgentState(form["to"])
    except ValueError:
        to = None
    if to not in CHOSEN:
        return None, [Problem("to", _("Choose Ready, Pause or Offline."))]
    assert to is not None
    if to is AgentState.PAUSED and form["reason"] not in settings.pause_reasons:
        problems.append(Problem("reason", _("Choose a reason for the pause.")))
    if current is AgentState.WRAP_UP and to is not AgentState.OFFLINE:
        if form["disposition"] not in settings.dispositions:
            problems.append(
                Problem("disposition", _("Choose how the call ended (its disposition) before the next call."))
            )
        if settings.wrap_up_notes_required and not form["notes"].strip():
            problems.append(Problem("notes", _("Write a note about the call before the next call.")))
    return to, problems


def _state_word(state: AgentState) -> str:
    words = {
        AgentState.OFFLINE: N_("Offline"),
        AgentState.READY: N_("Ready"),
        AgentState.RESERVED: N_("Call offered"),
        AgentState.RINGING: N_("Ringing"),
        AgentState.ON_CALL: N_("On a call"),
        AgentState.WRAP_UP: N_("Wrap-up"),
        AgentState.PAUSED: N_("Paused"),
        AgentState.MISSED: N_("Missed a call"),
        AgentState.LOST_CONTACT: N_("Lost contact"),
    }
    return _(words[state])


@router.post("/desk/state")
async def change_state(
    request: Request,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    acd = Acd(engine, redis)
    desk = await _desk(engine, acd, user)
    if desk.record is None:
        return await _page(request, engine, acd, settings, desk, status_code=409)
    form = {
        "to": await form_text(request, "to", limit=20),
        "shown": await form_text(request, "shown", limit=20),
        "reason": await form_text(request, "reason", limit=64),
        "disposition": await form_text(request, "disposition", limit=64),
        "notes": await form_text(request, "notes", limit=NOTES_LIMIT),
    }
    current = desk.record.agent.state
    if form["shown"] and form["shown"] != str(current):
        return await _changed_meanwhile(request, engine, acd, settings, desk, form)
    to, problems = _check(form, current, settings)
    if problems or to is None:
        return await _page(
            request, engine, acd, settings, desk, problems=problems, form=form, status_code=422
        )
    if to not in MOVES[current]:
        message = _("You cannot go from %(from)s to %(to)s now.") % {
            "from": _state_word(current),
            "to": _state_word(to),
        }
        return await _page(request, engine, acd, settings, desk, error=message, form=form, status_code=409)
    record = desk.record
    disposition = form["disposition"] if form["disposition"] in settings.dispositions else None
    try:
        change = await acd.agent_state(
            desk.agent_id,
            to,
            reason=form["reason"] if to is AgentState.PAUSED else None,
            disposition=disposition if current is AgentState.WRAP_UP else None,
            expect=frozenset({current}),
        )
    except AgentTransitionError:
        return await _changed_meanwhile(request, engine, acd, settings, desk, form)
    if not change.events:
        return await _changed_meanwhile(request, engine, acd, settings, desk, form)
    if current is AgentState.WRAP_UP and (disposition or form["notes"].strip()):
        await acd.record(
            "entry.wrapup",
            entry=record.entry,
            agent=desk.agent_id,
            queue=record.queue,
            data={"disposition": disposition, "notes": form["notes"].strip()},
        )
    _audit(session, actor, desk.agent_id, record, to, form, disposition)
    await acd.store.touch(desk.agent_id, ttl_s=live.CONTACT_TTL_S)
    return redirect(f"/desk?done={to}")


def _audit(
    session: AsyncSession,
    actor: Actor,
    agent_id: str,
    record: AgentRecord,
    to: AgentState,
    form: dict[str, str],
    disposition: str | None,
) -> None:
    after: dict[str, Any] = {"state": str(to)}
    if to is AgentState.PAUSED:
        after["reason"] = form["reason"]
    if disposition:
        after["disposition"] = disposition
    audit(
        session,
        actor=actor,
        action="desk.state",
        target=f"agent:{agent_id}",
        before={"state": str(record.agent.state), "entry": record.entry},
        after=after,
    )


async def _changed_meanwhile(
    request: Request, engine: AsyncEngine, acd: Acd, settings: Settings, desk: Desk, form: dict[str, str]
) -> Response:
    """The agent's state moved on since the page was drawn (a call came, the desk was swept)."""
    fresh = Desk(desk.agent_id, await acd.store.agent(desk.agent_id))
    state = fresh.record.agent.state if fresh.record else AgentState.OFFLINE
    message = _("Your state changed meanwhile: you are now %(state)s. Check it and choose again.") % {
        "state": _state_word(state)
    }
    return await _page(request, engine, acd, settings, fresh, error=message, form=form, status_code=409)
