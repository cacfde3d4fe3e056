"""What an agent does to a call from the desk beyond its state: transfer the caller to another
queue, and call the citizen back from the card. Both go through a short-lived AMI connection
of the ``serve`` process (:func:`ami_opener`), opened per click: the desk is not a telephony
process and keeps no AMI session of its own.

Usage::

    opener = ami_opener(settings)
    moved = await transfer(acd, opener, agent_id="7", to_queue="services", waited=42.0)
    await call_back(opener, settings, record)

**Transfer.** The caller's FastAGI session is blocked in ``EXEC Dial`` (the conversation) and
AGI cannot be interrupted from outside, so the engine moves the *caller's channel*: an AMI
``Redirect`` to ``[agent-transfer]``, exten = the transfer's id. Asterisk then ends the Dial
(the agent's leg hangs up), the old AGI session hears ``HANGUP``, and the dialplan runs the
``transfer`` AGI, whose session puts the caller in the other queue (``ToAgent.transferred``)
at the place kept here. The pending transfer waits in Redis for at most
:data:`TRANSFER_TTL_S` and is taken once (a second session for the same id finds nothing).
The new entry is enqueued by the session that holds the caller, never by the desk: a redirect
that goes astray leaves no waiting entry without a channel behind it.

**The place.** The caller joins the other queue *as if they had joined it when they first
began to wait, minus the conversation*: ``enqueued_at = now - waited``, where ``waited`` is
the time they waited before the first agent answered (from the ``entry.connected`` event).
Neither of the obvious choices is fair: *now* sends to the back a caller who already waited
their turn once (the centre chose the wrong queue, not they); the *original enqueue time*
also credits them the minutes they spent talking, and puts them ahead of callers who have
waited longer than they have. With the wait alone the routing core's one rule — the longest
*waiting* caller first — holds across the transfer, and the target queue's service level and
speed of answer count the caller's whole wait and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.errors import CallCenterError, Conflict, NotFound
from callcenter.messages import N_
from callcenter.routing.model import AgentState
from callcenter.routing.store import AgentRecord, Caller
from callcenter.settings import Settings
from callcenter.telephony import names
from callcenter.telephony.ami import AmiActionError, AmiClient, AmiError

#: a pending transfer is kept this long for the caller's new AGI session to take it
TRANSFER_TTL_S: Final = 120
#: the ids the dialplan's [agent-transfer] pattern accepts (a uuid4's hex)
TRANSFER_ID: Final = re.compile(r"^[0-9a-f]{32}$")
CONNECT_TIMEOUT_S: Final = 5.0
ACTION_TIMEOUT_S: Final = 5.0
#: the agent's own phone rings this long for a call back before the citizen is dialled
RING_AGENT_MS: Final = 20_000


class CallControl(Protocol):
    """The AMI actions the desk and the wallboard send (``AmiClient`` has them)."""

    async def originate(
        self,
        *,
        channel: str,
        application: str | None = None,
        data: str | None = None,
        variables: Mapping[str, str] | None = None,
        caller_id: str | None = None,
        timeout_ms: int | None = None,
    ) -> str: ...

    async def redirect(self, *, channel: str, context: str, exten: str, priority: int = 1) -> None: ...


AmiOpener = Callable[[], AbstractAsyncContextManager[CallControl]]


class TelephonyUnavailable(CallCenterError):
    """The telephony server (AMI) could not be reached or refused the action."""

    status_code = 503
    error_id = "telephony_unavailable"


class CallEnded(Conflict):
    """The call is over (or changed hands) since the page was drawn."""

    error_id = "call_ended"


class NotPossible(Conflict):
    """The action does not apply to this call (a callback, no number, the same queue)."""

    error_id = "not_possible"


def ami_opener(settings: Settings) -> AmiOpener:
    """A short-lived, logged-in AMI connection with the settings (events off, no pinger);
    :class:`TelephonyUnavailable` when it cannot be had within :data:`CONNECT_TIMEOUT_S`."""

    @asynccontextmanager
    async def opened() -> AsyncIterator[CallControl]:
        client = AmiClient(
            settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret,
            events="off", action_timeout=ACTION_TIMEOUT_S, ping_interval=None,
        )  # fmt: skip
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await client.connect()
        except (AmiError, TimeoutError) as exc:
            await client.close(logoff=False)
            raise TelephonyUnavailable(
                N_("The telephony server cannot be reached now."), reason=str(exc)
            ) from exc
        try:
            yield client
        finally:
            await client.close()

    return opened


# -- transfer ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingTransfer:
    """A caller on the way to another queue, between the desk's Redirect and the new session."""

    id: str  # the new entry's id, and the Redirect's exten
    entry: str  # the call transferred
    agent: str  # who transferred it
    from_queue: str | None
    queue: str  # where to
    enqueued_at: float  # the place in the new queue (see the module docstring)
    caller: Caller


