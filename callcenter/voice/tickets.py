"""Tickets from the voice line: service requests and callbacks, and finding one again by the
reference the caller was read out (``1415-000123``), keyed as ``123`` or ``1415000123``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.sql import insert

TICKET = models.table(models.Ticket)
PREFIX = "1415"
SERVICE = "service"
CALLBACK = "callback"


@dataclass(frozen=True, slots=True)
class TicketInfo:
    id: int
    kind: str
    status: str
    callback: bool

    @property
    def reference(self) -> str:
        return reference(self.id)

    @property
    def digits(self) -> str:
        """The reference as keyed and read out, without the dash."""
        return self.reference.replace("-", "")


def reference(ticket_id: int) -> str:
    """Same as ``models.Ticket.reference``."""
    return f"{PREFIX}-{ticket_id:06d}"


def parse_reference(digits: str) -> int | None:
    """``"123"``, ``"000123"`` or ``"1415000123"`` → 123; None if it cannot be a ticket id.

    A reference always has at least six digits after ``1415``: ten or more digits starting
    with 1415 are the full reference, anything shorter is the number alone.
    """
    digits = digits.strip().replace("-", "")
    if not digits.isdigit() or not digits.isascii():
        return None
    if len(digits) >= 10 and digits.startswith(PREFIX):
        digits = digits[len(PREFIX) :]
    number = int(digits)
    return number if number > 0 else None


async def create_ticket(
    engine: AsyncEngine,
    *,
    kind: str,
    phone: str = "",
    citizen_id: int | None = None,
    call_id: int | None = None,
    callback: bool = True,
    notes: str = "",
    municipality_id: int | None = None,
) -> TicketInfo:
    async with engine.begin() as conn:
        ticket_id = (
            await conn.execute(
                insert(engine.dialect.name, TICKET)
                .values(
                    kind=kind,
                    phone=phone[:32],
                    citizen_id=citizen_id,
                    call_id=call_id,
                    municipality_id=municipality_id,
                    callback=callback,
                    notes=notes[:2000],
                    status="open",
                    created_at=func.now(),
                    updated_at=func.now(),
                )
                .returning(TICKET.c.id)
            )
        ).scalar_one()
    return TicketInfo(int(ticket_id), kind, "open", callback)


async def find_ticket(engine: AsyncEngine, digits: str) -> TicketInfo | None:
    """The ticket whose reference the caller keyed, or None."""
    ticket_id = parse_reference(digits)
    if ticket_id is None:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(TICKET.c.id, TICKET.c.kind, TICKET.c.status, TICKET.c.callback).where(
                    TICKET.c.id == ticket_id
                )
            )
        ).one_or_none()
    if row is None:
        return None
    return TicketInfo(int(row.id), row.kind, row.status, bool(row.callback))
