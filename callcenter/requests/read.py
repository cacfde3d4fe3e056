"""Reading service requests: one by id or by the reference a citizen keyed, the status a
lookup may tell (only to the reporter's number), the history, and who hears of a change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter import models
from callcenter.errors import NotFound
from callcenter.requests.lifecycle import Status
from callcenter.requests.reference import Reference, parse

REQUEST = models.table(models.ServiceRequest)
EVENT = models.table(models.RequestEvent)


@dataclass(frozen=True, slots=True)
class RequestView:
    """A request as read: what pages, the IVR and SMS show."""

    id: int
    reference: str
    status: Status
    version: int
    category_id: int
    municipality_id: int | None
    body_id: int
    phone: str
    citizen_id: int | None
    channel: str
    language: str
    description: str
    duplicate_of: int | None
    referrals: int
    flagged: bool
    assigned_to: int | None
    sla_state: str
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    paused_since: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: RowMapping) -> RequestView:
        values: dict[str, Any] = {name: row[name] for name in cls.__dataclass_fields__}
        values["status"] = Status(values["status"])
        values.update({name: aware(row[name]) for name in _DATES})
        return cls(**values)


_DATES: Final = frozenset(
    {"first_response_due_at", "resolution_due_at", "paused_since", "resolved_at", "closed_at", "created_at"}
)


async def get_request(conn: AsyncConnection, request_id: int) -> RequestView:
    row = (await conn.execute(select(REQUEST).where(REQUEST.c.id == request_id))).mappings().one_or_none()
    if row is None:
        raise NotFound("no such request", request_id=request_id)
    return RequestView.of(row)


async def find_by_reference(conn: AsyncConnection, text: str | Reference) -> RequestView | None:
    """The request a citizen or officer keyed (``BadReference`` when the text cannot be one)."""
    ref = text if isinstance(text, Reference) else parse(text)
    row = (
        (await conn.execute(select(REQUEST).where(REQUEST.c.reference == ref.display)))
        .mappings()
        .one_or_none()
    )
    return RequestView.of(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class StatusLookup:
    """What a status lookup may tell: the request and its last public note only when asked
    from the reporter's number; otherwise only that it exists (the channel then sends the
    status by SMS to ``reporter_phone``)."""

    request: RequestView | None
    last_public_note: str = ""
    reporter_phone: str = ""

    @property
    def for_reporter(self) -> bool:
        return self.request is not None


async def lookup_status(conn: AsyncConnection, text: str, phone: str) -> StatusLookup | None:
    """The status for the caller of ``phone`` (E.164); None when no request has the reference."""
    found = await find_by_reference(conn, text)
    if found is None:
        return None
    if not phone or found.phone != phone:
        return StatusLookup(None, reporter_phone=found.phone)
    note = await conn.execute(
        select(EVENT.c.note)
        .where(EVENT.c.request_id == found.id, EVENT.c.public.is_(True), EVENT.c.note != "")
        .order_by(EVENT.c.at.desc(), EVENT.c.id.desc())
        .limit(1)
    )
    return StatusLookup(found, note.scalar() or "", found.phone)


async def history(
    conn: AsyncConnection, request_id: int, *, public_only: bool = False
) -> list[dict[str, Any]]:
    """The request's events, oldest first (only the public ones for the citizen)."""
    query = select(EVENT).where(EVENT.c.request_id == request_id).order_by(EVENT.c.at, EVENT.c.id)
    if public_only:
        query = query.where(EVENT.c.public.is_(True))
    return [dict(row) for row in (await conn.execute(query)).mappings()]


async def phones_to_notify(conn: AsyncConnection, request_id: int) -> list[str]:
    """Who hears of a public change of this request: its reporter and the reporters of the
    requests marked as its duplicates (distinct, in order of reporting)."""
    rows = await conn.execute(
        select(REQUEST.c.phone)
        .where((REQUEST.c.id == request_id) | (REQUEST.c.duplicate_of == request_id), REQUEST.c.phone != "")
        .order_by(REQUEST.c.id)
    )
    return list(dict.fromkeys(rows.scalars()))


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive UTC datetimes back."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
