"""What the retention and erasure tests share: an inquiry answered by SMS, the figures results
and exports give of it, and a scan of every table for a number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter import models
from callcenter.analysis import exports, read
from callcenter.analysis.read import Scope
from callcenter.results import export_rows, inquiry_results
from callcenter.sms.gateways.base import InboundSms
from callcenter.sms.inbox import Inbox
from tests.conftest import TABLES
from tests.factories import THREE_QUESTIONS, invite, make_citizens, make_inquiry

SLUG = "three"
#: a reply that is no answer, with a number in it: free text that could identify someone
FREE_TEXT = "call me back on 0923456789 please"


async def answered_inquiry(engine: AsyncEngine, inbox: Inbox, *, municipality: str = "tripoli") -> list[str]:
    """Four citizens invited by SMS; each answers q1, the first answers q2 and then writes
    free text; returns their numbers."""
    inquiry_id = await make_inquiry(engine, yaml_text=THREE_QUESTIONS)
    phones = await make_citizens(engine, 4, municipality=municipality)
    await invite(engine, inquiry_id, phones)
    for i, phone in enumerate(phones):
        await inbox.receive(InboundSms("loopback", f"a{i}", phone, str(i + 1)))
    await inbox.receive(InboundSms("loopback", "b0", phones[0], "نعم"))
    await inbox.receive(InboundSms("loopback", "t0", phones[0], FREE_TEXT))
    return phones


async def close(engine: AsyncEngine, *, days_ago: float) -> None:
    """Close the inquiry as if it had closed ``days_ago`` days ago."""
    i = models.table(models.Inquiry)
    async with engine.begin() as conn:
        await conn.execute(
            update(i)
            .where(i.c.slug == SLUG)
            .values(status="closed", updated_at=datetime.now(UTC) - timedelta(days=days_ago))
        )


async def figures(engine: AsyncEngine, key: str) -> dict[str, Any]:
    """Everything results and exports say of the inquiry, in comparable form."""
    results = await inquiry_results(engine, SLUG)
    rows = [row async for row in export_rows(engine, SLUG, key=key)]
    async with engine.connect() as conn:
        inquiry = await read.load_inquiry(conn, SLUG)
        columns = exports.layout(inquiry, weighted=False)
        micro = [
            row
            async for batch in exports.respondents(
                conn, inquiry, columns, scope=Scope(), weighting=None, key=key, coded=False
            )
            for row in batch
        ]
        rates = await read.outcome_rates(conn, inquiry, scope=Scope(), e=None)
    return {
        "totals": [q.total for q in results.questions],
        "shares": [[(s.value, s.count) for s in q.shares] for q in results.questions],
        "funnel": results.funnel,
        "export": sorted(rows),
        "microdata": sorted(map(repr, micro)),
        "rates": rates.overall.counts,
    }


async def tables_holding(engine: AsyncEngine, needle: str) -> dict[str, int]:
    """Every table with a row whose text holds ``needle`` (row count per table)."""
    found: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in TABLES:
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
            hits = sum(1 for row in rows if needle in repr(tuple(row)))
            if hits:
                found[table] = hits
    return found


async def citizen_id(engine: AsyncEngine, phone: str) -> int | None:
    c = models.table(models.Citizen)
    async with engine.connect() as conn:
        return (await conn.execute(select(c.c.id).where(c.c.phone == phone))).scalar()
