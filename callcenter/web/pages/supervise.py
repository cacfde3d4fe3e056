"""Supervisors act on calls from the wallboard: listen to, whisper to or barge into an agent's
call (``desk.supervise``: ChanSpy through an AMI Originate that rings the supervisor's own
phone, the endpoint of their agent profile), and play a call's recording.

Each click opens a short-lived AMI connection (``AmiDep``). A call that ended between the
page's last refresh and the click is said to have ended, on the wallboard, with nothing
rung; a supervisor without a phone is told to ask for one. Every spy and every playback is
audited (a playback once per listening: the browser's further range requests are not).
"""

from __future__ import annotations

import re
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.accounts.principal import Principal
from callcenter.audit import audit
from callcenter.desk.call_control import TelephonyUnavailable
from callcenter.desk.recordings import recording_of, resolve
from callcenter.desk.supervise import NoCallToSpy, SpyMode, spy
from callcenter.errors import NotFound
from callcenter.messages import N_
from callcenter.routing.model import AgentState
from callcenter.routing.store import RoutingStore
from callcenter.settings import Settings
from callcenter.telephony.ami import AmiError
from callcenter.web.deps import AmiDep, EngineDep, RedisDep, SessionDep, SettingsDep
from callcenter.web.i18n import gettext as _
from callcenter.web.pages.common import CurrentActor, CurrentUser, form_text, redirect
from callcenter.web.pages.wallboard import RECENT, SPY_NOTICES, _figures_context
from callcenter.web.templating import render

router = APIRouter(include_in_schema=False)

AGENT_ID: Final = re.compile(r"^[0-9]{1,18}$")
ENTRY_ID: Final = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


async def _board(
    request: Request, engine: AsyncEngine, redis: Redis, settings: Settings, *, status_code: int, error: str
) -> Response:
    board = await RECENT.get(engine, redis, settings)
    context = _figures_context(board) | {"error": error, "notice": None}
    return render(request, "wallboard/index.html", context, status_code=status_code)


async def own_phone(engine: AsyncEngine, user: Principal) -> str | None:
    """The supervisor's own phone: the endpoint of their agent profile (active or not)."""
    if user.user_id is None:
        return None
    a = models.table(models.AgentProfile)
    async with engine.connect() as conn:
        endpoint = (await conn.execute(select(a.c.endpoint).where(a.c.user_id == user.user_id))).scalar()
    return str(endpoint) if endpoint else None


@router.post("/wallboard/agents/{agent_id}/spy")
async def spy_on_call(
    request: Request,
    agent_id: str,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    redis: RedisDep,
    settings: SettingsDep,
    ami: AmiDep,
) -> Response:
    mode = await form_text(request, "mode", limit=16)
    if not AGENT_ID.fullmatch(agent_id):
        raise NotFound(N_("There is no such agent."))
    store = RoutingStore(redis)
    record = await store.agent(agent_id)
    if record is None:
        raise NotFound(N_("There is no such agent."))
    name = record.name or agent_id
    if mode not in SPY_NOTICES:
        return await _board(request, engine, redis, settings, status_code=422,
                            error=_("Choose listen, whisper or barge."))  # fmt: skip
    ended = _("%(agent)s's call has just ended: there is nothing to listen to.") % {"agent": name}
    if record.agent.state is not AgentState.ON_CALL:
        return await _board(request, engine, redis, settings, status_code=409, error=ended)
    phone = await own_phone(engine, user)
    if phone is None:
        message = _("You have no phone to listen with: ask an admin for an agent profile with your phone.")
        return await _board(request, engine, redis, settings, status_code=409, error=message)
    try:
        async with ami() as control:
            action_id = await spy(
                control, store, agent_id=agent_id, supervisor_endpoint=phone, mode=SpyMode(mode)
            )
    except NoCallToSpy:
        return await _board(request, engine, redis, settings, status_code=409, error=ended)
    except (TelephonyUnavailable, AmiError):
        message = _("The telephony server cannot be reached now.")
        return await _board(request, engine, redis, settings, status_code=503, error=message)
    audit(
        session, actor=actor, action=f"wallboard.{mode}", target=f"agent:{agent_id}",
        entry=record.entry, phone=phone, action_id=action_id,
    )  # fmt: skip
    return redirect(f"/wallboard?spy={mode}&agent={agent_id}")


@router.get("/wallboard/recordings/{entry}")
async def play_recording(
    request: Request,
    entry: str,
    user: CurrentUser,
    actor: CurrentActor,
    session: SessionDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> Response:
    """The call's recording as WAV. The file's name comes from the call's ``call.recording``
    event, never from the request, and must resolve inside the recordings directory."""
    if not ENTRY_ID.fullmatch(entry):
        raise NotFound(N_("There is no recording of this call."))
    name = await recording_of(engine, entry)
    path = resolve(settings, name) if name else None
    if name is None or path is None:
        raise NotFound(
            N_("There is no recording of this call (deleted after the retention time, or never made).")
        )
    asked = request.headers.get("range", "").replace(" ", "")
    if not asked or asked.startswith("bytes=0-"):  # a new listening, not the rest of one
        audit(session, actor=actor, action="recording.play", target=f"call:{entry}", file=name)
    return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})
