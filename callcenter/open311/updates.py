"""POST servicerequestupdates (mySociety's extension): a client tells 1415 of an update on a
request it made, as FixMyStreet sends its users' comments on a report to the council.

A client speaks for the citizen who reported the request (1415's officers work requests in
1415, not in the client), so an update goes through the life cycle with the role
``citizen``: a public note, or the reporter's reopening of a finished request within the
reopening window. ``status`` is the request's status after the update, as the client sees it:

* the same side of open / closed as the request (``OPEN`` or ``INVESTIGATING`` on an open
  request, ``FIXED`` or ``CLOSED`` on a resolved one): a note; the extended status a client
  sends may lag behind the body's latest move, and only the body moves a request between its
  working states;
* ``OPEN`` (or any open status) on a finished request, or ``REOPEN``: the reporter reopens it;
* a finished status on an open request (``FIXED``, ``CLOSED``, ``DUPLICATE``): refused, 400 —
  only the responsible body resolves a request.

The life cycle's refusals (a move that does not exist, a role that may not make it, a request
resolved too long ago) come back as 400 with the reason. ``update_id`` is the client's own id
of the update: sent again by the same client for the same request, nothing new is stored and
the answer is the same (1415's id of the update, the ``request_event`` that holds it, which is
also the ``update_id`` GET servicerequestupdates gives, so a client recognises its own update
there). Two identical updates racing each other: the request's version guard lets one write,
and the other finds it and answers with it.

A client updates only requests it made (as GET servicerequestupdates tells it only of
those), within its jurisdictions; a request outside them is "not found", as for GET.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from callcenter import models
from callcenter.errors import InvalidTransition
from callcenter.open311.clients import Client
from callcenter.open311.params import Open311Error, UpdateSubmission
from callcenter.open311.read import municipality_id
from callcenter.open311.statuses import extended, standard
from callcenter.requests import lifecycle
from callcenter.requests.calendar import WorkingCalendar
from callcenter.requests.lifecycle import CITIZEN, NotAllowed, NoteRequired, Status
from callcenter.requests.read import RequestView
from callcenter.requests.service import BadIntake, StaleRequest, add_note, change_status
from callcenter.settings import Settings

REQUEST = models.table(models.ServiceRequest)
EVENT = models.table(models.RequestEvent)
MUNICIPALITY = models.table(models.Municipality)
O311 = models.table(models.Open311Request)
#: the key of the client's own id in the event's ``data``
UPDATE_KEY: Final = "open311_update_id"
#: mySociety's statuses that say a request is finished (the others say it is open)
FINISHED: Final = frozenset({"FIXED", "CLOSED", "DUPLICATE"})
#: what a finished status asks of an open request
FINISHING: Final[dict[str, Status]] = {
    "FIXED": Status.RESOLVED,
    "CLOSED": Status.CLOSED,
    "DUPLICATE": Status.DUPLICATE,
}


@dataclass(frozen=True, slots=True)
class Recorded:
    update_id: int  # 1415's id of the update (request_event.id)
    request_id: int
    version: int  # the request's version after it
    changed: bool  # the status moved (the citizen is texted)
    replayed: bool  # the client sent this update_id before: nothing new was stored


def target_of(current: Status, posted: str) -> Status | None:
    """The status an update moves the request to; None when it leaves the status as it is."""
    if posted == "REOPEN":
        return None if current is Status.REOPENED else Status.REOPENED
    says = "closed" if posted in FINISHED else "open"
    if says == standard(current):
        return None
    return Status.REOPENED if says == "open" else FINISHING[posted]


async def record_update(
    session: AsyncSession,
    client: Client,
    sent: UpdateSubmission,
    *,
    calendar: WorkingCalendar,
    settings: Settings,
    now: datetime | None = None,
) -> Recorded:
    """Record the update (or find it, sent before), or ``Open311Error``: 403 outside the key's
    jurisdictions or on a request another client made, 404 for a request not found among those
    the key reaches, 400 for what the life cycle refuses."""
    conn = await session.connection()
    if sent.jurisdiction:
        if not client.reaches(sent.jurisdiction):
            raise Open311Error(403, f"this api_key does not reach jurisdiction_id {sent.jurisdiction[:64]!r}")
        await municipality_id(conn, sent.jurisdiction)
    request_id, current, version = await _own_request(conn, client, sent)
    earlier = await _sent_before(conn, client, request_id, sent.update_id)
    if earlier is not None:
        return earlier
    target = target_of(current, sent.status)
    data: dict[str, Any] = {UPDATE_KEY: sent.update_id, "updated_datetime": sent.updated.isoformat()}
    if sent.media_url:
        data["media_url"] = sent.media_url
    try:
        view = await _apply(
            session, request_id, version, target, sent, client=client, data=data, calendar=calendar,
            settings=settings, now=now,
        )  # fmt: skip
    except StaleRequest as exc:
        # the same update, sent twice at once, was written by the other: answer with it
        raced = await _sent_before(conn, client, request_id, sent.update_id)
        if raced is not None:
            return raced
        raise Open311Error(409, "the request changed while the update was recorded: send it again") from exc
    except (InvalidTransition, NotAllowed, NoteRequired, BadIntake) as exc:
        raise _refusal(exc, sent, current, target) from exc
    update_id = (
        await conn.execute(select(func.max(EVENT.c.id)).where(EVENT.c.request_id == request_id))
    ).scalar_one()  # ours: the request's row stays locked by our update until we commit
    return Recorded(int(update_id), request_id, view.version, changed=target is not None, replayed=False)


async def _apply(
    session: AsyncSession,
    request_id: int,
    version: int,
    target: Status | None,
    sent: UpdateSubmission,
    *,
    client: Client,
    data: dict[str, Any],
    calendar: WorkingCalendar,
    settings: Settings,
    now: datetime | None,
) -> RequestView:
    if target is None:
        if not sent.description:
            raise Open311Error(
                400, f"description was not provided: status {sent.status} leaves the request as it is, so "
                "the update is a note",
            )  # fmt: skip
        return await add_note(
            session, request_id, note=sent.description, public=True, expected_version=version,
            actor=client.actor, role=CITIZEN, now=now, data=data,
        )  # fmt: skip
    return await change_status(
        session, request_id, target, expected_version=version, actor=client.actor, role=CITIZEN,
        calendar=calendar, settings=settings, note=sent.description, now=now, data=data,
    )  # fmt: skip


def _refusal(exc: Exception, sent: UpdateSubmission, current: Status, target: Status | None) -> Open311Error:
    """The life cycle's refusal in the client's words."""
    where = f"request {sent.reference.display} is {extended(current)} ({current})"
    if isinstance(exc, NoteRequired):
        return Open311Error(400, f"description was not provided: say why the request is {target}")
    if isinstance(exc, NotAllowed):
        return Open311Error(
            400, f"status {sent.status} is the responsible body's to set ({where}): an Open311 client speaks "
            "for the citizen who reported the request, who may add notes and reopen it once it is "
            "finished (OPEN or REOPEN)",
        )  # fmt: skip
    if isinstance(exc, lifecycle.ReopenTooLate):
        return Open311Error(400, f"status {sent.status}: {exc.message}")
    message = exc.message if isinstance(exc, InvalidTransition | BadIntake) else str(exc)
    return Open311Error(400, f"status {sent.status} is not possible now: {where}, and {message}")


async def _own_request(
    conn: AsyncConnection, client: Client, sent: UpdateSubmission
) -> tuple[int, Status, int]:
    """The request's id, status and version, if this client made it and reaches it."""
    row = (
        await conn.execute(
            select(REQUEST.c.id, REQUEST.c.status, REQUEST.c.version, MUNICIPALITY.c.code, O311.c.client_id)
            .select_from(REQUEST)
            .outerjoin(MUNICIPALITY, MUNICIPALITY.c.id == REQUEST.c.municipality_id)
            .outerjoin(O311, O311.c.request_id == REQUEST.c.id)
            .where(REQUEST.c.reference == sent.reference.display)
        )
    ).first()
    shown = sent.reference.display
    if (
        row is None
        or (client.jurisdictions and row.code not in client.jurisdictions)
        or (sent.jurisdiction and row.code != sent.jurisdiction)
    ):
        raise Open311Error(
            404, f"service_request_id {shown!r} was not found among the requests this api_key reaches"
        )
    if row.client_id != client.id:
        raise Open311Error(
            403, f"service_request_id {shown!r} was not made with this api_key: a client sends updates "
            "only on the requests it made",
        )  # fmt: skip
    return int(row.id), Status(row.status), int(row.version)


async def _sent_before(
    conn: AsyncConnection, client: Client, request_id: int, update_id: str
) -> Recorded | None:
    """The update this client sent before with ``update_id`` on this request, if any (a
    request's events are few: they are read and matched here, on both databases alike)."""
    rows = await conn.execute(
        select(EVENT.c.id, EVENT.c.to_status, EVENT.c.data).where(
            EVENT.c.request_id == request_id, EVENT.c.actor == client.actor.name
        )
    )
    for event_id, to_status, data in rows:
        if isinstance(data, dict) and data.get(UPDATE_KEY) == update_id:
            version = (
                await conn.execute(select(REQUEST.c.version).where(REQUEST.c.id == request_id))
            ).scalar_one()
            return Recorded(
                int(event_id), request_id, int(version), changed=to_status is not None, replayed=True
            )
    return None