def transfer_place(now: float, waited: float | None) -> float:
    """The enqueue time that gives the caller credit for the time they waited, not talked."""
    return now - max(0.0, float(waited or 0.0))


def _key(redis_prefix: str, transfer_id: str) -> str:
    return f"{redis_prefix}:transfer:{transfer_id}"


def _dump(pending: PendingTransfer) -> str:
    c = pending.caller
    return json.dumps(
        {
            "id": pending.id, "entry": pending.entry, "agent": pending.agent,
            "from_queue": pending.from_queue, "queue": pending.queue, "enqueued_at": pending.enqueued_at,
            "caller": [c.phone, c.citizen_id, c.language, list(c.path), c.call_id, c.channel, c.callback_id],
        },
        ensure_ascii=False,
    )  # fmt: skip


def _load(raw: bytes | str) -> PendingTransfer:
    d: dict[str, Any] = json.loads(raw)
    phone, citizen_id, language, path, call_id, channel, callback_id = d["caller"]
    caller = Caller(phone, citizen_id, language, tuple(path), call_id, channel, callback_id)
    return PendingTransfer(
        d["id"], d["entry"], d["agent"], d["from_queue"], d["queue"], float(d["enqueued_at"]), caller
    )


async def save_transfer(redis: Redis, prefix: str, pending: PendingTransfer) -> None:
    await redis.set(_key(prefix, pending.id), _dump(pending), ex=TRANSFER_TTL_S)


async def drop_transfer(redis: Redis, prefix: str, transfer_id: str) -> None:
    await redis.delete(_key(prefix, transfer_id))


