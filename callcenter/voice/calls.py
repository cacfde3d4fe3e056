"""Call records (CDR rows in ``call``) written by the IVR: one per AGI session.

The row is opened as soon as the call reaches the engine (``answered_at`` set: the dialer
takes it as evidence that a campaign call was answered) and closed when the handler ends,
however it ends: the outcome says how far the citizen got.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.sql import insert

CALL = models.table(models.Call)


class CallOutcome(StrEnum):
    """``Call.outcome`` as the IVR writes it (all final: the IVR never retries a call)."""

    COMPLETED = "completed"  # the inquiry was completed during this call
    CONNECTED = "connected"  # the caller talked to an agent
    CALLBACK = "callback"  # a service request / callback ticket was stored
    ANSWERED = "answered"  # the IVR ran to its end without either
    ABANDONED = "abandoned"  # the caller hung up before the end
    FAILED = "failed"  # the engine failed (a bug, the database): the caller heard an apology


@dataclass(frozen=True, slots=True)
class CallStart:
    direction: str  # "in" | "out"
    uniqueid: str | None
    channel: str
    caller: str
    language: str
    citizen_id: int | None = None
    campaign_id: int | None = None
    delivery_id: int | None = None


def _existing(table: Table, row_id: int | None) -> Any:
    return None if row_id is None else select(table.c.id).where(table.c.id == row_id).scalar_subquery()


async def open_call(engine: AsyncEngine, start: CallStart) -> int:
    """Insert the call's row; an AGI session re-run on the same channel reuses it."""
    values = {
        "direction": start.direction,
        "uniqueid": start.uniqueid or None,
        "channel": start.channel[:128],
        "caller": start.caller[:32],
        "language": start.language,
        "citizen_id": start.citizen_id,
        # ids from channel variables are only kept if they exist: a stale or mistyped
        # variable must not stop the call on a foreign key
        "campaign_id": _existing(models.table(models.Campaign), start.campaign_id),
        "delivery_id": _existing(models.table(models.Delivery), start.delivery_id),
        "started_at": func.now(),
        "answered_at": func.now(),
    }
    async with engine.begin() as conn:
        created = (
            await conn.execute(
                insert(engine.dialect.name, CALL)
                .values(**values)
                .on_conflict_do_nothing()
                .returning(CALL.c.id)
            )
        ).scalar_one_or_none()
        if created is None:
            created = (
                await conn.execute(select(CALL.c.id).where(CALL.c.uniqueid == start.uniqueid))
            ).scalar()
    if created is None:
        raise RuntimeError(f"call {start.uniqueid!r}: neither inserted nor found")
    return int(created)


async def close_call(
    engine: AsyncEngine,
    call_id: int,
    *,
    outcome: CallOutcome,
    language: str,
    citizen_id: int | None = None,
    session_id: int | None = None,
    hangup_cause: str | None = None,
) -> None:
    values: dict[str, object] = {"outcome": outcome.value, "language": language, "ended_at": func.now()}
    if citizen_id is not None:
        values["citizen_id"] = citizen_id
    if session_id is not None:
        values["session_id"] = session_id
    if hangup_cause:
        values["hangup_cause"] = hangup_cause[:64]
    async with engine.begin() as conn:
        await conn.execute(update(CALL).where(CALL.c.id == call_id).values(**values))
