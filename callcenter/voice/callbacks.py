"""A waiting caller's place kept as a callback: the ``callback`` row, the routing entry turned
into a callback (same place), and a ticket whose reference the caller hears.

One callback per number and queue while it is pending: a second request from the same number
updates the first, which keeps the earlier place, and the new caller leaves the line. Why a
ticket beside the callback row: its reference (``1415-000123``) is the one callers already key
for the status of a request (menu key 3), and agents already work tickets; ``callback.ticket_id``
links the two, and the ``callback.booked`` event records it in the routing event log. A
partial unique index keeps one live callback per number and queue even against a race.

Usage::

    booked = await book_callback(engine, acd, wait=place, kind="callback", expire_after=timedelta(hours=48))
    if booked is None:   # an agent took the call meanwhile: put the caller through instead
        ...
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcenter import models
from callcenter.desk.acd import Acd
from callcenter.errors import NotFound
from callcenter.routing.model import Entry, EntryKind
from callcenter.routing.store import Caller
from callcenter.voice.tickets import TICKET, TicketInfo, create_ticket

log = logging.getLogger(__name__)

CALLBACK = models.table(models.Callback)
BOOKED = "callback.booked"


@dataclass(frozen=True, slots=True)
class Place:
    """A caller's place in a queue: the entry as enqueued, who waits, and whether the entry is
    still in the line (``queued``) or already out of it (refused as full, or overflowed)."""

    entry: Entry
    caller: Caller
    queued: bool


@dataclass(frozen=True, slots=True)
class Booked:
    callback_id: int
    entry: str  # the routing entry that keeps the place (the first request's, when merged)
    ticket: TicketInfo
    merged: bool  # an earlier pending callback of this number and queue was updated


async def book_callback(
    engine: AsyncEngine, acd: Acd, *, wait: Place, kind: str, expire_after: timedelta
) -> Booked | None:
    """Keep ``wait``'s place as a callback; ``None`` when the entry was offered to an agent
    between the caller's key and the booking (nothing is booked: put the caller through)."""
    entry, caller = wait.entry, wait.caller
    async with engine.begin() as conn:
        await _serialise(conn, caller.phone, entry.queue)
        pending = await _pending(conn, caller.phone, entry.queue)
        if pending is not None:
            await conn.execute(
                update(CALLBACK)
                .where(CALLBACK.c.id == pending.id)
                .values(
                    language=caller.language,
                    citizen_id=caller.citizen_id if caller.citizen_id is not None else pending.citizen_id,
                    expires_at=max(_aware(pending.expires_at), models.utcnow() + expire_after),
                    updated_at=models.utcnow(),
                )
            )
            callback_id = int(pending.id)
        else:
            callback_id = await _insert(conn, wait, expire_after)
    if pending is not None:
        return await _merged(engine, acd, wait, pending, kind)
    if not await _keep_place(acd, wait, callback_id):
        async with engine.begin() as conn:
            await conn.execute(CALLBACK.delete().where(CALLBACK.c.id == callback_id))
        return None
    ticket = await create_ticket(
        engine, kind=kind, phone=caller.phone, citizen_id=caller.citizen_id, call_id=caller.call_id,
        callback=True, notes=f"callback {callback_id} in queue {entry.queue}",
    )  # fmt: skip
    await _link_ticket(engine, callback_id, ticket.id)
    await acd.record(
        BOOKED, entry=entry.id, queue=entry.queue,
        data={"callback": callback_id, "ticket": ticket.id, "call": caller.call_id},
    )  # fmt: skip
    return Booked(callback_id, entry.id, ticket, merged=False)