async def take_transfer(redis: Redis, prefix: str, transfer_id: str) -> PendingTransfer | None:
    """The pending transfer, taken once (None: unknown, expired, taken already, or not an id)."""
    if not TRANSFER_ID.fullmatch(transfer_id):
        return None
    key = _key(prefix, transfer_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.get(key)
        pipe.delete(key)
        raw, deleted = await pipe.execute()
    if not raw or not deleted:
        return None
    return _load(raw)


async def waited_before(engine: AsyncEngine, entry: str) -> float | None:
    """How long the caller of ``entry`` waited before an agent answered (the log's
    ``entry.connected``); None if unknown."""
    ev = models.table(models.RoutingEvent)
    query = (
        select(ev.c.data)
        .where(ev.c.entry == entry, ev.c.kind == "entry.connected")
        .order_by(ev.c.id.desc())
        .limit(1)
    )
    async with engine.connect() as conn:
        data = (await conn.execute(query)).scalar()
    try:
        return float(data["waited"]) if data and data.get("waited") is not None else None
    except (TypeError, ValueError):
        return None


async def transfer(
    acd: Acd, opener: AmiOpener, *, agent_id: str, to_queue: str, waited: float | None
) -> PendingTransfer:
    """Move the caller of ``agent_id``'s call to ``to_queue`` (see the module docstring); the
    agent goes to wrap-up. :class:`CallEnded` when the call is over (checked again just
    before the Redirect, and by Asterisk: a channel that is gone cannot be redirected)."""
    record = await acd.store.agent(agent_id)
    if record is None or record.agent.state is not AgentState.ON_CALL or not record.entry:
        raise CallEnded(N_("The call has just ended: it was not transferred."), agent=agent_id)
    caller = record.caller or Caller()
    if not caller.channel:
        raise NotPossible(N_("This call cannot be transferred (a callback has no caller's line to move)."))
    snap = await acd.store.snapshot()
    try:
        snap.queue(to_queue)
    except NotFound:
        raise NotPossible(N_("There is no such queue."), queue=to_queue) from None
    if to_queue == record.queue:
        raise NotPossible(N_("The caller is in this queue already: choose another one."), queue=to_queue)
    pending = PendingTransfer(
        uuid.uuid4().hex, record.entry, agent_id, record.queue, to_queue, transfer_place(snap.now, waited),
        replace(caller, callback_id=None),
    )  # fmt: skip
    prefix = acd.store.keys.prefix
    await save_transfer(acd.redis, prefix, pending)
    redirected = False
    try:
        async with opener() as ami:
            now = await acd.store.agent(agent_id)
            if now is None or now.entry != record.entry or now.agent.state is not AgentState.ON_CALL:
                raise CallEnded(N_("The call has just ended: it was not transferred."), agent=agent_id)
            await ami.redirect(channel=caller.channel, context=names.CTX_AGENT_TRANSFER, exten=pending.id)
            redirected = True
    except AmiActionError as exc:
        if "does not exist" in str(exc).lower():  # the caller hung up meanwhile
            raise CallEnded(N_("The call has just ended: it was not transferred."), reason=str(exc)) from exc
        raise TelephonyUnavailable(N_("The telephony server refused the transfer."), reason=str(exc)) from exc
    except AmiError as exc:
        raise TelephonyUnavailable(
            N_("The telephony server cannot be reached now."), reason=str(exc)
        ) from exc
    finally:
        if not redirected:  # nobody will take it
            await drop_transfer(acd.redis, prefix, pending.id)
    await acd.ended(record.entry, agent_id)  # (or the old AGI session did, hearing its HANGUP)
    await acd.record(
        "entry.transferred", entry=record.entry, agent=agent_id, queue=record.queue,
        data={"to": to_queue, "entry": pending.id, "enqueued_at": pending.enqueued_at, "waited": waited},
    )  # fmt: skip
    return pending


# -- call back from the card ---------------------------------------------------------------------


def dial_string(settings: Settings, phone: str) -> str:
    """The citizen's leg, as campaign calls are dialled (``CALLCENTER_VOICE_DIAL_TEMPLATE``)."""
    return settings.voice_dial_template.format(number=phone)


async def call_back(opener: AmiOpener, settings: Settings, record: AgentRecord) -> str:
    """Ring the agent's own phone; once they answer, Asterisk dials the citizen of the call
    they are wrapping up (an Originate whose application is ``Dial``). The number never
    leaves the server. Returns the Originate's ActionID."""
    if record.agent.state is not AgentState.WRAP_UP or not record.entry:
        raise CallEnded(N_("You can call the citizen back during the wrap-up of their call."))
    phone = record.caller.phone if record.caller else ""
    if not phone.startswith("+"):
        raise NotPossible(N_("There is no number to call back: the caller's number was not given."))
    if not record.endpoint:
        raise NotPossible(N_("You have no phone set up: ask a supervisor."))
    seconds = max(1, math.ceil(settings.originate_timeout_s))
    async with opener() as ami:
        try:
            return await ami.originate(
                channel=record.endpoint,
                application="Dial",
                data=f"{dial_string(settings, phone)},{seconds}",
                variables={names.VAR_ENTRY: record.entry, names.VAR_AGENT: record.id},
                caller_id=settings.voice_caller_id,
                timeout_ms=RING_AGENT_MS,
            )
        except AmiError as exc:
            raise TelephonyUnavailable(
                N_("The telephony server cannot be reached now."), reason=str(exc)
            ) from exc