async def _serialise(conn: AsyncConnection, phone: str, queue: str) -> None:
    """Two requests of one number for one queue at once: one after the other (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"cb:{phone}:{queue}"}
        )


async def _pending(conn: AsyncConnection, phone: str, queue: str) -> Any:
    return (
        await conn.execute(
            select(CALLBACK)
            .where(CALLBACK.c.phone == phone, CALLBACK.c.queue == queue, CALLBACK.c.status == "pending")
            .order_by(CALLBACK.c.id)
            .limit(1)
        )
    ).one_or_none()


async def _insert(conn: AsyncConnection, wait: Place, expire_after: timedelta) -> int:
    entry, caller = wait.entry, wait.caller
    now = models.utcnow()
    inserted = await conn.execute(
        CALLBACK.insert()
        .values(
            entry=entry.id, queue=entry.queue, phone=caller.phone, citizen_id=caller.citizen_id,
            language=caller.language, priority=entry.priority, enqueued_at=entry.enqueued_at,
            status="pending", attempts=0, expires_at=now + expire_after, created_at=now, updated_at=now,
        )
        .returning(CALLBACK.c.id)
    )  # fmt: skip
    return int(inserted.scalar_one())


async def _keep_place(acd: Acd, wait: Place, callback_id: int) -> bool:
    """The entry becomes a callback at the same place; an entry no longer in the line (full on
    arrival, or past the queue's maximum wait) is queued again as a callback at its original
    place. False when an agent was offered the call meanwhile."""
    entry, caller = wait.entry, wait.caller
    if wait.queued:
        try:
            await acd.to_callback(entry.id, callback_id)
            return True
        except NotFound:
            outcome = await acd.store.outcome(entry.id)
            if outcome is not None and outcome.kind == "offer":
                return False
    await acd.store.forget(entry.id)  # an overflow outcome, acted on by this booking
    await acd.enqueue(
        replace(entry, kind=EntryKind.CALLBACK, callback_offered=True),
        replace(caller, channel="", callback_id=callback_id),
    )
    return True


async def _merged(engine: AsyncEngine, acd: Acd, wait: Place, pending: Any, kind: str) -> Booked:
    """A second request while the first is pending: the first keeps its (earlier) place; this
    caller leaves the line; the first's reference is read out again."""
    entry, caller = wait.entry, wait.caller
    if wait.queued:
        await acd.leave(entry.id, reason="callback_merged")
    else:
        await acd.store.forget(entry.id)  # an overflow outcome, acted on by this booking
    snap = await acd.store.snapshot()
    first = str(pending.entry)
    in_play = (
        first in snap.entries
        or first in snap.outcomes
        or any(record.entry == first for record in snap.agents.values())
    )
    if not in_play:  # the routing state lost it (Redis restarted): the place comes back
        log.warning("pending callback %s was not in the routing state; queued again", pending.id)
        await acd.enqueue(
            Entry(first, str(pending.queue), float(pending.enqueued_at), int(pending.priority),
                  EntryKind.CALLBACK, callback_offered=True),
            replace(caller, channel="", callback_id=int(pending.id)),
        )  # fmt: skip
    ticket = await _booked_ticket(engine, pending.ticket_id)
    if ticket is None:
        ticket = await create_ticket(
            engine, kind=kind, phone=caller.phone, citizen_id=caller.citizen_id, call_id=caller.call_id,
            callback=True, notes=f"callback {pending.id} in queue {entry.queue}",
        )  # fmt: skip
        await _link_ticket(engine, int(pending.id), ticket.id)
    await acd.record(
        "callback.updated", entry=first, queue=entry.queue,
        data={"callback": int(pending.id), "ticket": ticket.id, "call": caller.call_id,
              "from_entry": entry.id},
    )  # fmt: skip
    return Booked(int(pending.id), first, ticket, merged=True)


async def set_callback_status(engine: AsyncEngine, callback_id: int, status: str, **values: Any) -> None:
    """Move a callback row (``pending``, ``dialling``, ``done``, ``abandoned``, ``expired``,
    ``cancelled``, ``opted_out``, ``failed``), with any other columns to set."""
    async with engine.begin() as conn:
        await conn.execute(
            update(CALLBACK)
            .where(CALLBACK.c.id == callback_id)
            .values(status=status, updated_at=models.utcnow(), **values)
        )


async def _link_ticket(engine: AsyncEngine, callback_id: int, ticket_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(CALLBACK).where(CALLBACK.c.id == callback_id).values(ticket_id=ticket_id))


async def _booked_ticket(engine: AsyncEngine, ticket_id: int | None) -> TicketInfo | None:
    """The ticket booked with a callback (its reference is what the caller heard)."""
    if ticket_id is None:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(TICKET.c.id, TICKET.c.kind, TICKET.c.status, TICKET.c.callback).where(
                    TICKET.c.id == int(ticket_id)
                )
            )
        ).one_or_none()
    return None if row is None else TicketInfo(int(row.id), row.kind, row.status, bool(row.callback))


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back; they were written as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
